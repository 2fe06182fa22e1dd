//! Bodies in flight have no deadline, only a pace: no more than `idle` between two frames
//! (nginx's `proxy_send_timeout`/`proxy_read_timeout`). A body that stalls while it is being
//! read fails with [`Stalled`]; the [`Progress`] it shares tells the exchange when the request
//! body has been sent (the response-head deadline starts then) and whether a stalled upload is
//! the caller's doing (the body waits for the caller) or the upstream's (it stopped reading).

use crate::base::error::BoxError;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

/// A body went `0` without a frame while it was being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no body bytes for {0:?}")]
pub struct Stalled(pub Duration);

/// How a body's transfer is going, shared with whoever waits on it.
#[derive(Debug)]
pub struct Progress {
    started: Instant,
    /// Milliseconds after `started` of the last frame.
    last_ms: AtomicU64,
    /// The body is waiting for its source (polled, nothing there yet).
    waiting: AtomicBool,
    done: AtomicBool,
    finished: Notify,
}

impl Progress {
    fn new(done: bool) -> Arc<Progress> {
        Arc::new(Progress {
            started: Instant::now(),
            last_ms: AtomicU64::new(0),
            waiting: AtomicBool::new(false),
            done: AtomicBool::new(done),
            finished: Notify::new(),
        })
    }

    fn touch(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn finish(&self) {
        self.done.store(true, Ordering::Release);
        self.finished.notify_waiters();
    }

    /// Resolves once the body has been read to its end.
    pub async fn sent(&self) {
        loop {
            let notified = self.finished.notified();
            if self.done.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    /// Resolves when the body has made no progress for `idle` while its reader was not
    /// waiting on it: the reader (the upstream) stopped reading. A body waiting for its own
    /// source fails by itself instead.
    pub async fn reader_stalled(&self, idle: Duration) {
        loop {
            let last = self.last_ms.load(Ordering::Relaxed);
            let at = self.started + Duration::from_millis(last) + idle;
            tokio::time::sleep_until(at.max(Instant::now())).await;
            let still = self.last_ms.load(Ordering::Relaxed) == last;
            if still && !self.waiting.load(Ordering::Relaxed) && !self.done.load(Ordering::Acquire)
            {
                return;
            }
            if still {
                // Waiting on the source: its own timer ends it; look again a pace later.
                tokio::time::sleep(idle).await;
            }
        }
    }
}

/// `inner`, failing with [`Stalled`] after `idle` without a frame while it is read.
pub struct Paced<B> {
    inner: B,
    idle: Duration,
    /// Made at the first wait: a body whose frames are there when asked (most responses: the
    /// body arrives with the head) never needs one, nor its allocation.
    timer: Option<Pin<Box<Sleep>>>,
    /// Shared with whoever waits on this body; none when no one does (a response body).
    progress: Option<Arc<Progress>>,
    /// Polled and found nothing since the last frame: the pace runs from that first poll.
    waiting: bool,
}

impl<B: Body> Paced<B> {
    pub fn new(inner: B, idle: Duration) -> (Paced<B>, Arc<Progress>) {
        // An empty body is never polled, so it would never be seen to end.
        let progress = Progress::new(inner.is_end_stream());
        let paced = Paced {
            inner,
            idle,
            timer: None,
            progress: Some(progress.clone()),
            waiting: false,
        };
        (paced, progress)
    }

    /// As [`Paced::new`], for a body no one waits on: no [`Progress`] to allocate or notify.
    pub fn unwatched(inner: B, idle: Duration) -> Paced<B> {
        Paced {
            inner,
            idle,
            timer: None,
            progress: None,
            waiting: false,
        }
    }
}

impl<B> Body for Paced<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(polled) => {
                this.waiting = false;
                if let Some(progress) = &this.progress {
                    progress.waiting.store(false, Ordering::Relaxed);
                    progress.touch();
                    // The pace restarts at the next wait (below), not here.
                    match &polled {
                        Some(Ok(_)) if !this.inner.is_end_stream() => {}
                        _ => progress.finish(),
                    }
                }
                Poll::Ready(polled.map(|r| r.map_err(Into::into)))
            }
            Poll::Pending => {
                let idle = this.idle;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                if !std::mem::replace(&mut this.waiting, true) {
                    // The pace counts from the moment the reader asked.
                    timer.as_mut().reset(Instant::now() + idle);
                    if let Some(progress) = &this.progress {
                        progress.waiting.store(true, Ordering::Relaxed);
                    }
                }
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        if let Some(progress) = &this.progress {
                            progress.finish();
                        }
                        Poll::Ready(Some(Err(Box::new(Stalled(this.idle)))))
                    }
                    Poll::Pending => Poll::Pending,
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_sending_fails_after_the_pace() {
        let frames = futures_util::stream::unfold(0u8, |n| async move {
            if n == 1 {
                std::future::pending::<()>().await;
            }
            Some((
                Ok::<_, BoxError>(Frame::data(Bytes::from_static(b"x"))),
                n + 1,
            ))
        });
        let (body, progress) =
            Paced::new(StreamBody::new(Box::pin(frames)), Duration::from_secs(2));
        let started = Instant::now();
        let err = body.collect().await.err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("no body bytes for 2s"));
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        progress.sent().await;
    }
}
