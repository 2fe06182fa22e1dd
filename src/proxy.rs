//! The request path: refuse what must never be forwarded, route, authenticate, forward, and
//! rewrite the response. Everything here runs per request, so it reads shared state without
//! locks and allocates only what the request itself needs.

use crate::error::ProxyError;
use crate::forward::{self, ClientInfo, X_REQUEST_ID};
use crate::framing::Ambiguous;
use crate::inbound::{self, InboundError};
use crate::limits::{self, BodyWatch, LimitError, LimitedBody};
use crate::snapshot::Snapshot;
use arc_swap::ArcSwap;
use bytes::Bytes;
use http::uri::{PathAndQuery, Uri};
use http::{HeaderValue, Method, Request, Response, Version};
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

pub type ResponseBody = Either<Incoming, Full<Bytes>>;

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
    let version = req.version();
    let path = req.uri().path().to_string();
    let snapshot = state.snapshot.load_full();
    let mut outcome = Outcome::default();
    let resp = match forward_request(&snapshot, req, conn, &request_id, &mut outcome).await {
        Ok(mut resp) => {
            resp.headers_mut().insert(X_REQUEST_ID, request_id.clone());
            resp.map(Either::Left)
        }
        Err(e) => {
            let mut resp = e.to_response(&request_id);
            if e.closes_connection() && version < Version::HTTP_2 {
                // hyper closes the connection after a response that says so.
                resp.headers_mut()
                    .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
            }
            resp.map(Either::Right)
        }
    };
    tracing::info!(
        target: "ims_proxy::access",
        request_id = request_id.to_str().unwrap_or(""),
        method = %method,
        path = %path,
        route = outcome.route.as_deref().unwrap_or("-"),
        credential = outcome.credential.as_deref().unwrap_or("-"),
        client = outcome.client.as_deref().unwrap_or("-"),
        status = resp.status().as_u16(),
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        upstream_ms = outcome.upstream_ms,
        "request"
    );
    resp
}

#[derive(Default)]
struct Outcome {
    route: Option<String>,
    /// The `[[clients]]` name the request authenticated as.
    client: Option<Arc<str>>,
    credential: Option<String>,
    upstream_ms: Option<f64>,
}

async fn forward_request(
    snapshot: &Snapshot,
    mut req: Request<Incoming>,
    conn: ConnMeta,
    request_id: &HeaderValue,
    outcome: &mut Outcome,
) -> Result<Response<Incoming>, ProxyError> {
    if let Some(ambiguous) = req.extensions().get::<Ambiguous>() {
        return Err(InboundError::Framing(ambiguous.0.into()).into());
    }
    inbound::check_framing(req.version(), req.headers())?;
    if req.method() == Method::CONNECT {
        return Err(ProxyError::MethodNotAllowed(
            "CONNECT is refused: ims-proxy is a reverse proxy, not a tunnel".into(),
        ));
    }
    if req.method() == Method::TRACE {
        return Err(ProxyError::MethodNotAllowed(
            "TRACE is refused: it would echo credentials back".into(),
        ));
    }
    inbound::check_method(req.method())?;
    snapshot.limits.check_head(req.uri(), req.headers())?;
    inbound::check_path(req.uri().path())?;
    // Before routing, so that a caller without a key learns nothing, not even which routes exist.
    let identity = snapshot.access.authenticate(req.headers_mut())?;
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
    if let Some(who) = identity {
        outcome.client = Some(who.name.clone());
        snapshot.access.authorize(&who, &route.prefix)?;
    }
    limits::check_declared_length(req.headers(), route.max_body_size)?;
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

    let (parts, body) = req.into_parts();
    let watch = Arc::new(BodyWatch::default());
    let body = LimitedBody::new(body, route.max_body_size, watch.clone());
    let first = tokio::time::timeout(
        snapshot.limits.header_read_timeout,
        inbound::read_first_frame(body),
    )
    .await
    .map_err(|_| LimitError::BodyTimeout(snapshot.limits.header_read_timeout))?;
    let body = first.map_err(|e| body_error(&watch, route.max_body_size, e.to_string()))?;
    let req = Request::from_parts(parts, body);

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
    let body = body.boxed();
    let upstream_req = Request::from_parts(parts, body);

    let sent = Instant::now();
    let result = tokio::time::timeout(
        snapshot.request_timeout,
        snapshot.client.inner.request(upstream_req),
    )
    .await;
    outcome.upstream_ms = Some(sent.elapsed().as_secs_f64() * 1000.0);
    let mut resp = match result {
        Err(_) => return Err(ProxyError::UpstreamTimeout(snapshot.request_timeout)),
        Ok(Err(e)) if watch.too_large() || watch.broken() => {
            return Err(body_error(
                &watch,
                route.max_body_size,
                describe_client_error(&e),
            ))
        }
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

/// The client's body failed: too large, or unreadable as framed.
fn body_error(watch: &BodyWatch, limit: Option<u64>, detail: String) -> ProxyError {
    match (watch.too_large(), limit) {
        (true, Some(limit)) => ProxyError::Limit(LimitError::BodyTooLarge { limit }),
        _ => ProxyError::Inbound(InboundError::Body(detail)),
    }
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
