//! Reading one request head, and deciding whether the lean server can take it.
//!
//! The lean server takes only what it can frame with certainty: HTTP/1.1, an origin-form
//! target, no body or one `Content-Length` of digits or one `Transfer-Encoding: chunked`, no
//! `Expect`, no upgrade, within the head limits. Everything else (HTTP/1.0, the HTTP/2
//! preface, `CONNECT`, obs-fold, bare CR, NUL, CL with TE, two lengths, a head over a limit,
//! whatever httparse refuses) is handed, from its first byte, to hyper behind the framing
//! watcher, which answers it exactly as on the hyper path. Handing over is decided here,
//! before a byte of the request is forwarded.

use super::super::framing::HeadLimits;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri, Version};

/// Fields a head may have on the lean path; a head with more goes to hyper (whose limit is the
/// configured one), so this only bounds the stack.
const MAX_FIELDS: usize = 100;

/// How a request's body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Length`; 0 for none.
    Length(u64),
    Chunked,
}

/// A head the lean server takes.
#[derive(Debug)]
pub struct Head {
    pub request: Request<()>,
    pub framing: Framing,
    /// `Connection: close`: the answer is the connection's last.
    pub close: bool,
    /// `TE: trailers`: the caller takes trailers on a chunked answer.
    pub trailers: bool,
}

#[derive(Debug)]
pub enum Parsed {
    /// The whole head, taken off the buffer.
    Head(Box<Head>),
    /// Not all of it yet.
    Partial,
    /// For hyper: everything from the head's first byte on.
    Hand(&'static str),
}

/// Parses the head at the start of `buf`, taking it off the buffer when the lean server takes
/// it; leaves `buf` as it was otherwise.
pub fn parse(buf: &mut BytesMut, limits: &HeadLimits) -> Parsed {
    // Empty lines before a request line count towards the head's limit on the hyper path.
    if matches!(buf.first(), Some(b'\r' | b'\n')) {
        return Parsed::Hand("empty lines before the request line");
    }
    // Uninitialised: zeroing the slots cost more than parsing a small head.
    let mut fields = [std::mem::MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_FIELDS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut fields) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= limits.bytes => {
            return Parsed::Hand("a head over the size limit")
        }
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Hand("a head httparse refuses"),
    };
    if len > limits.bytes || req.headers.len() > limits.fields {
        return Parsed::Hand("a head over a limit");
    }
    if req.version != Some(1) {
        return Parsed::Hand("not HTTP/1.1");
    }
    let (Some(method), Some(target)) = (req.method, req.path) else {
        return Parsed::Hand("no request line");
    };
    if !target.starts_with('/') {
        return Parsed::Hand("a target that is not origin-form");
    }
    let mut framing = Framing::Length(0);
    let (mut lengths, mut encodings) = (0, 0);
    let (mut close, mut trailers) = (false, false);
    for f in req.headers.iter() {
        let name = f.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            lengths += 1;
            match content_length(f.value) {
                Some(n) => framing = Framing::Length(n),
                None => return Parsed::Hand("a Content-Length that is not digits"),
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            encodings += 1;
            if !f.value.eq_ignore_ascii_case(b"chunked") {
                return Parsed::Hand("a transfer coding other than chunked alone");
            }
            framing = Framing::Chunked;
        } else if name.eq_ignore_ascii_case(b"expect") || name.eq_ignore_ascii_case(b"upgrade") {
            return Parsed::Hand("Expect or Upgrade");
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in f.value.split(|b| *b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    close |= heeded(f.value);
                } else if token.eq_ignore_ascii_case(b"upgrade") {
                    return Parsed::Hand("Connection: upgrade");
                }
            }
        } else if name.eq_ignore_ascii_case(b"te") && heeded(f.value) {
            trailers |= f
                .value
                .split(|b| *b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"trailers"));
        }
    }
    if lengths + encodings > 1 {
        return Parsed::Hand("more than one framing header");
    }
    let method = match Method::from_bytes(method.as_bytes()) {
        Ok(m) if m != Method::CONNECT => m,
        _ => return Parsed::Hand("CONNECT or an unusual method"),
    };
    // The head's bytes, shared by the target and the field values (no copies).
    let count = req.headers.len();
    let spans: Vec<(usize, usize, usize, usize)> = req
        .headers
        .iter()
        .map(|f| {
            let name = f.name.as_bytes();
            (
                offset(buf, name),
                name.len(),
                offset(buf, f.value),
                f.value.len(),
            )
        })
        .collect();
    let target_at = (offset(buf, target.as_bytes()), target.len());
    let bytes: Bytes = buf.split_to(len).freeze();
    let Ok(uri) = Uri::from_maybe_shared(bytes.slice(target_at.0..target_at.0 + target_at.1))
    else {
        return hand_back(buf, bytes, "a target http::Uri refuses");
    };
    let mut headers = HeaderMap::with_capacity(count);
    for (n_at, n_len, v_at, v_len) in spans {
        let name = HeaderName::from_bytes(&bytes[n_at..n_at + n_len]);
        let value = HeaderValue::from_maybe_shared(bytes.slice(v_at..v_at + v_len));
        match (name, value) {
            (Ok(n), Ok(v)) => {
                headers.append(n, v);
            }
            _ => return hand_back(buf, bytes, "a field http refuses"),
        }
    }
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_11;
    *request.headers_mut() = headers;
    Parsed::Head(Box::new(Head {
        request,
        framing,
        close,
        trailers,
    }))
}

/// Whether hyper reads this `Connection` or `TE` value at all: only when it is visible ASCII
/// (`HeaderValue::to_str`); one with other bytes (obs-text) it ignores, so a `close` in it
/// does not close the connection there, and must not here.
fn heeded(value: &[u8]) -> bool {
    value
        .iter()
        .all(|b| *b == b'\t' || (b' '..=b'~').contains(b))
}

/// Puts a head taken off `buf` back in front of what followed it, for hyper.
fn hand_back(buf: &mut BytesMut, head: Bytes, why: &'static str) -> Parsed {
    let mut whole = BytesMut::with_capacity(head.len() + buf.len());
    whole.extend_from_slice(&head);
    whole.extend_from_slice(buf);
    *buf = whole;
    Parsed::Hand(why)
}

fn offset(buf: &[u8], part: &[u8]) -> usize {
    part.as_ptr() as usize - buf.as_ptr() as usize
}

/// A `Content-Length` the lean server takes: 1 to 19 ASCII digits, nothing else (no sign, no
/// spaces, no list); anything else is hyper's to refuse.
fn content_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> HeadLimits {
        HeadLimits {
            bytes: 8192,
            target: 4096,
            fields: 50,
        }
    }

    fn parse_str(s: &str) -> (Parsed, BytesMut) {
        let mut buf = BytesMut::from(s.as_bytes());
        let p = parse(&mut buf, &limits());
        (p, buf)
    }

    #[test]
    fn a_plain_get_is_taken_and_leaves_what_follows() {
        let (p, rest) = parse_str("GET /a?b=1 HTTP/1.1\r\nhost: x\r\nx-k: v\r\n\r\nNEXT");
        let Parsed::Head(h) = p else { panic!("{p:?}") };
        assert_eq!(h.request.uri(), "/a?b=1");
        assert_eq!(h.request.headers()["x-k"], "v");
        assert_eq!(h.framing, Framing::Length(0));
        assert_eq!(&rest[..], b"NEXT");
    }

    #[test]
    fn framing_that_is_not_certain_goes_to_hyper_untouched() {
        for head in [
            "POST / HTTP/1.1\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\ncontent-length: 3\r\ncontent-length: 3\r\n\r\n",
            "POST / HTTP/1.1\r\ncontent-length: +3\r\n\r\n",
            "POST / HTTP/1.1\r\ntransfer-encoding: gzip, chunked\r\n\r\n",
            "POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nexpect: 100-continue\r\n\r\n",
            "GET / HTTP/1.1\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\r\n",
            "GET / HTTP/1.0\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "CONNECT a:443 HTTP/1.1\r\n\r\n",
            "GET http://a/ HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nx: a\r\n b\r\n\r\n",
            "GET / HTTP/1.1\r\nx: a\rb\r\n\r\n",
            "GET / HTTP/1.1\r\nx: a\0b\r\n\r\n",
            "\r\nGET / HTTP/1.1\r\n\r\n",
        ] {
            let (p, rest) = parse_str(head);
            assert!(matches!(p, Parsed::Hand(_)), "{head:?}: {p:?}");
            assert_eq!(&rest[..], head.as_bytes(), "{head:?}");
        }
    }

    #[test]
    fn a_head_over_the_limit_goes_to_hyper_even_before_it_ends() {
        let long = format!("GET / HTTP/1.1\r\nx: {}", "a".repeat(9000));
        assert!(matches!(parse_str(&long).0, Parsed::Hand(_)));
        assert!(matches!(
            parse_str("GET / HTTP/1.1\r\nx: a").0,
            Parsed::Partial
        ));
    }

    #[test]
    fn a_connection_value_hyper_cannot_read_as_text_is_ignored_as_hyper_ignores_it() {
        let (p, _) = parse_str("GET / HTTP/1.1\r\nconnection: keep-alive\u{a0}, close\r\n\r\n");
        assert!(matches!(p, Parsed::Head(h) if !h.close));
        let (p, _) = parse_str("GET / HTTP/1.1\r\nconnection: keep-alive, close\r\n\r\n");
        assert!(matches!(p, Parsed::Head(h) if h.close));
    }

    #[test]
    fn one_chunked_coding_and_one_length_are_taken() {
        let (p, _) = parse_str("POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n");
        assert!(matches!(p, Parsed::Head(h) if h.framing == Framing::Chunked));
        let (p, _) = parse_str("POST / HTTP/1.1\r\ncontent-length: 0012\r\n\r\n");
        assert!(matches!(p, Parsed::Head(h) if h.framing == Framing::Length(12)));
    }
}
