//! The refresher: one task per IMS-managed credential, replacing the token before it expires
//! and retrying with jittered exponential backoff when IMS fails. It holds only a `Weak`
//! between attempts, and the credential's `Drop` wakes it, so a credential dropped by a
//! reload takes its refresher with it.
//!
//! The loop knows only [`Refresh`], so the credential's cache stays private to it.

use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

const BACKOFF_BASE: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(120);

/// What the refresher asks of a credential.
pub(super) trait Refresh: Send + Sync + 'static {
    /// How long the refresher may sleep after a successful refresh.
    fn until_refresh(&self, now: Instant) -> Duration;
    /// Fetches a token unless one fetched meanwhile makes it unnecessary (the single flight
    /// is the credential's); `false` when the fetch failed.
    fn refresh_if_due(&self) -> impl Future<Output = bool> + Send;
}

pub(super) fn spawn<C: Refresh>(weak: Weak<C>, stop: Arc<Notify>) {
    tokio::spawn(async move {
        let mut failures: u32 = 0;
        loop {
            let wait = {
                let Some(c) = weak.upgrade() else { return };
                if failures == 0 {
                    c.until_refresh(Instant::now())
                } else {
                    backoff(failures)
                }
            };
            if !wait.is_zero() {
                tokio::select! {
                    _ = sleep(wait) => {}
                    _ = stop.notified() => {}
                }
            }
            let Some(c) = weak.upgrade() else { return };
            if c.refresh_if_due().await {
                failures = 0;
            } else {
                failures = failures.saturating_add(1);
            }
        }
    });
}

/// Sleeps `d`, treating `Duration::MAX` (a token that never needs refreshing) as forever.
async fn sleep(d: Duration) {
    match tokio::time::Instant::now().checked_add(d) {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Equal jitter: half the exponential delay, plus a random part of the other half, so many
/// proxies that lost IMS together do not come back in lockstep.
fn backoff(failures: u32) -> Duration {
    let exp = BACKOFF_BASE.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    let d = exp.min(BACKOFF_MAX);
    let half = d / 2;
    half + half.mul_f64(rand::random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) <= BACKOFF_BASE && backoff(1) >= BACKOFF_BASE / 2);
        assert!(backoff(3) >= BACKOFF_BASE * 2);
        assert!(backoff(40) <= BACKOFF_MAX);
    }
}
