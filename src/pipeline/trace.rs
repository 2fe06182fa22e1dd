//! W3C Trace Context (level 1): the caller's `traceparent` when it is valid, else one the
//! proxy starts, so that every upstream call carries a trace id and the access log names it.
//! Parsed by hand: the header is 55 fixed-position bytes, and this runs on every request.

use crate::base::headers::{TRACEPARENT, TRACESTATE};
use http::header::{HeaderMap, HeaderValue};

/// The ids of a `traceparent`: `version-traceid-parentid-flags`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: u128,
    pub parent_id: u64,
    pub flags: u8,
}

/// The request's trace: the caller's, or one started here, and what the upstream gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trace {
    pub trace_id: u128,
    /// The caller's valid `traceparent`, when it sent one.
    pub caller: Option<TraceParent>,
    /// The proxy's own span, when it records one (span export on, trace sampled).
    pub span_id: Option<u64>,
    /// The `traceparent` the upstream gets instead of the caller's; `None`: the caller's,
    /// untouched.
    upstream: Option<TraceParent>,
}

impl Trace {
    /// The caller's trace when its `traceparent` is valid and alone, else a new one. With
    /// `recording`, a sampled trace (a new one, or the caller's with its sampled flag) gets a
    /// span of the proxy's, and the upstream sees that span as its parent.
    pub fn from_headers(headers: &HeaderMap, recording: bool) -> Trace {
        let mut all = headers.get_all(&TRACEPARENT).iter();
        let caller = match (all.next(), all.next()) {
            (Some(v), None) => parse(v.as_bytes()),
            _ => None,
        };
        match caller {
            Some(c) if recording && c.flags & SAMPLED != 0 => {
                let span_id = nonzero(rand::random());
                Trace {
                    trace_id: c.trace_id,
                    caller,
                    span_id: Some(span_id),
                    upstream: Some(TraceParent {
                        parent_id: span_id,
                        ..c
                    }),
                }
            }
            Some(c) => Trace {
                trace_id: c.trace_id,
                caller,
                span_id: None,
                upstream: None,
            },
            None => {
                let trace_id = nonzero(rand::random());
                let parent_id = nonzero(rand::random());
                Trace {
                    trace_id,
                    caller: None,
                    span_id: recording.then_some(parent_id),
                    upstream: Some(TraceParent {
                        trace_id,
                        parent_id,
                        // Sampled only when the proxy records its span: it does not ask the
                        // upstream to record a trace no one will see the start of.
                        flags: if recording { SAMPLED } else { 0 },
                    }),
                }
            }
        }
    }

    /// Puts the trace into the upstream's request headers. A `tracestate` goes with the
    /// caller's trace only: a replaced `traceparent` takes it along (the spec's rule).
    pub fn apply(&self, headers: &mut HeaderMap) {
        if let Some(up) = &self.upstream {
            if self.caller.is_none() {
                headers.remove(&TRACESTATE);
            }
            if let Ok(v) = HeaderValue::from_bytes(&up.header()) {
                headers.insert(TRACEPARENT, v);
            }
        }
    }
}

/// The `sampled` bit of `trace-flags`.
pub const SAMPLED: u8 = 1;

impl TraceParent {
    /// `00-<trace id>-<parent id>-<flags>`, 55 bytes.
    pub fn header(&self) -> [u8; 55] {
        let mut out = [b'-'; 55];
        out[..2].copy_from_slice(b"00");
        hex_into(&mut out[3..35], self.trace_id);
        hex_into(&mut out[36..52], u128::from(self.parent_id));
        hex_into(&mut out[53..55], u128::from(self.flags));
        out
    }
}

/// Lowercase hex of the low `out.len() / 2` bytes of `n`, most significant first.
pub fn hex_into(out: &mut [u8], n: u128) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = out.len();
    for (i, c) in out.iter_mut().enumerate() {
        *c = HEX[(n >> (4 * (digits - 1 - i))) as usize & 0xf];
    }
}

fn nonzero<T: Default + PartialEq + From<u8>>(n: T) -> T {
    if n == T::default() {
        T::from(1)
    } else {
        n
    }
}

/// A `traceparent` per W3C Trace Context level 1, or `None` when the spec says to discard
/// it: wrong length or dashes, a digit that is not lowercase hex, version `ff`, an all-zero
/// trace id or parent id. A version above `00` is read as `00` when it starts the same way
/// (55 bytes, or more after a `-`), as the spec asks for forward compatibility.
pub fn parse(b: &[u8]) -> Option<TraceParent> {
    if b.len() < 55 || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
        return None;
    }
    let version = hex(&b[..2])?;
    if version == 0xff || (version == 0 && b.len() != 55) || (b.len() > 55 && b[55] != b'-') {
        return None;
    }
    let trace_id = hex(&b[3..35])?;
    let parent_id = hex(&b[36..52])? as u64;
    let flags = hex(&b[53..55])? as u8;
    (trace_id != 0 && parent_id != 0).then_some(TraceParent {
        trace_id,
        parent_id,
        flags,
    })
}

/// Lowercase hex digits (at most 32) as a number.
fn hex(digits: &[u8]) -> Option<u128> {
    digits.iter().try_fold(0u128, |n, &c| {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        Some(n << 4 | u128::from(d))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_specs_example_parses_into_its_ids_and_flags() {
        assert_eq!(
            parse(VALID.as_bytes()),
            Some(TraceParent {
                trace_id: 0x4bf92f3577b34da6a3ce929d0e0e4736,
                parent_id: 0x00f067aa0ba902b7,
                flags: 1,
            })
        );
    }

    #[test]
    fn a_parsed_traceparent_writes_back_byte_for_byte() {
        let tp = parse(VALID.as_bytes()).expect("valid");
        assert_eq!(&tp.header()[..], VALID.as_bytes());
    }

    #[test]
    fn what_the_spec_says_to_discard_does_not_parse() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
            "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(parse(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn a_later_version_is_read_by_its_version_00_prefix() {
        let later = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds";
        assert_eq!(
            parse(later.as_bytes()).map(|t| t.trace_id),
            Some(0x4bf92f3577b34da6a3ce929d0e0e4736)
        );
    }

    #[test]
    fn a_started_trace_replaces_the_callers_headers_with_a_valid_traceparent() {
        let mut h = HeaderMap::new();
        h.insert(&TRACEPARENT, HeaderValue::from_static("garbage"));
        h.insert(&TRACESTATE, HeaderValue::from_static("vendor=1"));
        let trace = Trace::from_headers(&h, false);
        assert_eq!(trace.caller, None);
        trace.apply(&mut h);
        assert!(!h.contains_key(&TRACESTATE));
        let sent = parse(h[&TRACEPARENT].as_bytes()).expect("a valid traceparent");
        assert_eq!(sent.trace_id, trace.trace_id);
        assert_eq!(sent.flags, 0);
    }

    #[test]
    fn two_traceparent_headers_start_a_new_trace() {
        let mut h = HeaderMap::new();
        h.append(&TRACEPARENT, HeaderValue::from_static(VALID));
        h.append(&TRACEPARENT, HeaderValue::from_static(VALID));
        assert_eq!(Trace::from_headers(&h, false).caller, None);
    }

    #[test]
    fn a_valid_traceparent_and_its_tracestate_are_left_as_they_are() {
        let mut h = HeaderMap::new();
        h.insert(&TRACEPARENT, HeaderValue::from_static(VALID));
        h.insert(&TRACESTATE, HeaderValue::from_static("vendor=1"));
        let trace = Trace::from_headers(&h, false);
        trace.apply(&mut h);
        assert_eq!(h[&TRACEPARENT], VALID);
        assert_eq!(h[&TRACESTATE], "vendor=1");
    }

    #[test]
    fn a_recorded_span_becomes_the_upstreams_parent_in_the_callers_trace() {
        let mut h = HeaderMap::new();
        h.insert(&TRACEPARENT, HeaderValue::from_static(VALID));
        h.insert(&TRACESTATE, HeaderValue::from_static("vendor=1"));
        let trace = Trace::from_headers(&h, true);
        let span = trace.span_id.expect("a span");
        trace.apply(&mut h);
        let sent = parse(h[&TRACEPARENT].as_bytes()).expect("valid");
        assert_eq!(sent.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(sent.parent_id, span);
        assert_eq!(sent.flags, SAMPLED);
        assert_eq!(h[&TRACESTATE], "vendor=1");
    }

    #[test]
    fn an_unsampled_callers_trace_is_not_recorded_and_passes_untouched() {
        let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        let mut h = HeaderMap::new();
        h.insert(&TRACEPARENT, HeaderValue::from_static(unsampled));
        let trace = Trace::from_headers(&h, true);
        assert_eq!(trace.span_id, None);
        trace.apply(&mut h);
        assert_eq!(h[&TRACEPARENT], unsampled);
    }

    #[test]
    fn a_trace_started_while_recording_is_sampled_with_the_span_as_parent() {
        let mut h = HeaderMap::new();
        let trace = Trace::from_headers(&h, true);
        trace.apply(&mut h);
        let sent = parse(h[&TRACEPARENT].as_bytes()).expect("valid");
        assert_eq!(Some(sent.parent_id), trace.span_id);
        assert_eq!(sent.flags, SAMPLED);
    }
}
