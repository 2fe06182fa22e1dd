//! Keeping a small request body while it streams, so a request the upstream rejected with 401
//! (a revoked or early-expired token) can be sent once more with a new token. The body is
//! forwarded frame by frame as it arrives; only a copy of up to `limit` bytes is kept, and
//! nothing at all once the body proves larger.

use super::observed::{Observed, Observer};
use crate::base::error::BoxError;
use bytes::Bytes;
use http_body::{Body, Frame};
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
struct Copy {
    chunks: Vec<Bytes>,
    len: usize,
    /// Larger than the limit, carried trailers, or failed: cannot be replayed.
    given_up: bool,
    complete: bool,
}

/// A handle on what a [`Kept`] observer kept.
#[derive(Debug, Clone, Default)]
pub struct KeptBody(Arc<Mutex<Copy>>);

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

    fn update(&self, f: impl FnOnce(&mut Copy)) {
        if let Ok(mut k) = self.0.lock() {
            f(&mut k);
        }
    }
}

/// Keeps a copy of up to `limit` bytes of the body it observes.
pub struct Kept {
    limit: usize,
    kept: KeptBody,
}

/// Forwards `inner` unchanged while keeping a copy of up to `limit` bytes.
pub fn keep<B: Body>(inner: B, limit: usize) -> (Observed<B, Kept>, KeptBody) {
    let kept = KeptBody::default();
    if inner.is_end_stream() {
        // An empty body is never polled, so it would never be seen to end.
        kept.update(|k| k.complete = true);
    }
    let observer = Kept {
        limit,
        kept: kept.clone(),
    };
    (Observed::new(inner, observer), kept)
}

impl Observer for Kept {
    fn on_frame(&mut self, frame: &Frame<Bytes>) -> Result<(), BoxError> {
        let limit = self.limit;
        self.kept.update(|kept| {
            if kept.given_up {
                return;
            }
            match frame.data_ref() {
                Some(data) if kept.len + data.len() <= limit => {
                    kept.len += data.len();
                    kept.chunks.push(data.clone());
                }
                _ => {
                    kept.given_up = true;
                    kept.chunks = Vec::new();
                }
            }
        });
        Ok(())
    }

    fn on_error(&mut self, _error: &BoxError) {
        self.kept.update(|k| k.given_up = true);
    }

    fn on_end(&mut self, completed: bool) {
        if completed {
            self.kept.update(|k| k.complete = true);
        }
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
        let (tee, kept) = keep(chunks(&[b"ab", b"cd"]), 10);
        assert!(kept.replayable().is_none(), "not read yet");
        let out = tee.collect().await.unwrap().to_bytes();
        assert_eq!(out, "abcd");
        assert_eq!(kept.replayable().unwrap(), "abcd");
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_forwarded_whole_but_not_kept() {
        let (tee, kept) = keep(chunks(&[b"abc", b"def"]), 4);
        assert_eq!(tee.collect().await.unwrap().to_bytes(), "abcdef");
        assert!(kept.replayable().is_none());
    }

    #[tokio::test]
    async fn an_empty_body_is_replayable() {
        let (tee, kept) = keep(Full::new(Bytes::new()), 0);
        tee.collect().await.unwrap();
        assert_eq!(kept.replayable().unwrap(), "");
    }
}
