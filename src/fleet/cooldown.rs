//! The in-process cool-down registry: after an upstream's 429, the credential and upstream
//! host it came from, and until when nothing more goes to them.
//!
//! Checked on every request, so the common case (no cool-down running anywhere) is a single
//! atomic load: `latest` is the end of the last-ending cool-down (0: none ever).

use super::keys::CooldownKey;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug)]
pub struct Cooldowns {
    epoch: Instant,
    /// Nanoseconds after `epoch` when the last cool-down ends; 0 when none ever ran.
    latest: AtomicU64,
    running: Mutex<Vec<(CooldownKey, Instant)>>,
}

impl Default for Cooldowns {
    fn default() -> Self {
        Cooldowns {
            epoch: Instant::now(),
            latest: AtomicU64::new(0),
            running: Mutex::new(Vec::new()),
        }
    }
}

/// A running cool-down, for the status page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CooldownRow {
    pub key: CooldownKey,
    pub remaining: Duration,
}

impl Cooldowns {
    pub fn start(&self, key: &CooldownKey, length: Duration) {
        let now = Instant::now();
        // The caller caps `length`; a day past `now` stands in should it ever not fit.
        let until = now
            .checked_add(length)
            .unwrap_or_else(|| now + Duration::from_secs(86_400));
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running.retain(|(_, end)| *end > now);
        match running.iter_mut().find(|(k, _)| k == key) {
            Some((_, end)) => *end = (*end).max(until),
            None => running.push((key.clone(), until)),
        }
        let nanos = u64::try_from(until.duration_since(self.epoch).as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        self.latest.fetch_max(nanos, Ordering::Release);
    }

    pub fn remaining(&self, key: &CooldownKey) -> Option<Duration> {
        let latest = self.latest.load(Ordering::Acquire);
        if latest == 0 {
            return None;
        }
        let now = Instant::now();
        if now.duration_since(self.epoch) >= Duration::from_nanos(latest) {
            return None;
        }
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, end)| end.saturating_duration_since(now))
            .filter(|d| !d.is_zero())
    }

    pub fn running(&self) -> Vec<CooldownRow> {
        let now = Instant::now();
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running
            .iter()
            .filter(|(_, end)| *end > now)
            .map(|(key, end)| CooldownRow {
                key: key.clone(),
                remaining: *end - now,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::keys::CredentialKey;

    fn key(host: &str) -> CooldownKey {
        CooldownKey {
            credential: CredentialKey {
                name: "c".into(),
                identity: "id".into(),
            },
            host: host.into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_cool_down_counts_down_for_its_host_only_then_ends() {
        let c = Cooldowns::default();
        assert_eq!(c.remaining(&key("a")), None);
        c.start(&key("a"), Duration::from_secs(2));
        assert_eq!(c.remaining(&key("a")), Some(Duration::from_secs(2)));
        assert_eq!(c.remaining(&key("b")), None);
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert_eq!(c.remaining(&key("a")), Some(Duration::from_millis(500)));
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(c.remaining(&key("a")), None);
        assert!(c.running().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_shorter_cool_down_does_not_cut_a_longer_one() {
        let c = Cooldowns::default();
        c.start(&key("a"), Duration::from_secs(10));
        c.start(&key("a"), Duration::from_secs(1));
        assert_eq!(c.remaining(&key("a")), Some(Duration::from_secs(10)));
    }
}
