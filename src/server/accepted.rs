//! One accepted caller connection on the proxy port: the TLS handshake (under the header
//! deadline, in the connection's own task so that a slow handshake holds up nobody else), then
//! HTTP with the snapshot's limits, on the lean server or hyper's (`server.http1`).

use super::capacity::Admission;
use super::conn::{serve_http, Ended};
use crate::config::Http1;
use crate::pipeline::ConnMeta;
use crate::state::{Shared, Snapshot};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio::sync::watch;

/// One client connection: the TLS handshake (under the header deadline, in this task so that a
/// slow handshake holds up nobody else), then HTTP with the snapshot's limits.
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    snapshot: Arc<Snapshot>,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<()>,
    admission: Admission,
) {
    crate::metrics::connection_opened();
    let _open = OpenConnection;
    let strikes = admission.strikes();
    let ended = match &snapshot.tls {
        None if snapshot.http1 == Http1::Lean => {
            let meta = ConnMeta {
                peer,
                proto: "http",
                listener: "reverse",
            };
            super::lean::serve(stream, meta, &snapshot, shared, shutdown, strikes).await
        }
        None => {
            let meta = ConnMeta {
                peer,
                proto: "http",
                listener: "reverse",
            };
            serve_http(stream, meta, &snapshot, shared, shutdown, None, strikes).await
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
                listener: "reverse",
            };
            serve_http(stream, meta, &snapshot, shared, shutdown, None, strikes).await
        }
    };
    if ended == Ended::Abusive {
        admission.refuse_address(peer);
    }
}

/// Counts a connection in `ims_proxy_open_connections` for as long as its task lives.
struct OpenConnection;

impl Drop for OpenConnection {
    fn drop(&mut self) {
        crate::metrics::connection_closed();
    }
}
