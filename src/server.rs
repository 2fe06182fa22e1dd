//! Listeners: accept connections, serve HTTP/1.1 and HTTP/2 (h2c prior knowledge on plain
//! TCP) on each, and shut down gracefully, letting requests in flight finish.

use crate::framing::{Ambiguous, FramingWatch, Verdicts};
use crate::limits::{self, Activity, ActivityIo, ConnectionCounter, ConnectionSlot, TrackedBody};
use crate::proxy::{self, ConnMeta, State};
use crate::snapshot::Snapshot;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::Watcher;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

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
        let connections = Arc::new(ConnectionCounter::default());
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
            let snapshot = self.state.snapshot.load_full();
            let Some(slot) = connections.try_acquire(snapshot.limits.max_connections) else {
                tracing::warn!(
                    %peer,
                    max_connections = snapshot.limits.max_connections,
                    "connection refused: at the connection limit"
                );
                if snapshot.tls.is_none() {
                    let _ = stream.try_write(limits::OVER_CAPACITY_RESPONSE);
                }
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(serve_connection(
                stream,
                peer,
                snapshot,
                self.state.clone(),
                graceful.watcher(),
                slot,
            ));
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

/// One client connection: the TLS handshake (under the header deadline, in this task so that a
/// slow handshake holds up nobody else), then HTTP with the snapshot's limits.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    snapshot: Arc<Snapshot>,
    state: Arc<State>,
    watcher: Watcher,
    slot: ConnectionSlot,
) {
    let _slot = slot;
    crate::metrics::connection_opened();
    let _open = OpenConnection;
    match &snapshot.tls {
        None => {
            let meta = ConnMeta {
                peer,
                proto: "http",
            };
            serve_http(stream, meta, &snapshot, state, watcher).await;
        }
        Some(tls) => {
            let limit = snapshot.limits.header_read_timeout;
            let stream = match tokio::time::timeout(limit, tls.acceptor.accept(stream)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let meta = ConnMeta {
                peer,
                proto: "https",
            };
            serve_http(stream, meta, &snapshot, state, watcher).await;
        }
    }
}

async fn serve_http<I>(
    io: I,
    meta: ConnMeta,
    snapshot: &Snapshot,
    state: Arc<State>,
    watcher: Watcher,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let limits = &snapshot.limits;
    let activity = Activity::new();
    let verdicts = Verdicts::default();
    let io = FramingWatch::new(
        ActivityIo::new(io, activity.clone()),
        limits.max_head_bytes(),
        verdicts.clone(),
    );
    let service_activity = activity.clone();
    let service = service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
        let state = state.clone();
        let in_flight = service_activity.begin();
        if req.version() < http::Version::HTTP_2 {
            if let Some(reason) = verdicts.next() {
                req.extensions_mut().insert(Ambiguous(reason));
            }
        }
        async move {
            let resp = proxy::handle(state, req, meta).await;
            Ok::<_, std::convert::Infallible>(resp.map(|b| TrackedBody::new(b, in_flight)))
        }
    });
    let builder = limits.connection_builder();
    let conn = builder.serve_connection(TokioIo::new(io), service);
    let conn = watcher.watch(conn.into_owned());
    let peer = meta.peer;
    tokio::select! {
        result = conn => {
            if let Err(e) = result {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
        }
        _ = activity.idle(limits.idle_timeout) => {
            tracing::debug!(%peer, "closing idle connection");
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
