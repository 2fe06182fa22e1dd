//! Per-route outbound shaping, to stay inside Adobe's quotas instead of collecting their 429s:
//! a token bucket (`rate_limit = { per_second, burst }`) and a concurrency cap
//! (`max_concurrent`). A request over either waits in a bounded queue (`queue_size`
//! requests, `queue_timeout` at most); past that it gets 429 `rate_limited` with
//! `Retry-After`.
//!
//! The bucket reserves a token at arrival, even when that token is only available later, so
//! waiting requests are served first come first served and a request that cannot be served
//! within `queue_timeout` is told so at once instead of after waiting.

use crate::config::{ConfigError, RouteConfig};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The settings a limiter was built from; a reload keeps the limiter (its tokens, its
/// requests in flight) when they are unchanged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LimitSettings {
    pub per_second: Option<f64>,
    pub burst: u32,
    pub max_concurrent: Option<u32>,
    pub queue_size: u32,
    pub queue_timeout: Duration,
}

#[derive(Debug)]
pub struct RouteLimiter {
    route: String,
    settings: LimitSettings,
    bucket: Option<Mutex<Bucket>>,
    concurrency: Option<Arc<Semaphore>>,
    queued: AtomicU32,
}

#[derive(Debug)]
struct Bucket {
    rate: f64,
    burst: f64,
    /// May go negative: tokens reserved by queued requests.
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
    }
}

/// Why a request was refused, and when to try again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub retry_after: Duration,
}

/// Held for as long as the request occupies the upstream (until its response body ends).
#[derive(Debug)]
pub struct Permit {
    _concurrency: Option<OwnedSemaphorePermit>,
}

/// Limiters by route prefix; only routes with limits have one.
pub type Shaping = BTreeMap<String, Arc<RouteLimiter>>;

impl RouteLimiter {
    /// `None` when the route sets no limit. `key` is `routes[i]`, `route` the metrics label.
    pub fn from_config(
        key: &str,
        route: &str,
        rc: &RouteConfig,
    ) -> Result<Option<RouteLimiter>, ConfigError> {
        if rc.rate_limit.is_none() && rc.max_concurrent.is_none() {
            return Ok(None);
        }
        let (per_second, burst) = match rc.rate_limit {
            None => (None, 0),
            Some(rl) => {
                if !(rl.per_second.is_finite() && rl.per_second > 0.0) {
                    return Err(ConfigError::new(
                        format!("{key}.rate_limit.per_second"),
                        "must be a number above 0",
                    ));
                }
                // Without a burst, one second's worth: the smallest bucket that still lets a
                // steady `per_second` through when requests arrive unevenly.
                let burst = rl
                    .burst
                    .unwrap_or_else(|| (rl.per_second.ceil() as u32).max(1));
                if burst == 0 {
                    return Err(ConfigError::new(
                        format!("{key}.rate_limit.burst"),
                        "must be at least 1",
                    ));
                }
                (Some(rl.per_second), burst)
            }
        };
        if rc.max_concurrent == Some(0) {
            return Err(ConfigError::new(
                format!("{key}.max_concurrent"),
                "must be at least 1",
            ));
        }
        let settings = LimitSettings {
            per_second,
            burst,
            max_concurrent: rc.max_concurrent,
            queue_size: rc.queue_size,
            queue_timeout: rc.queue_timeout,
        };
        Ok(Some(RouteLimiter::new(route, settings)))
    }

    pub fn new(route: &str, settings: LimitSettings) -> RouteLimiter {
        RouteLimiter {
            route: route.to_string(),
            bucket: settings.per_second.map(|rate| {
                Mutex::new(Bucket {
                    rate,
                    burst: f64::from(settings.burst),
                    tokens: f64::from(settings.burst),
                    last: Instant::now(),
                })
            }),
            concurrency: settings
                .max_concurrent
                .map(|n| Arc::new(Semaphore::new(n as usize))),
            settings,
            queued: AtomicU32::new(0),
        }
    }

    pub fn settings(&self) -> &LimitSettings {
        &self.settings
    }

    /// Waits for the route's limits to admit the request, or refuses it.
    pub async fn acquire(&self) -> Result<Permit, Refused> {
        let deadline = Instant::now() + self.settings.queue_timeout;
        let reservation = self.reserve_token(deadline)?;
        if let Some(wait_until) = reservation.as_ref().and_then(|r| r.wait_until) {
            let _q = self.enqueue();
            tokio::time::sleep_until(wait_until).await;
        }
        let concurrency = match &self.concurrency {
            None => None,
            Some(sem) => match sem.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    if self.queued.load(Ordering::Relaxed) >= self.settings.queue_size {
                        return Err(self.refuse(Duration::from_secs(1)));
                    }
                    let _q = self.enqueue();
                    match tokio::time::timeout_at(deadline, sem.clone().acquire_owned()).await {
                        Ok(Ok(p)) => Some(p),
                        // Timed out (or the semaphore closed, which this code never does):
                        // how long until a slot frees is unknowable, so a short retry.
                        _ => return Err(self.refuse(Duration::from_secs(1))),
                    }
                }
            },
        };
        if let Some(r) = reservation {
            r.commit();
        }
        Ok(Permit {
            _concurrency: concurrency,
        })
    }

    /// Takes a token now or reserves the next free one; `Ok(None)` without a bucket.
    fn reserve_token(&self, deadline: Instant) -> Result<Option<Reservation<'_>>, Refused> {
        let Some(bucket) = &self.bucket else {
            return Ok(None);
        };
        let mut b = bucket.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        b.refill(now);
        let wait = if b.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - b.tokens) / b.rate)
        };
        if !wait.is_zero()
            && (now + wait > deadline
                || self.queued.load(Ordering::Relaxed) >= self.settings.queue_size)
        {
            drop(b);
            return Err(self.refuse(wait));
        }
        b.tokens -= 1.0;
        Ok(Some(Reservation {
            limiter: self,
            wait_until: (!wait.is_zero()).then_some(now + wait),
            committed: false,
        }))
    }

    fn refuse(&self, retry_after: Duration) -> Refused {
        crate::metrics::rate_limited(&self.route);
        // Whole seconds, rounded up: Retry-After has no finer unit, and 0 invites a retry storm.
        let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
        Refused {
            retry_after: Duration::from_secs(secs),
        }
    }

    fn enqueue(&self) -> QueueSlot<'_> {
        self.queued.fetch_add(1, Ordering::Relaxed);
        crate::metrics::rate_limit_queued(&self.route, 1.0);
        QueueSlot(self)
    }
}

/// A token taken from the bucket; given back if the request never goes out (the client left
/// while queued, or the concurrency wait timed out), so abandoned requests do not eat quota.
struct Reservation<'a> {
    limiter: &'a RouteLimiter,
    wait_until: Option<Instant>,
    committed: bool,
}

impl Reservation<'_> {
    fn commit(mut self) {
        self.committed = true;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        if let Some(bucket) = &self.limiter.bucket {
            let mut b = bucket.lock().unwrap_or_else(|p| p.into_inner());
            b.tokens = (b.tokens + 1.0).min(b.burst);
        }
    }
}

struct QueueSlot<'a>(&'a RouteLimiter);

impl Drop for QueueSlot<'_> {
    fn drop(&mut self) {
        self.0.queued.fetch_sub(1, Ordering::Relaxed);
        crate::metrics::rate_limit_queued(&self.0.route, -1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(per_second: Option<f64>, burst: u32, max_concurrent: Option<u32>) -> LimitSettings {
        LimitSettings {
            per_second,
            burst,
            max_concurrent,
            queue_size: 10,
            queue_timeout: Duration::from_secs(5),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn bucket_admits_the_burst_then_queues_at_the_rate() {
        let l = RouteLimiter::new("/t", settings(Some(2.0), 2, None));
        let start = Instant::now();
        for _ in 0..4 {
            l.acquire().await.unwrap();
        }
        // Two from the burst, then one every 500 ms.
        assert_eq!(start.elapsed(), Duration::from_millis(1000));
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_beyond_the_queue_timeout_is_refused_at_once_with_retry_after() {
        let mut s = settings(Some(0.5), 1, None);
        s.queue_timeout = Duration::from_millis(2500);
        let l = Arc::new(RouteLimiter::new("/t", s));
        l.acquire().await.unwrap();
        // The next token is 2 s away: this one queues for it...
        let queued = tokio::spawn({
            let l = l.clone();
            async move { l.acquire().await.map(drop) }
        });
        tokio::task::yield_now().await;
        // ...and one more would wait 4 s, beyond the 2.5 s queue timeout.
        let start = Instant::now();
        let refused = l.acquire().await.unwrap_err();
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!(refused.retry_after, Duration::from_secs(4));
        queued.await.unwrap().unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_waits_for_a_slot_then_times_out() {
        let mut s = settings(None, 0, Some(1));
        s.queue_timeout = Duration::from_secs(2);
        let l = RouteLimiter::new("/t", s);
        let held = l.acquire().await.unwrap();
        assert!(l.acquire().await.is_err());
        drop(held);
        assert!(l.acquire().await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_refuses_immediately() {
        let mut s = settings(None, 0, Some(1));
        s.queue_size = 0;
        let l = RouteLimiter::new("/t", s);
        let _held = l.acquire().await.unwrap();
        let start = Instant::now();
        assert!(l.acquire().await.is_err());
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
