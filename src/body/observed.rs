//! The one body wrapper: [`Observed`] runs an [`Observer`] over every frame of a body and tells
//! it, once, how the body ended. Trailers are the one thing an observer may change (or drop):
//! they are headers, and the proxy filters headers.

use crate::base::error::BoxError;
use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

/// One job done on a body as it streams.
pub trait Observer {
    /// A frame on its way through; an error here ends the body with that error.
    #[inline]
    fn on_frame(&mut self, _frame: &Frame<Bytes>) -> Result<(), BoxError> {
        Ok(())
    }

    /// Trailers on their way through: what to pass on instead, `None` for nothing. Runs
    /// before [`Observer::on_frame`] sees them.
    #[inline]
    fn on_trailers(&mut self, trailers: HeaderMap) -> Option<HeaderMap> {
        Some(trailers)
    }

    /// The body the observer wraps failed.
    #[inline]
    fn on_error(&mut self, _error: &BoxError) {}

    /// Called once: `completed` when the last frame went through, false when the body failed
    /// or was dropped before its end. The observer is dropped right after, so whatever it holds
    /// (a permit, a guard) lives exactly as long as the body.
    #[inline]
    fn on_end(&mut self, _completed: bool) {}
}

/// Two jobs on one body, in order.
impl<A: Observer, B: Observer> Observer for (A, B) {
    fn on_frame(&mut self, frame: &Frame<Bytes>) -> Result<(), BoxError> {
        self.0.on_frame(frame)?;
        self.1.on_frame(frame)
    }

    fn on_trailers(&mut self, trailers: HeaderMap) -> Option<HeaderMap> {
        self.0
            .on_trailers(trailers)
            .and_then(|t| self.1.on_trailers(t))
    }

    fn on_error(&mut self, error: &BoxError) {
        self.0.on_error(error);
        self.1.on_error(error);
    }

    fn on_end(&mut self, completed: bool) {
        self.0.on_end(completed);
        self.1.on_end(completed);
    }
}

/// `inner` with `O` watching it.
pub struct Observed<B, O: Observer> {
    inner: B,
    observer: Option<O>,
}

impl<B, O: Observer> Observed<B, O> {
    pub fn new(inner: B, observer: O) -> Self {
        Observed {
            inner,
            observer: Some(observer),
        }
    }

    fn end(&mut self, completed: bool) {
        if let Some(mut o) = self.observer.take() {
            o.on_end(completed);
        }
    }
}

impl<B, O: Observer> Drop for Observed<B, O> {
    fn drop(&mut self) {
        // Dropped before its end: the peer went away or the exchange was abandoned.
        self.end(false);
    }
}

impl<B, O> Body for Observed<B, O>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
    O: Observer + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = loop {
            let polled = match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(p) => p,
            };
            // Only a trailers frame pays for this, and only when an observer changes them.
            let Some(Ok(frame)) = polled else {
                break polled;
            };
            if !frame.is_trailers() {
                break Some(Ok(frame));
            }
            let mapped = match (frame.into_trailers(), this.observer.as_mut()) {
                (Ok(t), Some(o)) => o.on_trailers(t).map(Frame::trailers),
                (Ok(t), None) => Some(Frame::trailers(t)),
                (Err(f), _) => Some(f),
            };
            match mapped {
                Some(f) => break Some(Ok(f)),
                // Dropped: trailers are a body's last frame, so this is its end.
                None if this.inner.is_end_stream() => break None,
                None => continue,
            }
        };
        match polled {
            Some(Ok(frame)) => {
                if let Some(o) = this.observer.as_mut() {
                    if let Err(e) = o.on_frame(&frame) {
                        this.end(false);
                        return Poll::Ready(Some(Err(e)));
                    }
                }
                // Senders stop polling once a body says it is done (Content-Length reached),
                // so the final `None` may never come.
                if this.inner.is_end_stream() {
                    this.end(true);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(e)) => {
                let e: BoxError = e.into();
                if let Some(o) = this.observer.as_mut() {
                    o.on_error(&e);
                }
                this.end(false);
                Poll::Ready(Some(Err(e)))
            }
            None => {
                this.end(true);
                Poll::Ready(None)
            }
        }
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Counts the data bytes that pass.
pub struct ByteCount(pub Arc<AtomicU64>);

impl Observer for ByteCount {
    #[inline]
    fn on_frame(&mut self, frame: &Frame<Bytes>) -> Result<(), BoxError> {
        if let Some(d) = frame.data_ref() {
            self.0.fetch_add(d.len() as u64, Ordering::Relaxed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};
    use std::sync::atomic::AtomicBool;

    struct Ends(Arc<AtomicBool>, Arc<AtomicBool>);

    impl Observer for Ends {
        fn on_end(&mut self, completed: bool) {
            self.0.store(true, Ordering::SeqCst);
            self.1.store(completed, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn an_observer_learns_that_a_body_completed_and_how_many_bytes_passed() {
        let count = Arc::new(AtomicU64::new(0));
        let (ended, completed) = (Arc::default(), Arc::default());
        let body = Observed::new(
            Full::new(Bytes::from_static(b"hello")),
            (
                ByteCount(count.clone()),
                Ends(Arc::clone(&ended), Arc::clone(&completed)),
            ),
        );
        assert_eq!(
            body.collect().await.map(|b| b.to_bytes()).ok(),
            Some("hello".into())
        );
        assert_eq!(count.load(Ordering::SeqCst), 5);
        assert!(ended.load(Ordering::SeqCst) && completed.load(Ordering::SeqCst));
    }

    struct NoTrailers;

    impl Observer for NoTrailers {
        fn on_trailers(&mut self, _: HeaderMap) -> Option<HeaderMap> {
            None
        }
    }

    #[tokio::test]
    async fn an_observer_can_drop_trailers_and_the_body_still_completes() {
        let mut t = HeaderMap::new();
        t.insert("x-api-key", http::HeaderValue::from_static("smuggled"));
        let inner = http_body_util::StreamBody::new(futures_util::stream::iter([
            Ok::<_, BoxError>(Frame::data(Bytes::from_static(b"hello"))),
            Ok(Frame::trailers(t)),
        ]));
        let (ended, completed) = (Arc::default(), Arc::default());
        let body = Observed::new(
            inner,
            (NoTrailers, Ends(Arc::clone(&ended), Arc::clone(&completed))),
        );
        let got = body.collect().await.ok();
        assert!(got.as_ref().is_some_and(|c| c.trailers().is_none()));
        assert_eq!(got.map(|c| c.to_bytes()), Some("hello".into()));
        assert!(ended.load(Ordering::SeqCst) && completed.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_body_dropped_before_its_end_is_reported_incomplete() {
        let (ended, completed) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(true)),
        );
        let body = Observed::new(
            Full::new(Bytes::from_static(b"hello")),
            Ends(ended.clone(), completed.clone()),
        );
        drop(body);
        assert!(ended.load(Ordering::SeqCst));
        assert!(!completed.load(Ordering::SeqCst));
    }
}
