//! The per-request context the stages fill in as the request travels: who called, which
//! route, how long the upstream took. The access log line is made from it at the end.

use super::trace::Trace;
use crate::base::headers::X_REQUEST_ID;
use crate::body::{BodyFailure, Progress};
use crate::outbound::{Affinity, Share};
use crate::state::{Permit, RouteStats};
use crate::token::Credential;
use http::{HeaderMap, HeaderValue, Method, Request, Version};
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Facts about the connection a request arrived on.
#[derive(Clone, Copy, Debug)]
pub struct ConnMeta {
    pub peer: SocketAddr,
    pub proto: &'static str,
    /// Which listener: `reverse` (route prefixes) or `forward` (`CONNECT` tunnels).
    pub listener: &'static str,
}

pub struct Ctx {
    pub started: Instant,
    pub request_id: HeaderValue,
    /// The caller's W3C trace, or the one started for it.
    pub trace: Trace,
    pub conn: ConnMeta,
    /// The caller connection's own upstream connection slot (HTTP/1.1 callers only).
    pub affinity: Option<Arc<Affinity>>,
    pub method: Method,
    pub version: Version,
    pub path: String,
    /// The `[[clients]]` name the request authenticated as.
    pub caller: Option<Arc<str>>,
    /// The route's label ([`crate::state::Route::label`]).
    pub route: Option<Arc<str>>,
    /// The route's credential (for its name).
    pub credential: Option<Arc<Credential>>,
    /// The route's counts, where the answer is counted.
    pub route_stats: Option<Arc<RouteStats>>,
    /// Time spent waiting for upstream response heads, replay included.
    pub upstream_time: Option<Duration>,
    /// The request was sent again with a token fetched after the upstream's 401.
    pub replayed: bool,
    pub bytes_in: Arc<AtomicU64>,
    /// Where the caller's body records why it failed, if it does.
    pub body_failure: BodyFailure,
    /// How sending the caller's body upstream goes: the response-head deadline starts when it
    /// has been sent.
    pub upload: Option<Arc<Progress>>,
    /// The route's concurrency permit, held until the response body ends.
    pub permit: Option<Permit>,
    /// The request's place in its caller's share of the upstream's connections
    /// (`client.max_in_flight_per_caller`), held until the response body ends.
    pub share: Option<Share>,
    /// An upstream 429 cool-down: `started` by this response, or answered `local`ly.
    pub cool_down: Option<&'static str>,
}

impl Ctx {
    /// `recording`: whether the proxy records spans ([`Trace::from_headers`]).
    pub fn new<B>(
        req: &Request<B>,
        conn: ConnMeta,
        affinity: Option<Arc<Affinity>>,
        recording: bool,
    ) -> Ctx {
        Ctx {
            started: Instant::now(),
            request_id: request_id(req.headers()),
            trace: Trace::from_headers(req.headers(), recording),
            conn,
            affinity,
            method: req.method().clone(),
            version: req.version(),
            path: req.uri().path().to_string(),
            caller: None,
            route: None,
            credential: None,
            route_stats: None,
            upstream_time: None,
            replayed: false,
            bytes_in: Arc::default(),
            body_failure: BodyFailure::default(),
            upload: None,
            permit: None,
            share: None,
            cool_down: None,
        }
    }
}

/// The caller's `x-request-id` when it is a sane token, or a new random one.
fn request_id(headers: &HeaderMap) -> HeaderValue {
    if let Some(v) = headers.get(&X_REQUEST_ID) {
        let b = v.as_bytes();
        if !b.is_empty() && b.len() <= 128 && b.iter().all(|c| c.is_ascii_graphic()) {
            return v.clone();
        }
    }
    HeaderValue::from_bytes(&hex32(rand::random())).unwrap_or(HeaderValue::from_static("unknown"))
}

/// `format!("{n:032x}")`, written in place: no `String` per request.
pub fn hex32(n: u128) -> [u8; 32] {
    let mut s = [0u8; 32];
    super::trace::hex_into(&mut s, n);
    s
}

/// An address as text on the stack, for the access log and `X-Forwarded-For`: through
/// `Display` (and the log's escaping writer) it cost a few thousand instructions a request.
pub struct IpText {
    buf: [u8; 45],
    len: usize,
}

impl IpText {
    pub fn new(ip: std::net::IpAddr) -> IpText {
        use std::fmt::Write as _;
        let mut text = IpText {
            buf: [0; 45],
            len: 0,
        };
        match ip {
            std::net::IpAddr::V4(v4) => {
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        text.push(".");
                    }
                    text.push(itoa::Buffer::new().format(octet));
                }
            }
            // The longest IPv6 text (45 bytes, with an embedded IPv4) fits.
            std::net::IpAddr::V6(v6) => {
                let _ = write!(text, "{v6}");
            }
        }
        text
    }

    fn push(&mut self, s: &str) {
        let end = self.len + s.len();
        if let Some(slot) = self.buf.get_mut(self.len..end) {
            slot.copy_from_slice(s.as_bytes());
            self.len = end;
        }
    }

    pub fn as_str(&self) -> &str {
        // Whole `&str`s are copied in, or nothing: always UTF-8.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl std::fmt::Write for IpText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.push(s);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{hex32, IpText};

    #[test]
    fn request_ids_are_32_lowercase_hex_digits() {
        for n in [
            0u128,
            1,
            u128::MAX,
            0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
        ] {
            assert_eq!(hex32(n), format!("{n:032x}").as_bytes());
        }
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for ip in [
            "127.0.0.1",
            "255.255.255.255",
            "0.0.0.0",
            "::1",
            "2001:db8::ff00:42:8329",
            "::ffff:192.0.2.128",
            "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255",
        ] {
            let parsed: std::net::IpAddr = ip.parse().expect("an address");
            assert_eq!(IpText::new(parsed).as_str(), parsed.to_string(), "{ip}");
        }
    }
}
