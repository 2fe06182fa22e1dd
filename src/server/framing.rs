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
//! Whenever it still cannot follow (a malformed chunk, a head httparse refuses: things hyper
//! refuses too) it fails closed: the connection is marked lost, and every request on it from
//! then on gets a verdict that refuses it and closes the connection. A watcher that silently
//! stopped watching would let whatever follows on the connection through unexamined. Only the
//! HTTP/2 preface switches it off quietly: h2 frames bodies itself.
//!
//! It is also the one place the head's size limit is enforced on HTTP/1: a head reaches hyper
//! only once it is whole (one read usually holds it, and passes where it lies; a head split
//! over reads is held back until its end), so hyper never sees a head over the limit and never
//! answers one with its own bare 431. A head over the limit in bytes or fields is replaced by a
//! small stand-in request whose verdict refuses it, so the caller gets the proxy's JSON 414 or
//! 431 through the pipeline, after any earlier response on the connection, which then closes;
//! what the caller sends after it is never read.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};

/// Why the watcher refuses a request head; none for most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Framing two parsers could read differently, or that the watcher could not follow.
    Ambiguous(&'static str),
    /// The head was over the size limit and the request line alone over `max_uri_length`:
    /// the request is a stand-in.
    TargetTooLong,
    /// The head was over the size limit: the request is a stand-in.
    HeadTooLarge,
    /// The head had this many fields, more than the limit: the request is a stand-in.
    TooManyFields(usize),
}

/// The limits of one HTTP/1 request head, as the watcher enforces them.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    /// The whole head on the wire: request line, fields, line ends.
    pub bytes: usize,
    /// The request line beyond which an oversized head is blamed on its target (414).
    pub target: usize,
    pub fields: usize,
}

/// The most `pending` keeps allocated between reads.
const HELD_ROOM: usize = 16 * 1024;

/// What hyper parses in place of a head refused for its size: the verdict says why, the
/// answer closes the connection.
const STAND_IN: &[u8] = b"GET / HTTP/1.1\r\nhost: ims-proxy.invalid\r\n\r\n";

/// The verdict for every request after the watcher lost the stream.
pub const LOST: &str =
    "the framing of an earlier request on this connection could not be followed; reconnect";

#[derive(Default)]
struct Queue {
    verdicts: VecDeque<Option<Verdict>>,
    /// The watcher lost the stream: no later request on this connection can be vouched for.
    lost: bool,
}

/// The per-connection queue of verdicts, one per request head, in order.
#[derive(Clone, Default)]
pub struct Verdicts(Arc<Mutex<Queue>>);

impl Verdicts {
    /// The verdict for the next request the service sees. Once the watcher has lost the
    /// stream, every request it has no verdict for is refused ([`LOST`]).
    pub fn next(&self) -> Option<Verdict> {
        let Ok(mut q) = self.0.lock() else {
            // A poisoned lock means a panic mid-update: vouch for nothing.
            return Some(Verdict::Ambiguous(LOST));
        };
        match q.verdicts.pop_front() {
            Some(v) => v,
            None if q.lost => Some(Verdict::Ambiguous(LOST)),
            None => None,
        }
    }

    fn push(&self, v: Option<Verdict>) {
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
    /// Reading a head; the bytes of one that began in an earlier read, held back from hyper.
    Head(Vec<u8>),
    Body(u64),
    Chunked(Chunk),
    /// The stream became HTTP/2, or the watcher lost it (and said so in the verdicts): bytes
    /// pass unexamined.
    Off,
    /// Where the watcher loses the stream: `Off`, once the verdicts know.
    Lost,
    /// Where a head is refused for its size (fields counted): the stand-in goes to hyper.
    Refuse(Verdict),
    /// After a stand-in: nothing more is read for hyper; the connection closes.
    Discard,
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

pub struct FramingWatch<I> {
    inner: I,
    state: State,
    limits: HeadLimits,
    verdicts: Verdicts,
    /// What hyper reads next, before anything more from `inner`: a head that was held back
    /// and what followed it in the same read, or a stand-in.
    pending: Vec<u8>,
    pending_at: usize,
    /// `inner` ended; once `pending` is read, so does this.
    eof: bool,
    /// `inner` ended after a stand-in: nothing more is read, not even the end.
    quiet: bool,
    /// Empty lines read before the coming request line, passed to hyper already.
    blank: usize,
}

impl<I> FramingWatch<I> {
    pub fn new(inner: I, limits: HeadLimits, verdicts: Verdicts) -> Self {
        FramingWatch {
            inner,
            state: State::Head(Vec::new()),
            limits,
            verdicts,
            pending: Vec::new(),
            pending_at: 0,
            eof: false,
            quiet: false,
            blank: 0,
        }
    }

    /// Follows `input`, just read; returns how many of its first bytes hyper reads where they
    /// lie. What hyper reads after them is in `pending`; the rest is held back or dropped.
    fn observe(&mut self, input: &[u8]) -> usize {
        // Behind a held-back head, every byte is copied after it, in order.
        let mut copying = matches!(&self.state, State::Head(h) if !h.is_empty());
        let mut in_place = 0;
        // Bytes at the start of `buf` already copied into `pending` with their head.
        let mut held_back = 0;
        let mut buf = input;
        while !buf.is_empty() {
            let state = std::mem::replace(&mut self.state, State::Off);
            let (next, used) = match state {
                State::Off | State::Lost => (State::Off, buf.len()),
                State::Discard | State::Refuse(_) => {
                    self.state = State::Discard;
                    break;
                }
                State::Head(mut head) => {
                    // Empty lines before the request line count too: hyper keeps them in its
                    // buffer with the head.
                    let max = self.limits.bytes.saturating_sub(self.blank);
                    if head.is_empty() {
                        // Empty lines before a request line are allowed and ignored.
                        let skip = buf
                            .iter()
                            .take(max)
                            .take_while(|b| matches!(b, b'\r' | b'\n'))
                            .count();
                        if skip > 0 {
                            self.blank += skip;
                            (State::Head(head), skip)
                        } else if max == 0 {
                            (State::Refuse(Verdict::HeadTooLarge), 0)
                        } else if let Some(end) = find_head_end(&buf[..buf.len().min(max)]) {
                            // The whole head in this read (the usual case): examined where
                            // it lies, not copied.
                            (self.on_head(&buf[..end]), end)
                        } else if buf.len() >= max {
                            (State::Refuse(self.oversized(buf)), 0)
                        } else {
                            // A head's start: held back until its end comes.
                            head.extend_from_slice(buf);
                            self.state = State::Head(head);
                            break;
                        }
                    } else {
                        let start = head.len().saturating_sub(3);
                        let take = buf.len().min(max.saturating_sub(head.len()).max(1));
                        head.extend_from_slice(&buf[..take]);
                        match find_head_end(&head[start..]).map(|e| e + start) {
                            Some(end) => {
                                let used = take - (head.len() - end);
                                head.truncate(end);
                                match self.on_head(&head) {
                                    State::Refuse(v) => (State::Refuse(v), 0),
                                    next => {
                                        // Its last bytes are this read's first `used`.
                                        self.pending.extend_from_slice(&head);
                                        copying = true;
                                        held_back = used;
                                        (next, used)
                                    }
                                }
                            }
                            None if head.len() >= max => (State::Refuse(self.oversized(&head)), 0),
                            None => {
                                self.state = State::Head(head);
                                break;
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
            let next = match next {
                State::Lost => {
                    // Said at once, before hyper can parse whatever comes next.
                    self.verdicts.lose();
                    State::Off
                }
                State::Refuse(v) => {
                    // In place of the head, in the order of the requests before it.
                    self.verdicts.push(Some(v));
                    self.pending.extend_from_slice(STAND_IN);
                    self.state = State::Discard;
                    break;
                }
                next => next,
            };
            // Hyper reads these bytes: where they lie, or copied behind what is pending.
            if copying {
                self.pending
                    .extend_from_slice(&buf[std::mem::take(&mut held_back)..used]);
            } else {
                in_place += used;
            }
            self.state = next;
            buf = &buf[used..];
        }
        in_place
    }

    /// The verdict on a head that grew past the limit without ending: its target's fault when
    /// the request line alone is past `max_uri_length`.
    fn oversized(&self, head: &[u8]) -> Verdict {
        let line = head.iter().position(|b| *b == b'\n').unwrap_or(head.len());
        if line > self.limits.target {
            Verdict::TargetTooLong
        } else {
            Verdict::HeadTooLarge
        }
    }

    /// `inner` ended: a head held back goes to hyper as it is, to be refused as incomplete.
    fn end(&mut self) {
        self.eof = true;
        if let State::Head(head) = &mut self.state {
            self.pending.append(head);
        }
    }

    fn on_head(&mut self, head: &[u8]) -> State {
        self.blank = 0;
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
            self.verdicts.push(Some(Verdict::Ambiguous(LOST)));
            return State::Lost;
        }
        if req.headers.len() > self.limits.fields {
            return State::Refuse(Verdict::TooManyFields(req.headers.len()));
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
            (true, _, true) => Some(Verdict::Ambiguous(
                "both Content-Length and Transfer-Encoding are present",
            )),
            (_, true, _) => Some(Verdict::Ambiguous("more than one Content-Length header")),
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
        let this = &mut *self;
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            if this.pending_at < this.pending.len() {
                let n = buf.remaining().min(this.pending.len() - this.pending_at);
                buf.put_slice(&this.pending[this.pending_at..this.pending_at + n]);
                this.pending_at += n;
                if this.pending_at == this.pending.len() {
                    // A large head held back once is no reason to keep its room on an idle
                    // keep-alive connection.
                    if this.pending.capacity() > HELD_ROOM {
                        this.pending = Vec::new();
                    }
                    this.pending.clear();
                    this.pending_at = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            if this.quiet {
                return Poll::Pending;
            }
            let before = buf.filled().len();
            ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
            if buf.filled().len() == before {
                if matches!(this.state, State::Discard) {
                    // The caller sent its oversized head and closed its side. hyper must not
                    // see that end: a half-close mid-request makes it drop the connection
                    // unanswered. The stand-in's answer wakes it, and closes.
                    this.quiet = true;
                    return Poll::Pending;
                }
                this.end();
                continue;
            }
            // Observed in place: no copy of what was read, unless it was held back.
            let passed = this.observe(&buf.filled()[before..]);
            buf.set_filled(before + passed);
            if passed > 0 {
                return Poll::Ready(Ok(()));
            }
            // Nothing for hyper yet (a head's start held back, or a stand-in pending): read on,
            // until `inner` has nothing more and has registered the wake-up.
        }
    }
}

crate::base::io::write_through!(FramingWatch);

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(bytes: usize) -> HeadLimits {
        HeadLimits {
            bytes,
            target: bytes / 2,
            fields: 1000,
        }
    }

    /// Feeds `bytes` in reads of `split`: what hyper would read, and the verdicts queued.
    fn feed(bytes: &[u8], split: usize, limits: HeadLimits) -> (Vec<u8>, Vec<Option<Verdict>>) {
        let v = Verdicts::default();
        let mut w = FramingWatch::new((), limits, v.clone());
        let mut out = Vec::new();
        for part in bytes.chunks(split.max(1)) {
            let passed = w.observe(part);
            out.extend_from_slice(&part[..passed]);
            out.append(&mut w.pending);
        }
        let verdicts =
            v.0.lock()
                .map(|q| q.verdicts.iter().copied().collect())
                .unwrap_or_default();
        (out, verdicts)
    }

    fn watch(bytes: &[u8], split: usize) -> Vec<Option<Verdict>> {
        feed(bytes, split, limits(1 << 16)).1
    }

    /// The verdicts the service would take for `requests` requests after feeding `bytes`.
    fn taken(bytes: &[u8], requests: usize) -> Vec<Option<Verdict>> {
        let v = Verdicts::default();
        let mut w = FramingWatch::new((), limits(1 << 14), v.clone());
        w.observe(bytes);
        (0..requests).map(|_| v.next()).collect()
    }

    const AMBIGUOUS: &[u8] =
        b"GET /c HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
    const BOTH: Option<Verdict> = Some(Verdict::Ambiguous(
        "both Content-Length and Transfer-Encoding are present",
    ));

    #[test]
    fn a_chunk_size_with_many_leading_zeros_is_followed() {
        let mut bytes = b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
0000000000000000000000005\r\nhello\r\n0\r\n\r\n"
            .to_vec();
        bytes.extend_from_slice(AMBIGUOUS);
        assert_eq!(watch(&bytes, 4096), vec![None, BOTH]);
    }

    #[test]
    fn a_head_ending_in_lf_crlf_ends_there() {
        let mut bytes = b"GET /a HTTP/1.1\r\nHost: x\n\r\n".to_vec();
        bytes.extend_from_slice(AMBIGUOUS);
        for split in [1, 3, 4096] {
            assert_eq!(watch(&bytes, split), vec![None, BOTH], "split {split}");
        }
    }

    #[test]
    fn once_the_stream_is_lost_every_later_request_is_refused() {
        // A chunk size that overflows: hyper refuses it, but should a request follow anyway,
        // the watcher cannot vouch for it.
        let bytes = b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
FFFFFFFFFFFFFFFFFF\r\nGET /b HTTP/1.1\r\n\r\n";
        let lost = Some(Verdict::Ambiguous(LOST));
        assert_eq!(taken(bytes, 3), vec![None, lost, lost]);
    }

    #[test]
    fn a_head_with_more_fields_than_the_stack_holds_is_still_read() {
        let mut bytes = b"GET /a HTTP/1.1\r\n".to_vec();
        for i in 0..300 {
            bytes.extend_from_slice(format!("X-{i}: 1\r\n").as_bytes());
        }
        bytes.extend_from_slice(b"Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(watch(&bytes, 1 << 16), vec![BOTH]);
    }

    const PIPELINE: &[u8] = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nT: 1\r\n\r\n\
GET /c HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";

    #[test]
    fn follows_pipelined_requests_whatever_the_read_sizes() {
        for split in [1, 2, 3, 7, 64, 4096] {
            assert_eq!(
                watch(PIPELINE, split),
                vec![None, None, BOTH],
                "split {split}"
            );
        }
    }

    #[test]
    fn hyper_reads_every_byte_in_order_whatever_the_read_sizes() {
        for split in [1, 2, 3, 7, 64, 4096] {
            assert_eq!(
                feed(PIPELINE, split, limits(1 << 16)).0,
                PIPELINE,
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
        assert_eq!(
            v,
            vec![Some(Verdict::Ambiguous(
                "more than one Content-Length header"
            ))]
        );
    }

    #[test]
    fn the_h2_preface_switches_the_watcher_off() {
        assert!(watch(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 4096).is_empty());
        assert_eq!(taken(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 1), vec![None]);
    }

    /// A GET whose head is exactly `len` bytes, padded in one field.
    fn head_of(len: usize) -> Vec<u8> {
        let start = b"GET /a HTTP/1.1\r\nX-Big: ";
        let mut head = start.to_vec();
        head.extend(std::iter::repeat_n(b'a', len - start.len() - 4));
        head.extend_from_slice(b"\r\n\r\n");
        assert_eq!(head.len(), len);
        head
    }

    #[test]
    fn a_head_at_the_limit_reaches_hyper_whole_whatever_the_read_sizes() {
        let head = head_of(1000);
        for split in [1, 7, 999, 1000, 4096] {
            let (out, verdicts) = feed(&head, split, limits(1000));
            assert_eq!(out, head, "split {split}");
            assert_eq!(verdicts, vec![None], "split {split}");
        }
    }

    #[test]
    fn a_head_one_byte_over_the_limit_is_replaced_by_a_refused_stand_in() {
        let mut bytes = head_of(1001);
        bytes.extend_from_slice(b"GET /never HTTP/1.1\r\n\r\n");
        for split in [1, 7, 1000, 1001, 4096] {
            let (out, verdicts) = feed(&bytes, split, limits(1000));
            assert_eq!(out, STAND_IN, "split {split}");
            assert_eq!(verdicts, vec![Some(Verdict::HeadTooLarge)], "split {split}");
        }
    }

    #[test]
    fn empty_lines_before_a_request_line_count_towards_its_limit() {
        let mut bytes = b"\r\n".repeat(300);
        bytes.extend_from_slice(&head_of(500));
        for split in [7, 4096] {
            let (out, verdicts) = feed(&bytes, split, limits(1000));
            assert!(out.ends_with(STAND_IN), "split {split}");
            assert!(out.len() <= 1000 + STAND_IN.len(), "split {split}");
            assert_eq!(verdicts, vec![Some(Verdict::HeadTooLarge)], "split {split}");
        }
        let mut fewer = b"\r\n".repeat(200);
        fewer.extend_from_slice(&head_of(500));
        assert_eq!(feed(&fewer, 7, limits(1000)), (fewer.clone(), vec![None]));
    }

    #[test]
    fn a_request_line_over_the_target_limit_is_blamed_on_the_target() {
        let mut bytes = b"GET /".to_vec();
        bytes.extend(std::iter::repeat_n(b'a', 2000));
        let (out, verdicts) = feed(&bytes, 512, limits(1000));
        assert_eq!(out, STAND_IN);
        assert_eq!(verdicts, vec![Some(Verdict::TargetTooLong)]);
    }

    #[test]
    fn a_head_with_more_fields_than_the_limit_is_replaced_by_a_refused_stand_in() {
        let mut bytes = b"GET /a HTTP/1.1\r\n".to_vec();
        for i in 0..11 {
            bytes.extend_from_slice(format!("X-{i}: 1\r\n").as_bytes());
        }
        bytes.extend_from_slice(b"\r\n");
        let few = HeadLimits {
            fields: 10,
            ..limits(1 << 16)
        };
        let (out, verdicts) = feed(&bytes, 4096, few);
        assert_eq!(out, STAND_IN);
        assert_eq!(verdicts, vec![Some(Verdict::TooManyFields(11))]);
    }

    #[test]
    fn requests_before_an_oversized_head_reach_hyper_before_its_stand_in() {
        let first = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
        let mut bytes = first.to_vec();
        bytes.extend_from_slice(&head_of(2000));
        for split in [3, 100, 4096] {
            let (out, verdicts) = feed(&bytes, split, limits(1000));
            let mut want = first.to_vec();
            want.extend_from_slice(STAND_IN);
            assert_eq!(out, want, "split {split}");
            assert_eq!(
                verdicts,
                vec![None, Some(Verdict::HeadTooLarge)],
                "split {split}"
            );
        }
    }
}
