//! The caller's request body as a listener hands it to the request path: hyper's, or one the
//! lean HTTP/1.1 server feeds from its connection task. One type, so the request path is the
//! same code whichever server read the head.

use crate::base::error::BoxError;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

pub enum Inbound {
    Hyper(Incoming),
    Fed(Fed),
}

/// Why a fed body ended before its framing said it would: the caller's fault, as hyper's
/// `Incoming` reports a broken body.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct FedError(pub &'static str);

/// A body the lean server's connection task feeds: whole when it arrived with its head (the
/// common case, no channel), or frame by frame through a small channel as the task reads it.
pub struct Fed {
    state: FedState,
}

enum FedState {
    /// The whole body. `exact`: its framing gave its length (`Content-Length`), as hyper's
    /// size hint says; a chunked body is forwarded chunked even when it came whole.
    Whole { data: Option<Bytes>, exact: bool },
    Stream {
        rx: mpsc::Receiver<Result<Bytes, FedError>>,
        /// `Content-Length` bytes not yet yielded; `None` for a chunked body.
        left: Option<u64>,
    },
}

/// The connection task's end of a streamed [`Fed`] body.
pub type Feeder = mpsc::Sender<Result<Bytes, FedError>>;

/// Frames queued between the connection task and the request path: the socket is read no
/// further ahead of the upstream than this.
const QUEUED: usize = 2;

impl Fed {
    /// A body that arrived whole with its head; `exact` as for `Content-Length`.
    pub fn whole(data: Bytes, exact: bool) -> Fed {
        Fed {
            state: FedState::Whole {
                data: (!data.is_empty()).then_some(data),
                exact,
            },
        }
    }

    /// A body the connection task feeds frame by frame; `length`: its `Content-Length`.
    pub fn stream(length: Option<u64>) -> (Fed, Feeder) {
        let (tx, rx) = mpsc::channel(QUEUED);
        let state = FedState::Stream { rx, left: length };
        (Fed { state }, tx)
    }
}

impl Body for Fed {
    type Data = Bytes;
    type Error = FedError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, FedError>>> {
        match &mut self.get_mut().state {
            FedState::Whole { data, .. } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            FedState::Stream { rx, left } => {
                if *left == Some(0) {
                    return Poll::Ready(None);
                }
                match rx.poll_recv(cx) {
                    Poll::Ready(Some(Ok(data))) => {
                        if let Some(l) = left {
                            *l = l.saturating_sub(data.len() as u64);
                        }
                        Poll::Ready(Some(Ok(Frame::data(data))))
                    }
                    Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
                    // The task stopped feeding before the length's end: never an end that
                    // looks complete. (A chunked body's task sends its error before it stops.)
                    Poll::Ready(None) if left.is_some() => {
                        Poll::Ready(Some(Err(FedError("the connection ended mid-body"))))
                    }
                    Poll::Ready(None) => Poll::Ready(None),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.state {
            FedState::Whole { data, .. } => data.is_none(),
            FedState::Stream { left, .. } => *left == Some(0),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.state {
            FedState::Whole { data, exact: true } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            FedState::Whole { data: None, .. } => SizeHint::with_exact(0),
            FedState::Whole { .. } => SizeHint::default(),
            FedState::Stream { left: Some(l), .. } => SizeHint::with_exact(*l),
            FedState::Stream { left: None, .. } => SizeHint::default(),
        }
    }
}

impl Body for Inbound {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Inbound::Hyper(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            Inbound::Fed(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Inbound::Hyper(b) => b.is_end_stream(),
            Inbound::Fed(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Inbound::Hyper(b) => b.size_hint(),
            Inbound::Fed(b) => b.size_hint(),
        }
    }
}
