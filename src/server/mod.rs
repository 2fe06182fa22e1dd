//! Listeners: accept connections, serve HTTP/1.1 and HTTP/2 (h2c prior knowledge on plain
//! TCP) on each, and shut down gracefully, letting requests in flight finish. The proxy port
//! hands requests to [`crate::pipeline`]; the admin port answers health, metrics and its status page itself.

mod accepted;
mod admin;
mod capacity;
mod conn;
mod forward;
mod framing;
mod idle;
mod lean;
mod listener;
mod status_page;
mod tunnel;

pub use admin::Admin;
pub use forward::ForwardServer;
/// For `fuzz/` only: the lean HTTP/1.1 server's framing against hyper's.
#[cfg(fuzzing)]
#[doc(hidden)]
pub use lean::differential;

use crate::base::fds;
use crate::state::Shared;
use capacity::{ConnectionCounter, PeerCounter, Resets};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
    /// Shared by every listener of the proxy port, so the limits count all its connections.
    connections: Arc<ConnectionCounter>,
    peers: Arc<PeerCounter>,
    resets: Arc<Resets>,
    /// The first (or only) listener of the port says what concerns them all.
    first: bool,
}

/// One of the proxy port's listeners, bound but not yet given to a runtime.
pub struct Bound {
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    connections: Arc<ConnectionCounter>,
    peers: Arc<PeerCounter>,
    resets: Arc<Resets>,
    first: bool,
}

impl Server {
    pub async fn bind(shared: Arc<Shared>) -> std::io::Result<Server> {
        let addr = shared.snapshot.load().listen;
        let listener = TcpListener::bind(addr).await?;
        Ok(Server {
            listener,
            shared,
            connections: Arc::default(),
            peers: Arc::default(),
            resets: Arc::default(),
            first: true,
        })
    }

    /// `n` listeners on the proxy port's address with `SO_REUSEPORT`, one for each runtime of
    /// a thread-per-core process: the kernel spreads new connections over them. The first
    /// picks the port when the address says 0, and is refused if any other socket listens
    /// there (see [`listener::bind_reuseport`]); the others take the same. The connection
    /// limits count across all of them.
    pub fn bind_reuseport(shared: Arc<Shared>, n: usize) -> std::io::Result<Vec<Bound>> {
        let mut addr = shared.snapshot.load().listen;
        let connections = Arc::<ConnectionCounter>::default();
        let peers = Arc::<PeerCounter>::default();
        let resets = Arc::<Resets>::default();
        let mut bound = Vec::with_capacity(n);
        for i in 0..n.max(1) {
            let listener = listener::bind_reuseport(addr, i == 0)?;
            addr = listener.local_addr()?;
            bound.push(Bound {
                listener,
                shared: shared.clone(),
                connections: connections.clone(),
                peers: peers.clone(),
                resets: resets.clone(),
                first: i == 0,
            });
        }
        Ok(bound)
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then waits up to the grace period for connections.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let (drain, _) = tokio::sync::watch::channel(());
        let (connections, peers, resets) = (&self.connections, &self.peers, &self.resets);
        if self.first {
            capacity::set_descriptor_budget(&self.shared.snapshot.load());
            warn_if_few_descriptors(&self.shared);
        }
        listener::accept_until(&self.listener, "proxy", shutdown, |stream, peer| {
            let snapshot = self.shared.snapshot.load_full();
            let limits = &snapshot.conn_limits;
            capacity::set_descriptor_budget(&snapshot);
            let admission = match capacity::admit(connections, peers, resets, limits, peer.ip()) {
                Ok(a) => a,
                Err(refusal) => {
                    refusal.log("proxy", peer);
                    // Over TLS a plain-text answer would only garble the handshake.
                    if snapshot.tls.is_none() {
                        let _ = stream.try_write(refusal.answer);
                    }
                    return;
                }
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(accepted::serve(
                stream,
                peer,
                snapshot,
                self.shared.clone(),
                drain.subscribe(),
                admission,
            ));
        })
        .await;
        drop(self.listener);
        listener::drain(&self.shared, drain).await;
    }
}

impl Bound {
    /// Registers the listener with the runtime this is called on (inside `Handle::enter`).
    pub fn register(self) -> std::io::Result<Server> {
        Ok(Server {
            listener: TcpListener::from_std(self.listener)?,
            shared: self.shared,
            connections: self.connections,
            peers: self.peers,
            resets: self.resets,
            first: self.first,
        })
    }
}

/// Says at start-up when `RLIMIT_NOFILE` allows fewer connections than `max_connections`.
fn warn_if_few_descriptors(shared: &Shared) {
    let snapshot = shared.snapshot.load();
    let reserved = snapshot
        .admin_listen
        .map_or(0, |_| snapshot.admin_limits.max_connections);
    let share = fds::share(reserved);
    if share < snapshot.conn_limits.max_connections {
        tracing::warn!(
            nofile = fds::soft_limit().unwrap_or(0),
            connections = share,
            max_connections = snapshot.conn_limits.max_connections,
            "RLIMIT_NOFILE leaves room for fewer connections than server.limits.max_connections; connections beyond it get 503 (raise the limit, e.g. LimitNOFILE=)"
        );
    }
}
