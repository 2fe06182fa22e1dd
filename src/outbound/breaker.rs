//! A circuit breaker on outbound connections (Envoy's `max_connections`): at most so many
//! open at once to one upstream (scheme, host and port), pooled idle ones included. Without
//! it a caller opening streams (or resetting them) makes the proxy open a connection each,
//! every one carrying the organisation's token, and Adobe's per-credential rate limits pay.
//! A permit is taken before connecting and lives inside the connection, so it is given back
//! exactly when the pool drops the connection.
//!
//! Idle connections held for one caller or on a thread's shelf ([`super::affinity`]) count
//! too, so a waiter first asks a [`Reclaim`] to let go of them: keep-alive callers sitting
//! idle, or another thread's connections left idle by a burst, must not hold every permit
//! while a request waits out the connect timeout.

use crate::base::fds::FdSlot;
use http::Uri;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The upstream had `max` connections open and none freed within the wait.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{authority} already has {max} connections open (client.max_connections_per_upstream) and none freed within {waited:?}")]
pub struct UpstreamBusy {
    pub authority: String,
    pub max: usize,
    pub waited: Duration,
}

/// The process is out of file descriptors for another outbound connection.
#[derive(Debug, Clone, thiserror::Error)]
#[error("file descriptors nearly exhausted (RLIMIT_NOFILE): no new connection to {0}")]
pub struct NoDescriptors(pub String);

/// Whoever holds idle connections outside the pool, asked to let go of those to `upstream`
/// when a new connection to it has to wait for a permit.
pub trait Reclaim: Send + Sync {
    fn reclaim(&self, upstream: &Arc<Upstream>);
}

pub struct Breaker {
    max: usize,
    wait: Duration,
    /// One entry per authority; the authorities are those of the config (routes, IMS), so
    /// the map stays small. Locked once per new connection, never per request.
    upstreams: Mutex<HashMap<String, Arc<Upstream>>>,
    reclaim: Option<Arc<dyn Reclaim>>,
}

/// One upstream's permits, and how many connections wait for one.
pub struct Upstream {
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
}

impl Upstream {
    /// Someone waits for a permit: an idle connection to this upstream should be let go
    /// rather than kept.
    pub fn contended(&self) -> bool {
        self.waiting.load(Ordering::SeqCst) > 0
    }

    /// A new connection would get a permit without waiting.
    pub fn has_room(&self) -> bool {
        self.permits.available_permits() > 0
    }
}

/// Counts a waiter for as long as it waits.
struct Waiting<'a>(&'a Upstream);

impl<'a> Waiting<'a> {
    fn enter(upstream: &'a Upstream) -> Waiting<'a> {
        upstream.waiting.fetch_add(1, Ordering::SeqCst);
        Waiting(upstream)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What an outbound connection holds for as long as it is open.
pub struct Held {
    _permit: OwnedSemaphorePermit,
    _fd: FdSlot,
}

impl Breaker {
    pub fn new(max: usize, wait: Duration, reclaim: Option<Arc<dyn Reclaim>>) -> Breaker {
        Breaker {
            max,
            wait,
            upstreams: Mutex::new(HashMap::new()),
            reclaim,
        }
    }

    fn authority(dst: &Uri) -> String {
        let scheme = dst.scheme_str().unwrap_or("http");
        let port = dst
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        format!("{scheme}://{}:{port}", dst.host().unwrap_or(""))
    }

    /// `dst`'s entry: the same one for every URI of one scheme, host and port.
    pub fn upstream(&self, dst: &Uri) -> Arc<Upstream> {
        self.entry(Self::authority(dst))
    }

    fn entry(&self, authority: String) -> Arc<Upstream> {
        let mut map = self.upstreams.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(authority)
            .or_insert_with(|| {
                Arc::new(Upstream {
                    permits: Arc::new(Semaphore::new(self.max)),
                    waiting: AtomicUsize::new(0),
                })
            })
            .clone()
    }

    /// Waits (up to the connect timeout) for room for one more connection to `dst`.
    pub async fn admit(&self, dst: &Uri) -> Result<Held, crate::base::error::BoxError> {
        let authority = Self::authority(dst);
        let upstream = self.entry(authority.clone());
        let permit = match upstream.permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                // Counted before the reclaim, so that a connection put back from here on
                // sees the wait and is let go instead of kept idle.
                let _waiting = Waiting::enter(&upstream);
                if let Some(r) = &self.reclaim {
                    r.reclaim(&upstream);
                }
                let acquire = upstream.permits.clone().acquire_owned();
                match tokio::time::timeout(self.wait, acquire).await {
                    Ok(Ok(p)) => p,
                    // The semaphore is never closed; a timeout is the only way here.
                    Ok(Err(_)) | Err(_) => {
                        return Err(Box::new(UpstreamBusy {
                            authority,
                            max: self.max,
                            waited: self.wait,
                        }))
                    }
                }
            }
        };
        let fd = FdSlot::try_acquire().ok_or_else(|| Box::new(NoDescriptors(authority)))?;
        Ok(Held {
            _permit: permit,
            _fd: fd,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_connection_beyond_the_cap_waits_then_fails_and_a_freed_one_is_reused() {
        let b = Breaker::new(1, Duration::from_millis(50), None);
        let dst = Uri::from_static("https://api.example/x");
        let held = b.admit(&dst).await;
        assert!(held.is_ok());
        let err = b.admit(&dst).await.err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("max_connections_per_upstream")));
        assert!(b
            .admit(&Uri::from_static("https://other.example/"))
            .await
            .is_ok());
        drop(held);
        assert!(b.admit(&dst).await.is_ok());
    }

    /// Lets go of a connection held elsewhere when asked, as an idle affinity slot does.
    struct Holder(Mutex<Option<Held>>);

    impl Reclaim for Holder {
        fn reclaim(&self, _: &Arc<Upstream>) {
            self.0.lock().unwrap().take();
        }
    }

    #[tokio::test]
    async fn a_waiter_asks_for_idle_connections_back_before_it_waits() {
        let holder = Arc::new(Holder(Mutex::new(None)));
        let b = Breaker::new(1, Duration::from_secs(30), Some(holder.clone()));
        let dst = Uri::from_static("http://api.example/");
        *holder.0.lock().unwrap() = Some(b.admit(&dst).await.unwrap());
        assert!(!b.upstream(&dst).has_room());
        let second = tokio::time::timeout(Duration::from_secs(10), b.admit(&dst)).await;
        assert!(matches!(second, Ok(Ok(_))));
        assert!(holder.0.lock().unwrap().is_none());
    }
}
