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
    shutdown_grace: Duration,
}

impl Server {
    pub async fn bind(state: Arc<State>) -> std::io::Result<Server> {
        let addr = state.snapshot.load().listen;
        let listener = TcpListener::bind(addr).await?;
        Ok(Server {
            listener,
            state,
            shutdown_grace: Duration::from_secs(30),
        })
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
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, %peer, "connection ended with an error");
                }
            });
        }
        drop(self.listener);
        tokio::select! {
            _ = graceful.shutdown() => {}
            _ = tokio::time::sleep(self.shutdown_grace) => {
                tracing::warn!("shutdown grace period over; closing remaining connections");
            }
        }
    }
}
