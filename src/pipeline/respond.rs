//! The last stage, respond: every refusal and failure becomes an HTTP answer here and nowhere
//! else, and the access log is attached to whatever goes back. The body of a proxy-made error
//! speaks the dialect of Adobe's API gateway (`{"error_code","message"}`) so Adobe's SDKs
//! surface it, and `Content-Type` is exactly `application/json` because those SDKs ignore
//! bodies otherwise.

use super::access_log::AccessLog;
use super::admit::{AdmitError, Oversized};
use super::ctx::Ctx;
use super::exchange::ExchangeError;
use super::rewrite::{TokenUnavailable, UpstreamTrailers};
use super::target::TargetError;
use crate::base::headers::X_REQUEST_ID;
use crate::body::{BodyError, Observed, Paced};
use crate::state::{AccessError, SiteRefusal};
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

/// A response body before the access log: the upstream's, or one the proxy made.
pub type Answer = Either<Paced<Incoming>, Full<Bytes>>;

/// What every response body is: an [`Answer`] with its access log and its trailers filtered.
pub type ResponseBody = Observed<Answer, (AccessLog, UpstreamTrailers)>;

/// Any stage's error. Which stage's it is says whose fault it is.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error(transparent)]
    Admit(#[from] AdmitError),
    #[error(transparent)]
    Site(#[from] SiteRefusal),
    #[error(transparent)]
    Caller(#[from] AccessError),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    Body(#[from] BodyError),
    #[error(transparent)]
    Token(#[from] TokenUnavailable),
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
}

/// Whose fault a failed request is, for the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// What the caller sent (or how much of it).
    Caller,
    /// The upstream, or the network to it.
    Upstream,
    /// IMS, or the credential IMS was asked about.
    Ims,
}

impl Fault {
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Caller => "caller",
            Fault::Upstream => "upstream",
            Fault::Ims => "ims",
        }
    }
}

impl ProxyError {
    pub fn fault(&self) -> Fault {
        match self {
            // Adobe's throttle, answered for it.
            ProxyError::Target(TargetError::CoolingDown { .. }) => Fault::Upstream,
            ProxyError::Admit(_)
            | ProxyError::Site(_)
            | ProxyError::Caller(_)
            | ProxyError::Target(_)
            | ProxyError::Body(_)
            | ProxyError::Exchange(ExchangeError::CallerBody(_) | ExchangeError::CallerShare(_)) => {
                Fault::Caller
            }
            ProxyError::Token(_) => Fault::Ims,
            ProxyError::Exchange(_) => Fault::Upstream,
        }
    }

    /// The status and the stable, documented `error_code` (clients may branch on it).
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ProxyError::Admit(e) => match e {
                AdmitError::Connect | AdmitError::Trace => {
                    (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
                }
                AdmitError::UriTooLong { .. } | AdmitError::Oversized(Oversized::Target { .. }) => {
                    (StatusCode::URI_TOO_LONG, "uri_too_long")
                }
                AdmitError::HeadersTooLarge { .. }
                | AdmitError::TooManyHeaders { .. }
                | AdmitError::Oversized(_) => (
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "headers_too_large",
                ),
                AdmitError::Framing(_)
                | AdmitError::Method(_)
                | AdmitError::Path(_)
                | AdmitError::Host(_)
                | AdmitError::AuthorityForm => (StatusCode::BAD_REQUEST, "bad_request"),
            },
            ProxyError::Site(e) => site(e),
            ProxyError::Caller(e) => access(e),
            ProxyError::Target(e) => match e {
                TargetError::NoRoute(_) => (StatusCode::NOT_FOUND, "no_route"),
                TargetError::Forbidden(e) => access(e),
                TargetError::DeclaredTooLarge { .. } => {
                    (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
                }
                TargetError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
                TargetError::QuotaExceeded { .. } => {
                    (StatusCode::TOO_MANY_REQUESTS, "quota_exceeded")
                }
                TargetError::CoolingDown { .. } => {
                    (StatusCode::TOO_MANY_REQUESTS, "upstream_throttled")
                }
                TargetError::AbsoluteForm
                | TargetError::ClimbsAboveBase
                | TargetError::Unusable(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            },
            ProxyError::Body(e) | ProxyError::Exchange(ExchangeError::CallerBody(e)) => body(e),
            ProxyError::Token(_) => (StatusCode::SERVICE_UNAVAILABLE, "token_unavailable"),
            ProxyError::Exchange(ExchangeError::Unreachable(_)) => {
                (StatusCode::BAD_GATEWAY, "upstream_unreachable")
            }
            ProxyError::Exchange(ExchangeError::Timeout(_) | ExchangeError::SendStalled(_)) => {
                (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout")
            }
            ProxyError::Exchange(ExchangeError::Busy(_)) => {
                (StatusCode::SERVICE_UNAVAILABLE, "upstream_connection_limit")
            }
            ProxyError::Exchange(ExchangeError::CallerShare(_)) => {
                (StatusCode::SERVICE_UNAVAILABLE, "caller_upstream_share")
            }
            ProxyError::Exchange(ExchangeError::BadFraming(_)) => {
                (StatusCode::BAD_GATEWAY, "upstream_bad_framing")
            }
            ProxyError::Exchange(ExchangeError::UnaskedUpgrade) => {
                (StatusCode::BAD_GATEWAY, "upstream_bad_response")
            }
        }
    }

    /// Whether the caller's connection must close after this answer: its framing, or what is
    /// left of a body the proxy stopped reading, cannot be trusted.
    pub fn closes_connection(&self) -> bool {
        matches!(
            self,
            ProxyError::Admit(AdmitError::Framing(_) | AdmitError::Oversized(_))
                | ProxyError::Target(TargetError::DeclaredTooLarge { .. })
                | ProxyError::Body(_)
                | ProxyError::Exchange(ExchangeError::CallerBody(_))
        )
    }

    pub fn to_response(&self, request_id: &HeaderValue) -> Response<Full<Bytes>> {
        let (status, code) = self.status_and_code();
        let mut resp = error_response(status, code, &self.to_string(), request_id);
        if let Some(retry_after) = match self {
            ProxyError::Target(e) => e.retry_after(),
            _ => None,
        } {
            resp.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after.as_secs()),
            );
        }
        resp
    }
}

fn access(e: &AccessError) -> (StatusCode, &'static str) {
    match e {
        AccessError::Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden"),
        AccessError::MissingKey | AccessError::UnknownKey => {
            (StatusCode::UNAUTHORIZED, "unauthorized")
        }
    }
}

/// RFC 9110 §15.5.20: 421 is "not an authority for this name", which is what a rebinding
/// page's `Host` is.
fn site(e: &SiteRefusal) -> (StatusCode, &'static str) {
    match e {
        SiteRefusal::HostNotAllowed(_) => (StatusCode::MISDIRECTED_REQUEST, "host_not_allowed"),
        SiteRefusal::CrossSite(_) => (StatusCode::FORBIDDEN, "cross_site_request"),
    }
}

/// A web page's request to a listener outside the pipeline (the admin port), refused as the
/// pipeline refuses it: logged, counted, answered in the proxy's JSON with a new request id.
pub fn site_refusal(
    e: SiteRefusal,
    listener: &'static str,
    peer: std::net::SocketAddr,
    path: &str,
) -> Response<Full<Bytes>> {
    let e = ProxyError::Site(e);
    log_site_refusal(&e, listener, peer, path);
    let id = HeaderValue::from_bytes(&super::ctx::hex32(rand::random()))
        .unwrap_or(HeaderValue::from_static("-"));
    e.to_response(&id)
}

/// An operator wants to know that a page tried: one line and a count for each refusal.
fn log_site_refusal(
    e: &ProxyError,
    listener: &'static str,
    peer: std::net::SocketAddr,
    path: &str,
) {
    if let ProxyError::Site(refusal) = e {
        let code = e.status_and_code().1;
        tracing::warn!(
            listener,
            %peer,
            code,
            "url.path" = path,
            refused = refusal.what(),
            "request refused: a browser could have sent it from a web page"
        );
        crate::metrics::site_refused(listener, code);
    }
}

fn body(e: &BodyError) -> (StatusCode, &'static str) {
    match e {
        BodyError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        BodyError::Timeout(_) | BodyError::Stalled(_) => {
            (StatusCode::REQUEST_TIMEOUT, "request_timeout")
        }
        BodyError::Broken(_) => (StatusCode::BAD_REQUEST, "bad_request"),
    }
}

/// The response the caller gets, with the access log riding in its body.
pub fn finish(result: Result<Response<Answer>, ProxyError>, ctx: Ctx) -> Response<ResponseBody> {
    let (resp, fault) = match result {
        Ok(resp) => (resp, None),
        Err(e) => {
            log_site_refusal(&e, ctx.conn.listener, ctx.conn.peer, &ctx.path);
            let mut resp = e.to_response(&ctx.request_id);
            if e.closes_connection() && ctx.version < Version::HTTP_2 {
                // hyper closes the connection after a response that says so.
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            (resp.map(Either::Right), Some(e.fault().as_str()))
        }
    };
    let status = resp.status().as_u16();
    if let Some(stats) = &ctx.route_stats {
        stats.record(status);
    }
    let from_upstream = matches!(resp.body(), Either::Left(_));
    if from_upstream && status != 401 {
        if let Some(c) = &ctx.credential {
            c.accepted_by_upstream();
        }
    }
    let mut log = AccessLog::new(ctx, status, fault);
    if from_upstream && crate::state::REFUSALS.contains(&status) {
        log = log.watching_refusal();
    }
    resp.map(|body| Observed::new(body, (log, UpstreamTrailers)))
}

/// Builds a proxy-made error response in Adobe's gateway shape.
pub fn error_response(
    status: StatusCode,
    code: &str,
    message: &str,
    request_id: &HeaderValue,
) -> Response<Full<Bytes>> {
    let body = serde_json::json!({
        "error_code": code,
        "message": message,
        "request_id": request_id.to_str().unwrap_or(""),
    });
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(X_REQUEST_ID, request_id.clone());
    if status == StatusCode::UNAUTHORIZED {
        h.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"ims-proxy\""),
        );
    }
    if status == StatusCode::METHOD_NOT_ALLOWED {
        h.insert(
            header::ALLOW,
            HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
        );
    }
    resp
}
