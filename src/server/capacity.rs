//! How many connections a listener holds, in all and per client address: counted against the
//! current snapshot's limits, so a reload changes them without a restart.

use crate::base::fds::FdSlot;
use crate::base::peer::peer_key;
use crate::state::ConnLimits;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
pub struct ConnectionCounter(AtomicUsize);

/// Held for a connection's lifetime; dropping it frees the slot.
pub struct ConnectionSlot(Arc<ConnectionCounter>);

impl ConnectionCounter {
    pub fn try_acquire(self: &Arc<Self>, max: usize) -> Option<ConnectionSlot> {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| ConnectionSlot(self.clone()))
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Open connections per client address. A map under a lock, touched once when a connection
/// opens and once when it closes, never per request.
#[derive(Debug, Default)]
pub struct PeerCounter(Mutex<HashMap<IpAddr, usize>>);

/// Held for a connection's lifetime; dropping it frees the peer's slot.
pub struct PeerSlot {
    counter: Arc<PeerCounter>,
    key: IpAddr,
}

impl PeerCounter {
    pub fn try_acquire(self: &Arc<Self>, peer: IpAddr, max: usize) -> Option<PeerSlot> {
        let key = peer_key(peer);
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(key).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(PeerSlot {
            counter: self.clone(),
            key,
        })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut map = self.counter.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.key);
            }
        }
    }
}

/// Everything one accepted connection holds against the limits; all freed when it drops.
pub struct Admission {
    pub _connection: ConnectionSlot,
    pub _peer: Option<PeerSlot>,
    pub _fd: Option<FdSlot>,
}

/// Why a connection was refused: for the log, and the answer to try writing.
pub struct Refusal {
    pub why: &'static str,
    pub answer: &'static [u8],
}

/// Admits a connection from `peer` against `limits` (all connections, this address's, file
/// descriptors), or says which limit refused it. Never awaits.
pub fn admit(
    connections: &Arc<ConnectionCounter>,
    peers: &Arc<PeerCounter>,
    limits: &ConnLimits,
    peer: IpAddr,
) -> Result<Admission, Refusal> {
    let connection = connections
        .try_acquire(limits.max_connections)
        .ok_or(Refusal {
            why: "at the connection limit (server.limits.max_connections)",
            answer: OVER_CAPACITY_RESPONSE,
        })?;
    let peer_slot = match limits.max_connections_per_peer {
        None => None,
        Some(max) => Some(peers.try_acquire(peer, max).ok_or(Refusal {
            why: "at the limit for this client address (server.limits.max_connections_per_peer)",
            answer: OVER_PEER_CAPACITY_RESPONSE,
        })?),
    };
    let fd = FdSlot::try_acquire().ok_or(Refusal {
        why: "file descriptors nearly exhausted (RLIMIT_NOFILE)",
        answer: OVER_CAPACITY_RESPONSE,
    })?;
    Ok(Admission {
        _connection: connection,
        _peer: peer_slot,
        _fd: Some(fd),
    })
}

/// What a client over the connection limit gets: one attempt to say why, then the close.
/// Never awaits, so a flood of connections cannot pile up tasks.
pub const OVER_CAPACITY_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\nconnection: close\r\ncontent-length: 87\r\n\r\n\
{\"error_code\":\"too_many_connections\",\"message\":\"ims-proxy is at its connection limit\"}\n";

/// What a client over its address's connection limit gets (a distinct code: the proxy is not
/// full, this client is).
pub const OVER_PEER_CAPACITY_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\nconnection: close\r\ncontent-length: 121\r\n\r\n\
{\"error_code\":\"too_many_connections_from_peer\",\"message\":\"ims-proxy is at its connection limit for this client address\"}\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_counter_refuses_beyond_the_limit_and_frees_on_drop() {
        let c = Arc::new(ConnectionCounter::default());
        let a = c.try_acquire(1);
        assert!(a.is_some());
        assert!(c.try_acquire(1).is_none());
        drop(a);
        assert!(c.try_acquire(1).is_some());
    }

    #[test]
    fn the_over_capacity_responses_declare_their_body_length_exactly() {
        for r in [OVER_CAPACITY_RESPONSE, OVER_PEER_CAPACITY_RESPONSE] {
            let text = std::str::from_utf8(r).unwrap_or("");
            let (head, body) = text.split_once("\r\n\r\n").unwrap_or(("", ""));
            assert!(
                head.contains(&format!("content-length: {}", body.len())),
                "{} {text}",
                body.len()
            );
        }
    }

    #[test]
    fn peers_are_counted_apart_and_ipv6_by_its_64() {
        let c = Arc::new(PeerCounter::default());
        let a: IpAddr = "192.0.2.1".parse().unwrap_or(IpAddr::from([0; 4]));
        let b: IpAddr = "192.0.2.2".parse().unwrap_or(IpAddr::from([0; 4]));
        let held = c.try_acquire(a, 1);
        assert!(held.is_some());
        assert!(c.try_acquire(a, 1).is_none());
        assert!(c.try_acquire(b, 1).is_some());
        let v6a: IpAddr = "2001:db8::1".parse().unwrap_or(a);
        let v6b: IpAddr = "2001:db8::ffff:2".parse().unwrap_or(a);
        let _v6 = c.try_acquire(v6a, 1);
        assert!(c.try_acquire(v6b, 1).is_none(), "same /64");
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap_or(b);
        assert!(
            c.try_acquire(mapped, 1).is_none(),
            "IPv4-mapped is the IPv4 peer"
        );
        drop(held);
        assert!(c.try_acquire(a, 1).is_some());
        assert!(c.0.lock().map(|m| m.len()).unwrap_or(0) <= 3);
    }
}
