//! A fake upstream API on 127.0.0.1 that records exactly what it received, and answers as the
//! test says: `{"ok":true}` ([`FakeUpstream::start`]), from the recorded request
//! ([`FakeUpstream::responding`]), from a handler of its own ([`FakeUpstream::with_handler`]),
//! or not until the test releases it ([`FakeUpstream::held`], [`FakeUpstream::held_midway`]).

use crate::tls::TestPki;
use bytes::Bytes;
use futures_util::StreamExt as _;
use http::{HeaderMap, Method, Request, Response, Version};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type UpBody = BoxBody<Bytes, BoxError>;
pub type Handler = Arc<
    dyn Fn(Request<Incoming>) -> Pin<Box<dyn Future<Output = Response<UpBody>> + Send>>
        + Send
        + Sync,
>;

/// One request as the upstream saw it. `body` and `trailers` are filled only by the recording
/// handlers.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    /// Path and query exactly as received on the wire.
    pub target: String,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub trailers: Option<HeaderMap>,
    /// Which TCP connection it came on: 1 for the first accepted, 2 for the next, ...
    pub conn: usize,
}

pub struct FakeUpstream {
    pub addr: std::net::SocketAddr,
    pub tls: bool,
    requests: Arc<Mutex<Vec<Recorded>>>,
    connections: Arc<AtomicUsize>,
    /// Opens the gate held answers wait on (held upstreams only).
    gate: Option<watch::Sender<bool>>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

pub fn full(b: impl Into<Bytes>) -> UpBody {
    Full::new(b.into()).map_err(|e| match e {}).boxed()
}

/// Adobe's gateway throttling: `429`, Adobe's JSON body (`429050`), and `headers` (say
/// `retry-after`).
pub fn adobe_429(headers: &[(&str, &str)]) -> Response<UpBody> {
    let mut answer = Response::new(full(
        r#"{"error_code":"429050","message":"Too many requests"}"#,
    ));
    *answer.status_mut() = http::StatusCode::TOO_MANY_REQUESTS;
    let h = answer.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    for (name, value) in headers {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(value),
        ) {
            h.append(n, v);
        }
    }
    answer
}

/// Answers from what was recorded (the whole body already read).
pub type Responder = Arc<dyn Fn(&Recorded) -> Response<UpBody> + Send + Sync>;

#[derive(Clone)]
enum Mode {
    Record(Responder),
    Custom(Handler),
}

fn ok_json() -> Responder {
    Arc::new(|_rec| {
        Response::builder()
            .header("content-type", "application/json")
            .body(full(r#"{"ok":true}"#))
            .expect("response")
    })
}

impl FakeUpstream {
    /// Records every request with its whole body and answers 200 `{"ok":true}`.
    pub async fn start() -> FakeUpstream {
        Self::spawn(None, Mode::Record(ok_json())).await
    }

    /// Records every request with its whole body and answers with `responder`.
    pub async fn responding<F>(f: F) -> FakeUpstream
    where
        F: Fn(&Recorded) -> Response<UpBody> + Send + Sync + 'static,
    {
        Self::spawn(None, Mode::Record(Arc::new(f))).await
    }

    /// [`Self::responding`] over TLS (h2 and http/1.1 by ALPN) with `pki`'s server
    /// certificate.
    pub async fn responding_tls<F>(pki: &TestPki, f: F) -> FakeUpstream
    where
        F: Fn(&Recorded) -> Response<UpBody> + Send + Sync + 'static,
    {
        Self::spawn(Some(pki.server_config()), Mode::Record(Arc::new(f))).await
    }

    /// A fake upstream whose answers come from `handler`; bodies are left to the handler.
    pub async fn with_handler<F, Fut>(f: F) -> FakeUpstream
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<UpBody>> + Send + 'static,
    {
        let h: Handler = Arc::new(move |r| Box::pin(f(r)));
        Self::spawn(None, Mode::Custom(h)).await
    }

    /// Records each request, then holds its answer (200 `done`) until [`Self::release`]:
    /// a request in flight for as long as the test needs one (shutdown, queues, timeouts).
    pub async fn held() -> FakeUpstream {
        let (tx, rx) = watch::channel(false);
        let mut up = Self::with_handler(move |_req| {
            let mut open = rx.clone();
            async move {
                let _ = open.wait_for(|o| *o).await;
                Response::new(full("done"))
            }
        })
        .await;
        up.gate = Some(tx);
        up
    }

    /// Answers 200 at once with a body whose `first` chunk is sent at once and whose `last`
    /// chunk (and end) waits for [`Self::release`]: a response stream in flight.
    pub async fn held_midway(first: &'static [u8], last: &'static [u8]) -> FakeUpstream {
        let (tx, rx) = watch::channel(false);
        let mut up = Self::with_handler(move |_req| {
            let mut open = rx.clone();
            async move {
                let first = futures_util::stream::once(async move {
                    Ok::<_, BoxError>(Frame::data(Bytes::from_static(first)))
                });
                let last = futures_util::stream::once(async move {
                    let _ = open.wait_for(|o| *o).await;
                    Ok::<_, BoxError>(Frame::data(Bytes::from_static(last)))
                });
                Response::new(BodyExt::boxed(StreamBody::new(first.chain(last))))
            }
        })
        .await;
        up.gate = Some(tx);
        up
    }

    /// Lets every held answer go, now and from now on.
    pub fn release(&self) {
        self.gate
            .as_ref()
            .expect("release() is for FakeUpstream::held or held_midway")
            .send_replace(true);
    }

    /// Records every request with its whole body and answers 200 `{"ok":true}` over TLS
    /// (h2 and http/1.1 by ALPN) with `pki`'s server certificate.
    pub async fn start_tls(pki: &TestPki) -> FakeUpstream {
        Self::spawn(Some(pki.server_config()), Mode::Record(ok_json())).await
    }

    /// [`Self::start_tls`] offering only http/1.1 by ALPN: an HTTPS upstream without h2.
    pub async fn start_tls_h1(pki: &TestPki) -> FakeUpstream {
        let mut cfg = (*pki.server_config()).clone();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Self::spawn(Some(Arc::new(cfg)), Mode::Record(ok_json())).await
    }

    async fn spawn(tls: Option<Arc<rustls::ServerConfig>>, mode: Mode) -> FakeUpstream {
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let is_tls = tls.is_some();
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let reqs = requests.clone();
        let connections: Arc<AtomicUsize> = Arc::default();
        let conns = connections.clone();
        let (addr, tx) = crate::listen(move |stream| {
            let conn = conns.fetch_add(1, Ordering::SeqCst) + 1;
            let reqs = reqs.clone();
            let mode = mode.clone();
            let acceptor = acceptor.clone();
            async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let reqs = reqs.clone();
                    let mode = mode.clone();
                    async move {
                        let target = req
                            .uri()
                            .path_and_query()
                            .map(|p| p.as_str().to_string())
                            .unwrap_or_default();
                        let mut rec = Recorded {
                            method: req.method().clone(),
                            target,
                            version: req.version(),
                            headers: req.headers().clone(),
                            body: Bytes::new(),
                            trailers: None,
                            conn,
                        };
                        let resp = match mode {
                            Mode::Record(responder) => {
                                if let Ok(c) = req.into_body().collect().await {
                                    rec.trailers = c.trailers().cloned();
                                    rec.body = c.to_bytes();
                                }
                                let resp = responder(&rec);
                                reqs.lock().expect("lock").push(rec);
                                resp
                            }
                            Mode::Custom(handler) => {
                                reqs.lock().expect("lock").push(rec);
                                handler(req).await
                            }
                        };
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                let builder = auto::Builder::new(TokioExecutor::new());
                match acceptor {
                    Some(acc) => {
                        if let Ok(tls) = acc.accept(stream).await {
                            let _ = builder.serve_connection(TokioIo::new(tls), service).await;
                        }
                    }
                    None => {
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                }
            }
        })
        .await;
        FakeUpstream {
            addr,
            tls: is_tls,
            requests,
            connections,
            gate: None,
            _shutdown: tx,
        }
    }

    /// Base URL, e.g. `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!(
            "{}://{}",
            if self.tls { "https" } else { "http" },
            self.addr
        )
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().expect("lock").clone()
    }

    /// The single request received; panics (failing the test) otherwise.
    pub fn only_request(&self) -> Recorded {
        let r = self.requests();
        assert_eq!(
            r.len(),
            1,
            "expected exactly one upstream request, got {}",
            r.len()
        );
        r.into_iter().next().expect("one")
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Which connection each request came on ([`Recorded::conn`]), in order.
    pub fn conns(&self) -> Vec<usize> {
        self.requests().iter().map(|r| r.conn).collect()
    }

    /// Requests received so far.
    pub fn count(&self) -> usize {
        self.requests.lock().expect("lock").len()
    }
}
