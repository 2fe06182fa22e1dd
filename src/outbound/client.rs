//! The one outbound HTTP client, for upstream APIs and IMS alike: pooled keep-alive
//! connections, rustls with the webpki roots plus an optional extra CA file, HTTP/2 when the
//! server offers it by ALPN. Connections go through [`super::egress`] (a corporate proxy, if
//! one is configured).
//!
//! Each thread keeps its own pool. Under thread-per-core (`ims-proxy run`) a pooled connection
//! is driven by a task on the runtime that opened it; a shared pool would hand it to a request
//! on another thread, and every exchange would then cross threads twice (request in, response
//! out), with the wake-ups that costs. The connector (and so the per-upstream connection cap,
//! the egress proxy and the TLS session cache) stays shared.
//!
//! Requests to an HTTP/1.1 upstream reached directly skip hyper-util's pool
//! ([`super::affinity`]): an HTTP/1.1 caller connection keeps an upstream connection of its
//! own, and every other request takes one from its thread's shelf. Those connections can be
//! reached from any thread, so at the upstream's cap an idle one is taken or closed
//! wherever it sits. h2 upstreams (by ALPN) and the egress proxy's requests use the pool.

use super::affinity::{Affinity, Conn, Held, Registry, Shelf};
use super::breaker::{Breaker, Reclaim};
use super::egress::{Egress, EgressConnector, Via};
use super::share::{default_share, CallerKey, CallerShare, Share, Shares};
use super::wire::{Tracked, Watching, Wire};
use crate::base::error::BoxError;
use crate::config::{ConfigError, OutboundConfig};
use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http::{HeaderValue, Request, Response, Uri};
use http_body::Body as _;
use http_body_util::combinators::BoxBody;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::{CaptureConnection, Connection as _, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::cell::RefCell;
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;
use tower_service::Service as _;

/// Every outbound request body: a streamed client body, or bytes the proxy made.
pub type RequestBody = BoxBody<Bytes, BoxError>;

type Connector = Watching<HttpsConnector<EgressConnector>>;

type Pool = Client<Connector, RequestBody>;

#[derive(Clone)]
pub struct Outbound {
    pub egress: Arc<Egress>,
    connector: Connector,
    /// The connector under TLS, for blind tunnels ([`Outbound::tunnel`]).
    dialer: EgressConnector,
    pool_idle_timeout: Duration,
    /// Identifies this outbound (and its clones) in each thread's pool list; when the last
    /// clone is dropped (a reload replaced it), the threads' pools for it are dropped lazily.
    /// Connections held for callers ([`Affinity`]) name it as their owner too.
    id: Arc<()>,
    affine: Arc<Affine>,
    /// Each caller's share of an upstream's connections; `None` when the share is the whole
    /// cap.
    shares: Option<Arc<Shares>>,
}

/// What the connections held outside the pool (caller slots, shelves) need beside the
/// connector.
struct Affine {
    /// `client.connection_affinity`: whether caller slots are used; `false`, every request
    /// to an HTTP/1.1 upstream takes a connection from its thread's shelf.
    slots: bool,
    breaker: Arc<Breaker>,
    registry: Arc<Registry>,
    /// Upstreams that chose h2 by ALPN: their requests go to the pool, where one connection
    /// multiplexes them. Looked at only where a connection would be opened.
    h2: Mutex<HashSet<(Scheme, Authority)>>,
}

impl Affine {
    fn speaks_h2(&self, scheme: &Scheme, authority: &Authority) -> bool {
        let h2 = self.h2.lock().unwrap_or_else(|e| e.into_inner());
        !h2.is_empty() && h2.contains(&(scheme.clone(), authority.clone()))
    }
}

thread_local! {
    /// This thread's pools and shelves, one per live [`Outbound`]: a handful at most (one per
    /// reload that changed the `[client]` section, until the old snapshot's last request
    /// ends).
    static POOLS: RefCell<Vec<(Weak<()>, Local)>> = const { RefCell::new(Vec::new()) };
}

/// One thread's connections of one [`Outbound`].
#[derive(Clone)]
struct Local {
    pool: Pool,
    shelf: Arc<Shelf>,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Outbound")
    }
}

/// Why an outbound request got no response head. The pool's errors as hyper-util words them;
/// the affinity path's worded the same way, so that logs and answers do not depend on which
/// path a request took.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error(transparent)]
    Pool(#[from] hyper_util::client::legacy::Error),
    /// No connection: the breaker ([`super::UpstreamBusy`]), descriptors, DNS, TCP, TLS.
    #[error("client error (Connect)")]
    Connect(#[source] BoxError),
    #[error("client error (SendRequest)")]
    Send(#[source] hyper::Error),
}

/// A response head, and the connection it came on until the caller says whether that
/// connection may carry another request.
pub struct Answer<'a> {
    response: Response<Incoming>,
    lease: Lease<'a>,
}

enum Lease<'a> {
    /// `None` only if the future was polled after it finished.
    Pool(Option<CaptureConnection>),
    Affine {
        home: Home<'a>,
        conn: Conn,
    },
}

/// Where a connection outside the pool goes back to.
enum Home<'a> {
    /// The caller connection's slot.
    Slot(&'a Arc<Affinity>, &'a Arc<Registry>),
    /// This thread's shelf.
    Shelf(Arc<Shelf>, Duration),
}

impl Home<'_> {
    /// The one way a connection goes back for another request, so the one place that
    /// refuses it when its upstream answered before the request body was written whole
    /// ([`Wire`]): such a connection is dropped, and closes once its response has been read.
    fn put(self, conn: Conn) {
        if conn.wire.as_ref().is_some_and(|w| w.answered_early()) {
            answered_early();
            drop(conn);
            return;
        }
        match self {
            Home::Slot(slot, registry) => slot.put(conn, registry),
            Home::Shelf(shelf, idle_timeout) => shelf.put(conn, idle_timeout),
        }
    }
}

impl Answer<'_> {
    pub fn response(&self) -> &Response<Incoming> {
        &self.response
    }

    /// The response is passed on: its connection carries the caller's next request once
    /// this body has been read.
    /// Unless the upstream answered before the request body was written whole ([`Wire`]):
    /// then the connection carries nothing more, and closes once both are done.
    pub fn keep(self) -> Response<Incoming> {
        match self.lease {
            Lease::Affine { home, conn } => home.put(conn),
            Lease::Pool(captured) => {
                let wire = self.response.extensions().get::<Arc<Wire>>();
                if wire.is_some_and(|w| w.answered_early()) {
                    answered_early();
                    if let Some(c) = captured.as_ref() {
                        if let Some(c) = c.connection_metadata().as_ref() {
                            c.poison();
                        }
                    }
                }
            }
        }
        self.response
    }

    /// The response is refused: what its connection sends next cannot be trusted to answer
    /// the next request (response-queue poisoning), so the connection is closed, never
    /// reused, even if its body has already been read whole.
    pub fn refuse(self) {
        if let Lease::Pool(Some(captured)) = &self.lease {
            if let Some(c) = captured.connection_metadata().as_ref() {
                c.poison();
            }
        }
    }
}

fn answered_early() {
    tracing::debug!(
        "the upstream answered before the request body was written whole: its connection \
         carries no other request"
    );
}

/// [`Outbound::request`]'s future.
pub struct ResponseFuture<'a>(Pending<'a>);

type AffineFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Answer<'a>, OutboundError>> + Send + 'a>>;

enum Pending<'a> {
    Pool {
        response: hyper_util::client::legacy::ResponseFuture,
        captured: Option<CaptureConnection>,
    },
    Affine(AffineFuture<'a>),
}

impl<'a> Future for ResponseFuture<'a> {
    type Output = Result<Answer<'a>, OutboundError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().0 {
            Pending::Affine(f) => f.as_mut().poll(cx),
            Pending::Pool { response, captured } => {
                let response = std::task::ready!(Pin::new(response).poll(cx))?;
                Poll::Ready(Ok(Answer {
                    response,
                    lease: Lease::Pool(captured.take()),
                }))
            }
        }
    }
}

impl Outbound {
    pub fn new(cfg: &OutboundConfig) -> Result<Outbound, ConfigError> {
        let tls = tls_config(cfg)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(cfg.connect_timeout));
        http.set_keepalive(Some(std::time::Duration::from_secs(60)));
        let egress = Arc::new(Egress::from_config(cfg)?);
        let registry = Arc::new(Registry::default());
        // 0 is refused by config::validate; 1 here keeps a direct caller from a dead client.
        let cap = cfg.max_connections_per_upstream.max(1);
        let share = cfg
            .max_in_flight_per_caller
            .unwrap_or_else(|| default_share(cap))
            .max(1);
        let shares = (share < cap).then(|| Arc::new(Shares::new(share, cfg.connect_timeout)));
        let breaker = Arc::new(Breaker::new(
            cap,
            cfg.connect_timeout,
            Some(registry.clone() as Arc<dyn Reclaim>),
        ));
        let affine = Arc::new(Affine {
            slots: cfg.connection_affinity,
            breaker: breaker.clone(),
            registry,
            h2: Mutex::default(),
        });
        let dialer = EgressConnector::new(http, egress.clone(), cfg.connect_timeout, breaker);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(dialer.clone());
        Ok(Outbound {
            egress,
            connector: Watching(https),
            dialer,
            pool_idle_timeout: cfg.pool_idle_timeout,
            id: Arc::new(()),
            affine,
            shares,
        })
    }

    /// Runs `f` with this thread's pool and shelf, made on first use.
    fn with_local<R>(&self, f: impl FnOnce(&Local) -> R) -> R {
        POOLS.with(|pools| {
            let mut pools = pools.borrow_mut();
            // A dead outbound's allocation lives while a Weak to it does, so its address
            // cannot be reused by a live one: comparing addresses is exact.
            let mine = Arc::as_ptr(&self.id);
            if let Some((_, local)) = pools.iter().find(|(id, _)| std::ptr::eq(id.as_ptr(), mine)) {
                return f(local);
            }
            pools.retain(|(id, _)| id.strong_count() > 0);
            let pool = Client::builder(TokioExecutor::new())
                .pool_idle_timeout(self.pool_idle_timeout)
                .pool_timer(TokioTimer::new())
                .timer(TokioTimer::new())
                .build(self.connector.clone());
            let shelf = Arc::new(Shelf::default());
            self.affine.registry.list_shelf(Arc::downgrade(&shelf));
            sweep_while_alive(Arc::downgrade(&shelf), self.pool_idle_timeout);
            let local = Local { pool, shelf };
            let out = f(&local);
            pools.push((Arc::downgrade(&self.id), local));
            out
        })
    }

    /// Sends `req`, adding `Proxy-Authorization` when it goes as plain HTTP through an egress
    /// proxy with credentials. Every outbound call goes through here. With `affinity` (an
    /// HTTP/1.1 caller connection's slot) and no egress proxy in the way, it goes on the
    /// caller's own upstream connection; otherwise through the pool.
    pub fn request<'a>(
        &'a self,
        mut req: Request<RequestBody>,
        affinity: Option<&'a Arc<Affinity>>,
    ) -> ResponseFuture<'a> {
        match self.egress.via(req.uri()) {
            Via::Proxy { forward_auth } => {
                if let Some(auth) = forward_auth {
                    req.headers_mut()
                        .insert(http::header::PROXY_AUTHORIZATION, auth);
                }
            }
            Via::Direct => {
                let slot = affinity.filter(|_| self.affine.slots);
                return ResponseFuture(Pending::Affine(Box::pin(self.affine(
                    &self.affine,
                    slot,
                    req,
                ))));
            }
        }
        self.pooled(req)
    }

    fn pooled<'a>(&self, mut req: Request<RequestBody>) -> ResponseFuture<'a> {
        // To poison the connection should its response be refused: hyper-util would
        // otherwise pool it (the body may already have been read whole).
        let captured = hyper_util::client::legacy::connect::capture_connection(&mut req);
        let req = if req.body().is_end_stream() {
            req
        } else {
            let on = captured.clone();
            req.map(|body| Tracked::pooled(body, on).boxed())
        };
        ResponseFuture(Pending::Pool {
            response: self.with_local(|local| local.pool.request(req)),
            captured: Some(captured),
        })
    }

    /// `req` on the caller's held connection (`slot`) or one from this thread's shelf, or on
    /// a new one. What the pool would have done is done here: `Host` and the origin-form
    /// target for HTTP/1.1, and one more try on a new connection when a reused one turned
    /// out closed before the request was written (hyper-util's `retry_canceled_requests`).
    async fn affine<'a>(
        &'a self,
        affine: &'a Affine,
        slot: Option<&'a Arc<Affinity>>,
        mut req: Request<RequestBody>,
    ) -> Result<Answer<'a>, OutboundError> {
        let (Some(scheme), Some(authority)) =
            (req.uri().scheme().cloned(), req.uri().authority().cloned())
        else {
            // The pool answers a relative URI with its own error.
            return self.pooled(req).await;
        };
        let held = match slot {
            Some(s) => s.take(&self.id, &scheme, &authority),
            None => Held::Other,
        };
        let (home, held) = match (held, slot) {
            (Held::Other, _) | (_, None) => {
                let shelf = self.with_local(|local| local.shelf.clone());
                let held = shelf.take(&scheme, &authority);
                (Home::Shelf(shelf, self.pool_idle_timeout), held)
            }
            (Held::Conn(c), Some(s)) => (Home::Slot(s, &affine.registry), Some(c)),
            (Held::Nothing, Some(s)) => (Home::Slot(s, &affine.registry), None),
        };
        let except = match &home {
            Home::Slot(s, _) => Some(&***s),
            Home::Shelf(..) => None,
        };
        let (mut conn, mut reused) = match held {
            Some(c) => (c, true),
            None => match self.connection(affine, except, &scheme, &authority).await? {
                Some(opened) => opened,
                None => return self.pooled(req).await,
            },
        };
        let host_added = !req.headers().contains_key(http::header::HOST);
        if let (true, Some(host)) = (host_added, &conn.host) {
            req.headers_mut().insert(http::header::HOST, host.clone());
        }
        origin_form(req.uri_mut());
        // Set when `conn` cannot carry the request after all: a fresh one is opened (or the
        // pool takes the request) at the top of the loop.
        let mut replace = false;
        loop {
            // Still finishing its previous response (or closing): wait for it to go either
            // way. The caller's next request comes only after that response has been read
            // or dropped, so this does not wait on anyone.
            if reused && !conn.tx.is_ready() && conn.tx.ready().await.is_err() {
                replace = true;
            }
            if std::mem::take(&mut replace) {
                reused = false;
                match self.connection(affine, except, &scheme, &authority).await? {
                    Some((fresh, _)) => conn = fresh,
                    None => {
                        return self
                            .pooled(absolute(req, &scheme, &authority, host_added))
                            .await
                    }
                }
            }
            let tracked = if req.body().is_end_stream() {
                req
            } else {
                let wire = conn.wire.clone();
                req.map(|body| Tracked::on(body, wire).boxed())
            };
            match conn.tx.try_send_request(tracked).await {
                Ok(response) => {
                    return Ok(Answer {
                        response,
                        lease: Lease::Affine { home, conn },
                    })
                }
                Err(mut e) => {
                    // Given back only when not a byte of it was written: safe to send again,
                    // whatever its method. A reused connection may have been closed by the
                    // upstream while idle; a new one failing is the upstream's answer.
                    let Some(back) = e.take_message().filter(|_| reused) else {
                        return Err(OutboundError::Send(e.into_error()));
                    };
                    tracing::debug!(error = %e.error(), "held upstream connection was closed; sending on a new one");
                    req = back;
                    replace = true;
                }
            }
        }
    }

    /// A connection for a request to `scheme://authority`, and whether it carried requests
    /// before. At the upstream's cap, an idle one held for another caller (not `except`) or
    /// on any thread's shelf; else a new one through the shared connector (breaker,
    /// descriptors, egress, TLS and its session cache), waiting for a permit if it must.
    /// `None` when it is the pool's business: the upstream speaks h2.
    async fn connection(
        &self,
        affine: &Affine,
        except: Option<&Affinity>,
        scheme: &Scheme,
        authority: &Authority,
    ) -> Result<Option<(Conn, bool)>, OutboundError> {
        if affine.speaks_h2(scheme, authority) {
            return Ok(None);
        }
        let dst = Uri::builder()
            .scheme(scheme.clone())
            .authority(authority.clone())
            .path_and_query("/")
            .build()
            .map_err(|e| OutboundError::Connect(e.into()))?;
        let upstream = affine.breaker.upstream(&dst);
        if !upstream.has_room() {
            if let Some(c) = affine.registry.take_idle(&upstream, except) {
                return Ok(Some((c, true)));
            }
            // Nothing idle: every connection to the upstream carries a request (the pool's
            // are an h2 upstream's, which never comes here, or the egress proxy's, whose
            // upstreams never come here either) or a passthrough tunnel ([`Self::tunnel`]).
            // The connector waits for one of them to end, and each is let go then rather
            // than kept idle.
        }
        let mut connector = self.connector.clone();
        std::future::poll_fn(|cx| connector.poll_ready(cx))
            .await
            .map_err(OutboundError::Connect)?;
        let io = connector.call(dst).await.map_err(OutboundError::Connect)?;
        if io.connected().is_negotiated_h2() {
            let mut h2 = affine.h2.lock().unwrap_or_else(|e| e.into_inner());
            h2.insert((scheme.clone(), authority.clone()));
            // Dropped here, permit and all, before the pool opens its own.
            return Ok(None);
        }
        let wire = io.wire();
        let (tx, connection) = hyper::client::conn::http1::Builder::new()
            .handshake(io)
            .await
            .map_err(|e| OutboundError::Connect(e.into()))?;
        // On this thread's runtime (thread-per-core): the requests it carries are this
        // thread's caller's.
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        let conn = Conn {
            owner: Arc::downgrade(&self.id),
            host: host_header(scheme, authority),
            scheme: scheme.clone(),
            authority: authority.clone(),
            tx,
            upstream,
            wire,
        };
        Ok(Some((conn, false)))
    }

    /// A place in `caller`'s share of the connections to `uri`'s upstream, waiting for one
    /// of its requests there to end if it must: held until the response body has ended.
    /// `None` when there is no share to keep (it is the whole cap).
    pub async fn share(&self, uri: &Uri, caller: CallerKey) -> Result<Option<Share>, CallerShare> {
        match &self.shares {
            Some(shares) => shares.admit(uri, caller).await,
            None => Ok(None),
        }
    }

    /// A connection to `host:port` for a blind tunnel (`forward.passthrough`), opened as every
    /// outbound connection is: admitted by the breaker (the per-upstream cap, counted as
    /// `https://host:port`, and a file descriptor from the budget, both held until it closes)
    /// and through the egress proxy's CONNECT when one applies. No TLS: the tunnel carries the
    /// caller's own.
    pub async fn tunnel(
        &self,
        host: &str,
        port: u16,
    ) -> Result<impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send, OutboundError>
    {
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        let dst = Uri::builder()
            .scheme(Scheme::HTTPS)
            .authority(format!("{host}:{port}"))
            .path_and_query("/")
            .build()
            .map_err(|e| OutboundError::Connect(e.into()))?;
        let mut dialer = self.dialer.clone();
        std::future::poll_fn(|cx| dialer.poll_ready(cx))
            .await
            .map_err(OutboundError::Connect)?;
        let io = dialer.call(dst).await.map_err(OutboundError::Connect)?;
        Ok(hyper_util::rt::TokioIo::new(io))
    }

    /// Opens (and drops) one connection to `uri`'s host: DNS, TCP, the egress proxy's tunnel
    /// and TLS, exactly as a request would. For `check --online`.
    pub async fn probe(&self, uri: http::Uri) -> Result<(), BoxError> {
        let mut c = self.connector.clone();
        std::future::poll_fn(|cx| c.poll_ready(cx)).await?;
        c.call(uri).await.map(drop)
    }
}

/// Closes `shelf`'s connections once idle for `idle_timeout`, for as long as the shelf
/// lives: a thread that stops sending requests must not keep them open (and their permits
/// held) for ever.
fn sweep_while_alive(shelf: Weak<Shelf>, idle_timeout: Duration) {
    let period = (idle_timeout / 2).max(Duration::from_secs(1));
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        loop {
            tokio::time::sleep(period).await;
            let Some(shelf) = shelf.upgrade() else { return };
            shelf.sweep(idle_timeout);
        }
    });
}

/// `Host` as hyper-util's pool sets it when absent: the authority's host, with its port
/// unless that is the scheme's default.
fn host_header(scheme: &Scheme, authority: &Authority) -> Option<HeaderValue> {
    let secure = *scheme == Scheme::HTTPS || scheme.as_str() == "wss";
    let host = authority.host();
    match (authority.port_u16(), secure) {
        (Some(443), true) | (Some(80), false) | (None, _) => HeaderValue::from_str(host).ok(),
        (Some(port), _) => HeaderValue::from_str(&format!("{host}:{port}")).ok(),
    }
}

/// The request target as an HTTP/1.1 request to the origin carries it: path and query.
fn origin_form(uri: &mut Uri) {
    let mut parts = http::uri::Parts::default();
    parts.path_and_query = uri
        .path_and_query()
        .cloned()
        .or_else(|| Some(http::uri::PathAndQuery::from_static("/")));
    if let Ok(origin) = Uri::from_parts(parts) {
        *uri = origin;
    }
}

/// `req` back as it was before [`origin_form`] and `Host`, for the pool.
fn absolute(
    mut req: Request<RequestBody>,
    scheme: &Scheme,
    authority: &Authority,
    host_added: bool,
) -> Request<RequestBody> {
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(scheme.clone());
    parts.authority = Some(authority.clone());
    parts.path_and_query = req.uri().path_and_query().cloned();
    if let Ok(uri) = Uri::from_parts(parts) {
        *req.uri_mut() = uri;
    }
    if host_added {
        req.headers_mut().remove(http::header::HOST);
    }
    req
}

fn tls_config(cfg: &OutboundConfig) -> Result<rustls::ClientConfig, ConfigError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = &cfg.ca_file {
        let err = |r: String| ConfigError::new("client.ca_file", r);
        for c in crate::base::pem::read_certs(path).map_err(err)? {
            roots
                .add(c)
                .map_err(|e| err(format!("{}: {e}", path.display())))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::new("client", e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Empty};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn authority(s: &str) -> Authority {
        s.parse().unwrap()
    }

    #[test]
    fn host_carries_the_port_only_when_it_is_not_the_schemes_default() {
        let host = |scheme: Scheme, a: &str| host_header(&scheme, &authority(a)).unwrap();
        assert_eq!(host(Scheme::HTTP, "api.example"), "api.example");
        assert_eq!(host(Scheme::HTTP, "api.example:80"), "api.example");
        assert_eq!(host(Scheme::HTTPS, "api.example:443"), "api.example");
        assert_eq!(host(Scheme::HTTP, "api.example:443"), "api.example:443");
        assert_eq!(host(Scheme::HTTPS, "api.example:80"), "api.example:80");
        assert_eq!(host(Scheme::HTTP, "127.0.0.1:8080"), "127.0.0.1:8080");
        assert_eq!(host(Scheme::HTTP, "[::1]:8080"), "[::1]:8080");
    }

    #[test]
    fn the_origin_form_is_the_path_and_query() {
        let origin = |s: &'static str| {
            let mut uri = Uri::from_static(s);
            origin_form(&mut uri);
            uri.to_string()
        };
        assert_eq!(origin("http://api.example/a/b?c=d"), "/a/b?c=d");
        assert_eq!(origin("http://api.example"), "/");
    }

    fn get(url: &str) -> Request<RequestBody> {
        let body = Empty::<Bytes>::new().map_err(|e| match e {}).boxed();
        Request::get(url).body(body).unwrap()
    }

    /// Accepts connections; each answers one request, then waits for `close` before closing.
    /// Returns how many connections it accepted.
    async fn answering_once_per_connection(
        listener: tokio::net::TcpListener,
        mut close: tokio::sync::mpsc::Receiver<()>,
        accepted: Arc<std::sync::atomic::AtomicUsize>,
    ) {
        while let Ok((mut s, _)) = listener.accept().await {
            accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await;
            if close.recv().await.is_none() {
                return;
            }
        }
    }

    /// The close and the next request cross: the connection still looks open when the
    /// request is queued on it, and hyper gives the request back unsent. On a current-thread
    /// runtime the request is queued before the connection's task sees the close.
    #[tokio::test(flavor = "current_thread")]
    async fn a_request_given_back_unsent_by_a_held_connection_goes_on_a_new_one() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/x", listener.local_addr().unwrap());
        let (close, closes) = tokio::sync::mpsc::channel(1);
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        tokio::spawn(answering_once_per_connection(
            listener,
            closes,
            accepted.clone(),
        ));
        let outbound = Outbound::new(&OutboundConfig::default()).unwrap();
        let slot = Affinity::new();

        let first = outbound.request(get(&url), Some(&slot)).await.unwrap();
        let body = first.keep().into_body().collect().await.unwrap();
        assert_eq!(body.to_bytes(), "ok");
        // Closed by the server; this task runs again before the client's connection task
        // reads the close.
        close.send(()).await.unwrap();
        tokio::task::yield_now().await;

        let second = outbound.request(get(&url), Some(&slot)).await.unwrap();
        assert_eq!(second.response().status(), 200);
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
