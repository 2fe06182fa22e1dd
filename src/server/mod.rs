//! Listeners: accept connections, serve HTTP/1.1 and HTTP/2 (h2c prior knowledge on plain
//! TCP) on each, and shut down gracefully, letting requests in flight finish. The proxy port
//! hands requests to [`crate::pipeline`]; the admin port answers health and metrics itself.

mod admin;
mod capacity;
mod conn;
mod forward;
mod framing;
mod idle;
mod listener;

pub use admin::Admin;
pub use forward::ForwardServer;

use crate::base::fds::{self, FdSlot};
use crate::state::Shared;
use capacity::{Admission, ConnectionCounter, PeerCounter};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
}

impl Server {
    pub async fn bind(shared: Arc<Shared>) -> std::io::Result<Server> {
        let addr = shared.snapshot.load().listen;
        let listener = TcpListener::bind(addr).await?;
        Ok(Server { listener, shared })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then waits up to the grace period for connections.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let (drain, _) = tokio::sync::watch::channel(());
        let connections = Arc::new(ConnectionCounter::default());
        let peers = Arc::new(PeerCounter::default());
        warn_if_few_descriptors(&self.shared);
        listener::accept_until(&self.listener, "proxy", shutdown, |stream, peer| {
            let snapshot = self.shared.snapshot.load_full();
            let limits = &snapshot.conn_limits;
            // The admin listener's cap is kept out of what this port and outbound may hold.
            let reserved = snapshot.admin_listen.map_or(0, |_| snapshot.admin_limits.max_connections);
            fds::set_share(fds::share(reserved));
            let refuse = |why: &str, answer: &[u8]| {
                tracing::warn!(%peer, "connection refused: {why}");
                if snapshot.tls.is_none() {
                    let _ = stream.try_write(answer);
                }
            };
            let Some(connection) = connections.try_acquire(limits.max_connections) else {
                refuse("at the connection limit (server.limits.max_connections)", capacity::OVER_CAPACITY_RESPONSE);
                return;
            };
            let peer_slot = match limits.max_connections_per_peer {
                None => None,
                Some(max) => match peers.try_acquire(peer.ip(), max) {
                    Some(slot) => Some(slot),
                    None => {
                        refuse("at the limit for this client address (server.limits.max_connections_per_peer)", capacity::OVER_PEER_CAPACITY_RESPONSE);
                        return;
                    }
                },
            };
            let Some(fd) = FdSlot::try_acquire() else {
                refuse("file descriptors nearly exhausted (RLIMIT_NOFILE)", capacity::OVER_CAPACITY_RESPONSE);
                return;
            };
            let admission = Admission {
                _connection: connection,
                _peer: peer_slot,
                _fd: Some(fd),
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(conn::serve(
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
