//! The lean server's framing against hyper's, on the same bytes (tests and `fuzz/` only).
//!
//! The lean server's claim: every request it takes from a connection's bytes is one hyper's
//! HTTP/1 server, behind the framing watcher, would also take, with the same method, target,
//! fields (in order) and body; a body it reports broken is one hyper's reports broken; and
//! what it hands to hyper, hyper then serves exactly as it would have on its own. [`compare`]
//! checks that claim for one connection's bytes:
//!
//! - the lean side runs `head::parse` and `decode::Decoder` the way `lean::Lean` does, request
//!   after request, until a hand-off, the end of the bytes, a broken body or `Connection:
//!   close`; once with every byte in one read, once in small reads (the decision must not
//!   depend on where reads end);
//! - the hyper side serves the bytes with hyper's HTTP/1 server (the head limits `conn.rs`
//!   builds from the default `[limits]`) behind [`FramingWatch`], over an in-memory pipe, and
//!   records each request its service sees with the watcher's verdict; a refused verdict is
//!   answered with `Connection: close`, as the pipeline answers it. No timer is set: timeouts
//!   are no part of framing, and the run is driven by hand, so it needs no clock;
//! - where the lean side hands the connection over, hyper serving the rest from a fresh state
//!   must see exactly what hyper serving the whole connection saw after those requests.
//!
//! The bytes are written as hyper reads them, and the end of the connection is sent only once
//! hyper waits for more: as a caller that sends everything and then closes, with no timing.

use super::super::conn::head_limits;
use super::super::framing::{FramingWatch, HeadLimits, Verdict, Verdicts};
use super::decode::{Decoder, Step};
use super::head::{self, Parsed};
use crate::config::LimitsConfig;
use bytes::{Bytes, BytesMut};
use http::{Method, Uri, Version};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// One request as a server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    method: Method,
    uri: Uri,
    version: Version,
    fields: Vec<(String, Bytes)>,
    body: Body,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Body {
    /// Read to its end: its data.
    Whole(Vec<u8>),
    /// The framing broke, or the bytes ended, before its end.
    Broken,
    /// Not read: the watcher refused the request.
    Unread,
}

/// How the lean side stopped taking requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Handed to hyper from this offset: the first byte of the head it would not take.
    Hand(usize, &'static str),
    /// The bytes ended between requests or mid-head.
    Eof,
    /// A body ended broken (or cut short): the connection closes.
    Broken,
    /// The request said `Connection: close`.
    Close,
}

#[derive(Debug)]
struct LeanRun {
    taken: Vec<Seen>,
    end: End,
}

fn limits() -> (LimitsConfig, HeadLimits) {
    let config = LimitsConfig::default();
    let head = head_limits(&config);
    (config, head)
}

/// Checks the claim above for `bytes`, one connection's worth: `Err` says where the two
/// servers part.
pub fn compare(bytes: &[u8]) -> Result<(), String> {
    let (config, head) = limits();
    let lean = run_lean(bytes, bytes.len().max(1), &head)?;
    let step = read_size(bytes);
    let split = run_lean(bytes, step, &head)?;
    // Where reads end may change why a head is handed over, never where.
    let at = |end: End| match end {
        End::Hand(at, _) => End::Hand(at, ""),
        other => other,
    };
    if split.taken != lean.taken || at(split.end) != at(lean.end) {
        return Err(format!(
            "the lean side decides differently in reads of {step}: {:?} / {:?} vs one read: {:?} / {:?}",
            split.end, split.taken, lean.end, lean.taken
        ));
    }
    let hyper = run_hyper(bytes, &config, &head)?;
    for (i, took) in lean.taken.iter().enumerate() {
        let Some((verdict, saw)) = hyper.get(i) else {
            return Err(format!(
                "request {i}: the lean side takes {took:?}; hyper sees no such request ({} in all)",
                hyper.len()
            ));
        };
        if let Some(v) = verdict {
            return Err(format!(
                "request {i}: the lean side takes {took:?}; the framing watcher refuses it: {v:?}"
            ));
        }
        if saw != took {
            return Err(format!(
                "request {i}: the lean side takes {took:?}; hyper sees {saw:?}"
            ));
        }
    }
    let k = lean.taken.len();
    match lean.end {
        End::Hand(at, why) => {
            let rest = hyper_from(bytes, at, &config, &head)?;
            if rest[..] != hyper[k..] {
                return Err(format!(
                    "handed to hyper at byte {at} ({why}): hyper from there sees {rest:?}; \
                     hyper on the whole connection saw {:?} after the lean side's {k}",
                    &hyper[k..]
                ));
            }
        }
        End::Eof | End::Broken | End::Close if hyper.len() != k => {
            return Err(format!(
                "the lean side ends the connection ({:?}) after {k} requests; hyper serves {}: {:?}",
                lean.end,
                hyper.len(),
                &hyper[k..]
            ));
        }
        End::Eof | End::Broken | End::Close => {}
    }
    Ok(())
}

/// The read size of the second lean run: small, varied with the input, and never so small
/// that a large head is parsed more than a few hundred times.
fn read_size(bytes: &[u8]) -> usize {
    let spread = bytes.iter().fold(0usize, |h, b| {
        h.wrapping_mul(31).wrapping_add(usize::from(*b))
    });
    (1 + spread % 61).max(bytes.len() / 256)
}

/// The lean server's loop over `bytes`, read `step` at a time.
fn run_lean(bytes: &[u8], step: usize, limits: &HeadLimits) -> Result<LeanRun, String> {
    let mut reads = bytes.chunks(step);
    let mut buf = BytesMut::new();
    // Bytes read off the connection so far.
    let mut read = 0usize;
    let mut taken = Vec::new();
    loop {
        let head = loop {
            if !buf.is_empty() {
                match head::parse(&mut buf, limits) {
                    Parsed::Head(h) => break h,
                    Parsed::Hand(why) => {
                        // hyper reads from the head's first byte, untouched.
                        let at = read - buf.len();
                        if buf[..] != bytes[at..read] {
                            return Err(format!(
                                "handing off ({why}) at byte {at}, the buffer is not the bytes \
                                 from there: {:?}",
                                String::from_utf8_lossy(&buf)
                            ));
                        }
                        return Ok(LeanRun {
                            taken,
                            end: End::Hand(at, why),
                        });
                    }
                    Parsed::Partial => {}
                }
            }
            match reads.next() {
                Some(r) => {
                    buf.extend_from_slice(r);
                    read += r.len();
                }
                None => {
                    return Ok(LeanRun {
                        taken,
                        end: End::Eof,
                    })
                }
            }
        };
        let mut decoder = Decoder::new(head.framing, limits);
        let mut data = Vec::new();
        let body = loop {
            match decoder.step(&mut buf) {
                Step::Data(d) => data.extend_from_slice(&d),
                Step::Done => break Body::Whole(data),
                Step::Broken(_) => break Body::Broken,
                Step::More => match reads.next() {
                    Some(r) => {
                        buf.extend_from_slice(r);
                        read += r.len();
                    }
                    None => break Body::Broken,
                },
            }
        };
        let (parts, ()) = head.request.into_parts();
        let broken = body == Body::Broken;
        taken.push(Seen {
            method: parts.method,
            uri: parts.uri,
            version: parts.version,
            fields: fields(&parts.headers),
            body,
        });
        if broken {
            return Ok(LeanRun {
                taken,
                end: End::Broken,
            });
        }
        if head.close {
            return Ok(LeanRun {
                taken,
                end: End::Close,
            });
        }
    }
}

fn fields(headers: &http::HeaderMap) -> Vec<(String, Bytes)> {
    headers
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), Bytes::copy_from_slice(v.as_bytes())))
        .collect()
}

type Record = Arc<Mutex<Vec<(Option<Verdict>, Seen)>>>;

/// hyper serving `bytes[at..]` on a fresh connection: every request its service sees.
fn hyper_from(
    bytes: &[u8],
    at: usize,
    config: &LimitsConfig,
    head: &HeadLimits,
) -> Result<Vec<(Option<Verdict>, Seen)>, String> {
    run_hyper(bytes.get(at..).unwrap_or_default(), config, head)
}

/// hyper serving `bytes`, behind the framing watcher, as `conn.rs` serves a connection:
/// every request its service sees, with the watcher's verdict on it.
fn run_hyper(
    bytes: &[u8],
    config: &LimitsConfig,
    head: &HeadLimits,
) -> Result<Vec<(Option<Verdict>, Seen)>, String> {
    let (mut client, server) = tokio::io::duplex(16 * 1024);
    let verdicts = Verdicts::default();
    let io = FramingWatch::new(server, *head, verdicts.clone());
    let record: Record = Arc::default();
    let seen = record.clone();
    let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
        let verdict = verdicts.next();
        let seen = seen.clone();
        async move {
            let (parts, mut incoming) = req.into_parts();
            let body = if verdict.is_some() {
                Body::Unread
            } else {
                let mut data = Vec::new();
                loop {
                    match incoming.frame().await {
                        None => break Body::Whole(data),
                        Some(Err(_)) => break Body::Broken,
                        Some(Ok(frame)) => {
                            if let Some(d) = frame.data_ref() {
                                data.extend_from_slice(d);
                            }
                        }
                    }
                }
            };
            let request = Seen {
                method: parts.method,
                uri: parts.uri,
                version: parts.version,
                fields: fields(&parts.headers),
                body,
            };
            if let Ok(mut seen) = seen.lock() {
                seen.push((verdict, request));
            }
            let mut resp = http::Response::new(http_body_util::Empty::<Bytes>::new());
            if verdict.is_some() {
                // As the pipeline answers a refused framing or an oversized head.
                resp.headers_mut().insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
            }
            Ok::<_, std::convert::Infallible>(resp)
        }
    });
    // The HTTP/1 settings of conn.rs's builder, but the timer.
    let mut conn = hyper::server::conn::http1::Builder::new()
        .header_read_timeout(None)
        .max_headers(config.max_headers.saturating_add(1))
        .max_buf_size(config.max_head_bytes().saturating_add(8192))
        .serve_connection(TokioIo::new(io), service);
    let woken = Arc::new(Flag(AtomicBool::new(false)));
    let waker = Waker::from(woken.clone());
    let mut cx = Context::from_waker(&waker);
    let mut written = 0;
    let mut shut = false;
    let mut answers = [0u8; 8192];
    // Each turn either moves a byte or ends: the bound is never reached by a run that ends.
    let turns = 64 + 16 * bytes.len();
    for _ in 0..turns {
        woken.0.store(false, Ordering::SeqCst);
        let mut moved = false;
        if Pin::new(&mut conn).poll(&mut cx).is_ready() {
            return Ok(taken(&record));
        }
        if written < bytes.len() {
            if let Poll::Ready(Ok(n)) = Pin::new(&mut client).poll_write(&mut cx, &bytes[written..])
            {
                written += n;
                moved |= n > 0;
            }
        }
        // The answers, read and dropped, so that hyper's writes never wait on the pipe.
        let mut out = ReadBuf::new(&mut answers);
        if let Poll::Ready(Ok(())) = Pin::new(&mut client).poll_read(&mut cx, &mut out) {
            moved |= !out.filled().is_empty();
        }
        if moved || woken.0.load(Ordering::SeqCst) {
            continue;
        }
        // Nothing moves: hyper waits for bytes that will not come.
        if written < bytes.len() || shut {
            return Ok(taken(&record));
        }
        shut = true;
        let _ = Pin::new(&mut client).poll_shutdown(&mut cx);
    }
    Err(format!(
        "hyper did not settle in {turns} turns on {} bytes",
        bytes.len()
    ))
}

fn taken(record: &Record) -> Vec<(Option<Verdict>, Seen)> {
    record.lock().map(|r| r.clone()).unwrap_or_default()
}

/// Set when anything the run waits on is ready again.
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn corpus() -> Vec<(String, Vec<u8>)> {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/http1_differential");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|f| f.map(|f| f.path()))
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        // What libFuzzer keeps beside the seeds (SHA-1 names) is local and not committed.
        files.retain(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            !name.is_some_and(|n| n.len() == 40 && n.bytes().all(|b| b.is_ascii_hexdigit()))
        });
        files.sort();
        files
            .into_iter()
            .map(|p| {
                let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                (p.display().to_string(), bytes)
            })
            .collect()
    }

    #[test]
    fn every_smuggling_case_the_suite_knows_is_taken_alike_or_handed_to_hyper() {
        let files = corpus();
        assert!(files.len() >= 100, "{} seeds", files.len());
        let differences: Vec<String> = files
            .iter()
            .filter_map(|(name, bytes)| compare(bytes).err().map(|e| format!("{name}: {e}")))
            .collect();
        assert!(differences.is_empty(), "{}", differences.join("\n"));
    }

    #[test]
    fn the_hyper_side_records_refusing_verdicts_and_broken_bodies() {
        // What the lean side is held to: a refusal, and a body hyper breaks, must show.
        let (config, head) = limits();
        let hyper = run_hyper(
            b"POST /a HTTP/1.1\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
            &config,
            &head,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            matches!(hyper.as_slice(), [(Some(Verdict::Ambiguous(_)), _)]),
            "{hyper:?}"
        );
        let broken = run_hyper(
            b"POST /a HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nbad\r\n\r\n",
            &config,
            &head,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            matches!(
                broken.as_slice(),
                [(
                    None,
                    Seen {
                        body: Body::Broken,
                        ..
                    }
                )]
            ),
            "{broken:?}"
        );
    }

    /// Pieces of requests, valid (first) and nasty (second), from which connections are built;
    /// mostly valid, so that a nasty piece is often the only one in its request.
    const METHODS: (&[&str], &[&str]) = (
        &["GET", "POST", "PUT", "DELETE", "PATCH"],
        &[
            "HEAD", "OPTIONS", "CONNECT", "PRI", "get", "G\tT", "X-\u{e9}", "",
        ],
    );
    const TARGETS: (&[&str], &[&str]) = (
        &["/", "/a?b=1", "/a/b%20c"],
        &[
            "*",
            "http://h/a",
            "h:443",
            "/a b",
            "/a%00",
            "/a\x7f",
            "",
            "//x",
            "/a#f",
            "/\u{e9}",
        ],
    );
    const VERSIONS: (&[&str], &[&str]) = (
        &["HTTP/1.1"],
        &[
            "HTTP/1.0",
            "HTTP/2.0",
            "http/1.1",
            "HTTP/1.1 ",
            "HTTP/1.2",
            "HTTP/1",
        ],
    );
    const ENDS: (&[&str], &[&str]) = (&["\r\n"], &["\n", "\r", "\r\r\n", "\n\r"]);
    const FIELDS: (&[&str], &[&str]) = (
        &[
            "host: x",
            "x-a: b",
            "content-length: 0",
            "content-length: 5",
            "Content-Length: 005",
            "transfer-encoding: chunked",
            "Transfer-Encoding: CHUNKED",
            "connection: close",
            "connection: keep-alive",
            "te: trailers",
            "x-a: caf\u{e9}",
            "x-e:",
        ],
        &[
            "content-length: +5",
            "content-length: 5,5",
            "content-length:  5 ",
            "content-length: 18446744073709551615",
            "content-length: 99999999999999999999",
            "transfer-encoding: chunked, chunked",
            "transfer-encoding: gzip, chunked",
            "transfer-encoding: identity",
            "transfer-encoding:",
            "transfer-encoding : chunked",
            "connection: keep-alive, close",
            "connection: upgrade",
            "upgrade: websocket",
            "expect: 100-continue",
            " folded",
            "\tfolded",
            "x-a: b\rc",
            "x-a: b\u{0}c",
            "x b: c",
            ": v",
            "x-\u{e9}: v",
        ],
    );
    const BODIES: (&[&str], &[&str]) = (
        &[
            "",
            "hello",
            "5\r\nhello\r\n0\r\n\r\n",
            "05;a=b\r\nhello\r\n0\r\n\r\n",
            "5 \r\nhello\r\n0;x\r\nt: 1\r\n\r\n",
        ],
        &[
            "5\r\nhello\r\n0\r\nt 1\r\n\r\n",
            "5\r\nhello\r\n0\r\nt: 1\nu: 2\r\n\r\n",
            "5\r\nhello\r\n0\r\nt: a\u{0}\r\n\r\n",
            "5\r\nhello\r\n0\r\n\nt: 1\r\n\r\n",
            "5\nhello\r\n0\r\n\r\n",
            "5\r\nhelloXY",
            "g\r\n",
            "ffffffffffffffffff\r\n",
            "0000000000000000000000005\r\nhello\r\n0\r\n\r\n",
            "5;a\nb\r\nhello\r\n0\r\n\r\n",
            "5 5\r\nhello\r\n0\r\n\r\n",
            "\r\n",
            "5\r\nhello\r\n0\r\n",
            "hel",
        ],
    );

    fn pick(
        (valid, nasty): (&'static [&'static str], &'static [&'static str]),
    ) -> impl Strategy<Value = &'static str> {
        prop_oneof![
            6 => proptest::sample::select(valid),
            1 => proptest::sample::select(nasty),
        ]
    }

    fn request() -> impl Strategy<Value = Vec<u8>> {
        (
            pick(METHODS),
            pick(TARGETS),
            pick(VERSIONS),
            proptest::collection::vec((pick(FIELDS), pick(ENDS)), 0..5),
            pick(ENDS),
            pick(BODIES),
        )
            .prop_map(|(method, target, version, fields, end, body)| {
                let mut r = format!("{method} {target} {version}\r\n");
                for (field, end) in fields {
                    r.push_str(field);
                    r.push_str(end);
                }
                r.push_str(end);
                r.push_str(body);
                // The strings stand for bytes: é for a byte over 0x7f.
                r.chars()
                    .map(|c| if c == '\u{e9}' { 0xe9 } else { c as u8 })
                    .collect()
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 400,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn connections_built_of_valid_and_nasty_pieces_are_taken_alike_or_handed_to_hyper(
            requests in proptest::collection::vec(request(), 1..4),
        ) {
            let bytes = requests.concat();
            if let Err(e) = compare(&bytes) {
                return Err(TestCaseError::fail(format!("{:?}: {e}", String::from_utf8_lossy(&bytes))));
            }
        }
    }
}
