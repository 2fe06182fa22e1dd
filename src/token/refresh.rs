//! The refresher: one task per IMS-managed credential, replacing the token before it expires
//! and retrying with jittered exponential backoff when IMS fails. It holds only a `Weak`
//! between attempts, and the credential's `Drop` wakes it, so a credential dropped by a
//! reload takes its refresher with it.

use super::Credential;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

const BACKOFF_BASE: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(120);

pub(super) fn spawn(cred: &Arc<Credential>) {
    let weak: Weak<Credential> = Arc::downgrade(cred);
    let stop = cred.stop.clone();
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
            let _flight = c.fetching.lock().await;
            // A request (or a forced refresh) may have fetched while we slept.
            if !c.refresh_due(Instant::now()) {
                failures = 0;
                continue;
            }
            match c.fetch_and_store().await {
                Ok(_) => failures = 0,
                Err(_) => failures = failures.saturating_add(1),
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
