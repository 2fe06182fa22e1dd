//! The per-request access log event and request metrics, emitted once, when the response body
//! has been sent (or abandoned): only then are the bytes and the total duration known.
//!
//! The record rides inside the response body ([`Observed`]), so it also holds whatever must
//! live exactly as long as the response: the route's concurrency permit.

use crate::ratelimit::Permit;
use bytes::Bytes;
use http::{HeaderValue, Method};
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Everything the access log line and the request metrics say about one request.
#[derive(Debug)]
pub struct AccessRecord {
    pub started: Instant,
    pub request_id: HeaderValue,
    pub method: Method,
    pub path: String,
    pub client: Option<String>,
    pub route: Option<String>,
    pub credential: Option<String>,
    pub status: u16,
    pub upstream: Option<Duration>,
    pub bytes_in: Arc<AtomicU64>,
    pub bytes_out: u64,
    /// Released with the record: a route's `max_concurrent` counts streaming bodies too.
    pub permit: Option<Permit>,
}

impl AccessRecord {
    fn finish(&self, completed: bool) {
        let duration = self.started.elapsed();
        let bytes_in = self.bytes_in.load(Ordering::Relaxed);
        let route = self.route.as_deref().unwrap_or("-");
        tracing::info!(
            target: "ims_proxy::access",
            request_id = self.request_id.to_str().unwrap_or(""),
            client = self.client.as_deref().unwrap_or("-"),
            method = self.method.as_str(),
            path = self.path.as_str(),
            route,
            credential = self.credential.as_deref().unwrap_or("-"),
            status = self.status,
            bytes_in,
            bytes_out = self.bytes_out,
            duration_ms = duration.as_secs_f64() * 1000.0,
            upstream_ms = self.upstream.map(|d| d.as_secs_f64() * 1000.0),
            completed,
            "request"
        );
        crate::metrics::request(&crate::metrics::RequestRecord {
            route,
            method: &self.method,
            status: self.status,
            duration,
            upstream: self.upstream,
            bytes_in,
            bytes_out: self.bytes_out,
        });
    }
}

/// A response body that counts the bytes it sends and reports the request when it is done.
pub struct Observed<B> {
    inner: B,
    record: Option<Box<AccessRecord>>,
}

impl<B> Observed<B> {
    pub fn new(inner: B, record: AccessRecord) -> Self {
        Observed {
            inner,
            record: Some(Box::new(record)),
        }
    }

    fn finish(&mut self, completed: bool) {
        if let Some(r) = self.record.take() {
            r.finish(completed);
        }
    }
}

impl<B> Drop for Observed<B> {
    fn drop(&mut self) {
        // Dropped before its end: the client went away or the connection was cut.
        self.finish(false);
    }
}

impl<B> Body for Observed<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(d), Some(r)) = (frame.data_ref(), this.record.as_mut()) {
                    r.bytes_out += d.len() as u64;
                }
                if this.inner.is_end_stream() {
                    this.finish(true);
                }
            }
            Poll::Ready(None) => this.finish(true),
            Poll::Ready(Some(Err(_))) => this.finish(false),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body that counts the bytes the client sent.
pub struct Counted<B> {
    inner: B,
    count: Arc<AtomicU64>,
}

impl<B> Counted<B> {
    pub fn new(inner: B, count: Arc<AtomicU64>) -> Self {
        Counted { inner, count }
    }
}

impl<B> Body for Counted<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(d) = frame.data_ref() {
                self.count.fetch_add(d.len() as u64, Ordering::Relaxed);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
