//! Listeners: accept connections, serve HTTP/1.1 and HTTP/2 (h2c prior knowledge on plain
//! TCP) on each, and shut down gracefully, letting requests in flight finish.

use crate::proxy::{self, ConnMeta, State};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

pub struct Server {
    listener: TcpListener,
    state: Arc<State>,
}

impl Server {
    pub async fn bind(state: Arc<State>) -> std::io::Result<Server> {
        let addr = state.snapshot.load().listen;
        let listener = TcpListener::bind(addr).await?;
        Ok(Server { listener, state })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then waits up to the grace period for connections.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let builder = auto::Builder::new(TokioExecutor::new());
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let state = self.state.clone();
            let meta = ConnMeta {
                peer,
                proto: "http",
            };
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, std::convert::Infallible>(proxy::handle(state, req, meta).await) }
            });
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            let conn = graceful.watch(conn.into_owned());
            crate::metrics::connection_opened();
            tokio::spawn(async move {
                let _open = OpenConnection;
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, %peer, "connection ended with an error");
                }
            });
        }
        drop(self.listener);
        // Read now, not at bind: a reload may have changed it.
        let grace = self.state.snapshot.load().shutdown_grace;
        tokio::select! {
            _ = graceful.shutdown() => {}
            _ = tokio::time::sleep(grace) => {
                tracing::warn!(?grace, "shutdown grace period over; closing remaining connections");
            }
        }
    }
}

/// Counts a connection in `ims_proxy_open_connections` for as long as its task lives.
struct OpenConnection;

impl Drop for OpenConnection {
    fn drop(&mut self) {
        crate::metrics::connection_closed();
    }
}
