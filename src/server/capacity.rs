//! How many connections a listener holds, in all and per client address: counted against the
//! current snapshot's limits, so a reload changes them without a restart.

use super::idle::Strikes;
use crate::base::fds::{self, FdSlot};
use crate::base::peer::peer_key;
use crate::state::{ConnLimits, Snapshot};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// Sets the descriptor budget the proxy port, the forward listener and outbound share from
/// `snapshot` (the admin listener's cap is kept out of it). Called as each of those listeners
/// starts and at each accept, so a reload's admin cap applies, whichever listener is busy.
pub fn set_descriptor_budget(snapshot: &Snapshot) {
    let reserved = snapshot
        .admin_listen
        .map_or(0, |_| snapshot.admin_limits.max_connections);
    fds::set_share(fds::share(reserved));
}

/// How long a client address whose connection was closed for premature HTTP/2 resets is
/// refused: long enough that reconnecting gains the attacker nothing (at most
/// `h2_max_premature_resets` resets per address per this long, plus the streams in flight when
/// the last one came), short enough that a client behind a NAT with a buggy neighbour is back
/// soon. Its refusals say so.
pub const RESET_PENALTY: Duration = Duration::from_secs(10);

/// Each client address's HTTP/2 stream resets ([`Strikes`], shared by its connections), and
/// whether it is refused for resetting too many early. A map under a lock, touched when a
/// connection opens and when it closes, never per request; an address is in it while it has
/// a connection open or is refused.
#[derive(Debug, Default)]
pub struct Resets(Mutex<HashMap<IpAddr, Record>>);

#[derive(Debug, Default)]
struct Record {
    open: usize,
    strikes: Arc<Strikes>,
    refused_until: Option<Instant>,
}

/// Held for a connection's lifetime: its address's [`Strikes`], and the way to refuse it.
pub struct ResetSlot {
    resets: Arc<Resets>,
    key: IpAddr,
    pub strikes: Arc<Strikes>,
}

impl Resets {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Record>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A connection from `peer`, or `None` while the address is refused. A refusal that has
    /// run out starts the address's counts afresh.
    pub fn enter(self: &Arc<Self>, peer: IpAddr) -> Option<ResetSlot> {
        let key = peer_key(peer);
        let now = Instant::now();
        let mut map = self.lock();
        let record = map.entry(key).or_default();
        match record.refused_until {
            Some(until) if until > now => return None,
            Some(_) => *record = Record::default(),
            None => {}
        }
        record.open += 1;
        Some(ResetSlot {
            resets: self.clone(),
            key,
            strikes: record.strikes.clone(),
        })
    }
}

impl ResetSlot {
    /// Refuses this connection's address for `penalty` from now. Addresses with nothing open
    /// whose refusal has run out are swept out here, so the map stays as small as the set of
    /// addresses connected or refused.
    pub fn refuse_address(&self, penalty: Duration) {
        let now = Instant::now();
        let mut map = self.resets.lock();
        if let Some(r) = map.get_mut(&self.key) {
            r.refused_until = Some(now + penalty);
        }
        map.retain(|_, r| r.open > 0 || r.refused_until.is_some_and(|t| t > now));
    }
}

impl Drop for ResetSlot {
    fn drop(&mut self) {
        let now = Instant::now();
        let mut map = self.resets.lock();
        if let Some(r) = map.get_mut(&self.key) {
            r.open = r.open.saturating_sub(1);
            if r.open == 0 && r.refused_until.is_none_or(|t| t <= now) {
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
    /// Its address's stream resets; `None` where they are not counted (the admin port).
    pub resets: Option<ResetSlot>,
}

impl Admission {
    /// The counts its HTTP/2 streams' resets add to.
    pub fn strikes(&self) -> Arc<Strikes> {
        self.resets
            .as_ref()
            .map_or_else(Arc::default, |r| r.strikes.clone())
    }

    /// The connection was closed for premature resets: its address is refused for
    /// [`RESET_PENALTY`].
    pub fn refuse_address(&self, peer: std::net::SocketAddr) {
        if let Some(r) = &self.resets {
            tracing::warn!(%peer, penalty = ?RESET_PENALTY, "refusing this client address for a while: it reset too many HTTP/2 streams early");
            r.refuse_address(RESET_PENALTY);
        }
    }
}

/// Why a connection was refused: for the log, and the answer to try writing.
pub struct Refusal {
    pub why: &'static str,
    pub answer: &'static [u8],
    /// Said once already (the address's refusal was logged when it began): a client that
    /// reconnects in a loop must not turn each attempt into a warning.
    pub said: bool,
}

impl Refusal {
    /// Logs the refusal of a connection from `peer` on `listener`.
    pub fn log(&self, listener: &str, peer: std::net::SocketAddr) {
        if self.said {
            tracing::debug!(%peer, listener, "connection refused: {}", self.why);
        } else {
            tracing::warn!(%peer, listener, "connection refused: {}", self.why);
        }
    }
}

/// Admits a connection from `peer` against `limits` (all connections, this address's, file
/// descriptors), or says which limit refused it. Never awaits.
pub fn admit(
    connections: &Arc<ConnectionCounter>,
    peers: &Arc<PeerCounter>,
    resets: &Arc<Resets>,
    limits: &ConnLimits,
    peer: IpAddr,
) -> Result<Admission, Refusal> {
    // First: a refused address takes no slot, not even for a moment.
    let resets = match limits.h2_max_premature_resets {
        None => None,
        Some(_) => Some(resets.enter(peer).ok_or(Refusal {
            why: "this client address reset too many HTTP/2 streams early; refused for 10 s",
            answer: TOO_MANY_RESETS_RESPONSE,
            said: true,
        })?),
    };
    let connection = connections
        .try_acquire(limits.max_connections)
        .ok_or(Refusal {
            why: "at the connection limit (server.limits.max_connections)",
            answer: OVER_CAPACITY_RESPONSE,
            said: false,
        })?;
    let peer_slot = match limits.max_connections_per_peer {
        None => None,
        Some(max) => Some(peers.try_acquire(peer, max).ok_or(Refusal {
            why: "at the limit for this client address (server.limits.max_connections_per_peer)",
            answer: OVER_PEER_CAPACITY_RESPONSE,
            said: false,
        })?),
    };
    let fd = FdSlot::try_acquire().ok_or(Refusal {
        why: "file descriptors nearly exhausted (RLIMIT_NOFILE)",
        answer: OVER_CAPACITY_RESPONSE,
        said: false,
    })?;
    Ok(Admission {
        _connection: connection,
        _peer: peer_slot,
        _fd: Some(fd),
        resets,
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

/// What a client address refused for premature resets gets ([`RESET_PENALTY`]).
pub const TOO_MANY_RESETS_RESPONSE: &[u8] = b"HTTP/1.1 429 Too Many Requests\r\n\
content-type: application/json\r\nretry-after: 10\r\nconnection: close\r\ncontent-length: 132\r\n\r\n\
{\"error_code\":\"too_many_resets\",\"message\":\"ims-proxy refuses this client address for 10 s: it reset too many HTTP/2 streams early\"}\n";

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
        for r in [
            OVER_CAPACITY_RESPONSE,
            OVER_PEER_CAPACITY_RESPONSE,
            TOO_MANY_RESETS_RESPONSE,
        ] {
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

    #[test]
    fn an_address_refused_for_resets_is_refused_until_the_penalty_ends_and_then_starts_afresh() {
        let r = Arc::new(Resets::default());
        let a: IpAddr = "192.0.2.1".parse().unwrap_or(IpAddr::from([0; 4]));
        let b: IpAddr = "192.0.2.2".parse().unwrap_or(IpAddr::from([0; 4]));
        let first = r.enter(a);
        let strikes = first.as_ref().map(|s| s.strikes.clone());
        assert!(first.is_some());
        if let Some(s) = &first {
            s.refuse_address(Duration::from_millis(50));
        }
        drop(first);
        assert!(r.enter(a).is_none(), "refused while the penalty runs");
        assert!(r.enter(b).is_some(), "another address is not");
        std::thread::sleep(Duration::from_millis(60));
        let again = r.enter(a);
        assert!(again.is_some());
        let fresh = again.as_ref().map(|s| s.strikes.clone());
        assert!(!matches!((strikes, fresh), (Some(x), Some(y)) if Arc::ptr_eq(&x, &y)));
        drop(again);
        assert!(r.lock().is_empty(), "nothing kept for addresses gone");
    }
}
