//! Connection affinity: an HTTP/1.1 caller connection keeps an HTTP/1.1 upstream connection
//! of its own between requests. A request then costs no pool checkout (a hash of the pool
//! key, a lock, an idle list) and no pool return; the requests of one caller connection are
//! sequential anyway, so one upstream connection serves them all. It holds one upstream's
//! connection at a time: while it does, its requests to other upstreams use the pool.
//!
//! Requests without a slot of their own (h2 callers, IMS, `connection_affinity = false`, or
//! a caller whose slot holds another upstream's connection) take an idle HTTP/1.1
//! connection from their thread's [`Shelf`] instead: hyper-util's pool would hold it where
//! nothing else can reach it, so that after a burst on one thread a request on another
//! waited for a slot while the upstream's connections sat idle.
//!
//! The held connections count against `client.max_connections_per_upstream` like any
//! other, so slots and shelves are listed in a [`Registry`]: at the cap, a request takes an
//! idle one wherever it sits, and one that has to wait for a permit has every idle one to
//! that upstream let go first ([`Reclaim`]).
//!
//! Lock order: a slot's (or a shelf's) lock, then the registry's; the registry's lock is
//! never held while a slot's is taken. Both are held for a few instructions, never across
//! an `.await`.

use super::breaker::{Reclaim, Upstream};
use super::wire::Wire;
use crate::base::error::BoxError;
use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http::HeaderValue;
use http_body_util::combinators::BoxBody;
use hyper::client::conn::http1::SendRequest;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

/// One caller connection's slot: at most one upstream connection, idle between requests.
/// Made per HTTP/1.1 caller connection by the server and lent to each of its requests.
#[derive(Default)]
pub struct Affinity {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    conn: Option<Conn>,
    /// The registry this slot is listed in. A `Weak` keeps the allocation, so comparing
    /// addresses cannot mistake a new registry for a dropped one.
    listed: Weak<Registry>,
}

impl std::fmt::Debug for Affinity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Affinity")
    }
}

/// An open HTTP/1.1 connection to one upstream.
pub(super) struct Conn {
    /// The [`super::Outbound`] that opened it (its `id`): after a reload that changed the
    /// `[client]` settings, a caller connection must not carry on with the old client's
    /// connection.
    pub owner: Weak<()>,
    pub scheme: Scheme,
    pub authority: Authority,
    /// `Host` for requests on it, made once.
    pub host: Option<HeaderValue>,
    /// [`super::RequestBody`], spelled out: the client depends on this module, not back.
    pub tx: SendRequest<BoxBody<Bytes, BoxError>>,
    /// Its breaker entry: whether anyone waits for a connection to this upstream.
    pub upstream: Arc<Upstream>,
    /// Whether its upstream answered before a request body was written whole.
    pub wire: Option<Arc<Wire>>,
}

/// What a slot holds for a request, from [`Affinity::take`].
pub(super) enum Held {
    /// An open connection to the request's upstream, taken out of the slot.
    Conn(Conn),
    Nothing,
    /// An open connection to another upstream, left in the slot: a caller whose requests
    /// go to several upstreams keeps the connection of one and sends the rest to the pool,
    /// rather than opening a connection at every change of upstream.
    Other,
}

impl Affinity {
    pub fn new() -> Arc<Affinity> {
        Arc::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What the slot holds for a request to `scheme://authority` from `owner`'s client. A
    /// closed connection, or one of another client (a reload replaced it), is let go.
    pub(super) fn take(&self, owner: &Arc<()>, scheme: &Scheme, authority: &Authority) -> Held {
        let mut inner = self.lock();
        let (held, gone) = match &inner.conn {
            None => (Held::Nothing, None),
            Some(c) if c.tx.is_closed() || !std::ptr::eq(c.owner.as_ptr(), Arc::as_ptr(owner)) => {
                (Held::Nothing, inner.conn.take())
            }
            Some(c) if c.authority == *authority && c.scheme == *scheme => {
                (inner.conn.take().map_or(Held::Nothing, Held::Conn), None)
            }
            Some(_) => (Held::Other, None),
        };
        drop(inner);
        drop(gone);
        held
    }

    /// Holds `conn` for this caller's next request (replacing what was held), unless
    /// someone waits for a connection to its upstream: then it is let go, and closes once
    /// the response in flight on it has been read.
    pub(super) fn put(self: &Arc<Self>, conn: Conn, registry: &Arc<Registry>) {
        let mut inner = self.lock();
        if !std::ptr::eq(inner.listed.as_ptr(), Arc::as_ptr(registry)) {
            registry.list(Arc::downgrade(self));
            inner.listed = Arc::downgrade(registry);
        }
        // Decided under the lock a waiter's reclaim takes too, after the waiter counted
        // itself: either the reclaim finds the connection here or this sees the waiter.
        let (old, let_go) = if conn.upstream.contended() {
            (inner.conn.take(), Some(conn))
        } else {
            (inner.conn.replace(conn), None)
        };
        drop(inner);
        drop((old, let_go));
    }

    /// Takes the held connection if it goes to `upstream` and `wanted` says so.
    fn take_if(&self, upstream: &Arc<Upstream>, wanted: impl Fn(&Conn) -> bool) -> Option<Conn> {
        let mut inner = self.lock();
        inner
            .conn
            .take_if(|c| Arc::ptr_eq(&c.upstream, upstream) && wanted(c))
    }
}

/// The slots holding a connection of one [`super::Outbound`], for taking them back.
#[derive(Default)]
pub(super) struct Registry {
    listed: Mutex<Listed>,
}

#[derive(Default)]
struct Listed {
    slots: Vec<Weak<Affinity>>,
    /// One per thread that sent a request without a slot: a handful.
    shelves: Vec<Weak<Shelf>>,
    /// The length at which dead slots are swept out: twice the live ones after the last
    /// sweep, so that listing stays O(1) amortised.
    sweep_at: usize,
}

const MIN_SWEEP: usize = 64;

impl Registry {
    fn lock(&self) -> MutexGuard<'_, Listed> {
        self.listed.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn list(&self, slot: Weak<Affinity>) {
        let mut listed = self.lock();
        if listed.slots.len() >= listed.sweep_at.max(MIN_SWEEP) {
            listed.slots.retain(|s| s.strong_count() > 0);
            listed.sweep_at = listed.slots.len() * 2;
        }
        listed.slots.push(slot);
    }

    pub(super) fn list_shelf(&self, shelf: Weak<Shelf>) {
        let mut listed = self.lock();
        listed.shelves.retain(|s| s.strong_count() > 0);
        listed.shelves.push(shelf);
    }

    /// The slots and shelves still alive, so that no slot's lock is taken under the
    /// registry's.
    fn live(&self) -> (Vec<Arc<Affinity>>, Vec<Arc<Shelf>>) {
        let listed = self.lock();
        (
            listed.slots.iter().filter_map(Weak::upgrade).collect(),
            listed.shelves.iter().filter_map(Weak::upgrade).collect(),
        )
    }

    /// An idle connection to `upstream`, ready for a request, taken from another caller's
    /// slot or any thread's shelf: at the upstream's cap, a request uses it rather than
    /// waiting for a permit. Closed ones met on the way are let go.
    pub(super) fn take_idle(
        &self,
        upstream: &Arc<Upstream>,
        except: Option<&Affinity>,
    ) -> Option<Conn> {
        let (slots, shelves) = self.live();
        for shelf in shelves {
            if let Some(c) = shelf.take_if(upstream, |c| c.tx.is_ready()) {
                return Some(c);
            }
        }
        for slot in slots {
            if except.is_some_and(|e| std::ptr::eq(Arc::as_ptr(&slot), e)) {
                continue;
            }
            let taken = slot.take_if(upstream, |c| c.tx.is_ready() || c.tx.is_closed());
            if let Some(c) = taken.filter(|c| !c.tx.is_closed()) {
                return Some(c);
            }
        }
        None
    }
}

impl Reclaim for Registry {
    /// Lets go of every held connection to `upstream`: an idle one closes at once, one still
    /// reading its response when that ends, and either way its permit is given back.
    fn reclaim(&self, upstream: &Arc<Upstream>) {
        let (slots, shelves) = self.live();
        for slot in slots {
            drop(slot.take_if(upstream, |_| true));
        }
        for shelf in shelves {
            drop(shelf.let_go(upstream));
        }
    }
}

/// One thread's HTTP/1.1 connections for requests without a slot: put back when their
/// response head has come (still reading its body, perhaps), taken when ready for another
/// request. Kept per thread for the reason the pool is ([`super::client`]): a connection is
/// driven by a task on the thread that opened it.
#[derive(Default)]
pub(super) struct Shelf {
    conns: Mutex<Vec<Shelved>>,
}

struct Shelved {
    conn: Conn,
    /// When it was put back: it is closed once idle for `client.pool_idle_timeout`.
    since: Instant,
}

impl Shelf {
    fn lock(&self) -> MutexGuard<'_, Vec<Shelved>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A connection to `scheme://authority` ready for a request, the most recently used
    /// first (the likeliest to be open still). Closed ones met on the way are let go.
    pub(super) fn take(&self, scheme: &Scheme, authority: &Authority) -> Option<Conn> {
        let mut conns = self.lock();
        let mut gone = Vec::new();
        let mut i = conns.len();
        let mut found = None;
        while i > 0 {
            i -= 1;
            let c = &conns[i].conn;
            if c.tx.is_closed() {
                gone.push(conns.remove(i));
            } else if c.tx.is_ready() && c.authority == *authority && c.scheme == *scheme {
                found = Some(conns.remove(i).conn);
                break;
            }
        }
        drop(conns);
        drop(gone);
        found
    }

    /// Keeps `conn` for the next request to its upstream on this thread, unless someone
    /// waits for a connection to that upstream: then it is let go (and closes once the
    /// response in flight on it has been read). Connections idle for `idle_timeout` go.
    pub(super) fn put(&self, conn: Conn, idle_timeout: Duration) {
        let now = Instant::now();
        let mut conns = self.lock();
        // Under the lock a waiter's reclaim takes too, after the waiter counted itself.
        let let_go = if conn.upstream.contended() {
            Some(conn)
        } else {
            conns.push(Shelved { conn, since: now });
            None
        };
        let expired = Self::expired(&mut conns, now, idle_timeout);
        drop(conns);
        drop((let_go, expired));
    }

    /// Lets go of the connections idle for `idle_timeout`: those at the front, put back
    /// longest ago, that are not reading a response.
    pub(super) fn sweep(&self, idle_timeout: Duration) {
        let expired = Self::expired(&mut self.lock(), Instant::now(), idle_timeout);
        drop(expired);
    }

    fn expired(conns: &mut Vec<Shelved>, now: Instant, idle_timeout: Duration) -> Vec<Shelved> {
        let old = conns
            .iter()
            .take_while(|s| now.saturating_duration_since(s.since) >= idle_timeout)
            .count();
        if old == 0 {
            return Vec::new();
        }
        conns.drain(..old).collect()
    }

    fn take_if(&self, upstream: &Arc<Upstream>, wanted: impl Fn(&Conn) -> bool) -> Option<Conn> {
        let mut conns = self.lock();
        let i = conns
            .iter()
            .rposition(|s| Arc::ptr_eq(&s.conn.upstream, upstream) && wanted(&s.conn))?;
        Some(conns.remove(i).conn)
    }

    /// Takes out every connection to `upstream`.
    fn let_go(&self, upstream: &Arc<Upstream>) -> Vec<Shelved> {
        let mut conns = self.lock();
        let (gone, kept) = std::mem::take(&mut *conns)
            .into_iter()
            .partition(|s| Arc::ptr_eq(&s.conn.upstream, upstream));
        *conns = kept;
        gone
    }
}
