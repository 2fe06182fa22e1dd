//! The request path: refuse what must never be forwarded, route, authenticate, forward, and
//! rewrite the response. Everything here runs per request, so it reads shared state without
//! locks and allocates only what the request itself needs.

use crate::access::{AccessRecord, Counted, Observed};
use crate::error::ProxyError;
use crate::forward::{self, ClientInfo, X_REQUEST_ID};
use crate::snapshot::Snapshot;
use crate::upstream::BoxError;
use arc_swap::ArcSwap;
use bytes::Bytes;
use http::uri::{PathAndQuery, Uri};
use http::{HeaderValue, Method, Request, Response, Version};
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub type ResponseBody = Observed<Either<Incoming, Full<Bytes>>>;

/// Shared by every connection: the current snapshot, swapped whole on reload.
pub struct State {
    pub snapshot: ArcSwap<Snapshot>,
}

impl State {
    pub fn new(snapshot: Snapshot) -> Arc<State> {
        Arc::new(State {
            snapshot: ArcSwap::from_pointee(snapshot),
        })
    }
}

/// Facts about the connection a request arrived on.
#[derive(Clone, Copy, Debug)]
pub struct ConnMeta {
    pub peer: SocketAddr,
    pub proto: &'static str,
}

pub async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
    conn: ConnMeta,
) -> Response<ResponseBody> {
    let started = Instant::now();
    let request_id = forward::request_id(req.headers());
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let snapshot = state.snapshot.load_full();
    let mut outcome = Outcome::default();
    let resp = match forward_request(&snapshot, req, conn, &request_id, &mut outcome).await {
        Ok(mut resp) => {
            resp.headers_mut().insert(X_REQUEST_ID, request_id.clone());
            resp.map(Either::Left)
        }
        Err(e) => e.to_response(&request_id).map(Either::Right),
    };
    let record = AccessRecord {
        started,
        request_id,
        method,
        path,
        client: outcome.client,
        route: outcome.route,
        credential: outcome.credential,
        status: resp.status().as_u16(),
        upstream: outcome.upstream,
        bytes_in: outcome.bytes_in,
        bytes_out: 0,
        permit: outcome.permit,
    };
    resp.map(|body| Observed::new(body, record))
}

#[derive(Default)]
struct Outcome {
    client: Option<String>,
    route: Option<String>,
    credential: Option<String>,
    upstream: Option<Duration>,
    bytes_in: Arc<AtomicU64>,
    permit: Option<crate::ratelimit::Permit>,
}

async fn forward_request(
    snapshot: &Snapshot,
    req: Request<Incoming>,
    conn: ConnMeta,
    request_id: &HeaderValue,
    outcome: &mut Outcome,
) -> Result<Response<Incoming>, ProxyError> {
    if req.method() == Method::CONNECT {
        return Err(ProxyError::MethodNotAllowed(
            "CONNECT is refused: ims-proxy is a reverse proxy, not a tunnel".into(),
        ));
    }
    // A reverse proxy receives origin-form targets; an absolute-form one is a client using
    // us as a forward proxy, which would make this an open proxy.
    if req.version() < Version::HTTP_2 && req.uri().scheme().is_some() {
        return Err(ProxyError::BadRequest(
            "absolute-form request targets are refused: ims-proxy is not a forward proxy".into(),
        ));
    }
    let (route, rest) = snapshot
        .routes
        .find(req.uri().path())
        .ok_or_else(|| ProxyError::NoRoute(req.uri().path().to_string()))?;
    outcome.route = Some(if route.prefix.is_empty() {
        "/".into()
    } else {
        route.prefix.clone()
    });
    outcome.credential = Some(route.credential.name.clone());
    if let Some(limiter) = snapshot.limits.get(&route.prefix) {
        let permit = limiter
            .acquire()
            .await
            .map_err(|r| ProxyError::RateLimited {
                route: outcome.route.clone().unwrap_or_default(),
                retry_after: r.retry_after,
            })?;
        outcome.permit = Some(permit);
    }
    let path_and_query = route
        .upstream_path_and_query(rest, req.uri().query())
        .ok_or_else(|| {
            ProxyError::BadRequest("dot-segments may not climb above the route's base path".into())
        })?;
    let path_and_query = PathAndQuery::from_maybe_shared(Bytes::from(path_and_query))
        .map_err(|e| ProxyError::BadRequest(format!("request target: {e}")))?;
    let uri = Uri::builder()
        .scheme(route.upstream.scheme.clone())
        .authority(route.upstream.authority.clone())
        .path_and_query(path_and_query)
        .build()
        .map_err(|e| ProxyError::BadRequest(format!("request target: {e}")))?;

    let bearer = route
        .credential
        .bearer()
        .await
        .map_err(|e| ProxyError::TokenUnavailable {
            credential: route.credential.name.clone(),
            reason: e.to_string(),
        })?;

    let (mut parts, body) = req.into_parts();
    let host = parts.headers.get(http::header::HOST).cloned().or_else(|| {
        parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    let client = ClientInfo {
        ip: conn.peer.ip(),
        proto: conn.proto,
        host: host.as_ref(),
    };
    forward::rewrite_request_headers(&mut parts.headers, route, bearer, &client);
    parts.headers.insert(X_REQUEST_ID, request_id.clone());
    parts.uri = uri;
    // The outbound connection decides h1 or h2 (ALPN); the client's version does not carry over.
    parts.version = Version::HTTP_11;
    let body = Counted::new(body, outcome.bytes_in.clone())
        .map_err(|e| -> BoxError { Box::new(e) })
        .boxed();
    let upstream_req = Request::from_parts(parts, body);

    let sent = Instant::now();
    let result = tokio::time::timeout(
        snapshot.request_timeout,
        snapshot.client.request(upstream_req),
    )
    .await;
    outcome.upstream = Some(sent.elapsed());
    let mut resp = match result {
        Err(_) => return Err(ProxyError::UpstreamTimeout(snapshot.request_timeout)),
        Ok(Err(e)) => return Err(ProxyError::UpstreamUnreachable(describe_client_error(&e))),
        Ok(Ok(resp)) => resp,
    };
    forward::rewrite_response_headers(resp.headers_mut(), route);
    if let Some(theirs) = resp.headers().get(X_REQUEST_ID) {
        if theirs != request_id {
            let theirs = theirs.clone();
            resp.headers_mut().insert("x-upstream-request-id", theirs);
        }
    }
    Ok(resp)
}

/// The legacy client's errors wrap the useful cause (refused, DNS, TLS) a few levels down.
fn describe_client_error(e: &hyper_util::client::legacy::Error) -> String {
    use std::error::Error as _;
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}
