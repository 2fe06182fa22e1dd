//! The forward listener (`[forward] listen`): for tools that hard-code Adobe's hosts and honour
//! `HTTPS_PROXY` (Adobe's SDKs). It accepts `CONNECT host:port` only where the snapshot's
//! [`Forward`](crate::state::Forward) policy says so: a host a route's public URL is on, or a
//! credential's IMS host, is intercepted (TLS terminated with a leaf from the local CA, and each
//! request inside goes down the same pipeline as on the reverse listener); a `passthrough`
//! pattern is tunnelled blind; anything else is refused with 403 and counted. Never an open
//! proxy.

use super::capacity::{self, Admission, ConnectionCounter, PeerCounter, Resets};
use super::conn;
use super::listener;
use crate::base::error::{cause_ref, error_chain};
use crate::outbound::{NoDescriptors, OutboundError, UpstreamBusy};
use crate::pipeline::{error_response, ConnMeta, Intercepted};
use crate::state::{AccessError, Decision, Shared, Snapshot};
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct ForwardServer {
    listener: TcpListener,
    shared: Arc<Shared>,
}

impl ForwardServer {
    pub async fn bind(addr: SocketAddr, shared: Arc<Shared>) -> std::io::Result<ForwardServer> {
        let listener = TcpListener::bind(addr).await?;
        Ok(ForwardServer { listener, shared })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then lets tunnels in flight finish within the grace.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let (drain, _) = watch::channel(());
        let connections = Arc::new(ConnectionCounter::default());
        let peers = Arc::new(PeerCounter::default());
        let resets = Arc::new(Resets::default());
        capacity::set_descriptor_budget(&self.shared.snapshot.load());
        listener::accept_until(&self.listener, "forward", shutdown, |stream, peer| {
            let snapshot = self.shared.snapshot.load_full();
            capacity::set_descriptor_budget(&snapshot);
            let limits = &snapshot.conn_limits;
            let admission = match capacity::admit(&connections, &peers, &resets, limits, peer.ip())
            {
                Ok(a) => a,
                Err(refusal) => {
                    refusal.log("forward", peer);
                    let _ = stream.try_write(refusal.answer);
                    return;
                }
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(connection_task(
                stream,
                peer,
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

/// One client connection: HTTP/1.1 until its `CONNECT`, then whatever the tunnel carries.
async fn connection_task(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<()>,
    admission: Admission,
) {
    let header_read_timeout = shared.snapshot.load().limits.header_read_timeout;
    let admission = Arc::new(admission);
    let service = service_fn(move |req| {
        let (shared, shutdown, admission) = (shared.clone(), shutdown.clone(), admission.clone());
        async move {
            let resp = connect(shared, req, peer, shutdown, admission).await;
            Ok::<_, std::convert::Infallible>(resp)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    if let Err(e) = conn.await {
        tracing::debug!(%peer, error = %e, "forward connection ended with an error");
    }
}

/// Answers one request on the forward listener: a `CONNECT` it accepts, or a refusal.
async fn connect(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    peer: SocketAddr,
    shutdown: watch::Receiver<()>,
    admission: Arc<Admission>,
) -> Response<Full<Bytes>> {
    let snap = shared.snapshot.load_full();
    let Some(forward) = snap.forward.as_ref() else {
        return refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "forward_off",
            "the forward listener is off",
        );
    };
    if req.method() != Method::CONNECT {
        return refusal(
            StatusCode::FORBIDDEN,
            "forward_refused",
            "only CONNECT to Adobe's HTTPS hosts is accepted here: plain http:// requests are \
             refused (Adobe's APIs are HTTPS only)",
        );
    }
    let caller = match snap.callers.authenticate_proxy(req.headers()) {
        Ok(c) => c,
        Err(e) => {
            // The reverse listener's ways (`x-proxy-key`, `Authorization: Bearer`) are request
            // headers, which an SDK sends inside the TLS tunnel, after this check: only the
            // proxy URL's userinfo reaches it, as `Proxy-Authorization`.
            let why = match e {
                AccessError::MissingKey => {
                    "a client key is required: put it in the proxy URL, \
                     HTTPS_PROXY=http://NAME:KEY@HOST:PORT (sent as Proxy-Authorization); \
                     x-proxy-key and Authorization: Bearer travel inside the tunnel and never \
                     reach this check"
                }
                _ => {
                    "the client key in Proxy-Authorization is not recognised: check the KEY in \
                      HTTPS_PROXY=http://NAME:KEY@HOST:PORT"
                }
            };
            let mut resp = refusal(
                StatusCode::PROXY_AUTHENTICATION_REQUIRED,
                "unauthorized",
                why,
            );
            resp.headers_mut().insert(
                header::PROXY_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"ims-proxy\""),
            );
            return resp;
        }
    };
    let Some(authority) = req.uri().authority().cloned() else {
        return refusal(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "CONNECT needs host:port",
        );
    };
    let (host, port) = (
        authority.host().to_string(),
        authority.port_u16().unwrap_or(443),
    );
    match forward.decide(&snap.routes, &host, port) {
        Decision::Refuse => {
            tracing::warn!(%peer, %host, port, "CONNECT refused: no route serves this host");
            crate::metrics::forward_refused();
            refusal(
                StatusCode::FORBIDDEN,
                "forward_refused",
                &format!(
                    "ims-proxy tunnels only to the Adobe hosts its routes serve (and \
                     forward.passthrough): {host}:{port} is refused"
                ),
            )
        }
        Decision::Tunnel => {
            // Through outbound, as every connection the proxy opens: the egress proxy, the
            // per-upstream cap and the descriptor budget (a tunnel holds two sockets).
            let timeout = snap.outbound_connect_timeout.saturating_mul(2);
            let upstream =
                match tokio::time::timeout(timeout, snap.outbound.tunnel(&host, port)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => return tunnel_refused(&host, port, &e),
                    Err(_) => {
                        return refusal(
                            StatusCode::GATEWAY_TIMEOUT,
                            "upstream_timeout",
                            &format!("{host}:{port}: no connection within {timeout:?}"),
                        )
                    }
                };
            // A tunnel carries bodies (uploads, downloads): the body's idle limit applies.
            let idle = snap.body_idle_timeout;
            tokio::spawn(async move {
                let _admission = admission;
                let Ok(upgraded) = hyper::upgrade::on(req).await else {
                    return;
                };
                super::tunnel::copy_until_idle(TokioIo::new(upgraded), upstream, idle).await;
            });
            established()
        }
        decision @ (Decision::Intercept | Decision::Ims) => {
            let tls = match forward.ca.leaf(&host).and_then(server_config) {
                Ok(t) => t,
                Err(e) => return refusal(StatusCode::INTERNAL_SERVER_ERROR, "forward_tls", &e),
            };
            let intercepted = Intercepted {
                host: host.to_ascii_lowercase(),
                caller,
                ims: decision == Decision::Ims,
            };
            tokio::spawn(intercept(
                req,
                tls,
                intercepted,
                peer,
                snap,
                shared,
                shutdown,
                admission,
            ));
            established()
        }
    }
}

/// Inside an accepted tunnel: the TLS handshake with the host's leaf, then HTTP as on the
/// reverse listener, every request marked as intercepted.
#[allow(clippy::too_many_arguments)]
async fn intercept(
    req: Request<Incoming>,
    tls: Arc<rustls::ServerConfig>,
    intercepted: Intercepted,
    peer: SocketAddr,
    snap: Arc<Snapshot>,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<()>,
    admission: Arc<Admission>,
) {
    let Ok(upgraded) = hyper::upgrade::on(req).await else {
        return;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let limit = snap.limits.header_read_timeout;
    let stream = match tokio::time::timeout(limit, acceptor.accept(TokioIo::new(upgraded))).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            // Most often: the client does not trust the local CA.
            tracing::info!(%peer, host = %intercepted.host, error = %e, "TLS handshake in a CONNECT tunnel failed");
            return;
        }
        Err(_) => return,
    };
    let meta = ConnMeta {
        peer,
        proto: "https",
        listener: "forward",
    };
    let strikes = admission.strikes();
    let ended = conn::serve_http(
        stream,
        meta,
        &snap,
        shared,
        shutdown,
        Some(intercepted),
        strikes,
    )
    .await;
    if ended == conn::Ended::Abusive {
        admission.refuse_address(peer);
    }
}

fn server_config(
    leaf: Arc<rustls::sign::CertifiedKey>,
) -> Result<Arc<rustls::ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(OneLeaf(leaf)));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The tunnel's host is known from its `CONNECT`: that host's leaf, whatever the SNI says.
#[derive(Debug)]
struct OneLeaf(Arc<rustls::sign::CertifiedKey>);

impl rustls::server::ResolvesServerCert for OneLeaf {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// Why no tunnel could be opened, in the words the reverse listener uses for the same causes.
fn tunnel_refused(host: &str, port: u16, e: &OutboundError) -> Response<Full<Bytes>> {
    let detail = format!("{host}:{port}: {}", error_chain(e));
    tracing::warn!(host, port, error = %detail, "passthrough tunnel not opened");
    if cause_ref::<UpstreamBusy>(e).is_some() {
        refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream_connection_limit",
            &detail,
        )
    } else if cause_ref::<NoDescriptors>(e).is_some() {
        refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_connections",
            &detail,
        )
    } else {
        refusal(StatusCode::BAD_GATEWAY, "upstream_unreachable", &detail)
    }
}

fn established() -> Response<Full<Bytes>> {
    Response::new(Full::new(Bytes::new()))
}

fn refusal(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    let id: u128 = rand::random();
    let id = HeaderValue::from_str(&format!("{id:032x}")).unwrap_or(HeaderValue::from_static("-"));
    let mut resp = error_response(status, code, message, &id);
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}
