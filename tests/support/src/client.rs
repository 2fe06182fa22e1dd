//! HTTP clients for tests: HTTP/1.1 and HTTP/2 prior knowledge (h2c), a request builder
//! ([`Req`]), and responses read whole ([`Got`]). Bytes no well-behaved client would send go
//! through [`crate::raw`].

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::time::Duration;

pub type TestClient = Client<HttpConnector, Full<Bytes>>;

const RESPONSE_DEADLINE: Duration = Duration::from_secs(30);

pub fn h1_client() -> TestClient {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

pub fn h2c_client() -> TestClient {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(HttpConnector::new())
}

/// A response read whole.
#[derive(Debug)]
pub struct Got {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Got {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `req` on `client` and reads the whole response (head and body each within 30 s).
pub async fn send(client: &TestClient, req: Request<Full<Bytes>>) -> Got {
    let resp = tokio::time::timeout(RESPONSE_DEADLINE, client.request(req))
        .await
        .expect("response within 30 s")
        .expect("request succeeds");
    read_whole(resp).await
}

/// A response's head and whole body (the body within 30 s).
async fn read_whole(resp: Response<Incoming>) -> Got {
    let (parts, body) = resp.into_parts();
    let body = tokio::time::timeout(RESPONSE_DEADLINE, body.collect())
        .await
        .expect("body within 30 s")
        .expect("body")
        .to_bytes();
    Got {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// `GET url` over HTTP/1.1, read whole.
pub async fn get(url: &str) -> Got {
    Req::get(url).send().await
}

/// A request to send: `Req::post(url).header("x", "y").body("...").h2().send().await`.
#[derive(Debug)]
pub struct Req {
    method: Method,
    url: String,
    headers: Vec<(String, String)>,
    body: Bytes,
    h2: bool,
}

impl Req {
    pub fn new(method: &str, url: impl Into<String>) -> Req {
        Req {
            method: Method::from_bytes(method.as_bytes()).expect("method"),
            url: url.into(),
            headers: Vec::new(),
            body: Bytes::new(),
            h2: false,
        }
    }

    pub fn get(url: impl Into<String>) -> Req {
        Req::new("GET", url)
    }

    pub fn post(url: impl Into<String>) -> Req {
        Req::new("POST", url)
    }

    pub fn put(url: impl Into<String>) -> Req {
        Req::new("PUT", url)
    }

    pub fn header(mut self, name: &str, value: &str) -> Req {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Each of `headers`, in order.
    pub fn headers(self, headers: &[(&str, &str)]) -> Req {
        headers.iter().fold(self, |r, (n, v)| r.header(n, v))
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> Req {
        self.body = body.into();
        self
    }

    /// Over HTTP/2 with prior knowledge (h2c) rather than HTTP/1.1.
    pub fn h2(mut self) -> Req {
        self.h2 = true;
        self
    }

    pub fn build(self) -> Request<Full<Bytes>> {
        let mut b = Request::builder().method(self.method).uri(self.url);
        for (n, v) in &self.headers {
            b = b.header(n, v);
        }
        b.body(Full::new(self.body)).expect("request")
    }

    /// Sends on a fresh client and reads the whole response.
    pub async fn send(self) -> Got {
        let client = if self.h2 { h2c_client() } else { h1_client() };
        send(&client, self.build()).await
    }

    /// Sends on a fresh client and returns the response once its head arrives, its body
    /// left to the test to read frame by frame.
    pub async fn response(self) -> Response<Incoming> {
        let client = if self.h2 { h2c_client() } else { h1_client() };
        tokio::time::timeout(RESPONSE_DEADLINE, client.request(self.build()))
            .await
            .expect("response within 30 s")
            .expect("request succeeds")
    }

    /// Sends on `client` (to share its connections) and reads the whole response.
    pub async fn send_on(self, client: &TestClient) -> Got {
        send(client, self.build()).await
    }
}

/// One HTTP/1.1 connection, kept: every request on it goes over the same TCP connection,
/// one after the other (a [`TestClient`]'s pool may open another whenever it likes).
pub struct H1Conn {
    tx: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl H1Conn {
    pub async fn open(addr: std::net::SocketAddr) -> H1Conn {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        Self::over(stream).await
    }

    /// As [`Self::open`], from `local` (another loopback address, `127.0.0.2`, is another
    /// client address to the proxy).
    pub async fn open_from(addr: std::net::SocketAddr, local: std::net::IpAddr) -> H1Conn {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(std::net::SocketAddr::new(local, 0))
            .expect("bind the local address");
        let stream = socket.connect(addr).await.expect("connect");
        Self::over(stream).await
    }

    async fn over(stream: tokio::net::TcpStream) -> H1Conn {
        let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        H1Conn { tx }
    }

    /// Sends `req` (its URL's path and query as the target, its authority as `Host`) once
    /// the previous exchange has ended, and reads the whole response.
    pub async fn send(&mut self, req: Req) -> Got {
        let mut req = req.build();
        let uri = req.uri().clone();
        if let Some(a) = uri.authority() {
            let host = http::HeaderValue::from_str(a.as_str()).expect("host");
            req.headers_mut().entry(http::header::HOST).or_insert(host);
        }
        *req.uri_mut() = uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse()
            .expect("origin form");
        tokio::time::timeout(RESPONSE_DEADLINE, self.tx.ready())
            .await
            .expect("connection ready within 30 s")
            .expect("connection still open");
        let resp = tokio::time::timeout(RESPONSE_DEADLINE, self.tx.send_request(req))
            .await
            .expect("response within 30 s")
            .expect("request succeeds");
        read_whole(resp).await
    }
}

/// Sends `req` over HTTP/2 with prior knowledge on a fresh connection to `addr`, whatever its
/// URL's authority names: that authority is the request's `:authority`, as a browser that
/// resolved the name to `addr` would send it.
pub async fn h2c_to(addr: std::net::SocketAddr, req: Req) -> Got {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut tx, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let resp = tokio::time::timeout(RESPONSE_DEADLINE, tx.send_request(req.build()))
        .await
        .expect("response within 30 s")
        .expect("request succeeds");
    read_whole(resp).await
}

/// How a response body ended, read frame by frame.
#[derive(Debug)]
pub struct BodyEnd {
    /// The data received before the end.
    pub data: Bytes,
    /// The trailers, if a trailers frame came.
    pub trailers: Option<HeaderMap>,
    /// The error the body ended with; `None` for a clean end.
    pub error: Option<String>,
}

/// Reads `resp`'s body to its end (within 30 s), keeping how it ended: whether a client would
/// have been told the body is incomplete.
pub async fn read_body(resp: Response<Incoming>) -> BodyEnd {
    let mut body = resp.into_body();
    let mut data = Vec::new();
    let mut trailers = None;
    let read = async {
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) => match f.into_data() {
                    Ok(d) => data.extend_from_slice(&d),
                    Err(f) => trailers = f.into_trailers().ok(),
                },
                Err(e) => return Some(e.to_string()),
            }
        }
        None
    };
    let error = tokio::time::timeout(RESPONSE_DEADLINE, read)
        .await
        .expect("the body ends within 30 s");
    BodyEnd {
        data: data.into(),
        trailers,
        error,
    }
}
