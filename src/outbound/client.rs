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

use super::breaker::Breaker;
use super::egress::{Egress, EgressConnector};
use crate::base::error::BoxError;
use crate::config::{ConfigError, OutboundConfig};
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::cell::RefCell;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Every outbound request body: a streamed client body, or bytes the proxy made.
pub type RequestBody = BoxBody<Bytes, BoxError>;

type Connector = HttpsConnector<EgressConnector>;

type Pool = Client<Connector, RequestBody>;

#[derive(Clone)]
pub struct Outbound {
    pub egress: Arc<Egress>,
    connector: Connector,
    pool_idle_timeout: Duration,
    /// Identifies this outbound (and its clones) in each thread's pool list; when the last
    /// clone is dropped (a reload replaced it), the threads' pools for it are dropped lazily.
    id: Arc<()>,
}

thread_local! {
    /// This thread's pools, one per live [`Outbound`]: a handful at most (one per reload that
    /// changed the `[client]` section, until the old snapshot's last request ends).
    static POOLS: RefCell<Vec<(Weak<()>, Pool)>> = const { RefCell::new(Vec::new()) };
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Outbound")
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
        // 0 is refused by config::validate; 1 here keeps a direct caller from a dead client.
        let breaker = Arc::new(Breaker::new(
            cfg.max_connections_per_upstream.max(1),
            cfg.connect_timeout,
        ));
        let http = EgressConnector::new(http, egress.clone(), cfg.connect_timeout, breaker);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        Ok(Outbound {
            egress,
            connector: https,
            pool_idle_timeout: cfg.pool_idle_timeout,
            id: Arc::new(()),
        })
    }

    /// Runs `f` with this thread's pool, made on first use.
    fn with_pool<R>(&self, f: impl FnOnce(&Pool) -> R) -> R {
        POOLS.with(|pools| {
            let mut pools = pools.borrow_mut();
            // A dead outbound's allocation lives while a Weak to it does, so its address
            // cannot be reused by a live one: comparing addresses is exact.
            let mine = Arc::as_ptr(&self.id);
            if let Some((_, pool)) = pools.iter().find(|(id, _)| std::ptr::eq(id.as_ptr(), mine)) {
                return f(pool);
            }
            pools.retain(|(id, _)| id.strong_count() > 0);
            let pool = Client::builder(TokioExecutor::new())
                .pool_idle_timeout(self.pool_idle_timeout)
                .pool_timer(TokioTimer::new())
                .timer(TokioTimer::new())
                .build(self.connector.clone());
            let out = f(&pool);
            pools.push((Arc::downgrade(&self.id), pool));
            out
        })
    }

    /// Sends `req`, adding `Proxy-Authorization` when it goes as plain HTTP through an egress
    /// proxy with credentials. Every outbound call goes through here.
    pub fn request(&self, mut req: http::Request<RequestBody>) -> ResponseFuture {
        if let Some(auth) = self.egress.forward_auth(req.uri()) {
            req.headers_mut()
                .insert(http::header::PROXY_AUTHORIZATION, auth);
        }
        self.with_pool(|pool| pool.request(req))
    }

    /// Opens (and drops) one connection to `uri`'s host: DNS, TCP, the egress proxy's tunnel
    /// and TLS, exactly as a request would. For `check --online`.
    pub async fn probe(&self, uri: http::Uri) -> Result<(), BoxError> {
        use tower_service::Service as _;
        let mut c = self.connector.clone();
        std::future::poll_fn(|cx| c.poll_ready(cx)).await?;
        c.call(uri).await.map(drop)
    }
}

pub type ResponseFuture = hyper_util::client::legacy::ResponseFuture;

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
