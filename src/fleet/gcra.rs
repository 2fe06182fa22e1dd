//! Rate decisions: what a request asks ([`Ask`]) of the limits that apply to it ([`Limit`]),
//! and the answer ([`Verdict`]). In-process, the decision is GCRA (the generic cell rate
//! algorithm), exact, with reservations. It keeps one instant per limit, the theoretical arrival time (TAT) of the
//! next request at the steady rate; a request may go at `TAT - tolerance`, where the
//! tolerance, `(burst - 1)` intervals, is what lets a burst through at once. It is the token
//! bucket (`burst` tokens, one more every interval) without floating-point drift, and the
//! shape Redis scripts use (redis-cell, rwz/redis-gcra), so both sides agree on every answer.
//!
//! A request that may go only later reserves its slot now (the TAT moves on), so queued
//! requests are served first come, first served, and a request that could not be served
//! within its wait is told so at once, with the exact time when it could.

use super::keys::{CooldownKey, LimitKey};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// A rate: `per_second` on average, `burst` at once (GCRA's interval and tolerance).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: u32,
}

impl Rate {
    /// Time between two requests at the steady rate (GCRA's T).
    pub fn interval(&self) -> Duration {
        // The config bounds `per_second`; an hour per request stands in for anything slower.
        Duration::try_from_secs_f64(1.0 / self.per_second).unwrap_or(Duration::from_secs(3600))
    }
}

/// One rate limit, built with the snapshot and kept across reloads while its key and rate
/// are unchanged. `local` is the in-process state: the decision without `[shared]`, and the
/// fallback (at `rate / replicas`, the shared store's business) while the store is away.
#[derive(Debug)]
pub struct Limit {
    pub key: LimitKey,
    pub rate: Rate,
    pub local: Gcra,
}

impl Limit {
    pub fn new(key: LimitKey, rate: Rate) -> Limit {
        Limit {
            key,
            rate,
            local: Gcra::new(rate),
        }
    }
}

/// One request's question: the limits that apply to it (none, one or two; on the caller's
/// stack, not allocated), the cool-down to respect, and how long it may wait.
#[derive(Debug)]
pub struct Ask<'a> {
    pub limits: &'a [&'a Limit],
    pub cooldown: Option<&'a CooldownKey>,
    /// The longest wait the request accepts (what is left of its `queue_timeout`); a slot
    /// further away is not reserved.
    pub max_wait: Duration,
}

/// The answer to an [`Ask`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A slot is reserved in every limit: send after `wait` (zero: now). If the request does
    /// not go out after all, [`Fleet::release`] gives the slots back.
    Go { wait: Duration },
    /// Over a limit (`limits[index]`, the one furthest from having room): nothing reserved;
    /// in `retry_after` every limit would have room again for one request.
    Over { index: usize, retry_after: Duration },
    /// The credential and host are cooling down after an upstream 429, for `remaining` more.
    CoolingDown { remaining: Duration },
}

#[derive(Debug)]
pub struct Gcra {
    interval: Duration,
    tolerance: Duration,
    tat: Mutex<Instant>,
}

impl Gcra {
    pub fn new(rate: Rate) -> Gcra {
        let interval = rate.interval();
        Gcra {
            interval,
            tolerance: interval
                .checked_mul(rate.burst.saturating_sub(1))
                .unwrap_or(Duration::MAX),
            tat: Mutex::new(Instant::now()),
        }
    }

    /// How long from `now` until this limit has room for one more request, and the TAT that
    /// taking it would leave.
    fn probe(&self, tat: Instant, now: Instant) -> (Duration, Instant) {
        let start = tat.max(now);
        let wait = start
            .saturating_duration_since(now)
            .saturating_sub(self.tolerance);
        (wait, start + self.interval)
    }

    /// One slot back, as a bucket takes back a token: never more room than a full burst.
    pub fn release(&self) {
        let mut tat = self.tat.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        *tat = tat.checked_sub(self.interval).unwrap_or(now).max(now);
    }
}

/// Reserves one slot in every limit, or none: the wait is the longest any of them needs.
/// Locks are taken in the order given (a route's own limit before its credential's quota,
/// everywhere), so two requests cannot hold them crosswise.
pub fn reserve_all(limits: &[&Limit], max_wait: Duration) -> Verdict {
    let now = Instant::now();
    match limits {
        [] => Verdict::Go {
            wait: Duration::ZERO,
        },
        [one] => {
            let mut tat = one.local.tat.lock().unwrap_or_else(|p| p.into_inner());
            let (wait, next) = one.local.probe(*tat, now);
            if wait > max_wait {
                return Verdict::Over {
                    index: 0,
                    retry_after: wait,
                };
            }
            *tat = next;
            Verdict::Go { wait }
        }
        [a, b] => {
            let mut ta = a.local.tat.lock().unwrap_or_else(|p| p.into_inner());
            let mut tb = b.local.tat.lock().unwrap_or_else(|p| p.into_inner());
            let (wa, na) = a.local.probe(*ta, now);
            let (wb, nb) = b.local.probe(*tb, now);
            let (index, wait) = if wb > wa { (1, wb) } else { (0, wa) };
            if wait > max_wait {
                return Verdict::Over {
                    index,
                    retry_after: wait,
                };
            }
            *ta = na;
            *tb = nb;
            Verdict::Go { wait }
        }
        // More limits than a route and its credential have: decided one by one, undone on
        // refusal (no caller asks for this today).
        many => {
            let mut wait = Duration::ZERO;
            for (i, l) in many.iter().enumerate() {
                match reserve_all(&[l], max_wait) {
                    Verdict::Go { wait: w } => wait = wait.max(w),
                    other => {
                        for taken in &many[..i] {
                            taken.local.release();
                        }
                        return match other {
                            Verdict::Over { retry_after, .. } => Verdict::Over {
                                index: i,
                                retry_after,
                            },
                            v => v,
                        };
                    }
                }
            }
            Verdict::Go { wait }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::keys::CredentialKey;

    fn limit(per_second: f64, burst: u32) -> Limit {
        let c = CredentialKey {
            name: "c".into(),
            identity: "id".into(),
        };
        Limit::new(LimitKey::Quota(c), Rate { per_second, burst })
    }

    fn go(v: Verdict) -> Duration {
        match v {
            Verdict::Go { wait } => wait,
            other => panic!("expected Go, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_goes_at_once_then_one_per_interval() {
        let l = limit(2.0, 3);
        for _ in 0..3 {
            assert_eq!(go(reserve_all(&[&l], Duration::ZERO)), Duration::ZERO);
        }
        assert_eq!(
            reserve_all(&[&l], Duration::ZERO),
            Verdict::Over {
                index: 0,
                retry_after: Duration::from_millis(500)
            }
        );
        assert_eq!(
            go(reserve_all(&[&l], Duration::from_secs(5))),
            Duration::from_millis(500)
        );
        assert_eq!(
            go(reserve_all(&[&l], Duration::from_secs(5))),
            Duration::from_millis(1000)
        );
        tokio::time::advance(Duration::from_millis(1000)).await;
        assert_eq!(
            go(reserve_all(&[&l], Duration::from_secs(5))),
            Duration::from_millis(500)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn two_limits_reserve_both_or_neither() {
        let route = limit(10.0, 10);
        let quota = limit(1.0, 1);
        assert_eq!(
            go(reserve_all(&[&route, &quota], Duration::ZERO)),
            Duration::ZERO
        );
        // The quota is full: refused, and the route's slot is not taken either.
        assert_eq!(
            reserve_all(&[&route, &quota], Duration::ZERO),
            Verdict::Over {
                index: 1,
                retry_after: Duration::from_secs(1)
            }
        );
        for _ in 0..9 {
            assert_eq!(go(reserve_all(&[&route], Duration::ZERO)), Duration::ZERO);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_released_slot_is_taken_by_the_next_request() {
        let l = limit(1.0, 1);
        go(reserve_all(&[&l], Duration::ZERO));
        l.local.release();
        assert_eq!(go(reserve_all(&[&l], Duration::ZERO)), Duration::ZERO);
        // Releasing more than was taken never leaves more room than one burst.
        l.local.release();
        l.local.release();
        go(reserve_all(&[&l], Duration::ZERO));
        assert!(matches!(
            reserve_all(&[&l], Duration::ZERO),
            Verdict::Over { .. }
        ));
    }
}
