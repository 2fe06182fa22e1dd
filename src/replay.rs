//! Keeping a small request body while it streams, so a request the upstream rejected with 401
//! (a revoked or early-expired token) can be sent once more with a new token. The body is
//! forwarded frame by frame as it arrives; only a copy of up to `limit` bytes is kept, and
//! nothing at all once the body proves larger.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

#[derive(Debug, Default)]
struct Kept {
    chunks: Vec<Bytes>,
    len: usize,
    /// Larger than the limit, carried trailers, or failed: cannot be replayed.
    given_up: bool,
    complete: bool,
}

/// A handle on what a [`TeeBody`] kept.
#[derive(Debug, Clone, Default)]
pub struct KeptBody(Arc<Mutex<Kept>>);

impl KeptBody {
    /// The whole body, when it was read to its end and fit within the limit.
    pub fn replayable(&self) -> Option<Bytes> {
        let kept = self.0.lock().ok()?;
        if kept.given_up || !kept.complete {
            return None;
        }
        let mut out = Vec::with_capacity(kept.len);
        for c in &kept.chunks {
            out.extend_from_slice(c);
        }
        Some(Bytes::from(out))
    }
}

/// Forwards `inner` unchanged while keeping a copy of up to `limit` bytes.
pub struct TeeBody<B> {
    inner: B,
    limit: usize,
    kept: KeptBody,
}

impl<B: Body> TeeBody<B> {
    pub fn new(inner: B, limit: usize) -> (TeeBody<B>, KeptBody) {
        let kept = KeptBody::default();
        if inner.is_end_stream() {
            // An empty body is never polled, so it would never be seen to end.
            if let Ok(mut k) = kept.0.lock() {
                k.complete = true;
            }
        }
        (
            TeeBody {
                inner,
                limit,
                kept: kept.clone(),
            },
            kept,
        )
    }
}

impl<B> Body for TeeBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let limit = self.limit;
        if let Ok(mut kept) = self.kept.0.lock() {
            match &polled {
                Poll::Ready(Some(Ok(frame))) if !kept.given_up => match frame.data_ref() {
                    Some(data) if kept.len + data.len() <= limit => {
                        kept.len += data.len();
                        kept.chunks.push(data.clone());
                    }
                    _ => {
                        kept.given_up = true;
                        kept.chunks = Vec::new();
                    }
                },
                Poll::Ready(Some(Err(_))) => kept.given_up = true,
                Poll::Ready(None) => kept.complete = true,
                _ => {}
            }
            // Senders stop polling once a body says it is done (content-length reached), so
            // the final `None` may never come.
            if self.inner.is_end_stream() {
                kept.complete = true;
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

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full, StreamBody};

    fn chunks(parts: &[&'static [u8]]) -> impl Body<Data = Bytes, Error = std::io::Error> + Unpin {
        let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = parts
            .iter()
            .map(|p| Ok(Frame::data(Bytes::from_static(p))))
            .collect();
        StreamBody::new(futures_util::stream::iter(frames))
    }

    #[tokio::test]
    async fn a_small_body_is_forwarded_and_kept() {
        let (tee, kept) = TeeBody::new(chunks(&[b"ab", b"cd"]), 10);
        assert!(kept.replayable().is_none(), "not read yet");
        let out = tee.collect().await.unwrap().to_bytes();
        assert_eq!(out, "abcd");
        assert_eq!(kept.replayable().unwrap(), "abcd");
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_forwarded_whole_but_not_kept() {
        let (tee, kept) = TeeBody::new(chunks(&[b"abc", b"def"]), 4);
        assert_eq!(tee.collect().await.unwrap().to_bytes(), "abcdef");
        assert!(kept.replayable().is_none());
    }

    #[tokio::test]
    async fn an_empty_body_is_replayable() {
        let (tee, kept) = TeeBody::new(Full::new(Bytes::new()), 0);
        tee.collect().await.unwrap();
        assert_eq!(kept.replayable().unwrap(), "");
    }
}
