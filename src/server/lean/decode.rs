//! A request body's framing, read off the connection's buffer: a `Content-Length`, or chunked
//! exactly as hyper reads it (the framing watcher's rules: CRLF line ends, any number of
//! leading zeros short of overflow, optional whitespace and extensions after the size,
//! trailers read and dropped), with extensions and trailers bounded as hyper bounds them.

use super::head::Framing;
use bytes::{Buf as _, Bytes, BytesMut};

/// hyper's bound on a body's chunk extensions, and on its trailers, in bytes.
const EXTENSIONS_LIMIT: u64 = 16 * 1024;
const TRAILERS_LIMIT: u64 = 16 * 1024;

#[derive(Debug)]
pub struct Decoder {
    state: State,
    /// Bytes of extensions and trailers so far.
    extra: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Length(u64),
    Size { digits: bool, value: u64 },
    SizeLws { value: u64 },
    Extension { value: u64 },
    SizeLf { value: u64 },
    Data(u64),
    DataCr,
    DataLf,
    Trailer { line_empty: bool },
    TrailerLf { line_empty: bool },
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
    pub fn new(framing: Framing) -> Decoder {
        let state = match framing {
            Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Size {
                digits: false,
                value: 0,
            },
        };
        Decoder { state, extra: 0 }
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
                    self.extra += 1;
                    if self.extra > EXTENSIONS_LIMIT {
                        return Step::Broken("chunk extensions are too long");
                    }
                    Extension { value }
                }
                (SizeLf { value: 0 }, b'\n') => Trailer { line_empty: true },
                (SizeLf { value }, b'\n') => Data(value),
                (DataCr, b'\r') => DataLf,
                (DataLf, b'\n') => Size {
                    digits: false,
                    value: 0,
                },
                (Trailer { line_empty }, b'\r') => TrailerLf { line_empty },
                (Trailer { .. }, _) => {
                    self.extra += 1;
                    if self.extra > TRAILERS_LIMIT {
                        return Step::Broken("the trailers are too long");
                    }
                    Trailer { line_empty: false }
                }
                (TrailerLf { line_empty: true }, b'\n') => Done,
                (TrailerLf { line_empty: false }, b'\n') => Trailer { line_empty: true },
                _ => return Step::Broken("the chunked framing is malformed"),
            };
            buf.advance(1);
            self.state = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body's data and how it ended, fed `split` bytes at a time.
    fn decode(framing: Framing, wire: &[u8], split: usize) -> (Vec<u8>, Step, Vec<u8>) {
        let mut d = Decoder::new(framing);
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
    fn a_body_cut_short_asks_for_more() {
        let (_, end, _) = decode(Framing::Chunked, b"5\r\nhel", 64);
        assert_eq!(end, Step::More);
        let (_, end, _) = decode(Framing::Length(9), b"abc", 64);
        assert_eq!(end, Step::More);
    }
}
