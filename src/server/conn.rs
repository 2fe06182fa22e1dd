//! One caller connection: the TLS handshake (under the header deadline, in the connection's own
//! task so that a slow handshake holds up nobody else), then HTTP with the snapshot's limits.

use super::capacity::ConnectionSlot;
use super::framing::{FramingWatch, Verdicts};
use super::idle::{Activity, ActivityIo};
use crate::body::Observed;
use crate::config::LimitsConfig;
use crate::pipeline::{self, Ambiguous, ConnMeta};
use crate::state::{Shared, Snapshot};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::Watcher;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpStream;

/// One client connection: the TLS handshake (under the header deadline, in this task so that a
/// slow handshake holds up nobody else), then HTTP with the snapshot's limits.
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    snapshot: Arc<Snapshot>,
    shared: Arc<Shared>,
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
            serve_http(stream, meta, &snapshot, shared, watcher).await;
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
            serve_http(stream, meta, &snapshot, shared, watcher).await;
        }
    }
}

async fn serve_http<I>(
    io: I,
    meta: ConnMeta,
    snapshot: &Snapshot,
    shared: Arc<Shared>,
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
        let shared = shared.clone();
        let in_flight = service_activity.begin();
        if req.version() < http::Version::HTTP_2 {
            if let Some(reason) = verdicts.next() {
                req.extensions_mut().insert(Ambiguous(reason));
            }
        }
        async move {
            let resp = pipeline::handle(&shared, req, meta).await;
            Ok::<_, std::convert::Infallible>(resp.map(|b| Observed::new(b, in_flight)))
        }
    });
    let builder = builder(limits);
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

/// A server builder for one connection with these limits applied.
fn builder(limits: &LimitsConfig) -> auto::Builder<TokioExecutor> {
    use hyper_util::rt::TokioTimer;
    let mut b = auto::Builder::new(TokioExecutor::new());
    // hyper's own head limit is the backstop; the exact limits are checked per request so
    // that the caller gets the 414/431 in the proxy's JSON shape.
    let head = limits.max_head_bytes();
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(limits.max_headers.saturating_add(1))
        // The read buffer bounds the request head: beyond it hyper answers 431 and closes.
        .max_buf_size(head.max(8192));
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .max_pending_accept_reset_streams(limits.h2_max_pending_reset_streams)
        .max_local_error_reset_streams(limits.h2_max_local_error_reset_streams)
        .max_header_list_size(u32::try_from(head).unwrap_or(u32::MAX));
    b
}
