//! Adobe's API gateway quota, as `ims-proxy sandbox --quota N/s` plays it: each credential
//! (by its `x-api-key`) may make `N` requests a second, `N` at once; beyond that the gateway
//! answers `429` with `Retry-After` and `{"error_code":"429050","message":"Too many requests"}`
//! (`shared/ADOBE.md` §7), without reaching the API. IMS is not throttled here.

use super::gateway::{gateway, Reply};
use http::{HeaderMap, HeaderValue};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const MAX_TRACKED: usize = 10_000;

#[derive(Debug)]
pub struct Throttle {
    interval: Duration,
    tolerance: Duration,
    /// When each credential's next request is due at the steady rate (GCRA's TAT).
    due: Mutex<HashMap<String, Instant>>,
    refused: Mutex<HashMap<String, usize>>,
}

impl Throttle {
    /// `per_second` requests a second per credential, as many at once.
    pub fn new(per_second: u32) -> Throttle {
        let per_second = per_second.max(1);
        let interval = Duration::from_secs(1) / per_second;
        Throttle {
            interval,
            tolerance: interval * (per_second - 1),
            due: Mutex::new(HashMap::new()),
            refused: Mutex::new(HashMap::new()),
        }
    }

    /// `None` when the request may go on; Adobe's 429 when its credential is over.
    pub fn check(&self, headers: &HeaderMap) -> Option<Reply> {
        let key = headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let now = Instant::now();
        let mut due = self.due.lock().unwrap_or_else(|p| p.into_inner());
        let tat = due.get(&key).copied().unwrap_or(now).max(now);
        let wait = tat
            .saturating_duration_since(now)
            .saturating_sub(self.tolerance);
        if wait.is_zero() {
            // Credentials whose slot has passed hold nothing: forget them before the map grows
            // with every x-api-key a caller makes up.
            if due.len() >= MAX_TRACKED {
                due.retain(|_, t| *t > now);
            }
            due.insert(key, tat + self.interval);
            return None;
        }
        drop(due);
        let mut refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        if refused.len() < MAX_TRACKED || refused.contains_key(&key) {
            *refused.entry(key).or_default() += 1;
        }
        drop(refused);
        let mut reply = gateway(429, "429050", "Too many requests");
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        reply
            .headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
        Some(reply)
    }

    /// Requests refused so far, by `x-api-key`.
    pub fn refused(&self) -> HashMap<String, usize> {
        self.refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(key: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-api-key", HeaderValue::from_static(key));
        h
    }

    #[test]
    fn each_credential_gets_its_own_quota_then_adobes_429() {
        let t = Throttle::new(2);
        assert!(t.check(&headers("a")).is_none());
        assert!(t.check(&headers("a")).is_none());
        let refused = t
            .check(&headers("a"))
            .expect("a third request within the second");
        assert_eq!(refused.status(), 429);
        assert_eq!(refused.headers()["retry-after"], "1");
        assert!(t.check(&headers("b")).is_none());
        assert_eq!(t.refused().get("a"), Some(&1));
    }
}
