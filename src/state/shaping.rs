//! Per-route outbound shaping, to stay inside Adobe's quotas instead of collecting their 429s:
//! the route's rate (`rate_limit = { per_second, burst }`), its credential's `quota` (shared by
//! every route using the credential), and a concurrency cap (`max_concurrent`). A request over
//! any of them waits in the route's bounded queue (`queue_size` requests, `queue_timeout` at
//! most); past that it gets 429 with `Retry-After`. While its credential and upstream host are
//! cooling down after an upstream 429, it gets 429 at once.
//!
//! Rates are decided by [`Fleet`] (in-process, or shared by the replicas): a slot is reserved
//! at arrival, even when it is only free later, so waiting requests are served first come
//! first served and a request that cannot be served within `queue_timeout` is told so at once
//! instead of after waiting.

use crate::config::{ConfigError, RateLimitConfig, RouteConfig};
use crate::fleet::{Ask, CooldownKey, CredentialKey, Fleet, Limit, LimitKey, Rate, Verdict};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The settings a limiter was built from; a reload keeps the limiter (its reservations, its
/// requests in flight) when they are unchanged and its credential's quota is the same one.
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
    /// The route's own `rate_limit`.
    rate: Option<Limit>,
    /// Its credential's `quota`, the same `Limit` for every route of the credential.
    quota: Option<Arc<Limit>>,
    concurrency: Option<Arc<Semaphore>>,
    queued: AtomicU32,
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusedBy {
    /// The route's `rate_limit` or `max_concurrent`.
    Route,
    /// The credential's `quota`.
    Quota,
    /// The credential and host are cooling down after an upstream 429.
    CoolDown,
}

/// Why a request was refused, and when to try again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub by: RefusedBy,
    pub retry_after: Duration,
}

impl Refused {
    /// Whole seconds, rounded up: Retry-After has no finer unit, and 0 invites a retry storm.
    pub fn new(by: RefusedBy, retry_after: Duration) -> Refused {
        let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
        Refused {
            by,
            retry_after: Duration::from_secs(secs),
        }
    }
}

/// Held for as long as the request occupies the upstream (until its response body ends).
#[derive(Debug)]
pub struct Permit {
    _concurrency: Option<OwnedSemaphorePermit>,
}

/// Limiters by route prefix; only routes with limits (their own or their credential's) have one.
pub type Shaping = BTreeMap<String, Arc<RouteLimiter>>;

/// `rate_limit` or `quota` as a [`Rate`]; `key` names the table for errors.
pub fn rate(key: &str, rl: &RateLimitConfig) -> Result<Rate, ConfigError> {
    // Bounded both ways so that every interval and burst window is a representable time.
    if !(rl.per_second.is_finite() && (MIN_PER_SECOND..=MAX_PER_SECOND).contains(&rl.per_second)) {
        return Err(ConfigError::new(
            format!("{key}.per_second"),
            format!("must be a number from {MIN_PER_SECOND} (one request in 1000 s) to {MAX_PER_SECOND}"),
        ));
    }
    // Without a burst, one second's worth: the smallest bucket that still lets a steady
    // `per_second` through when requests arrive unevenly.
    let burst = rl
        .burst
        .unwrap_or_else(|| (rl.per_second.ceil() as u32).max(1));
    if !(1..=MAX_BURST).contains(&burst) {
        return Err(ConfigError::new(
            format!("{key}.burst"),
            format!("must be from 1 to {MAX_BURST}"),
        ));
    }
    Ok(Rate {
        per_second: rl.per_second,
        burst,
    })
}

const MIN_PER_SECOND: f64 = 0.001;
const MAX_PER_SECOND: f64 = 1_000_000.0;
const MAX_BURST: u32 = 1_000_000;

impl RouteLimiter {
    /// `None` when neither the route nor its credential sets a limit. `key` is `routes[i]`,
    /// `route` the metrics label, `quota` the credential's.
    pub fn from_config(
        key: &str,
        route: &str,
        rc: &RouteConfig,
        credential: &CredentialKey,
        quota: Option<Arc<Limit>>,
    ) -> Result<Option<RouteLimiter>, ConfigError> {
        if rc.rate_limit.is_none() && rc.max_concurrent.is_none() && quota.is_none() {
            return Ok(None);
        }
        let own = match &rc.rate_limit {
            None => None,
            Some(rl) => Some(rate(&format!("{key}.rate_limit"), rl)?),
        };
        if rc.max_concurrent == Some(0) {
            return Err(ConfigError::new(
                format!("{key}.max_concurrent"),
                "must be at least 1",
            ));
        }
        let settings = LimitSettings {
            per_second: own.map(|r| r.per_second),
            burst: own.map_or(0, |r| r.burst),
            max_concurrent: rc.max_concurrent,
            queue_size: rc.queue_size,
            queue_timeout: rc.queue_timeout,
        };
        let own_key = LimitKey::Route {
            credential: credential.clone(),
            prefix: route.into(),
        };
        Ok(Some(RouteLimiter::new(route, settings, own_key, quota)))
    }

    pub fn new(
        route: &str,
        settings: LimitSettings,
        key: LimitKey,
        quota: Option<Arc<Limit>>,
    ) -> RouteLimiter {
        RouteLimiter {
            route: route.to_string(),
            rate: settings.per_second.map(|per_second| {
                Limit::new(
                    key,
                    Rate {
                        per_second,
                        burst: settings.burst,
                    },
                )
            }),
            quota,
            concurrency: settings
                .max_concurrent
                .map(|n| Arc::new(Semaphore::new(n as usize))),
            settings,
            queued: AtomicU32::new(0),
        }
    }

    /// Whether `self` can stand in for `fresh` over a reload: the same settings, the same
    /// route key, and the very same quota (a kept credential quota, or none for both).
    pub fn same_as(&self, fresh: &RouteLimiter) -> bool {
        self.settings == fresh.settings
            && self.rate.as_ref().map(|l| &l.key) == fresh.rate.as_ref().map(|l| &l.key)
            && match (&self.quota, &fresh.quota) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            }
    }

    pub fn settings(&self) -> &LimitSettings {
        &self.settings
    }

    /// Waits for the route's limits, its credential's quota and any cool-down to admit the
    /// request, or refuses it. `cooldown`: `None` when the credential passes 429s through.
    pub async fn acquire(
        &self,
        fleet: &Fleet,
        cooldown: Option<&CooldownKey>,
    ) -> Result<Permit, Refused> {
        let deadline = Instant::now() + self.settings.queue_timeout;
        let (both, one);
        let limits: &[&Limit] = match (&self.rate, self.quota.as_deref()) {
            (Some(r), Some(q)) => {
                both = [r, q];
                &both
            }
            (Some(l), None) | (None, Some(l)) => {
                one = [l];
                &one
            }
            (None, None) => &[],
        };
        // A full queue admits only requests that need not wait.
        let max_wait = if self.queued.load(Ordering::Relaxed) >= self.settings.queue_size {
            Duration::ZERO
        } else {
            self.settings.queue_timeout
        };
        let ask = Ask {
            limits,
            cooldown,
            max_wait,
        };
        let wait = match fleet.reserve(&ask).await {
            Verdict::Go { wait } => wait,
            Verdict::CoolingDown { remaining } => {
                return Err(self.refuse(RefusedBy::CoolDown, remaining))
            }
            Verdict::Over { index, retry_after } => {
                let by = match (limits.get(index), &self.quota) {
                    (Some(l), Some(q)) if std::ptr::eq(*l, &**q) => RefusedBy::Quota,
                    _ => RefusedBy::Route,
                };
                return Err(self.refuse(by, retry_after));
            }
        };
        let reservation = Reservation {
            fleet,
            limits,
            committed: false,
        };
        if !wait.is_zero() {
            let _q = self.enqueue();
            tokio::time::sleep(wait).await;
            // A cool-down that began while this request queued is not waited out: its end
            // would release every queued request at once into the throttle that caused it.
            if let Some(remaining) = cooldown.and_then(|k| fleet.cooldown(k)) {
                return Err(self.refuse(RefusedBy::CoolDown, remaining));
            }
        }
        let concurrency = match &self.concurrency {
            None => None,
            Some(sem) => match sem.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    if self.queued.load(Ordering::Relaxed) >= self.settings.queue_size {
                        return Err(self.refuse(RefusedBy::Route, Duration::from_secs(1)));
                    }
                    let _q = self.enqueue();
                    match tokio::time::timeout_at(deadline, sem.clone().acquire_owned()).await {
                        Ok(Ok(p)) => Some(p),
                        // Timed out (or the semaphore closed, which this code never does):
                        // how long until a slot frees is unknowable, so a short retry.
                        _ => return Err(self.refuse(RefusedBy::Route, Duration::from_secs(1))),
                    }
                }
            },
        };
        reservation.commit();
        Ok(Permit {
            _concurrency: concurrency,
        })
    }

    fn refuse(&self, by: RefusedBy, retry_after: Duration) -> Refused {
        match by {
            RefusedBy::Route => crate::metrics::rate_limited(&self.route),
            RefusedBy::Quota | RefusedBy::CoolDown => {}
        }
        Refused::new(by, retry_after)
    }

    fn enqueue(&self) -> QueueSlot<'_> {
        self.queued.fetch_add(1, Ordering::Relaxed);
        crate::metrics::rate_limit_queued(&self.route, 1.0);
        QueueSlot(self)
    }
}

/// Slots taken in the limits; given back if the request never goes out (the client left
/// while queued, the concurrency wait timed out, a cool-down began), so abandoned requests do
/// not eat quota.
struct Reservation<'a> {
    fleet: &'a Fleet,
    limits: &'a [&'a Limit],
    committed: bool,
}

impl Reservation<'_> {
    fn commit(mut self) {
        self.committed = true;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.committed {
            self.fleet.release(self.limits);
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

    fn key() -> LimitKey {
        LimitKey::Route {
            credential: CredentialKey {
                name: "c".into(),
                identity: "id".into(),
            },
            prefix: "/t".into(),
        }
    }

    fn limiter(s: LimitSettings) -> RouteLimiter {
        RouteLimiter::new("/t", s, key(), None)
    }

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
        let fleet = Fleet::local();
        let l = limiter(settings(Some(2.0), 2, None));
        let start = Instant::now();
        for _ in 0..4 {
            l.acquire(&fleet, None).await.unwrap();
        }
        // Two from the burst, then one every 500 ms.
        assert_eq!(start.elapsed(), Duration::from_millis(1000));
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_beyond_the_queue_timeout_is_refused_at_once_with_retry_after() {
        let fleet = Fleet::local();
        let mut s = settings(Some(0.5), 1, None);
        s.queue_timeout = Duration::from_millis(2500);
        let l = Arc::new(limiter(s));
        l.acquire(&fleet, None).await.unwrap();
        // The next token is 2 s away: this one queues for it...
        let queued = tokio::spawn({
            let l = l.clone();
            let fleet = fleet.clone();
            async move { l.acquire(&fleet, None).await.map(drop) }
        });
        tokio::task::yield_now().await;
        // ...and one more would wait 4 s, beyond the 2.5 s queue timeout.
        let start = Instant::now();
        let refused = l.acquire(&fleet, None).await.unwrap_err();
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!(refused.retry_after, Duration::from_secs(4));
        queued.await.unwrap().unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_waits_for_a_slot_then_times_out() {
        let fleet = Fleet::local();
        let mut s = settings(None, 0, Some(1));
        s.queue_timeout = Duration::from_secs(2);
        let l = limiter(s);
        let held = l.acquire(&fleet, None).await.unwrap();
        assert!(l.acquire(&fleet, None).await.is_err());
        drop(held);
        assert!(l.acquire(&fleet, None).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_refuses_immediately() {
        let fleet = Fleet::local();
        let mut s = settings(None, 0, Some(1));
        s.queue_size = 0;
        let l = limiter(s);
        let _held = l.acquire(&fleet, None).await.unwrap();
        let start = Instant::now();
        assert!(l.acquire(&fleet, None).await.is_err());
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
