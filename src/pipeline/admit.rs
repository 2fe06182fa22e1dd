//! Stage 1, admit: checks on what a caller sent, made before anything else looks at it:
//! request framing that two HTTP parsers could read differently (request smuggling), methods
//! the proxy has no business forwarding, heads over the limits, and paths an upstream could
//! decode into something else. Every refusal here is the caller's fault.
//!
//! hyper's parser already refuses most malformed heads (obs-fold, bare CR, NUL or other control
//! bytes in a header, invalid chunk sizes, differing duplicate `Content-Length`s). What it
//! accepts but a careful proxy should not is refused here: raw bytes above 0x7F in the target
//! (hyper and `http` accept them in a path), a missing or repeated `Host` on HTTP/1.1,
//! authority-form targets, repeated `Content-Length` on HTTP/2 too.

use crate::config::LimitsConfig;
use http::{header, HeaderMap, Method, Request, Version};

/// Put in a request's extensions by the listener when the raw bytes of its head had ambiguous
/// framing that hyper has already resolved; the reason why.
#[derive(Debug, Clone, Copy)]
pub struct Ambiguous(pub &'static str);

/// Put in a request's extensions by the listener when an HTTP/1 head was over the limits as
/// it arrived: the request hyper parsed is a stand-in for it, and the rest of what the caller
/// sent was never read, so the answer closes the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Oversized {
    #[error("the request line is longer than the head allows, and its target is over {limit} bytes (server.limits.max_uri_length)")]
    Target { limit: usize },
    #[error("the request head (request line and headers) is over {limit} bytes (server.limits.max_header_size and max_uri_length)")]
    Head { limit: usize },
    #[error("request has {count} header fields; the limit is {limit}")]
    Fields { count: usize, limit: usize },
}

#[derive(Debug, thiserror::Error)]
pub enum AdmitError {
    /// A head over the limits before it could be parsed: the connection must close.
    #[error("{0}")]
    Oversized(Oversized),
    /// Ambiguous framing: the connection must close, because what follows on it cannot be
    /// trusted to be the start of the next request.
    #[error("{0}")]
    Framing(String),
    #[error("CONNECT is refused: ims-proxy is a reverse proxy, not a tunnel")]
    Connect,
    #[error("TRACE is refused: it would echo credentials back")]
    Trace,
    #[error("method {0} is not supported by ims-proxy")]
    Method(String),
    #[error("request target is {len} bytes long; the limit is {limit}")]
    UriTooLong { len: usize, limit: u64 },
    #[error("request headers take {len} bytes; the limit is {limit}")]
    HeadersTooLarge { len: usize, limit: u64 },
    #[error("request has {count} header fields; the limit is {limit}")]
    TooManyHeaders { count: usize, limit: usize },
    #[error("{0}")]
    Path(&'static str),
    /// RFC 9112 §3.2: an HTTP/1.1 request has exactly one `Host`.
    #[error("{0}")]
    Host(&'static str),
    /// `host:port` as the target is CONNECT's form only (RFC 9112 §3.2.3).
    #[error("authority-form request targets are only for CONNECT, which ims-proxy refuses")]
    AuthorityForm,
}

/// Admits the request or says why not.
pub fn check<B>(limits: &LimitsConfig, req: &Request<B>) -> Result<(), AdmitError> {
    if let Some(ambiguous) = req.extensions().get::<Ambiguous>() {
        return Err(AdmitError::Framing(ambiguous.0.into()));
    }
    if let Some(oversized) = req.extensions().get::<Oversized>() {
        return Err(AdmitError::Oversized(*oversized));
    }
    check_framing(req.version(), req.headers())?;
    if req.method() == Method::CONNECT {
        return Err(AdmitError::Connect);
    }
    if req.method() == Method::TRACE {
        return Err(AdmitError::Trace);
    }
    check_method(req.method())?;
    if req.version() < Version::HTTP_2 {
        if req.uri().scheme().is_none() && req.uri().authority().is_some() {
            return Err(AdmitError::AuthorityForm);
        }
        if req.version() == Version::HTTP_11 {
            check_host(req.headers())?;
        }
    }
    check_head(limits, req.uri(), req.headers())?;
    check_target(req.uri())
}

/// Exactly one `Host` on HTTP/1.1 (HTTP/1.0 may omit it; h2 has `:authority`). Two `Host`s
/// are two answers to "which site", and proxies that pick different ones disagree.
fn check_host(headers: &HeaderMap) -> Result<(), AdmitError> {
    let mut hosts = headers.get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(_), None) => Ok(()),
        (None, _) => Err(AdmitError::Host(
            "an HTTP/1.1 request must have a Host header",
        )),
        (Some(_), Some(_)) => Err(AdmitError::Host("more than one Host header")),
    }
}

/// The whole target (path and query) is ASCII: one rule, whatever the protocol. hyper and
/// `http` accept raw bytes above 0x7F in a path (a raw U+0085 NEL, say), which upstreams
/// decode in as many ways as there are upstreams; percent-encoded they are data, checked by
/// [`check_path`]. One pass over bytes already in cache, no allocation.
fn check_target(uri: &http::Uri) -> Result<(), AdmitError> {
    let target = uri.path_and_query().map_or("", |p| p.as_str());
    if !target.is_ascii() {
        return Err(AdmitError::Path(
            "the request target contains raw non-ASCII bytes; percent-encode them",
        ));
    }
    check_path(uri.path())
}

/// Checks what the request head declares against the limits.
fn check_head(
    limits: &LimitsConfig,
    uri: &http::Uri,
    headers: &HeaderMap,
) -> Result<(), AdmitError> {
    let target_len = uri.path_and_query().map_or(0, |p| p.as_str().len());
    if target_len as u64 > limits.max_uri_length.0 {
        return Err(AdmitError::UriTooLong {
            len: target_len,
            limit: limits.max_uri_length.0,
        });
    }
    if headers.len() > limits.max_headers {
        return Err(AdmitError::TooManyHeaders {
            count: headers.len(),
            limit: limits.max_headers,
        });
    }
    // Name, ": ", value and CRLF, as on an HTTP/1.1 wire, whatever the protocol.
    let len: usize = headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    if len as u64 > limits.max_header_size.0 {
        return Err(AdmitError::HeadersTooLarge {
            len,
            limit: limits.max_header_size.0,
        });
    }
    Ok(())
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

pub fn check_method(method: &Method) -> Result<(), AdmitError> {
    if METHODS.contains(method) {
        return Ok(());
    }
    let shown: String = method.as_str().chars().take(32).collect();
    Err(AdmitError::Method(format!("{shown:?}")))
}

/// HTTP/1 framing that RFC 9112 allows a server to accept but that is the raw material of
/// request smuggling when the next hop reads it differently.
pub fn check_framing(version: Version, headers: &HeaderMap) -> Result<(), AdmitError> {
    let mut lengths = headers.get_all(header::CONTENT_LENGTH).iter();
    let first = lengths.next();
    if lengths.next().is_some() {
        // On h2 too: h2 enforces only the first against the DATA it receives, and an h1
        // upstream would be sent both.
        return Err(AdmitError::Framing(
            "more than one Content-Length header".into(),
        ));
    }
    if version >= Version::HTTP_2 {
        // h2 frames bodies itself; hyper refuses connection-specific headers there.
        return Ok(());
    }
    if let Some(v) = first {
        let b = v.as_bytes();
        if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
            return Err(AdmitError::Framing(
                "Content-Length must be a single decimal number".into(),
            ));
        }
    }
    if headers.contains_key(header::TRANSFER_ENCODING) {
        if first.is_some() {
            return Err(AdmitError::Framing(
                "both Content-Length and Transfer-Encoding are present".into(),
            ));
        }
        let mut codings = headers.get_all(header::TRANSFER_ENCODING).iter();
        let only_chunked = match (codings.next(), codings.next()) {
            (Some(v), None) => v.as_bytes().eq_ignore_ascii_case(b"chunked"),
            _ => false,
        };
        if !only_chunked {
            return Err(AdmitError::Framing(
                "Transfer-Encoding must be exactly \"chunked\"".into(),
            ));
        }
    }
    Ok(())
}

/// The path must be valid UTF-8 with no control characters once percent-decoded: Adobe's
/// APIs use UTF-8 paths, and an upstream that decodes `%00` or `%0A` could be steered by them.
/// The query is left alone; it is data, not a location.
pub fn check_path(path: &str) -> Result<(), AdmitError> {
    if !path.contains('%') {
        // http::Uri admits only visible ASCII in a path, so nothing more can be wrong.
        return Ok(());
    }
    let decoded: Vec<u8> = percent_encoding::percent_decode_str(path).collect();
    let text = std::str::from_utf8(&decoded)
        .map_err(|_| AdmitError::Path("the path is not valid UTF-8 once percent-decoded"))?;
    if text.chars().any(char::is_control) {
        return Err(AdmitError::Path(
            "the path contains control characters once percent-decoded",
        ));
    }
    Ok(())
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
