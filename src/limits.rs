//! Resource limits: how much a client may send and how long and how many connections it may
//! hold, so that one misbehaving client gets an error and the others are unaffected.
//!
//! Connection-level limits are applied to hyper's builder (one per connection, from the
//! current snapshot, so a reload applies them to new connections). Request-level limits are
//! checked in [`crate::proxy`] before anything is forwarded, and the body limit again while the
//! body streams.

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use serde::Deserialize;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A byte count written as an integer (`1048576`) or with a unit (`"64 KiB"`, `"10MB"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(ByteSize(n)),
            Raw::S(s) => parse_byte_size(&s).map(ByteSize).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "{s:?} is not a size (examples: 65536, \"64 KiB\", \"10 MB\")"
                ))
            }),
        }
    }
}

pub fn parse_byte_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" | "k" => 1_000,
        "kib" => 1 << 10,
        "mb" | "m" => 1_000_000,
        "mib" => 1 << 20,
        "gb" | "g" => 1_000_000_000,
        "gib" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// `[server.limits]`. Every limit has a default that suits a proxy for REST APIs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// All request header names and values together (431 beyond).
    pub max_header_size: ByteSize,
    /// Number of request header fields (431 beyond).
    pub max_headers: usize,
    /// Length of the request target, path and query (414 beyond).
    pub max_uri_length: ByteSize,
    /// Default request body limit for routes without their own `max_body_size`.
    pub max_body_size: Option<ByteSize>,
    /// Open client connections; more are answered 503 and closed.
    pub max_connections: usize,
    /// Deadline for a client's TLS handshake and HTTP/1 request head (slowloris). For HTTP/1
    /// the timer also runs while a kept-alive connection waits for its next request.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// A connection with no request in flight and no bytes moving is closed after this.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// HTTP/2 streams one connection may have open at once.
    pub h2_max_concurrent_streams: u32,
    /// HTTP/2 streams a client may open and reset before they are served ("rapid reset",
    /// CVE-2023-44487); beyond it the connection gets GOAWAY.
    pub h2_max_pending_reset_streams: usize,
    /// HTTP/2 streams the proxy may have to reset because of client errors before it closes
    /// the connection (CVE-2024-27316-style floods).
    pub h2_max_local_error_reset_streams: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_header_size: ByteSize(64 << 10),
            max_headers: 100,
            max_uri_length: ByteSize(8 << 10),
            max_body_size: None,
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            h2_max_concurrent_streams: 100,
            h2_max_pending_reset_streams: 20,
            h2_max_local_error_reset_streams: 1024,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error("request body exceeds this route's limit of {limit} bytes")]
    BodyTooLarge { limit: u64 },
    #[error("request target is {len} bytes long; the limit is {limit}")]
    UriTooLong { len: usize, limit: u64 },
    #[error("request headers take {len} bytes; the limit is {limit}")]
    HeadersTooLarge { len: usize, limit: u64 },
    #[error("request has {count} header fields; the limit is {limit}")]
    TooManyHeaders { count: usize, limit: usize },
    #[error("the request body did not start within {0:?}")]
    BodyTimeout(Duration),
}

impl LimitsConfig {
    /// Checks what the request head declares; nothing has been forwarded yet.
    pub fn check_head(&self, uri: &http::Uri, headers: &HeaderMap) -> Result<(), LimitError> {
        let target_len = uri.path_and_query().map_or(0, |p| p.as_str().len());
        if target_len as u64 > self.max_uri_length.0 {
            return Err(LimitError::UriTooLong {
                len: target_len,
                limit: self.max_uri_length.0,
            });
        }
        if headers.len() > self.max_headers {
            return Err(LimitError::TooManyHeaders {
                count: headers.len(),
                limit: self.max_headers,
            });
        }
        // Name, ": ", value and CRLF, as on an HTTP/1.1 wire, whatever the protocol.
        let len: usize = headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 4)
            .sum();
        if len as u64 > self.max_header_size.0 {
            return Err(LimitError::HeadersTooLarge {
                len,
                limit: self.max_header_size.0,
            });
        }
        Ok(())
    }

    /// The most a request head (request line and headers) may take on the wire.
    pub fn max_head_bytes(&self) -> usize {
        saturating_usize(self.max_header_size.0.saturating_add(self.max_uri_length.0))
            .saturating_add(1024)
    }

    /// A server builder for one connection with these limits applied.
    pub fn connection_builder(
        &self,
    ) -> hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor> {
        use hyper_util::rt::{TokioExecutor, TokioTimer};
        let mut b = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        // hyper's own head limit is the backstop; the exact limits are checked per request so
        // that the client gets the 414/431 in the proxy's JSON shape.
        let head = self.max_head_bytes();
        b.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_read_timeout)
            .max_headers(self.max_headers.saturating_add(1))
            // The read buffer bounds the request head: beyond it hyper answers 431 and closes.
            .max_buf_size(head.max(8192));
        b.http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(self.h2_max_concurrent_streams)
            .max_pending_accept_reset_streams(self.h2_max_pending_reset_streams)
            .max_local_error_reset_streams(self.h2_max_local_error_reset_streams)
            .max_header_list_size(u32::try_from(head).unwrap_or(u32::MAX));
        b
    }
}

fn saturating_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Refuses a request whose `Content-Length` already exceeds `limit`, before any byte of it is
/// read or forwarded.
pub fn check_declared_length(headers: &HeaderMap, limit: Option<u64>) -> Result<(), LimitError> {
    let Some(limit) = limit else { return Ok(()) };
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match declared {
        Some(n) if n > limit => Err(LimitError::BodyTooLarge { limit }),
        _ => Ok(()),
    }
}

/// How a request body ended, for telling the client's fault from the upstream's after the
/// upstream request failed.
#[derive(Debug, Default)]
pub struct BodyWatch {
    too_large: AtomicBool,
    broken: AtomicBool,
}

impl BodyWatch {
    pub fn too_large(&self) -> bool {
        self.too_large.load(Ordering::Acquire)
    }

    /// The client's body failed to read (malformed chunk, connection lost).
    pub fn broken(&self) -> bool {
        self.broken.load(Ordering::Acquire)
    }
}

/// A request body that fails once more than `limit` bytes have passed through it, and records
/// why it failed in `watch`, so the proxy can answer 413 or 400 rather than a gateway error.
pub struct LimitedBody<B> {
    inner: B,
    limit: u64,
    seen: u64,
    watch: Arc<BodyWatch>,
}

impl<B> LimitedBody<B> {
    pub fn new(inner: B, limit: Option<u64>, watch: Arc<BodyWatch>) -> Self {
        LimitedBody {
            inner,
            limit: limit.unwrap_or(u64::MAX),
            seen: 0,
            watch,
        }
    }
}

impl<B> Body for LimitedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<crate::upstream::BoxError>,
{
    type Data = Bytes;
    type Error = crate::upstream::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.seen = this.seen.saturating_add(data.len() as u64);
                    if this.seen > this.limit {
                        this.watch.too_large.store(true, Ordering::Release);
                        return Poll::Ready(Some(Err(Box::new(LimitError::BodyTooLarge {
                            limit: this.limit,
                        }))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.watch.broken.store(true, Ordering::Release);
                Poll::Ready(Some(Err(e.into())))
            }
            other => other.map(|_| None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Open connections, counted against the current snapshot's `max_connections` so that a
/// reload changes the limit without a restart.
#[derive(Debug, Default)]
pub struct ConnectionCounter(AtomicUsize);

/// Held for a connection's lifetime; dropping it frees the slot.
pub struct ConnectionSlot(Arc<ConnectionCounter>);

impl ConnectionCounter {
    pub fn try_acquire(self: &Arc<Self>, max: usize) -> Option<ConnectionSlot> {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| ConnectionSlot(self.clone()))
    }

    pub fn open(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a client over the connection limit gets: one attempt to say why, then the close.
/// Never awaits, so a flood of connections cannot pile up tasks.
pub const OVER_CAPACITY_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\nconnection: close\r\ncontent-length: 87\r\n\r\n\
{\"error_code\":\"too_many_connections\",\"message\":\"ims-proxy is at its connection limit\"}\n";

/// Whether a connection is idle: no request in flight and no bytes moved for a while.
#[derive(Debug)]
pub struct Activity {
    started: Instant,
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            started: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        })
    }

    fn touch(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let now = self.started.elapsed();
        now.saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::Relaxed)))
    }

    /// Marks a request in flight until the returned guard (kept with the response body) drops.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    /// Resolves once the connection has been idle for `timeout`.
    pub async fn idle(self: Arc<Self>, timeout: Duration) {
        loop {
            let idle_for = self.idle_for();
            let busy = self.in_flight.load(Ordering::Acquire) > 0;
            if !busy && idle_for >= timeout {
                return;
            }
            let wait = if busy { timeout } else { timeout - idle_for };
            tokio::time::sleep(wait.max(Duration::from_millis(10))).await;
        }
    }
}

pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request counted as in flight until it is done.
pub struct TrackedBody<B> {
    inner: B,
    _in_flight: InFlight,
}

impl<B> TrackedBody<B> {
    pub fn new(inner: B, in_flight: InFlight) -> Self {
        TrackedBody {
            inner,
            _in_flight: in_flight,
        }
    }
}

impl<B: Body + Unpin> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Connection I/O that records when bytes last moved.
pub struct ActivityIo<I> {
    inner: I,
    activity: Arc<Activity>,
}

impl<I> ActivityIo<I> {
    pub fn new(inner: I, activity: Arc<Activity>) -> Self {
        activity.touch();
        ActivityIo { inner, activity }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for ActivityIo<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for ActivityIo<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
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

    #[test]
    fn sizes_parse_with_and_without_units() {
        assert_eq!(parse_byte_size("65536"), Some(65536));
        assert_eq!(parse_byte_size("64 KiB"), Some(65536));
        assert_eq!(parse_byte_size("10MB"), Some(10_000_000));
        assert_eq!(parse_byte_size("1 gib"), Some(1 << 30));
        assert_eq!(parse_byte_size("ten"), None);
        assert_eq!(parse_byte_size("5 parsecs"), None);
        assert_eq!(parse_byte_size("99999999999999999999 GiB"), None);
    }

    #[test]
    fn the_connection_counter_refuses_beyond_the_limit_and_frees_on_drop() {
        let c = Arc::new(ConnectionCounter::default());
        let a = c.try_acquire(1);
        assert!(a.is_some());
        assert!(c.try_acquire(1).is_none());
        drop(a);
        assert!(c.try_acquire(1).is_some());
    }

    #[test]
    fn the_over_capacity_response_declares_its_body_length_exactly() {
        let text = std::str::from_utf8(OVER_CAPACITY_RESPONSE).unwrap_or("");
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or(("", ""));
        assert!(head.contains(&format!("content-length: {}", body.len())));
    }
}
