//! Checks on what a client sent, made before anything reaches Adobe: request framing that two
//! HTTP parsers could read differently (request smuggling), methods the proxy has no business
//! forwarding, and paths an upstream could decode into something else.
//!
//! hyper's parser already refuses most malformed heads (obs-fold, bare CR, NUL or other control
//! bytes in a header, non-ASCII request targets, invalid chunk sizes, differing duplicate
//! `Content-Length`s). What it accepts but a careful proxy should not is refused here.

use bytes::Bytes;
use http::{header, HeaderMap, Method, Version};
use http_body::{Body, Frame};
use std::pin::Pin;
use std::task::{Context, Poll};

#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    /// Ambiguous framing: the connection must close, because what follows on it cannot be
    /// trusted to be the start of the next request.
    #[error("{0}")]
    Framing(String),
    #[error("method {0} is not supported by ims-proxy")]
    Method(String),
    #[error("{0}")]
    Path(&'static str),
    /// The body could not be read as the head announced it (a broken chunk, a short body).
    #[error("request body: {0}")]
    Body(String),
}

impl InboundError {
    /// Whether the connection must be closed after the error response.
    pub fn closes_connection(&self) -> bool {
        matches!(self, InboundError::Framing(_) | InboundError::Body(_))
    }
}

/// The methods a REST API through this proxy needs. CONNECT and TRACE have their own 405.
const METHODS: [Method; 7] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::OPTIONS,
];

pub fn check_method(method: &Method) -> Result<(), InboundError> {
    if METHODS.contains(method) {
        return Ok(());
    }
    let shown: String = method.as_str().chars().take(32).collect();
    Err(InboundError::Method(format!("{shown:?}")))
}

/// HTTP/1 framing that RFC 9112 allows a server to accept but that is the raw material of
/// request smuggling when the next hop reads it differently.
pub fn check_framing(version: Version, headers: &HeaderMap) -> Result<(), InboundError> {
    if version >= Version::HTTP_2 {
        // h2 frames bodies itself; hyper refuses connection-specific headers there.
        return Ok(());
    }
    let mut lengths = headers.get_all(header::CONTENT_LENGTH).iter();
    let first = lengths.next();
    if lengths.next().is_some() {
        return Err(InboundError::Framing(
            "more than one Content-Length header".into(),
        ));
    }
    if let Some(v) = first {
        let b = v.as_bytes();
        if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
            return Err(InboundError::Framing(
                "Content-Length must be a single decimal number".into(),
            ));
        }
    }
    if headers.contains_key(header::TRANSFER_ENCODING) {
        if first.is_some() {
            return Err(InboundError::Framing(
                "both Content-Length and Transfer-Encoding are present".into(),
            ));
        }
        let mut codings = headers.get_all(header::TRANSFER_ENCODING).iter();
        let only_chunked = match (codings.next(), codings.next()) {
            (Some(v), None) => v.as_bytes().eq_ignore_ascii_case(b"chunked"),
            _ => false,
        };
        if !only_chunked {
            return Err(InboundError::Framing(
                "Transfer-Encoding must be exactly \"chunked\"".into(),
            ));
        }
    }
    Ok(())
}

/// The path must be valid UTF-8 with no control characters once percent-decoded: Adobe's
/// APIs use UTF-8 paths, and an upstream that decodes `%00` or `%0A` could be steered by them.
/// The query is left alone; it is data, not a location.
pub fn check_path(path: &str) -> Result<(), InboundError> {
    if !path.contains('%') {
        // http::Uri admits only visible ASCII in a path, so nothing more can be wrong.
        return Ok(());
    }
    let decoded: Vec<u8> = percent_encoding::percent_decode_str(path).collect();
    let text = std::str::from_utf8(&decoded)
        .map_err(|_| InboundError::Path("the path is not valid UTF-8 once percent-decoded"))?;
    if text.chars().any(char::is_control) {
        return Err(InboundError::Path(
            "the path contains control characters once percent-decoded",
        ));
    }
    Ok(())
}

/// Reads the first frame of a request body before anything is sent upstream, so that a body
/// broken from its first byte (an invalid chunk size, say) is refused with nothing forwarded.
/// Later breakage aborts the upstream request mid-body, which an upstream must treat as an
/// incomplete request.
pub async fn read_first_frame<B>(mut body: B) -> Result<Primed<B>, B::Error>
where
    B: Body<Data = Bytes> + Unpin,
{
    if body.is_end_stream() {
        return Ok(Primed {
            first: None,
            rest: body,
        });
    }
    let first = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
    Ok(Primed {
        first: first.transpose()?,
        rest: body,
    })
}

/// A body whose first frame has already been read.
pub struct Primed<B> {
    first: Option<Frame<Bytes>>,
    rest: B,
}

impl<B> Body for Primed<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(f) = self.first.take() {
            return Poll::Ready(Some(Ok(f)));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        let rest = self.rest.size_hint();
        let Some(n) = self
            .first
            .as_ref()
            .and_then(|f| f.data_ref())
            .map(|d| d.len() as u64)
        else {
            return rest;
        };
        // Raise the upper bound before the lower, so the two never cross.
        let mut hint = http_body::SizeHint::new();
        if let Some(u) = rest.upper() {
            hint.set_upper(u.saturating_add(n));
        }
        hint.set_lower(rest.lower().saturating_add(n));
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn conflicting_or_repeated_framing_headers_are_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("5"));
        assert!(check_framing(Version::HTTP_11, &h).is_ok());
        h.append(header::CONTENT_LENGTH, HeaderValue::from_static("5"));
        assert!(check_framing(Version::HTTP_11, &h).is_err());
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("5, 5"));
        assert!(check_framing(Version::HTTP_11, &h).is_err());
        let mut h = HeaderMap::new();
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("gzip, chunked"),
        );
        assert!(check_framing(Version::HTTP_11, &h).is_err());
    }

    #[test]
    fn paths_must_decode_to_utf8_without_control_characters() {
        assert!(check_path("/a/b%20c/%C3%A9").is_ok());
        assert!(check_path("/a/%FF").is_err());
        assert!(check_path("/a/%00").is_err());
        assert!(check_path("/a/%0d%0aX-Injected:%201").is_err());
    }

    #[test]
    fn only_rest_methods_pass() {
        assert!(check_method(&Method::PATCH).is_ok());
        let weird = Method::from_bytes(b"FOOBARBAZ").unwrap_or(Method::TRACE);
        assert!(check_method(&weird).is_err());
    }
}
