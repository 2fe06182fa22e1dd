//! A request body's framing, read off the connection's buffer: a `Content-Length`, or chunked
//! exactly as hyper reads it (the framing watcher's rules: CRLF line ends, any number of
//! leading zeros short of overflow, optional whitespace and extensions after the size), with
//! extensions and trailers bounded as hyper bounds them, and trailers refused where hyper
//! refuses them (hyper parses them as fields; a body whose trailers it cannot parse ends
//! with an error), then dropped.

use super::super::framing::HeadLimits;
use super::head::Framing;
use bytes::{Buf as _, Bytes, BytesMut};

/// hyper's bound on a body's chunk extensions, and on its trailers, in bytes.
const EXTENSIONS_LIMIT: u64 = 16 * 1024;
const TRAILERS_LIMIT: usize = 16 * 1024;

#[derive(Debug)]
pub struct Decoder {
    state: State,
    /// Bytes of chunk extensions so far.
    extensions: u64,
    /// The trailer section as hyper collects it (from its first byte, line ends included),
    /// to be parsed as hyper parses it; empty until a trailer comes.
    trailers: Vec<u8>,
    /// Trailer lines so far, and the most hyper takes (its `max_headers`).
    trailer_lines: usize,
    trailer_lines_limit: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Length(u64),
    Size {
        digits: bool,
        value: u64,
    },
    SizeLws {
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
    /// After the last chunk's size line, and after each trailer line: the end, or a trailer.
    EndCr,
    EndLf,
    Trailer,
    TrailerLf,
    Done,
}

/// What the buffer gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    Data(Bytes),
    /// The body's end: whatever follows in the buffer is the next request.
    Done,
    /// The buffer ended mid-body: read more.
    More,
    /// Framing no reader could follow: the body (and the connection) ends with an error.
    Broken(&'static str),
}

impl Decoder {
    /// `limits`: the connection's head limits, from which hyper's bound on trailer lines
    /// follows (conn.rs gives hyper one field more than the limit).
    pub fn new(framing: Framing, limits: &HeadLimits) -> Decoder {
        let state = match framing {
            Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Size {
                digits: false,
                value: 0,
            },
        };
        Decoder {
            state,
            extensions: 0,
            trailers: Vec::new(),
            trailer_lines: 0,
            trailer_lines_limit: limits.fields.saturating_add(1),
        }
    }

    /// The next step of the body from `buf`, taking what it reads off it.
    pub fn step(&mut self, buf: &mut BytesMut) -> Step {
        use State::*;
        loop {
            match self.state {
                Done => return Step::Done,
                Length(left) | Data(left) => {
                    if buf.is_empty() {
                        return Step::More;
                    }
                    let n = left.min(buf.len() as u64);
                    let rest = left - n;
                    self.state = match (self.state, rest) {
                        (Length(_), 0) => Done,
                        (Length(_), r) => Length(r),
                        (_, 0) => DataCr,
                        (_, r) => Data(r),
                    };
                    // `n` fits: it is at most `buf.len()`.
                    return Step::Data(buf.split_to(n as usize).freeze());
                }
                _ => {}
            }
            let Some(&b) = buf.first() else {
                return Step::More;
            };
            let next = match (self.state, b) {
                (Size { value, .. }, _) if b.is_ascii_hexdigit() => {
                    let d = u64::from((b as char).to_digit(16).unwrap_or(0));
                    match value.checked_mul(16).and_then(|v| v.checked_add(d)) {
                        Some(value) => Size {
                            digits: true,
                            value,
                        },
                        None => return Step::Broken("a chunk size overflows"),
                    }
                }
                (Size { digits: false, .. }, _) => return Step::Broken("a chunk size is missing"),
                (Size { value, .. } | SizeLws { value }, b' ' | b'\t') => SizeLws { value },
                (Size { value, .. } | SizeLws { value }, b';') => Extension { value },
                (Size { value, .. } | SizeLws { value } | Extension { value }, b'\r') => {
                    SizeLf { value }
                }
                (Extension { .. }, b'\n') => return Step::Broken("a chunk extension has a LF"),
                (Extension { value }, _) => {
                    self.extensions += 1;
                    if self.extensions >= EXTENSIONS_LIMIT {
                        return Step::Broken("chunk extensions are too long");
                    }
                    Extension { value }
                }
                (SizeLf { value: 0 }, b'\n') => EndCr,
                (SizeLf { value }, b'\n') => Data(value),
                (DataCr, b'\r') => DataLf,
                (DataLf, b'\n') => Size {
                    digits: false,
                    value: 0,
                },
                (EndCr, b'\r') => {
                    if !self.trailers.is_empty() && !self.keep(b) {
                        return Step::Broken(TRAILERS_TOO_LONG);
                    }
                    EndLf
                }
                (EndCr | Trailer, _) => {
                    if !self.keep(b) {
                        return Step::Broken(TRAILERS_TOO_LONG);
                    }
                    if b == b'\r' {
                        TrailerLf
                    } else {
                        Trailer
                    }
                }
                (TrailerLf, b'\n') => {
                    if self.trailer_lines >= self.trailer_lines_limit {
                        return Step::Broken("too many trailers");
                    }
                    self.trailer_lines += 1;
                    if !self.keep(b) {
                        return Step::Broken(TRAILERS_TOO_LONG);
                    }
                    EndCr
                }
                (EndLf, b'\n') => {
                    if !self.trailers.is_empty() {
                        if !self.keep(b) {
                            return Step::Broken(TRAILERS_TOO_LONG);
                        }
                        if !trailers_parse(&self.trailers, self.trailer_lines) {
                            return Step::Broken("the trailers are malformed");
                        }
                        self.trailers = Vec::new();
                    }
                    Done
                }
                _ => return Step::Broken("the chunked framing is malformed"),
            };
            buf.advance(1);
            self.state = next;
        }
    }
}

const TRAILERS_TOO_LONG: &str = "the trailers are too long";

impl Decoder {
    /// Keeps a byte of the trailer section; `false` once it reaches hyper's bound.
    fn keep(&mut self, b: u8) -> bool {
        self.trailers.push(b);
        self.trailers.len() < TRAILERS_LIMIT
    }
}

/// Whether hyper takes this trailer section of `lines` lines: fields httparse parses, in
/// that many slots, each name and value one `http` takes.
fn trailers_parse(section: &[u8], lines: usize) -> bool {
    let mut fields = vec![httparse::EMPTY_HEADER; lines];
    match httparse::parse_headers(section, &mut fields) {
        Ok(httparse::Status::Complete((_, fields))) => fields.iter().all(|f| {
            http::HeaderName::from_bytes(f.name.as_bytes()).is_ok()
                && http::HeaderValue::from_bytes(f.value).is_ok()
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body's data and how it ended, fed `split` bytes at a time.
    fn decode(framing: Framing, wire: &[u8], split: usize) -> (Vec<u8>, Step, Vec<u8>) {
        let limits = HeadLimits {
            bytes: 8192,
            target: 4096,
            fields: 100,
        };
        let mut d = Decoder::new(framing, &limits);
        let mut buf = BytesMut::new();
        let mut data = Vec::new();
        let mut fed = 0;
        loop {
            match d.step(&mut buf) {
                Step::Data(b) => data.extend_from_slice(&b),
                Step::More if fed < wire.len() => {
                    let n = split.min(wire.len() - fed);
                    buf.extend_from_slice(&wire[fed..fed + n]);
                    fed += n;
                }
                end => {
                    let mut rest = buf.to_vec();
                    rest.extend_from_slice(&wire[fed..]);
                    return (data, end, rest);
                }
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_alike_whatever_the_read_sizes() {
        let wire = b"5;ext=1\r\nhello\r\n0006\r\n world\r\n0\r\nx-t: 1\r\n\r\nNEXT";
        for split in [1, 2, 3, 7, 100] {
            let (data, end, rest) = decode(Framing::Chunked, wire, split);
            assert_eq!(data, b"hello world", "split {split}");
            assert_eq!(end, Step::Done);
            assert_eq!(rest, b"NEXT");
        }
    }

    #[test]
    fn a_length_ends_where_it_says() {
        let (data, end, rest) = decode(Framing::Length(3), b"abcdef", 2);
        assert_eq!(
            (data.as_slice(), end, rest.as_slice()),
            (&b"abc"[..], Step::Done, &b"def"[..])
        );
    }

    #[test]
    fn broken_chunked_framing_is_refused() {
        for wire in [
            &b"g\r\n"[..],
            b"\r\n",
            b"5\nhello\r\n",
            b"5\r\nhelloXX",
            b"5;a\nb\r\n",
            b"fffffffffffffffff\r\n",
        ] {
            let (_, end, _) = decode(Framing::Chunked, wire, 64);
            assert!(matches!(end, Step::Broken(_)), "{wire:?}: {end:?}");
        }
    }

    #[test]
    fn trailers_hyper_cannot_parse_break_the_body_as_they_do_on_hyper() {
        let many: String = (0..102).map(|i| format!("t{i}: 1\r\n")).collect();
        let long = format!("x: {}\r\n", "t".repeat(16377));
        for trailers in [
            "bad\r\n",
            "t: 1\nu: 2\r\n",
            "t: a\0b\r\n",
            "t: 1\r\n folded\r\n",
            many.as_str(),
            long.as_str(),
        ] {
            let wire = format!("5\r\nhello\r\n0\r\n{trailers}\r\n");
            let (_, end, _) = decode(Framing::Chunked, wire.as_bytes(), 64);
            assert!(matches!(end, Step::Broken(_)), "{trailers:?}: {end:?}");
        }
    }

    #[test]
    fn trailers_and_extensions_at_hyper_s_bounds_are_taken() {
        let lines: String = (0..101).map(|i| format!("t{i}: 1\r\n")).collect();
        let long = format!("x: {}\r\n", "t".repeat(16376));
        for wire in [
            format!("5\r\nhello\r\n0\r\n{lines}\r\nNEXT"),
            format!("5\r\nhello\r\n0\r\n{long}\r\nNEXT"),
            format!(
                "5;{}\r\nhello\r\n0;{}\r\n{long}\r\nNEXT",
                "e".repeat(8000),
                "e".repeat(8382)
            ),
        ] {
            let (data, end, rest) = decode(Framing::Chunked, wire.as_bytes(), 100);
            assert_eq!(
                (data.as_slice(), &end, rest.as_slice()),
                (&b"hello"[..], &Step::Done, &b"NEXT"[..])
            );
        }
        let over = format!("5;{}\r\nhello\r\n0\r\n\r\n", "e".repeat(16384));
        assert!(matches!(
            decode(Framing::Chunked, over.as_bytes(), 100).1,
            Step::Broken(_)
        ));
    }

    #[test]
    fn a_body_cut_short_asks_for_more() {
        let (_, end, _) = decode(Framing::Chunked, b"5\r\nhel", 64);
        assert_eq!(end, Step::More);
        let (_, end, _) = decode(Framing::Length(9), b"abc", 64);
        assert_eq!(end, Step::More);
    }
}
