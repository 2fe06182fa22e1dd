//! The admin listener (`[admin] listen`): `/healthz`, `/readyz`, `/metrics` and the status
//! page (`/`, `/status.json`) on a port of their own, so no route prefix can shadow them and
//! they can be firewalled apart from the proxy port.

use super::capacity::ConnectionCounter;
use super::idle::{Activity, PrefaceWatch};
use super::status_page::{Rates, Status, CONTENT_SECURITY_POLICY, SAMPLE_EVERY};
use crate::state::Shared;
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

pub struct Admin {
    listener: TcpListener,
    shared: Arc<Shared>,
    draining: Arc<AtomicBool>,
    rates: Arc<Rates>,
}

impl Admin {
    /// `draining` turns `/readyz` to 503 once shutdown begins, so a load balancer stops
    /// sending new requests while those in flight finish.
    pub async fn bind(
        addr: SocketAddr,
        shared: Arc<Shared>,
        draining: Arc<AtomicBool>,
    ) -> std::io::Result<Admin> {
        let listener = TcpListener::bind(addr).await?;
        // Installing here, not at the first scrape, so series exist from the start.
        crate::metrics::init();
        Ok(Admin {
            listener,
            shared,
            draining,
            rates: Arc::default(),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves. Admin requests are short, so no grace period. Its
    /// connections meet the same clocks as the proxy port's (a request head within
    /// `header_read_timeout`, closed when idle) and a cap of their own, reserved out of the
    /// file descriptors so that neither port can starve the other.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let (drain, _) = tokio::sync::watch::channel(());
        let connections = Arc::new(ConnectionCounter::default());
        // The status page's rates need samples whether or not anyone looks.
        let sampler = {
            let (shared, rates) = (self.shared.clone(), self.rates.clone());
            tokio::spawn(async move {
                let mut every = tokio::time::interval(SAMPLE_EVERY);
                loop {
                    every.tick().await;
                    rates.sample(&shared.snapshot.load());
                }
            })
        };
        super::listener::accept_until(&self.listener, "admin", shutdown, |stream, peer| {
            let snapshot = self.shared.snapshot.load_full();
            let limits = snapshot.admin_limits;
            let Some(slot) = connections.try_acquire(limits.max_connections) else {
                tracing::warn!(%peer, max_connections = limits.max_connections, "admin connection refused: at admin.max_connections");
                let _ = stream.try_write(super::capacity::OVER_CAPACITY_RESPONSE);
                return;
            };
            let shared = self.shared.clone();
            let draining = self.draining.clone();
            let rates = self.rates.clone();
            let activity = Activity::new(None, Arc::default());
            let service_activity = activity.clone();
            let service = service_fn(move |req| {
                let in_flight = service_activity.begin(false);
                let resp = answer(&shared, &draining, &rates, &req, peer);
                drop(in_flight);
                async move { Ok::<_, std::convert::Infallible>(resp) }
            });
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            let io = PrefaceWatch::new(stream, activity.clone());
            let conn = builder
                .serve_connection(TokioIo::new(io), service)
                .into_owned();
            let shutdown = drain.subscribe();
            tokio::spawn(async move {
                let _slot = slot;
                let _ = super::conn::drive(conn, activity, &limits, shutdown, peer).await;
            });
        })
        .await;
        sampler.abort();
        drop(self.listener);
        let _ = drain.send(());
        let _ = tokio::time::timeout(Duration::from_secs(1), drain.closed()).await;
    }
}

fn answer(
    shared: &Shared,
    draining: &AtomicBool,
    rates: &Rates,
    req: &Request<Incoming>,
    peer: SocketAddr,
) -> Response<Full<Bytes>> {
    // `/healthz` says only "ok", to any liveness probe, whatever `Host` it was given. The rest
    // (credential states, IMS's errors, routes) is for the operator's own pages and scrapers.
    if req.uri().path() != "/healthz" {
        let snapshot = shared.snapshot.load();
        if let Err(e) = snapshot.sites.check(req.uri(), req.headers(), true) {
            return crate::pipeline::site_refusal(e, "admin", peer, req.uri().path());
        }
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
    }
    match req.uri().path() {
        path @ ("/" | "/status.json") => {
            let status = Status::read(
                &shared.snapshot.load(),
                rates,
                draining.load(Ordering::Relaxed),
            );
            status_page(path == "/status.json" || wants_json(req), &status)
        }
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => {
            let (status, body) = readiness(shared, draining.load(Ordering::Relaxed));
            let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
            *resp.status_mut() = status;
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
            resp
        }
        "/metrics" => match render_metrics(shared) {
            Some(body) => {
                let mut resp = Response::new(Full::new(Bytes::from(body)));
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                resp
            }
            None => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "another metrics recorder is installed in this process\n",
            ),
        },
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: /, /status.json, /healthz, /readyz, /metrics\n",
        ),
    }
}

/// The page, or its data as JSON. Neither may be kept by a cache: both are of this moment.
fn status_page(json: bool, status: &Status) -> Response<Full<Bytes>> {
    let (body, content_type) = if json {
        (status.json(), "application/json")
    } else {
        (status.html(), "text/html; charset=utf-8")
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    h.insert(header::VARY, header::HeaderValue::from_static("accept"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    if let Ok(csp) = header::HeaderValue::from_str(&CONTENT_SECURITY_POLICY) {
        h.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    resp
}

/// `Accept: application/json` on `/` asks for the data rather than the page.
fn wants_json(req: &Request<Incoming>) -> bool {
    req.headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.split(';').next().map(str::trim) == Some("application/json"))
}

/// Ready when the config is loaded (it is, or we would not be serving), no shutdown is under
/// way, and every credential holds a valid token (one an upstream rejected included: see
/// [`crate::token::CredentialState::Rejected`]).
fn readiness(shared: &Shared, draining: bool) -> (StatusCode, serde_json::Value) {
    let snapshot = shared.snapshot.load();
    let mut credentials = serde_json::Map::new();
    let mut ready = !draining;
    for (name, cred) in &snapshot.credentials {
        let status = cred.status();
        ready &= status.holds_token();
        credentials.insert(
            name.clone(),
            serde_json::to_value(&status).unwrap_or(serde_json::Value::Null),
        );
    }
    let mut body = serde_json::json!({
        "status": if ready { "ready" } else { "not_ready" },
        "credentials": credentials,
    });
    if draining {
        body["reason"] = "shutting down".into();
    }
    // Detail only: a replica whose Redis is away still serves, with local tokens and limits.
    if let Some(s) = &snapshot.shared {
        body["shared"] = serde_json::to_value(s.status()).unwrap_or_default();
    }
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, body)
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Seconds to expiry change every second, so they are set at scrape time.
fn render_metrics(shared: &Shared) -> Option<String> {
    for (name, cred) in &shared.snapshot.load().credentials {
        if let Some(secs) = cred.status().expires_in_seconds {
            crate::metrics::token_expiry(name, secs as f64);
        }
    }
    crate::metrics::render()
}
