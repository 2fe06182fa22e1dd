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
//! It follows the stream the way hyper reads it (any number of chunk-size digits short of
//! overflow, a head ending at the first empty line whether its line ends are CRLF or LF).
//! Whenever it still cannot follow (a head too large, a malformed chunk: things hyper refuses
//! too) it fails closed: the connection is marked lost, and every request on it from then on
//! gets a verdict that refuses it and closes the connection. A watcher that silently stopped
//! watching would let whatever follows on the connection through unexamined. Only the HTTP/2
//! preface switches it off quietly: h2 frames bodies itself.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What the watcher saw in one request head: `Some(reason)` when its framing is ambiguous.
pub type Verdict = Option<&'static str>;

/// The verdict for every request after the watcher lost the stream.
pub const LOST: &str =
    "the framing of an earlier request on this connection could not be followed; reconnect";

#[derive(Default)]
struct Queue {
    verdicts: VecDeque<Verdict>,
    /// The watcher lost the stream: no later request on this connection can be vouched for.
    lost: bool,
}

/// The per-connection queue of verdicts, one per request head, in order.
#[derive(Clone, Default)]
pub struct Verdicts(Arc<Mutex<Queue>>);

impl Verdicts {
    /// The verdict for the next request the service sees. Once the watcher has lost the
    /// stream, every request it has no verdict for is refused ([`LOST`]).
    pub fn next(&self) -> Verdict {
        let Ok(mut q) = self.0.lock() else {
            // A poisoned lock means a panic mid-update: vouch for nothing.
            return Some(LOST);
        };
        match q.verdicts.pop_front() {
            Some(v) => v,
            None if q.lost => Some(LOST),
            None => None,
        }
    }

    fn push(&self, v: Verdict) {
        if let Ok(mut q) = self.0.lock() {
            q.verdicts.push_back(v);
        }
    }

    fn lose(&self) {
        if let Ok(mut q) = self.0.lock() {
            q.lost = true;
        }
    }
}

enum State {
    Head(Vec<u8>),
    Body(u64),
    Chunked(Chunk),
    /// The stream became HTTP/2, or the watcher lost it (and said so in the verdicts): bytes
    /// pass unexamined.
    Off,
    /// Where the watcher loses the stream: `Off`, once the verdicts know.
    Lost,
}

enum Chunk {
    /// hyper accepts any number of digits (leading zeros) short of overflowing a u64, so the
    /// watcher must too: a digit cap would be a way to blind it.
    Size {
        digits: u32,
        value: u64,
    },
    Extension {
        value: u64,
    },
    SizeLf {
        value: u64,
    },
    Data(u64),
    DataCr,
    DataLf,
    Trailer {
        line_empty: bool,
    },
    TrailerLf {
        line_empty: bool,
    },
}

/// hyper's HTTP/1 read buffer is never below 8 KiB (its minimum, and the floor `conn.rs` sets).
const HYPER_MIN_READ_BUFFER: usize = 8192;

pub struct FramingWatch<I> {
    inner: I,
    state: State,
    max_head: usize,
    verdicts: Verdicts,
}

impl<I> FramingWatch<I> {
    /// `max_head` is the proxy's head limit; the watcher follows heads up to the larger of it
    /// and hyper's smallest read buffer, so that every head hyper accepts is one it can read
    /// (a head that is merely over the proxy's limits then gets its 414/431 from the
    /// pipeline, not a lost-stream refusal).
    pub fn new(inner: I, max_head: usize, verdicts: Verdicts) -> Self {
        FramingWatch {
            inner,
            state: State::Head(Vec::new()),
            max_head: max_head.max(HYPER_MIN_READ_BUFFER),
            verdicts,
        }
    }

    fn observe(&mut self, mut buf: &[u8]) {
        while !buf.is_empty() {
            let state = std::mem::replace(&mut self.state, State::Off);
            let (next, used) = match state {
                State::Off | State::Lost => return,
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
                    // The whole head in this read (the usual case): examined where it lies,
                    // not copied.
                    let whole = if head.is_empty() {
                        find_head_end(&buf[..buf.len().min(self.max_head)])
                    } else {
                        None
                    };
                    match whole {
                        Some(end) => (self.on_head(&buf[..end]), end),
                        None => {
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
                                None if head.len() >= self.max_head => (State::Lost, take),
                                None => (State::Head(head), take),
                            }
                        }
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
            if let State::Lost = next {
                // Said at once, before hyper can parse whatever comes next.
                self.verdicts.lose();
                self.state = State::Off;
                return;
            }
            self.state = next;
            buf = &buf[used..];
        }
    }

    fn on_head(&mut self, head: &[u8]) -> State {
        if head.starts_with(b"PRI * HTTP/2.0") {
            return State::Off;
        }
        let mut stack = [httparse::EMPTY_HEADER; 128];
        let mut heap;
        let mut req = httparse::Request::new(&mut stack);
        let mut parsed = req.parse(head);
        if matches!(parsed, Err(httparse::Error::TooManyHeaders)) {
            // Rare (more fields than the stack holds, allowed by a large `max_headers`): one
            // slot per line is always enough.
            heap = vec![httparse::EMPTY_HEADER; head.iter().filter(|b| **b == b'\n').count()];
            req = httparse::Request::new(&mut heap);
            parsed = req.parse(head);
        }
        if !matches!(parsed, Ok(httparse::Status::Complete(_))) {
            // hyper refuses what httparse cannot parse, but should it not, this request's
            // framing is unknown: refuse it and everything after it.
            self.verdicts.push(Some(LOST));
            return State::Lost;
        }
        let mut first_len = None;
        let mut more_lengths = false;
        let mut te = false;
        for h in req.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                more_lengths |= first_len.is_some();
                first_len = Some(h.value);
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                te = true;
            }
        }
        let verdict = match (first_len.is_some(), more_lengths, te) {
            (true, _, true) => Some("both Content-Length and Transfer-Encoding are present"),
            (_, true, _) => Some("more than one Content-Length header"),
            _ => None,
        };
        self.verdicts.push(verdict);
        if verdict.is_some() {
            // The response closes this connection; should anything follow, it is refused too.
            return State::Lost;
        }
        if te {
            return State::Chunked(Chunk::Size {
                digits: 0,
                value: 0,
            });
        }
        match first_len.map(|v| {
            std::str::from_utf8(v)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
        }) {
            None | Some(Some(0)) => State::Head(Vec::new()),
            Some(Some(n)) => State::Body(n),
            // hyper refuses such a length; if it did not, the body's end is unknown.
            Some(None) => State::Lost,
        }
    }
}

/// The end of a head: its first empty line. Lines end in LF with an optional CR before it
/// (httparse's rule), so the empty line is `\n\n` or `\n\r\n`, whichever comes first;
/// `\r\n\r\n` is the second of these.
fn find_head_end(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(p) = b[i..].iter().position(|c| *c == b'\n') {
        let at = i + p + 1;
        match b.get(at..) {
            Some([b'\n', ..]) => return Some(at + 1),
            Some([b'\r', b'\n', ..]) => return Some(at + 2),
            _ => i = at,
        }
    }
    None
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
                Some(v) => chunked(Size {
                    digits: digits.saturating_add(1),
                    value: v,
                }),
                None => State::Lost,
            }
        }
        (Size { digits: 0, .. }, _) => State::Lost,
        (Size { value, .. }, b';' | b' ' | b'\t') => chunked(Extension { value }),
        (Size { value, .. }, b'\r') => chunked(SizeLf { value }),
        (Extension { value }, b'\r') => chunked(SizeLf { value }),
        (Extension { value }, _) => chunked(Extension { value }),
        (SizeLf { .. }, _) if b != b'\n' => State::Lost,
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
        _ => State::Lost,
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
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        // Observed in place: no copy of what was read.
        this.observe(&buf.filled()[before..]);
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
                .map(|q| q.verdicts.iter().copied().collect())
                .unwrap_or_default();
        out
    }

    /// The verdicts the service would take for `requests` requests after feeding `bytes`.
    fn taken(bytes: &[u8], requests: usize) -> Vec<Verdict> {
        let v = Verdicts::default();
        let mut w = FramingWatch::new((), 1 << 14, v.clone());
        w.observe(bytes);
        (0..requests).map(|_| v.next()).collect()
    }

    const AMBIGUOUS: &[u8] =
        b"GET /c HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";

    #[test]
    fn a_chunk_size_with_many_leading_zeros_is_followed() {
        let mut bytes = b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
0000000000000000000000005\r\nhello\r\n0\r\n\r\n"
            .to_vec();
        bytes.extend_from_slice(AMBIGUOUS);
        assert_eq!(
            watch(&bytes, 4096),
            vec![
                None,
                Some("both Content-Length and Transfer-Encoding are present")
            ]
        );
    }

    #[test]
    fn a_head_ending_in_lf_crlf_ends_there() {
        let mut bytes = b"GET /a HTTP/1.1\r\nHost: x\n\r\n".to_vec();
        bytes.extend_from_slice(AMBIGUOUS);
        for split in [1, 3, 4096] {
            assert_eq!(
                watch(&bytes, split),
                vec![
                    None,
                    Some("both Content-Length and Transfer-Encoding are present")
                ],
                "split {split}"
            );
        }
    }

    #[test]
    fn once_the_stream_is_lost_every_later_request_is_refused() {
        // A chunk size that overflows: hyper refuses it, but should a request follow anyway,
        // the watcher cannot vouch for it.
        let bytes = b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
FFFFFFFFFFFFFFFFFF\r\nGET /b HTTP/1.1\r\n\r\n";
        assert_eq!(taken(bytes, 3), vec![None, Some(LOST), Some(LOST)]);
    }

    #[test]
    fn a_head_too_large_to_follow_is_refused() {
        let mut bytes = b"GET /a HTTP/1.1\r\nX-Big: ".to_vec();
        bytes.extend(std::iter::repeat_n(b'a', 20 * 1024));
        assert_eq!(taken(&bytes, 1), vec![Some(LOST)]);
    }

    #[test]
    fn heads_up_to_hypers_read_buffer_are_followed_whatever_the_proxys_limit() {
        let v = Verdicts::default();
        let mut w = FramingWatch::new((), 1024, v.clone());
        let mut bytes = b"GET /a HTTP/1.1\r\nX-Big: ".to_vec();
        bytes.extend(std::iter::repeat_n(b'a', 6 * 1024));
        bytes.extend_from_slice(b"\r\n\r\n");
        w.observe(&bytes);
        assert_eq!(v.next(), None);
    }

    #[test]
    fn a_head_with_more_fields_than_the_stack_holds_is_still_read() {
        let mut bytes = b"GET /a HTTP/1.1\r\n".to_vec();
        for i in 0..300 {
            bytes.extend_from_slice(format!("X-{i}: 1\r\n").as_bytes());
        }
        bytes.extend_from_slice(b"Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n");
        let v = Verdicts::default();
        let mut w = FramingWatch::new((), 1 << 16, v.clone());
        w.observe(&bytes);
        assert_eq!(
            v.next(),
            Some("both Content-Length and Transfer-Encoding are present")
        );
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
        assert_eq!(taken(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 1), vec![None]);
    }
}
