//! A response head written byte-wise, framed as hyper frames it (so the two paths answer
//! alike): the length the body knows or its `Content-Length`, else chunked; no body for HEAD,
//! 204 and 304; `date` when the response has none; `connection: close` on the last answer.

use http::header::{CONNECTION, CONTENT_LENGTH, DATE, TRAILER, TRANSFER_ENCODING};
use http::response::Parts;
use http::{HeaderMap, HeaderName, Method, StatusCode};
use std::cell::RefCell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What the body says of its length before the head is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    /// It has already ended (no body).
    Empty,
    Exact(u64),
    Unknown,
}

/// How the body goes on the wire after the head.
#[derive(Debug, PartialEq, Eq)]
pub enum Encoder {
    /// Exactly this many bytes (0: none).
    Length(u64),
    /// Chunked; trailers named by the response's `Trailer` field are sent when the caller
    /// said `TE: trailers`.
    Chunked(Option<Vec<HeaderName>>),
}

/// The head's effect on the connection.
pub struct Encoded {
    pub encoder: Encoder,
    /// The connection closes after this answer.
    pub last: bool,
}

fn can_have_body(method: &Method, status: StatusCode) -> bool {
    method != Method::HEAD
        && !status.is_informational()
        && !matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED)
}

fn can_have_content_length(status: StatusCode) -> bool {
    !status.is_informational()
        && !matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED)
}

/// Writes the head of `parts` to `out`. `last`: the answer is the connection's last (the
/// caller asked, or the connection drains): it says `connection: close`.
pub fn head(
    out: &mut Vec<u8>,
    parts: &Parts,
    known: Known,
    method: &Method,
    trailers: bool,
    mut last: bool,
) -> Encoded {
    let status = parts.status;
    if status == StatusCode::OK {
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    } else {
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(status.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let body = can_have_body(method, status);
    let mut encoder = None;
    let mut wrote_date = false;
    let mut says_close = false;
    let mut allowed: Option<Vec<HeaderName>> = None;
    for (name, value) in parts.headers.iter() {
        match *name {
            CONTENT_LENGTH => {
                if encoder.is_some() {
                    continue;
                }
                match known {
                    Known::Exact(n) => encoder = Some(Encoder::Length(n)),
                    Known::Unknown => match std::str::from_utf8(value.as_bytes())
                        .ok()
                        .and_then(|v| v.trim().parse::<u64>().ok())
                    {
                        Some(n) => encoder = Some(Encoder::Length(n)),
                        None => continue,
                    },
                    // No body to send: the length stands only on the answer to HEAD.
                    Known::Empty if method == Method::HEAD => encoder = Some(Encoder::Length(0)),
                    Known::Empty => continue,
                }
            }
            TRANSFER_ENCODING => {
                if !body || encoder.is_some() {
                    continue;
                }
                encoder = Some(Encoder::Chunked(None));
                out.extend_from_slice(b"transfer-encoding: ");
                out.extend_from_slice(value.as_bytes());
                if !is_chunked(value.as_bytes()) {
                    out.extend_from_slice(b", chunked");
                }
                out.extend_from_slice(b"\r\n");
                continue;
            }
            CONNECTION if has_token(value.as_bytes(), b"close") => {
                says_close = true;
                last = true;
            }
            DATE => wrote_date = true,
            TRAILER => {
                if !body {
                    continue;
                }
                if let Ok(v) = value.to_str() {
                    allowed.get_or_insert_with(Vec::new).extend(
                        v.split(',')
                            .filter_map(|s| HeaderName::from_bytes(s.trim().as_bytes()).ok()),
                    );
                }
            }
            _ => {}
        }
        field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    let mut encoder = match encoder {
        Some(e) => e,
        None => match known {
            Known::Unknown if body => {
                out.extend_from_slice(b"transfer-encoding: chunked\r\n");
                Encoder::Chunked(None)
            }
            // An HTTP/1.1 caller always takes chunked where a body may be: never reached.
            Known::Unknown => Encoder::Length(0),
            Known::Empty | Known::Exact(0) => {
                if can_have_content_length(status) && method != Method::HEAD {
                    out.extend_from_slice(b"content-length: 0\r\n");
                }
                Encoder::Length(0)
            }
            Known::Exact(n) => {
                if can_have_content_length(status) {
                    out.extend_from_slice(b"content-length: ");
                    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
                    out.extend_from_slice(b"\r\n");
                    Encoder::Length(n)
                } else {
                    Encoder::Length(0)
                }
            }
        },
    };
    if !body {
        encoder = Encoder::Length(0);
    }
    if let Encoder::Chunked(names) = &mut encoder {
        if trailers {
            *names = allowed;
        }
    }
    if last && !says_close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    if !wrote_date {
        out.extend_from_slice(b"date: ");
        date(out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Encoded { encoder, last }
}

/// The end of a chunked body: its last chunk, then the trailers the `Trailer` field named.
pub fn chunked_end(out: &mut Vec<u8>, allowed: Option<&[HeaderName]>, trailers: &HeaderMap) {
    out.extend_from_slice(b"0\r\n");
    if let Some(allowed) = allowed {
        for (name, value) in trailers {
            if allowed.contains(name) && valid_trailer(name) {
                field(out, name.as_str().as_bytes(), value.as_bytes());
            }
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// A chunk's size line.
pub fn chunk_size(out: &mut Vec<u8>, len: usize) {
    use std::io::Write as _;
    let _ = write!(out, "{len:X}\r\n");
}

fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn is_chunked(v: &[u8]) -> bool {
    v.rsplit(|b| *b == b',')
        .next()
        .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"))
}

fn has_token(v: &[u8], token: &[u8]) -> bool {
    v.split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// hyper's list of fields that never travel as trailers.
fn valid_trailer(name: &HeaderName) -> bool {
    use http::header::*;
    !matches!(
        *name,
        AUTHORIZATION
            | CACHE_CONTROL
            | CONTENT_ENCODING
            | CONTENT_LENGTH
            | CONTENT_RANGE
            | CONTENT_TYPE
            | HOST
            | MAX_FORWARDS
            | SET_COOKIE
            | TRAILER
            | TRANSFER_ENCODING
            | TE
    )
}

thread_local! {
    /// The `date` value, formatted once a second per thread (as hyper caches it).
    static CACHED_DATE: RefCell<(u64, [u8; 29])> = const { RefCell::new((u64::MAX, [0; 29])) };
}

fn date(out: &mut Vec<u8>) {
    let now = SystemTime::now();
    let secs = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    CACHED_DATE.with(|d| {
        let mut d = d.borrow_mut();
        if d.0 != secs {
            let text = httpdate::fmt_http_date(now);
            if text.len() == 29 {
                d.1.copy_from_slice(text.as_bytes());
                d.0 = secs;
            } else {
                out.extend_from_slice(text.as_bytes());
                return;
            }
        }
        out.extend_from_slice(&d.1);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(resp: http::Response<()>, known: Known, method: Method) -> (String, Encoded) {
        let (parts, ()) = resp.into_parts();
        let mut out = Vec::new();
        let e = head(&mut out, &parts, known, &method, false, false);
        (String::from_utf8(out).expect("ascii"), e)
    }

    #[test]
    fn a_known_length_is_written_and_an_unknown_one_is_chunked() {
        let (h, e) = encode(http::Response::new(()), Known::Exact(5), Method::GET);
        assert!(
            h.starts_with("HTTP/1.1 200 OK\r\ncontent-length: 5\r\ndate: "),
            "{h}"
        );
        assert!(h.ends_with("GMT\r\n\r\n"), "{h}");
        assert_eq!(e.encoder, Encoder::Length(5));
        let (h, e) = encode(http::Response::new(()), Known::Unknown, Method::GET);
        assert!(h.contains("transfer-encoding: chunked\r\n"), "{h}");
        assert_eq!(e.encoder, Encoder::Chunked(None));
    }

    #[test]
    fn head_204_and_304_answers_have_no_body() {
        let (h, e) = encode(http::Response::new(()), Known::Exact(5), Method::HEAD);
        assert!(h.contains("content-length: 5\r\n"), "{h}");
        assert_eq!(e.encoder, Encoder::Length(0));
        let mut r = http::Response::new(());
        *r.status_mut() = StatusCode::NO_CONTENT;
        let (h, e) = encode(r, Known::Empty, Method::GET);
        assert!(h.starts_with("HTTP/1.1 204 No Content\r\ndate: "), "{h}");
        assert_eq!(e.encoder, Encoder::Length(0));
    }

    #[test]
    fn an_upstream_length_stands_when_the_body_does_not_know_its_own() {
        let r = http::Response::builder()
            .header("content-length", "7")
            .body(())
            .expect("response");
        let (h, e) = encode(r, Known::Unknown, Method::GET);
        assert!(
            h.contains("content-length: 7\r\n") && !h.contains("chunked"),
            "{h}"
        );
        assert_eq!(e.encoder, Encoder::Length(7));
    }
}
