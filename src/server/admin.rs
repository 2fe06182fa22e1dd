//! The admin listener (`[admin] listen`): `/healthz`, `/readyz` and `/metrics` on a port of
//! their own, so no route prefix can shadow them and they can be firewalled apart from the
//! proxy port.

use crate::state::Shared;
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
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
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves. Admin requests are short, so no grace period.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let builder = auto::Builder::new(TokioExecutor::new());
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        super::listener::accept_until(&self.listener, "admin", shutdown, |stream, _| {
            let shared = self.shared.clone();
            let draining = self.draining.clone();
            let service = service_fn(move |req| {
                let resp = answer(&shared, &draining, &req);
                async move { Ok::<_, std::convert::Infallible>(resp) }
            });
            let conn = graceful.watch(
                builder
                    .serve_connection(TokioIo::new(stream), service)
                    .into_owned(),
            );
            tokio::spawn(async move {
                let _ = conn.await;
            });
        })
        .await;
        drop(self.listener);
        let _ = tokio::time::timeout(Duration::from_secs(1), graceful.shutdown()).await;
    }
}

fn answer(
    shared: &Shared,
    draining: &AtomicBool,
    req: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
    }
    match req.uri().path() {
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
            "not found: /healthz, /readyz, /metrics\n",
        ),
    }
}

/// Ready when the config is loaded (it is, or we would not be serving), no shutdown is under
/// way, and every credential holds a valid token.
fn readiness(shared: &Shared, draining: bool) -> (StatusCode, serde_json::Value) {
    let snapshot = shared.snapshot.load();
    let mut credentials = serde_json::Map::new();
    let mut ready = !draining;
    for (name, cred) in &snapshot.credentials {
        let status = cred.status();
        ready &= status.is_ok();
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
