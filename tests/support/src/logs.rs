//! Capturing everything the proxy logs, at trace level, to scan it for secrets.
//!
//! The capture is the calling thread's default subscriber, so it sees everything a
//! `#[tokio::test]` (current-thread runtime) runs: the proxy, the fake upstream, and whatever
//! they spawn onto that runtime. Extend [`scan`]'s callers with every secret a scenario
//! creates (static tokens, client keys, IMS-issued tokens, client secrets).

use std::io::Write;
use std::sync::{Arc, Mutex};
use tracing_subscriber::fmt::MakeWriter;

#[derive(Clone, Default)]
pub struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buffer {
    type Writer = Buffer;
    fn make_writer(&'a self) -> Buffer {
        self.clone()
    }
}

pub struct LogCapture {
    start: usize,
}

static GLOBAL: std::sync::OnceLock<Buffer> = std::sync::OnceLock::new();

/// Captures every event and span at trace level, in text and JSON both (fields are rendered
/// differently in each), from now on. The subscriber is the process-wide default, installed
/// once: thread-local defaults miss events when tests run in parallel (tracing caches callsite
/// interest globally). So the capture also holds what other tests in the same binary log,
/// which only widens a secret scan; assertions that look for a line must look for their own.
pub fn capture_trace() -> LogCapture {
    let buffer = GLOBAL.get_or_init(|| {
        use tracing_subscriber::layer::SubscriberExt;
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::filter::LevelFilter::TRACE)
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(buffer.clone()),
            )
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(buffer.clone()),
            );
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other global subscriber in a test binary that captures logs");
        buffer
    });
    LogCapture {
        start: buffer.0.lock().expect("log buffer").len(),
    }
}

impl LogCapture {
    /// Everything logged since this capture started.
    pub fn text(&self) -> String {
        let buf = GLOBAL
            .get()
            .expect("capture installed")
            .0
            .lock()
            .expect("log buffer");
        String::from_utf8_lossy(&buf[self.start.min(buf.len())..]).into_owned()
    }

    /// The access log event (JSON) of the request with `x-request-id: id`, once it is written
    /// (when the response body has ended, which may be just after the client has read it).
    pub async fn access_line(&self, id: &str) -> serde_json::Value {
        let find = || {
            self.text()
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find(|e| e["target"] == "ims_proxy::access" && e["request_id"] == id)
        };
        crate::poll(std::time::Duration::from_secs(10), || {
            std::future::ready(find())
        })
        .await
        .unwrap_or_else(|| panic!("no access line for {id} in {}", self.text()))
    }
}

/// Every `(what, secret)` found in `haystack`, under the names given; empty when clean.
/// A secret is also looked for base64-encoded (standard and URL-safe alphabets), the way
/// Basic auth or a JWT segment carries it, wherever it starts in the encoded bytes: Basic
/// auth encodes `name:key`, so the key's encoding depends on the name's length modulo 3.
pub fn scan<'a>(haystack: &str, secrets: &[(&'a str, &str)]) -> Vec<&'a str> {
    secrets
        .iter()
        .filter(|(_, s)| {
            !s.is_empty()
                && (haystack.contains(s)
                    || base64_like::encodings(s)
                        .iter()
                        .any(|e| haystack.contains(e.as_str())))
        })
        .map(|(what, _)| *what)
        .collect()
}

mod base64_like {
    const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    /// What `s` looks like inside any base64 text, in both alphabets and at each of the three
    /// offsets it can start at: only the characters made of `s`'s bits alone, so that whatever
    /// comes before or after it in the encoded bytes does not matter.
    pub fn encodings(s: &str) -> Vec<String> {
        let mut out = Vec::new();
        for alphabet in [STANDARD, URL_SAFE] {
            for shift in 0..3 {
                let mut bytes = vec![0u8; shift];
                bytes.extend_from_slice(s.as_bytes());
                let encoded = encode(&bytes, alphabet);
                // Characters holding a bit of the `shift` bytes before `s`: 0, 2 or 3.
                let head = [0, 2, 3][shift];
                // The last character is complete only when `s` ends on a 3-byte boundary.
                let whole = (bytes.len() * 8) / 6;
                let core: String = encoded.chars().take(whole).skip(head).collect();
                // Too short a core would match by chance.
                if core.len() >= 8 {
                    out.push(core);
                }
            }
        }
        out
    }

    /// Base64 without padding.
    fn encode(b: &[u8], alphabet: &[u8; 64]) -> String {
        let mut out = String::new();
        for chunk in b.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, &x)| acc | (u32::from(x) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                out.push(alphabet[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }
}
