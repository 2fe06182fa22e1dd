//! Listeners: accept connections, serve HTTP/1.1 and HTTP/2 (h2c prior knowledge on plain
//! TCP) on each, and shut down gracefully, letting requests in flight finish. The proxy port
//! hands requests to [`crate::pipeline`]; the admin port answers health and metrics itself.

mod admin;
mod capacity;
mod conn;
mod framing;
mod idle;
mod listener;

pub use admin::Admin;

use crate::state::Shared;
use capacity::ConnectionCounter;
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
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let connections = Arc::new(ConnectionCounter::default());
        listener::accept_until(&self.listener, "proxy", shutdown, |stream, peer| {
            let snapshot = self.shared.snapshot.load_full();
            let Some(slot) = connections.try_acquire(snapshot.limits.max_connections) else {
                tracing::warn!(
                    %peer,
                    max_connections = snapshot.limits.max_connections,
                    "connection refused: at the connection limit"
                );
                if snapshot.tls.is_none() {
                    let _ = stream.try_write(capacity::OVER_CAPACITY_RESPONSE);
                }
                return;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(conn::serve(
                stream,
                peer,
                snapshot,
                self.shared.clone(),
                graceful.watcher(),
                slot,
            ));
        })
        .await;
        drop(self.listener);
        // Read now, not at bind: a reload may have changed it.
        let grace = self.shared.snapshot.load().shutdown_grace;
        tokio::select! {
            _ = graceful.shutdown() => {}
            _ = tokio::time::sleep(grace) => {
                tracing::warn!(?grace, "shutdown grace period over; closing remaining connections");
            }
        }
    }
}
