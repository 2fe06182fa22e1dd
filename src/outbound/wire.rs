//! Whether an HTTP/1.1 upstream answered before it had the whole request. An upstream that
//! answers early (a 413, a 401 before the upload is read) may read the rest of the body as
//! requests of its own, or answer twice: what it sends next on that connection cannot be
//! trusted to answer the next request, which may be another caller's. So such a connection
//! carries no other request (nginx: `request_body_sent`); both outbound paths ask [`Wire`].
//!
//! "The whole request" means written to the socket, not handed to hyper: hyper buffers a body
//! (hundreds of KiB) that an upstream which stopped reading has not received. The connection's
//! I/O ([`Watched`]) sees the flush that follows the body's end and the first byte of the
//! answer; the body ([`Tracked`]) says when it begins and ends. An h2 connection has no such
//! queue (each answer is on its stream) and is not watched.

use super::egress::EgressStream;
use crate::base::error::BoxError;
use bytes::Bytes;
use http::Uri;
use http_body::{Body, Frame, SizeHint};
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_rustls::MaybeHttpsStream;
use hyper_util::client::legacy::connect::{CaptureConnection, Connected, Connection};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use tower_service::Service;

/// No request body between hyper and the socket (none, or written and flushed).
const IDLE: u8 = 0;
/// A request body is being handed to hyper.
const BODY: u8 = 1;
/// The body has been handed whole; some of it may still wait in hyper's buffer.
const ENDED: u8 = 2;
/// The upstream sent a byte before the body was written whole. For good.
const EARLY: u8 = 3;

/// One HTTP/1.1 upstream connection's order of events, shared by its I/O and the body of the
/// request on it.
#[derive(Debug, Default)]
pub struct Wire(AtomicU8);

impl Wire {
    fn step(&self, from: &[u8], to: u8) {
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                from.contains(&s).then_some(to)
            });
    }

    /// The upstream began an answer (or sent anything) before the request body was written
    /// whole: the connection must not carry another request.
    pub fn answered_early(&self) -> bool {
        self.0.load(Ordering::Acquire) == EARLY
    }
}

/// Connections as `C` opens them, each HTTP/1.1 one with a [`Wire`] of its own, in its
/// [`Connected`] extras (and so in each response's extensions, from the pool).
#[derive(Clone)]
pub struct Watching<C>(pub C);

impl<C> Service<Uri> for Watching<C>
where
    C: Service<Uri, Response = MaybeHttpsStream<EgressStream>>,
    C::Future: Send + 'static,
{
    type Response = Watched;
    type Error = C::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Watched, C::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let connecting = self.0.call(dst);
        Box::pin(async move {
            let io = connecting.await?;
            let h2 = io.connected().is_negotiated_h2();
            let wire = (!h2).then(|| Arc::new(Wire::default()));
            Ok(Watched { io, wire })
        })
    }
}

/// An upstream connection's I/O, telling its [`Wire`] when bytes arrive and when everything
/// hyper wrote has been flushed.
pub struct Watched {
    io: MaybeHttpsStream<EgressStream>,
    wire: Option<Arc<Wire>>,
}

impl Watched {
    /// The connection's [`Wire`]; `None` for h2.
    pub fn wire(&self) -> Option<Arc<Wire>> {
        self.wire.clone()
    }
}

impl Connection for Watched {
    fn connected(&self) -> Connected {
        let connected = self.io.connected();
        match &self.wire {
            Some(w) => connected.extra(w.clone()),
            None => connected,
        }
    }
}

impl Read for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let Some(wire) = &this.wire else {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        };
        // The bytes read are counted through a cursor of our own over the same memory.
        // SAFETY: the slice is only handed to a ReadBuf, which never de-initialises bytes,
        // and what it filled is advanced on `buf` by exactly that much.
        let unfilled = unsafe { buf.as_mut() };
        let mut inner = hyper::rt::ReadBuf::uninit(unfilled);
        let polled = Pin::new(&mut this.io).poll_read(cx, inner.unfilled());
        let n = inner.filled().len();
        if n > 0 {
            wire.step(&[BODY, ENDED], EARLY);
            // SAFETY: the inner read initialised these `n` bytes.
            unsafe { buf.advance(n) };
        }
        polled
    }
}

impl Write for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let flushed = Pin::new(&mut this.io).poll_flush(cx);
        // hyper flushes the socket only once its own buffer is empty: a body that had ended
        // has now been written whole.
        if let (Poll::Ready(Ok(())), Some(wire)) = (&flushed, &this.wire) {
            wire.step(&[ENDED], IDLE);
        }
        flushed
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

/// Which connection a request body goes on.
enum Target {
    /// Known before the request is sent (a caller's own connection).
    Known(Option<Arc<Wire>>),
    /// Chosen by the pool: looked up once the pool has chosen, at hyper's first look at the
    /// body (which comes before the head is written).
    Pooled {
        captured: CaptureConnection,
        wire: OnceLock<Option<Arc<Wire>>>,
    },
}

/// A request body that tells its connection's [`Wire`] when it begins and when it has ended.
pub struct Tracked<B> {
    inner: B,
    target: Target,
    begun: AtomicBool,
}

impl<B> Tracked<B> {
    pub fn on(inner: B, wire: Option<Arc<Wire>>) -> Tracked<B> {
        Tracked {
            inner,
            target: Target::Known(wire),
            begun: AtomicBool::new(false),
        }
    }

    pub fn pooled(inner: B, captured: CaptureConnection) -> Tracked<B> {
        Tracked {
            inner,
            target: Target::Pooled {
                captured,
                wire: OnceLock::new(),
            },
            begun: AtomicBool::new(false),
        }
    }

    fn wire(&self) -> Option<&Arc<Wire>> {
        match &self.target {
            Target::Known(w) => w.as_ref(),
            Target::Pooled { captured, wire } => {
                if let Some(w) = wire.get() {
                    return w.as_ref();
                }
                let found = {
                    let connected = captured.connection_metadata();
                    let connected = connected.as_ref()?;
                    let mut extras = http::Extensions::new();
                    connected.get_extras(&mut extras);
                    extras.remove::<Arc<Wire>>()
                };
                wire.get_or_init(|| found).as_ref()
            }
        }
    }

    /// hyper looks at the body (`is_end_stream`, `size_hint`) before it writes the head, so
    /// the body counts as begun before the upstream can have seen the request.
    fn touch(&self) -> Option<&Arc<Wire>> {
        let wire = self.wire()?;
        if !self.begun.swap(true, Ordering::AcqRel) {
            wire.step(&[IDLE], BODY);
        }
        Some(wire)
    }

    fn ended(&self) {
        if let Some(wire) = self.touch() {
            wire.step(&[BODY], ENDED);
        }
    }
}

/// hyper drops a body it is done with: after its trailers, after the last byte of its
/// `Content-Length` (without asking for the end), or when the connection fails. Whatever it
/// took is in its buffer, and the flush that follows writes it.
impl<B> Drop for Tracked<B> {
    fn drop(&mut self) {
        if self.begun.load(Ordering::Acquire) {
            if let Some(wire) = self.wire() {
                wire.step(&[BODY], ENDED);
            }
        }
    }
}

impl<B> Body for Tracked<B>
where
    B: Body<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.touch();
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            self.ended();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        let end = self.inner.is_end_stream();
        if end {
            self.ended();
        } else {
            self.touch();
        }
        end
    }

    fn size_hint(&self) -> SizeHint {
        self.touch();
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(w: &Wire) -> u8 {
        w.0.load(Ordering::Acquire)
    }

    #[test]
    fn an_answer_after_the_body_was_flushed_is_not_early() {
        let w = Wire::default();
        w.step(&[IDLE], BODY);
        w.step(&[BODY], ENDED);
        w.step(&[ENDED], IDLE);
        w.step(&[BODY, ENDED], EARLY);
        assert!(!w.answered_early());
    }

    #[test]
    fn an_answer_while_the_body_waits_in_hyper_s_buffer_is_early_and_stays_so() {
        let w = Wire::default();
        w.step(&[IDLE], BODY);
        w.step(&[BODY], ENDED);
        w.step(&[BODY, ENDED], EARLY);
        w.step(&[ENDED], IDLE);
        w.step(&[IDLE], BODY);
        assert!(w.answered_early());
        assert_eq!(state(&w), EARLY);
    }

    #[test]
    fn a_body_is_begun_at_hyper_s_first_look_and_ended_when_dropped() {
        let w = Arc::new(Wire::default());
        use http_body_util::BodyExt as _;
        let body = http_body_util::Full::new(Bytes::from_static(b"x"))
            .map_err(|e| -> BoxError { match e {} })
            .boxed();
        let tracked = Tracked::on(body, Some(w.clone()));
        assert_eq!(state(&w), IDLE);
        let _ = tracked.size_hint();
        assert_eq!(state(&w), BODY);
        drop(tracked);
        assert_eq!(state(&w), ENDED);
    }
}
