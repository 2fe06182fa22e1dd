//! A circuit breaker on outbound connections (Envoy's `max_connections`): at most so many
//! open at once to one upstream (scheme, host and port), pooled idle ones included. Without
//! it a caller opening streams (or resetting them) makes the proxy open a connection each,
//! every one carrying the organisation's token, and Adobe's per-credential rate limits pay.
//! A permit is taken before connecting and lives inside the connection, so it is given back
//! exactly when the pool drops the connection.

use crate::base::fds::FdSlot;
use http::Uri;
use std::collections::HashMap;
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

pub struct Breaker {
    max: usize,
    wait: Duration,
    /// One semaphore per authority; the authorities are those of the config (routes, IMS),
    /// so the map stays small. Locked once per new connection, never per request.
    upstreams: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// What an outbound connection holds for as long as it is open.
pub struct Held {
    _permit: OwnedSemaphorePermit,
    _fd: FdSlot,
}

impl Breaker {
    pub fn new(max: usize, wait: Duration) -> Breaker {
        Breaker {
            max,
            wait,
            upstreams: Mutex::new(HashMap::new()),
        }
    }

    fn authority(dst: &Uri) -> String {
        let scheme = dst.scheme_str().unwrap_or("http");
        let port = dst
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        format!("{scheme}://{}:{port}", dst.host().unwrap_or(""))
    }

    /// Waits (up to the connect timeout) for room for one more connection to `dst`.
    pub async fn admit(&self, dst: &Uri) -> Result<Held, crate::base::error::BoxError> {
        let authority = Self::authority(dst);
        let sem = {
            let mut map = self.upstreams.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(authority.clone())
                .or_insert_with(|| Arc::new(Semaphore::new(self.max)))
                .clone()
        };
        let permit = match tokio::time::timeout(self.wait, sem.acquire_owned()).await {
            Ok(Ok(p)) => p,
            // The semaphore is never closed; a timeout is the only way here.
            Ok(Err(_)) | Err(_) => {
                return Err(Box::new(UpstreamBusy {
                    authority,
                    max: self.max,
                    waited: self.wait,
                }))
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
        let b = Breaker::new(1, Duration::from_millis(50));
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
}
