//! `check --online`'s probe: one authenticated, side-effect-free request (`GET` or `HEAD`)
//! through a route, carrying exactly the token and identity headers a forwarded request gets,
//! so that what Adobe thinks of the credential and org shows before any caller meets it.

use super::rewrite::identity_headers;
use crate::base::error::error_chain;
use crate::base::headers::X_REQUEST_ID;
use crate::outbound::Answer;
use crate::state::{Probe, Route, Snapshot};
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use std::time::Duration;

/// How much of the upstream's answer is read: Adobe's error bodies are a line of JSON.
const BODY_HEAD: usize = 4096;

/// What the upstream answered.
#[derive(Debug)]
pub struct ProbeAnswer {
    pub status: StatusCode,
    /// Adobe's `error_code` (or `code`, `error`) from the body.
    pub error_code: Option<String>,
    /// Adobe's `message` (or `error_description`, `title`).
    pub message: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("no token: {0}")]
    Token(String),
    #[error("upstream unreachable: {0}")]
    Unreachable(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Request(String),
}

/// Sends `probe` through `route` to its upstream and reads the start of the answer.
pub async fn send(
    snap: &Snapshot,
    route: &Route,
    probe: &Probe,
) -> Result<ProbeAnswer, ProbeError> {
    let deadline = snap.request_timeout;
    let bearer = tokio::time::timeout(deadline, route.credential.current())
        .await
        .map_err(|_| ProbeError::Timeout(deadline))?
        .map_err(|e| ProbeError::Token(e.to_string()))?;
    let uri = http::Uri::builder()
        .scheme(route.upstream.scheme.clone())
        .authority(route.upstream.authority.clone())
        .path_and_query(probe.upstream_path(&route.upstream))
        .build()
        .map_err(|e| ProbeError::Request(e.to_string()))?;
    let mut headers = HeaderMap::new();
    headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    headers.insert(
        X_REQUEST_ID,
        HeaderValue::from_static("ims-proxy-check-online"),
    );
    identity_headers(&mut headers, route, bearer);
    let body = Empty::<Bytes>::new()
        .map_err(|e| -> crate::base::error::BoxError { match e {} })
        .boxed();
    let mut req = Request::new(body);
    *req.method_mut() = probe.method.clone();
    *req.uri_mut() = uri;
    *req.headers_mut() = headers;
    let resp = tokio::time::timeout(deadline, snap.outbound.request(req, None))
        .await
        .map_err(|_| ProbeError::Timeout(deadline))?
        .map(Answer::keep)
        .map_err(|e| ProbeError::Unreachable(error_chain(&e)))?;
    let status = resp.status();
    let mut body = resp.into_body();
    let mut head = Vec::new();
    while head.len() < BODY_HEAD {
        match tokio::time::timeout(deadline, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    let room = BODY_HEAD - head.len();
                    head.extend_from_slice(&d[..d.len().min(room)]);
                }
            }
            // The status is the answer; a body cut short only loses the error code.
            _ => break,
        }
    }
    Ok(ProbeAnswer {
        status,
        error_code: crate::adobe::error_code(&head),
        message: crate::adobe::error_message(&head),
    })
}
