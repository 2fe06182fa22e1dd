//! A second look at HTTP/1 request framing, on the raw bytes.
//!
//! hyper resolves ambiguous framing the way RFC 9112 says a server may: with both
//! `Content-Length` and `Transfer-Encoding` it drops the length, reads chunked and closes the
//! connection afterwards; equal duplicate lengths collapse into one. The proxy re-frames every
//! body it forwards, so the upstream never sees the ambiguity, but a request that arrives that
//! way is an attack or a broken client, and the policy here is to refuse it outright with
//! nothing forwarded. By the time the request reaches the service hyper has already removed the
//! evidence, so this reader watches the bytes as hyper reads them, notes the framing headers
//! of each request head, and queues a verdict per head; the service takes them in order.
//!
//! It is a watcher, not a parser the proxy depends on: whenever it cannot follow the stream
//! (HTTP/2, a head too large, a malformed chunk) it stops watching, and the requests it could
//! not see are left to hyper's own checks.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What the watcher saw in one request head: `Some(reason)` when its framing is ambiguous.
pub type Verdict = Option<&'static str>;

/// The per-connection queue of verdicts, one per request head, in order.
#[derive(Clone, Default)]
pub struct Verdicts(Arc<Mutex<VecDeque<Verdict>>>);

impl Verdicts {
    /// The verdict for the next request the service sees; `None` when the watcher could not
    /// follow the stream that far.
    pub fn next(&self) -> Verdict {
        self.0.lock().ok().and_then(|mut q| q.pop_front()).flatten()
    }

    fn push(&self, v: Verdict) {
        if let Ok(mut q) = self.0.lock() {
            q.push_back(v);
        }
    }
}

enum State {
    Head(Vec<u8>),
    Body(u64),
    Chunked(Chunk),
    /// The watcher has lost the stream or it has become HTTP/2: bytes pass unexamined.
    Off,
}

enum Chunk {
    Size { digits: u32, value: u64 },
    Extension { value: u64 },
    SizeLf { value: u64 },
    Data(u64),
    DataCr,
    DataLf,
    Trailer { line_empty: bool },
    TrailerLf { line_empty: bool },
}

pub struct FramingWatch<I> {
    inner: I,
    state: State,
    max_head: usize,
    verdicts: Verdicts,
}

impl<I> FramingWatch<I> {
    pub fn new(inner: I, max_head: usize, verdicts: Verdicts) -> Self {
        FramingWatch {
            inner,
            state: State::Head(Vec::new()),
            max_head,
            verdicts,
        }
    }

    fn observe(&mut self, mut buf: &[u8]) {
        while !buf.is_empty() {
            let state = std::mem::replace(&mut self.state, State::Off);
            let (next, used) = match state {
                State::Off => return,
                State::Head(mut head) => {
                    if head.is_empty() {
                        // Empty lines before a request line are allowed and ignored.
                        let skip = buf
                            .iter()
                            .take_while(|b| matches!(b, b'\r' | b'\n'))
                            .count();
                        if skip > 0 {
                            self.state = State::Head(head);
                            buf = &buf[skip..];
                            continue;
                        }
                    }
                    let start = head.len().saturating_sub(3);
                    let room = self.max_head.saturating_sub(head.len());
                    let take = buf.len().min(room.max(1));
                    head.extend_from_slice(&buf[..take]);
                    match find_head_end(&head[start..]).map(|e| e + start) {
                        Some(end) => {
                            let used = take - (head.len() - end);
                            head.truncate(end);
                            (self.on_head(&head), used)
                        }
                        None if head.len() >= self.max_head => (State::Off, take),
                        None => (State::Head(head), take),
                    }
                }
                State::Body(left) => {
                    let n = left.min(buf.len() as u64);
                    let rest = left - n;
                    let next = if rest == 0 {
                        State::Head(Vec::new())
                    } else {
                        State::Body(rest)
                    };
                    (next, n as usize)
                }
                State::Chunked(c) => chunk_step(c, buf),
            };
            self.state = next;
            buf = &buf[used..];
        }
    }

    fn on_head(&mut self, head: &[u8]) -> State {
        if head.starts_with(b"PRI * HTTP/2.0") {
            return State::Off;
        }
        let mut headers = [httparse::EMPTY_HEADER; 256];
        let mut req = httparse::Request::new(&mut headers);
        if !matches!(req.parse(head), Ok(httparse::Status::Complete(_))) {
            // hyper refuses what httparse cannot parse; there is no next request to follow.
            return State::Off;
        }
        let mut lengths = req
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("content-length"));
        let first_len = lengths.next();
        let more_lengths = lengths.next().is_some();
        let te = req
            .headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case("transfer-encoding"));
        let verdict = match (first_len.is_some(), more_lengths, te) {
            (true, _, true) => Some("both Content-Length and Transfer-Encoding are present"),
            (_, true, _) => Some("more than one Content-Length header"),
            _ => None,
        };
        self.verdicts.push(verdict);
        if verdict.is_some() {
            // The response closes this connection; nothing after it matters.
            return State::Off;
        }
        if te {
            return State::Chunked(Chunk::Size {
                digits: 0,
                value: 0,
            });
        }
        match first_len.map(|h| {
            std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
        }) {
            None | Some(Some(0)) => State::Head(Vec::new()),
            Some(Some(n)) => State::Body(n),
            Some(None) => State::Off,
        }
    }
}

fn find_head_end(b: &[u8]) -> Option<usize> {
    let crlf = b.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4);
    let lf = b.windows(2).position(|w| w == b"\n\n").map(|p| p + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// One step of chunked framing as hyper reads it: CRLF line ends, hex sizes, trailers.
fn chunk_step(c: Chunk, buf: &[u8]) -> (State, usize) {
    use Chunk::*;
    let chunked = |c| State::Chunked(c);
    if let Data(left) = c {
        let n = left.min(buf.len() as u64);
        let next = if n == left { DataCr } else { Data(left - n) };
        return (chunked(next), n as usize);
    }
    let b = buf[0];
    let next = match (c, b) {
        (Size { digits, value }, _) if b.is_ascii_hexdigit() => {
            let d = u64::from((b as char).to_digit(16).unwrap_or(0));
            match value.checked_mul(16).and_then(|v| v.checked_add(d)) {
                Some(v) if digits < 16 => chunked(Size {
                    digits: digits + 1,
                    value: v,
                }),
                _ => State::Off,
            }
        }
        (Size { digits: 0, .. }, _) => State::Off,
        (Size { value, .. }, b';' | b' ' | b'\t') => chunked(Extension { value }),
        (Size { value, .. }, b'\r') => chunked(SizeLf { value }),
        (Extension { value }, b'\r') => chunked(SizeLf { value }),
        (Extension { value }, _) => chunked(Extension { value }),
        (SizeLf { .. }, _) if b != b'\n' => State::Off,
        (SizeLf { value: 0 }, _) => chunked(Trailer { line_empty: true }),
        (SizeLf { value }, _) => chunked(Data(value)),
        (DataCr, b'\r') => chunked(DataLf),
        (DataLf, b'\n') => chunked(Size {
            digits: 0,
            value: 0,
        }),
        (Trailer { line_empty }, b'\r') => chunked(TrailerLf { line_empty }),
        (Trailer { .. }, _) => chunked(Trailer { line_empty: false }),
        (TrailerLf { line_empty: true }, b'\n') => State::Head(Vec::new()),
        (TrailerLf { line_empty: false }, b'\n') => chunked(Trailer { line_empty: true }),
        _ => State::Off,
    };
    (next, 1)
}

impl<I: AsyncRead + Unpin> AsyncRead for FramingWatch<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            let fresh = buf.filled()[before..].to_vec();
            self.observe(&fresh);
        }
        r
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for FramingWatch<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch(bytes: &[u8], split: usize) -> Vec<Verdict> {
        let v = Verdicts::default();
        let mut w = FramingWatch::new((), 1 << 16, v.clone());
        for part in bytes.chunks(split.max(1)) {
            w.observe(part);
        }
        let out =
            v.0.lock()
                .map(|q| q.iter().copied().collect())
                .unwrap_or_default();
        out
    }

    const PIPELINE: &[u8] = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nT: 1\r\n\r\n\
GET /c HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";

    #[test]
    fn follows_pipelined_requests_whatever_the_read_sizes() {
        for split in [1, 2, 3, 7, 64, 4096] {
            assert_eq!(
                watch(PIPELINE, split),
                vec![
                    None,
                    None,
                    Some("both Content-Length and Transfer-Encoding are present")
                ],
                "split {split}"
            );
        }
    }

    #[test]
    fn duplicate_lengths_are_flagged_even_when_equal() {
        let v = watch(
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\ncontent-length: 1\r\n\r\nx",
            4096,
        );
        assert_eq!(v, vec![Some("more than one Content-Length header")]);
    }

    #[test]
    fn the_h2_preface_switches_the_watcher_off() {
        assert!(watch(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 4096).is_empty());
    }
}
