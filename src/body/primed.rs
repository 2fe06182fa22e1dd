//! Reading a request body's first frame before anything is sent upstream, so a body broken
//! from its first byte (an invalid chunk size, say) is refused with nothing forwarded.

use super::limited::{BodyError, BodyFailure};
use bytes::Bytes;
use http_body::{Body, Frame};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// Reads the first frame of a request body before anything is sent upstream, so that a body
/// broken from its first byte (an invalid chunk size, say) is refused with nothing forwarded.
/// Later breakage aborts the upstream request mid-body, which an upstream must treat as an
/// incomplete request.
pub async fn read_first_frame<B>(mut body: B) -> Result<Primed<B>, B::Error>
where
    B: Body<Data = Bytes> + Unpin,
{
    if body.is_end_stream() {
        return Ok(Primed {
            first: None,
            rest: body,
        });
    }
    let first = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
    Ok(Primed {
        first: first.transpose()?,
        rest: body,
    })
}

/// The first frame of a caller's body, within `deadline` (`header_read_timeout`). Every body
/// the proxy reads from a caller starts here, already paced and limited, whether it is
/// forwarded or read by the proxy itself (the IMS token endpoint): a refusal is the caller's
/// fault, as `failure` recorded it (408 late or stalled, 413 too large, 400 broken).
pub async fn first_frame<B>(
    body: B,
    deadline: Duration,
    failure: &BodyFailure,
) -> Result<Primed<B>, BodyError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let first = tokio::time::timeout(deadline, read_first_frame(body))
        .await
        .map_err(|_| BodyError::Timeout(deadline))?;
    first.map_err(|e| {
        failure
            .get()
            .unwrap_or_else(|| BodyError::Broken(e.to_string()))
    })
}

/// A body whose first frame has already been read.
pub struct Primed<B> {
    first: Option<Frame<Bytes>>,
    rest: B,
}

impl<B> Body for Primed<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(f) = self.first.take() {
            return Poll::Ready(Some(Ok(f)));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        let rest = self.rest.size_hint();
        let Some(n) = self
            .first
            .as_ref()
            .and_then(|f| f.data_ref())
            .map(|d| d.len() as u64)
        else {
            return rest;
        };
        // Raise the upper bound before the lower, so the two never cross.
        let mut hint = http_body::SizeHint::new();
        if let Some(u) = rest.upper() {
            hint.set_upper(u.saturating_add(n));
        }
        hint.set_lower(rest.lower().saturating_add(n));
        hint
    }
}
