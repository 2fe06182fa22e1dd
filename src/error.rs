//! Errors the proxy itself answers with, mapped to HTTP here and nowhere else. The body speaks
//! the dialect of Adobe's API gateway (`{"error_code","message"}`) so Adobe's SDKs surface it,
//! and `Content-Type` is exactly `application/json` because those SDKs ignore bodies otherwise.

use crate::clients::AccessError;
use crate::inbound::InboundError;
use crate::limits::LimitError;
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("{0}")]
    BadRequest(String),
    #[error("no route matches {0}")]
    NoRoute(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("upstream unreachable: {0}")]
    UpstreamUnreachable(String),
    #[error("upstream did not answer within {0:?}")]
    UpstreamTimeout(std::time::Duration),
    #[error("no access token for credential {credential:?}: {reason}")]
    TokenUnavailable { credential: String, reason: String },
    #[error("route {route} is over its configured rate or concurrency limit; retry after {} s", retry_after.as_secs())]
    RateLimited {
        route: String,
        retry_after: std::time::Duration,
    },
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error(transparent)]
    Limit(#[from] LimitError),
    #[error(transparent)]
    Inbound(#[from] InboundError),
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ProxyError::NoRoute(_) => StatusCode::NOT_FOUND,
            ProxyError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::UpstreamUnreachable(_) => StatusCode::BAD_GATEWAY,
            ProxyError::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::TokenUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ProxyError::Access(AccessError::Forbidden { .. }) => StatusCode::FORBIDDEN,
            ProxyError::Access(_) => StatusCode::UNAUTHORIZED,
            ProxyError::Limit(LimitError::BodyTooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::Limit(LimitError::UriTooLong { .. }) => StatusCode::URI_TOO_LONG,
            ProxyError::Limit(LimitError::BodyTimeout(_)) => StatusCode::REQUEST_TIMEOUT,
            ProxyError::Limit(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ProxyError::Inbound(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// Whether the client's connection must close after this answer: its framing, or what is
    /// left of a body the proxy stopped reading, cannot be trusted.
    pub fn closes_connection(&self) -> bool {
        match self {
            ProxyError::Inbound(e) => e.closes_connection(),
            ProxyError::Limit(LimitError::BodyTooLarge { .. } | LimitError::BodyTimeout(_)) => true,
            _ => false,
        }
    }

    /// Stable, documented codes: clients may branch on them.
    pub fn code(&self) -> &'static str {
        match self {
            ProxyError::BadRequest(_) => "bad_request",
            ProxyError::NoRoute(_) => "no_route",
            ProxyError::MethodNotAllowed(_) => "method_not_allowed",
            ProxyError::UpstreamUnreachable(_) => "upstream_unreachable",
            ProxyError::UpstreamTimeout(_) => "upstream_timeout",
            ProxyError::TokenUnavailable { .. } => "token_unavailable",
            ProxyError::RateLimited { .. } => "rate_limited",
            ProxyError::Access(AccessError::Forbidden { .. }) => "forbidden",
            ProxyError::Access(_) => "unauthorized",
            ProxyError::Limit(LimitError::BodyTooLarge { .. }) => "payload_too_large",
            ProxyError::Limit(LimitError::UriTooLong { .. }) => "uri_too_long",
            ProxyError::Limit(LimitError::BodyTimeout(_)) => "request_timeout",
            ProxyError::Limit(_) => "headers_too_large",
            ProxyError::Inbound(_) => "bad_request",
        }
    }

    pub fn to_response(&self, request_id: &HeaderValue) -> Response<Full<Bytes>> {
        let mut resp = error_response(self.status(), self.code(), &self.to_string(), request_id);
        if let ProxyError::RateLimited { retry_after, .. } = self {
            resp.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after.as_secs()),
            );
        }
        resp
    }
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
    h.insert(crate::forward::X_REQUEST_ID, request_id.clone());
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

/// An error and its causes on one line (`connect failed: connection refused`): the useful part
/// of a client or TLS error is usually a few sources down.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}
