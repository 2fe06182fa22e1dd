//! Each caller's share of an upstream's connections (`client.max_in_flight_per_caller`): at
//! most so many of its requests in flight to one upstream at once, so that one application
//! (three h2 connections carrying hundreds of streams to a slow path, or slow uploads)
//! cannot hold every connection `client.max_connections_per_upstream` allows and leave the
//! others a 503. Counted per request, from before its connection is taken until its
//! response body has ended: that is how long it holds an HTTP/1.1 connection.

use http::uri::{Authority, Scheme};
use http::Uri;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Who a request counts against: its `[[clients]]` name, or where there are no keys its
/// address ([`crate::base::peer::peer_key`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CallerKey {
    Client(Arc<str>),
    Address(IpAddr),
}

impl std::fmt::Display for CallerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallerKey::Client(name) => write!(f, "client {name:?}"),
            CallerKey::Address(ip) => write!(f, "address {ip}"),
        }
    }
}

/// The caller had its share of requests in flight to the upstream, and none ended within
/// the wait.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{caller} already has {max} requests in flight to {authority}, its share of the upstream's connections (client.max_in_flight_per_caller), and none ended within {waited:?}; the other connections are kept for other callers")]
pub struct CallerShare {
    pub caller: CallerKey,
    pub authority: String,
    pub max: usize,
    pub waited: Duration,
}

/// One request's place in its caller's share, given back when dropped.
pub struct Share {
    _permit: OwnedSemaphorePermit,
}

type Key = (Scheme, Authority, CallerKey);

pub struct Shares {
    max: usize,
    wait: Duration,
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    /// One entry per caller and upstream that has sent a request since the last sweep.
    callers: HashMap<Key, Arc<Semaphore>>,
    /// The length at which entries no request holds are swept out: twice the live ones after
    /// the last sweep, so that admitting stays O(1) amortised.
    sweep_at: usize,
}

const MIN_SWEEP: usize = 64;

impl Shares {
    pub fn new(max: usize, wait: Duration) -> Shares {
        Shares {
            max,
            wait,
            held: Mutex::default(),
        }
    }

    /// Waits (up to the connect timeout) until `caller` has fewer than its share of requests
    /// in flight to `uri`'s upstream. `None` for a URI without an authority (the request
    /// fails further on).
    pub async fn admit(&self, uri: &Uri, caller: CallerKey) -> Result<Option<Share>, CallerShare> {
        let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
            return Ok(None);
        };
        let semaphore = {
            let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
            if held.callers.len() >= held.sweep_at.max(MIN_SWEEP) {
                // Only the map holds it: no request has a permit or waits for one.
                held.callers.retain(|_, s| Arc::strong_count(s) > 1);
                held.sweep_at = held.callers.len() * 2;
            }
            held.callers
                .entry((scheme.clone(), authority.clone(), caller.clone()))
                .or_insert_with(|| Arc::new(Semaphore::new(self.max)))
                .clone()
        };
        if let Ok(p) = semaphore.clone().try_acquire_owned() {
            return Ok(Some(Share { _permit: p }));
        }
        match tokio::time::timeout(self.wait, semaphore.acquire_owned()).await {
            Ok(Ok(p)) => Ok(Some(Share { _permit: p })),
            // The semaphore is never closed; a timeout is the only way here.
            Ok(Err(_)) | Err(_) => Err(CallerShare {
                caller,
                authority: format!("{scheme}://{authority}"),
                max: self.max,
                waited: self.wait,
            }),
        }
    }
}

/// The share when `client.max_in_flight_per_caller` is not set: three quarters of the
/// upstream's cap, so that whoever else calls finds a quarter free however busy one caller
/// is, while a lone caller is held back little.
pub fn default_share(cap: usize) -> usize {
    (cap - cap / 4).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(name: &str) -> CallerKey {
        CallerKey::Client(Arc::from(name))
    }

    #[tokio::test]
    async fn a_caller_beyond_its_share_waits_then_fails_while_others_are_admitted() {
        let shares = Shares::new(1, Duration::from_millis(50));
        let up = Uri::from_static("https://api.example/x");
        let first = shares.admit(&up, client("a")).await;
        assert!(matches!(first, Ok(Some(_))));
        let beyond = shares.admit(&up, client("a")).await.err();
        assert!(beyond.is_some_and(|e| e.to_string().contains("max_in_flight_per_caller")));
        assert!(matches!(shares.admit(&up, client("b")).await, Ok(Some(_))));
        let other = Uri::from_static("https://other.example/");
        assert!(matches!(
            shares.admit(&other, client("a")).await,
            Ok(Some(_))
        ));
        drop(first);
        assert!(matches!(shares.admit(&up, client("a")).await, Ok(Some(_))));
    }

    #[tokio::test]
    async fn entries_no_request_holds_are_swept() {
        let shares = Shares::new(1, Duration::from_millis(50));
        let up = Uri::from_static("https://api.example/x");
        for i in 0..1000u32 {
            let key = CallerKey::Address(IpAddr::from(i.to_be_bytes()));
            drop(shares.admit(&up, key).await);
        }
        let len = shares
            .held
            .lock()
            .map(|h| h.callers.len())
            .unwrap_or(usize::MAX);
        assert!(len <= 2 * MIN_SWEEP, "{len} entries");
    }

    #[test]
    fn the_default_share_leaves_a_quarter_of_the_cap_to_other_callers() {
        assert_eq!(default_share(256), 192);
        assert_eq!(default_share(4), 3);
        assert_eq!(default_share(2), 2);
        assert_eq!(default_share(1), 1);
    }
}
