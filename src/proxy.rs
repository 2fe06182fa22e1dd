//! The request path: refuse what must never be forwarded, route, authenticate, forward, and
//! rewrite the response. Everything here runs per request, so it reads shared state without
//! locks and allocates only what the request itself needs.

use crate::access::{AccessRecord, Counted, Observed};
use crate::error::ProxyError;
use crate::forward::{self, ClientInfo, X_REQUEST_ID};
use crate::framing::Ambiguous;
use crate::inbound::{self, InboundError};
use crate::limits::{self, BodyWatch, LimitError, LimitedBody};
use crate::replay::TeeBody;
use crate::snapshot::Snapshot;
use crate::upstream::BoxError;
use arc_swap::ArcSwap;
use bytes::Bytes;
use http::uri::{PathAndQuery, Uri};
use http::{HeaderValue, Method, Request, Response, StatusCode, Version};
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
    /// The `[[clients]]` name the request authenticated as.
    client: Option<String>,
    route: Option<String>,
    credential: Option<String>,
    upstream: Option<Duration>,
    bytes_in: Arc<AtomicU64>,
    permit: Option<crate::ratelimit::Permit>,
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
        outcome.client = Some(who.name.to_string());
        snapshot.access.authorize(&who, &route.prefix)?;
    }
    limits::check_declared_length(req.headers(), route.max_body_size)?;
    if let Some(limiter) = snapshot.rate_limits.get(&route.prefix) {
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
    forward::rewrite_request_headers(&mut parts.headers, route, bearer.clone(), &client);
    parts.headers.insert(X_REQUEST_ID, request_id.clone());
    parts.uri = uri;
    // The outbound connection decides h1 or h2 (ALPN); the client's version does not carry over.
    parts.version = Version::HTTP_11;
    let credential = &route.credential;
    let body = Counted::new(body, outcome.bytes_in.clone());
    let (body, replay) = match replay_limit(credential, &parts.headers) {
        Some(limit) => {
            let (tee, kept) = TeeBody::new(body, limit);
            let head = (
                parts.method.clone(),
                parts.uri.clone(),
                parts.headers.clone(),
            );
            (box_body(tee), Some((head, kept)))
        }
        None => (box_body(body), None),
    };
    let mut resp = match send(snapshot, Request::from_parts(parts, body), outcome).await {
        // The exchange failed because the client's body did: say so, not "unreachable".
        Err(ProxyError::UpstreamUnreachable(detail)) if watch.too_large() || watch.broken() => {
            return Err(body_error(&watch, route.max_body_size, detail))
        }
        other => other?,
    };

    if resp.status() == StatusCode::UNAUTHORIZED && credential.is_managed() {
        match replay.and_then(|(head, kept)| Some((head, kept.replayable()?))) {
            Some(((method, uri, mut headers), body)) => {
                if let Ok(fresh) = credential.refresh_after_401(&bearer).await {
                    tracing::info!(credential = %credential.name, "replaying once with a new token after an upstream 401");
                    crate::metrics::upstream_401_replay(&credential.name);
                    headers.insert(http::header::AUTHORIZATION, fresh);
                    let mut again = Request::new(box_body(Full::new(body)));
                    *again.method_mut() = method;
                    *again.uri_mut() = uri;
                    *again.headers_mut() = headers;
                    drop(resp);
                    resp = send(snapshot, again, outcome).await?;
                }
            }
            None => {
                // Too large to replay: the 401 passes through, but the next request should
                // not meet the same stale token.
                let credential = credential.clone();
                tokio::spawn(async move {
                    let _ = credential.refresh_after_401(&bearer).await;
                });
            }
        }
    }
    forward::rewrite_response_headers(resp.headers_mut(), route);
    if let Some(theirs) = resp.headers().get(X_REQUEST_ID) {
        if theirs != request_id {
            let theirs = theirs.clone();
            resp.headers_mut().insert("x-upstream-request-id", theirs);
        }
    }
    Ok(resp)
}

fn box_body<B>(body: B) -> crate::upstream::RequestBody
where
    B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed()
}

/// How much of the request body to keep for a replay after a 401, or `None` when the body is
/// known to be too large or the token cannot be refreshed anyway.
fn replay_limit(credential: &crate::token::Credential, headers: &http::HeaderMap) -> Option<usize> {
    if !credential.is_managed() {
        return None;
    }
    let limit = usize::try_from(credential.replay_body_limit).unwrap_or(usize::MAX);
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    match declared {
        Some(n) if n > credential.replay_body_limit => None,
        _ => Some(limit),
    }
}

/// One upstream exchange, bounded by the request timeout for the response head.
async fn send(
    snapshot: &Snapshot,
    req: Request<crate::upstream::RequestBody>,
    outcome: &mut Outcome,
) -> Result<Response<Incoming>, ProxyError> {
    let sent = Instant::now();
    let result = tokio::time::timeout(snapshot.request_timeout, snapshot.client.request(req)).await;
    outcome.upstream = Some(outcome.upstream.unwrap_or_default() + sent.elapsed());
    match result {
        Err(_) => Err(ProxyError::UpstreamTimeout(snapshot.request_timeout)),
        Ok(Err(e)) => Err(ProxyError::UpstreamUnreachable(
            crate::upstream::describe_client_error(&e),
        )),
        // An HTTP/1.0 upstream's version must not leak to the client: hyper frames the
        // response for the client's own connection.
        Ok(Ok(mut resp)) => {
            *resp.version_mut() = http::Version::HTTP_11;
            Ok(resp)
        }
    }
}

/// The client's body failed: too large, or unreadable as framed.
fn body_error(watch: &BodyWatch, limit: Option<u64>, detail: String) -> ProxyError {
    match (watch.too_large(), limit) {
        (true, Some(limit)) => ProxyError::Limit(LimitError::BodyTooLarge { limit }),
        _ => ProxyError::Inbound(InboundError::Body(detail)),
    }
}
