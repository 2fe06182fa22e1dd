//! The lean HTTP/1.1 server (`server.http1 = "lean"`): the common exchange on a plain-TCP
//! caller connection, read and written by the proxy itself, in the connection's own task.
//!
//! hyper's server is general: two state machines, a task hand-off per request, a copy of
//! every head into its own types. Here one task owns the socket: it parses a head with
//! httparse where it lies ([`head`]), gives the request path a body that is either already
//! whole (the usual small body came with its head) or fed from this task ([`decode`]), and
//! writes the answer's head byte-wise, with the first frame of its body when it is ready
//! ([`encode`]). The request path (every check, limit, header rule, the 401 replay, the
//! access log) is the same code on both servers.
//!
//! What it cannot frame with certainty it never tries: such a request, from its first byte,
//! and everything after it on the connection, goes to hyper behind the framing watcher
//! ([`super::conn::hyper_conn`]), on a fresh connection state, before a byte of it is
//! forwarded; the caller gets exactly the hyper path's answer.

mod decode;
#[cfg(any(test, fuzzing))]
pub mod differential;
mod encode;
mod head;
mod rewind;

use super::conn::{drive, head_limits, hyper_conn, Drainable, Ended};
use super::framing::HeadLimits;
use super::idle::{Activity, Strikes};
use crate::base::error::BoxError;
use crate::body::{Fed, FedError, Feeder, Inbound, Observed};
use crate::outbound::Affinity;
use crate::pipeline::{self, ConnMeta};
use crate::state::{Shared, Snapshot};
use bytes::{Bytes, BytesMut};
use decode::{Decoder, Step};
use encode::{Encoder, Known};
use futures_util::FutureExt as _;
use head::{Framing, Head, Parsed};
use http_body::Body as _;
use http_body_util::BodyExt as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

/// Room made in the buffer before each read of a head, and of a streamed body.
const HEAD_READ: usize = 8 * 1024;
const BODY_READ: usize = 64 * 1024;

/// A body frame this small is copied behind the head (or the chunk before it) so that the
/// answer leaves in one write; a larger one is written on its own.
const COPY_BEHIND: usize = 16 * 1024;

/// One caller connection on the lean server, under the same clocks as hyper's ([`drive`]).
pub(super) async fn serve(
    stream: TcpStream,
    meta: ConnMeta,
    snapshot: &Snapshot,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<()>,
    strikes: Arc<Strikes>,
) -> Ended {
    let activity = Activity::new(snapshot.conn_limits.h2_max_premature_resets, strikes);
    let (drain, draining) = watch::channel(false);
    let lean = Lean {
        stream,
        buf: BytesMut::with_capacity(HEAD_READ),
        out: Vec::with_capacity(1024),
        meta,
        shared,
        activity: activity.clone(),
        affinity: Affinity::new(),
        limits: head_limits(&snapshot.limits),
        header_timeout: snapshot.limits.header_read_timeout,
    };
    let conn = LeanConn {
        drain,
        run: Box::pin(lean.run(snapshot, draining)),
    };
    drive(conn, activity, &snapshot.conn_limits, shutdown, meta.peer).await
}

/// The connection as [`drive`] sees it: a future that can be told to drain.
struct LeanConn<'a> {
    drain: watch::Sender<bool>,
    run: Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send + 'a>>,
}

impl Future for LeanConn<'_> {
    type Output = Result<(), BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.run.as_mut().poll(cx)
    }
}

impl Drainable for LeanConn<'_> {
    fn drain(self: Pin<&mut Self>) {
        self.drain.send_replace(true);
    }
}

struct Lean {
    stream: TcpStream,
    /// Read and not yet used: a head's start, a body's bytes, pipelined requests.
    buf: BytesMut,
    /// An answer's head (and small first frame) on its way out.
    out: Vec<u8>,
    meta: ConnMeta,
    shared: Arc<Shared>,
    activity: Arc<Activity>,
    affinity: Arc<Affinity>,
    limits: HeadLimits,
    header_timeout: Duration,
}

/// How the caller's side of an exchange ended early.
enum Caller {
    /// It closed the connection (or it broke).
    Left,
    /// Its body's framing broke, or it ended mid-body: the connection cannot go on.
    Broke,
}

enum Next {
    Head(Box<Head>),
    Hand(&'static str),
    Closed,
}

impl Lean {
    async fn run(
        mut self,
        snapshot: &Snapshot,
        mut draining: watch::Receiver<bool>,
    ) -> Result<(), BoxError> {
        loop {
            match self.read_head(&mut draining).await? {
                Next::Closed => return Ok(()),
                Next::Hand(why) => return self.hand_off(snapshot, why, draining).await,
                Next::Head(head) => {
                    let last = *draining.borrow();
                    if !self.exchange(*head, last).await? {
                        let _ = self.stream.shutdown().await;
                        return Ok(());
                    }
                }
            }
        }
    }

    /// The next request head: whole, for hyper, or none (the caller closed, the head was
    /// too slow, the connection drains between requests).
    async fn read_head(&mut self, draining: &mut watch::Receiver<bool>) -> std::io::Result<Next> {
        let mut deadline = None;
        loop {
            if !self.buf.is_empty() {
                match head::parse(&mut self.buf, &self.limits) {
                    Parsed::Head(h) => return Ok(Next::Head(h)),
                    Parsed::Hand(why) => return Ok(Next::Hand(why)),
                    Parsed::Partial => {}
                }
                // A head under way has `header_read_timeout` to end, as on hyper's server.
                deadline.get_or_insert_with(|| Instant::now() + self.header_timeout);
            } else if *draining.borrow() {
                return Ok(Next::Closed);
            }
            self.buf.reserve(HEAD_READ);
            let read = self.stream.read_buf(&mut self.buf);
            let n = match deadline {
                Some(at) => match tokio::time::timeout_at(at, read).await {
                    Ok(n) => n?,
                    Err(_) => {
                        tracing::debug!(peer = %self.meta.peer, "closing a connection whose request head was too slow");
                        return Ok(Next::Closed);
                    }
                },
                None => tokio::select! {
                    n = read => n?,
                    // Between requests a drain closes the connection at once.
                    _ = draining.changed() => continue,
                },
            };
            if n == 0 {
                return Ok(Next::Closed);
            }
        }
    }

    /// From here on the connection is hyper's, starting with the bytes already read.
    async fn hand_off(
        self,
        snapshot: &Snapshot,
        why: &'static str,
        mut draining: watch::Receiver<bool>,
    ) -> Result<(), BoxError> {
        tracing::trace!(peer = %self.meta.peer, why, "handing the connection to hyper");
        let io = rewind::Rewound::new(self.buf, self.stream);
        let conn = hyper_conn(io, self.meta, snapshot, self.shared, None, self.activity);
        tokio::pin!(conn);
        if *draining.borrow() {
            conn.as_mut().drain();
        }
        loop {
            tokio::select! {
                done = conn.as_mut() => return done,
                changed = draining.changed() => match changed {
                    Ok(()) => conn.as_mut().drain(),
                    Err(_) => return conn.await,
                },
            }
        }
    }

    /// One request and its answer. Whether the connection can carry another.
    async fn exchange(&mut self, head: Head, draining: bool) -> Result<bool, BoxError> {
        let Head {
            request,
            framing,
            close,
            trailers,
        } = head;
        let method = request.method().clone();
        let mut decoder = Decoder::new(framing, &self.limits);
        let (body, feeder, mut broken) = self.body(&mut decoder, framing);
        let req = request.map(|()| Inbound::Fed(body));
        let mut in_flight = self.activity.begin(false);
        let watch_limit = self.limits.bytes;
        let Lean {
            stream,
            buf,
            out,
            meta,
            shared,
            affinity,
            ..
        } = self;
        let (mut rd, mut wr) = stream.split();
        // The body read on, beside the request path and then beside the answer.
        // The caller's side of the socket, beside the request path and then beside the
        // answer: the rest of the body, then a watch for the caller leaving.
        let body_read = AtomicBool::new(feeder.is_none() && !broken);
        let pumped = feeder.is_some();
        let caller = async {
            if let Some(tx) = feeder {
                if pump(&mut rd, buf, &mut decoder, tx).await.is_err() {
                    return Caller::Broke;
                }
                body_read.store(true, Ordering::Relaxed);
            }
            // As hyper's server does: a caller that closes its side while its request is in
            // flight cancels it (the upstream request with it). Bytes it sends meanwhile are
            // its next requests, kept, up to a head's limit.
            loop {
                if buf.len() >= watch_limit {
                    std::future::pending::<()>().await;
                }
                buf.reserve(HEAD_READ);
                match rd.read_buf(buf).await {
                    Ok(0) | Err(_) => return Caller::Left,
                    Ok(_) => {}
                }
            }
        };
        tokio::pin!(caller);
        let mut caller_done = false;
        let handle = pipeline::handle(shared, req, *meta, Some(affinity.clone()));
        tokio::pin!(handle);
        let resp = loop {
            tokio::select! {
                biased;
                resp = &mut handle => break resp,
                side = &mut caller, if !caller_done => {
                    caller_done = true;
                    match side {
                        Caller::Left => return Err("the caller closed its connection mid-request".into()),
                        Caller::Broke => broken = true,
                    }
                }
            }
        };
        if resp.body().is_end_stream() {
            in_flight.complete();
        }
        let (parts, body) = resp.into_parts();
        let known = if body.is_end_stream() {
            Known::Empty
        } else {
            body.size_hint()
                .exact()
                .map_or(Known::Unknown, Known::Exact)
        };
        let mut body = Observed::new(body, in_flight);
        out.clear();
        let head = encode::head(out, &parts, known, &method, trailers, close || draining);
        let write = write_body(&mut wr, out, &mut body, head.encoder);
        tokio::pin!(write);
        let written = loop {
            tokio::select! {
                biased;
                written = &mut write => break written,
                side = &mut caller, if !caller_done => {
                    caller_done = true;
                    match side {
                        Caller::Left => return Err("the caller closed its connection mid-answer".into()),
                        Caller::Broke => broken = true,
                    }
                }
            }
        };
        written?;
        // The upstream may still be reading the body it answered early: it goes on reading
        // until the body's end or until the request path lets go of it (its pace bounds a
        // caller that stops sending), as on hyper's server.
        if pumped && !caller_done && !body_read.load(Ordering::Relaxed) {
            let side = std::future::poll_fn(|cx| match caller.as_mut().poll(cx) {
                Poll::Ready(side) => Poll::Ready(Some(side)),
                Poll::Pending if body_read.load(Ordering::Relaxed) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            })
            .await;
            broken |= side.is_some();
        }
        // A body left unread leaves the connection mid-request: it cannot carry another.
        Ok(body_read.load(Ordering::Relaxed) && !broken && !head.last)
    }

    /// The request's body: whole when it came with its head, else fed by this task as it
    /// reads. `true` when its framing is already broken (the body reports it; the
    /// connection then closes).
    fn body(&mut self, decoder: &mut Decoder, framing: Framing) -> (Fed, Option<Feeder>, bool) {
        let exact = framing != Framing::Chunked;
        let mut whole = BytesMut::new();
        let mut first = None::<Bytes>;
        loop {
            match decoder.step(&mut self.buf) {
                // One frame (the usual body) is kept as it lies; more are gathered.
                Step::Data(data) if first.is_none() && whole.is_empty() => first = Some(data),
                Step::Data(data) => {
                    if let Some(f) = first.take() {
                        whole.extend_from_slice(&f);
                    }
                    whole.extend_from_slice(&data);
                }
                Step::Done => {
                    let data = first.unwrap_or_else(|| whole.freeze());
                    return (Fed::whole(data, exact), None, false);
                }
                step @ (Step::More | Step::Broken(_)) => {
                    let so_far = first.unwrap_or_else(|| whole.freeze());
                    let length = match framing {
                        Framing::Length(n) => Some(n),
                        Framing::Chunked => None,
                    };
                    let (fed, tx) = Fed::stream(length);
                    // The channel is new: both fit.
                    if !so_far.is_empty() {
                        let _ = tx.try_send(Ok(so_far));
                    }
                    if let Step::Broken(why) = step {
                        let _ = tx.try_send(Err(FedError(why)));
                        return (fed, None, true);
                    }
                    return (fed, Some(tx), false);
                }
            }
        }
    }
}

/// Reads the rest of a body off the connection into its feeder, until its end; `Err` when
/// it did not reach it (the caller's connection ended or broke the framing, or the request
/// path stopped reading): the connection cannot carry another request.
async fn pump<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    decoder: &mut Decoder,
    tx: Feeder,
) -> Result<(), ()> {
    loop {
        match decoder.step(buf) {
            Step::Data(data) => tx.send(Ok(data)).await.map_err(|_| ())?,
            Step::Done => return Ok(()),
            Step::Broken(why) => {
                let _ = tx.send(Err(FedError(why))).await;
                return Err(());
            }
            Step::More => {
                buf.reserve(BODY_READ);
                let read = tokio::select! {
                    read = rd.read_buf(buf) => read,
                    // The request path let go of the body: nobody waits for the rest.
                    () = tx.closed() => return Err(()),
                };
                if !matches!(read, Ok(n) if n > 0) {
                    let _ = tx
                        .send(Err(FedError("the caller's connection ended mid-body")))
                        .await;
                    return Err(());
                }
            }
        }
    }
}

/// Writes the head in `out` and the body after it, framed by `encoder`. An error (the body's,
/// or the body ending short of its length) leaves the answer visibly unfinished: no last
/// chunk, fewer bytes than the length; the connection then closes.
async fn write_body<W, B>(
    wr: &mut W,
    out: &mut Vec<u8>,
    body: &mut B,
    encoder: Encoder,
) -> Result<(), BoxError>
where
    W: AsyncWrite + Unpin,
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    let (mut left, chunked) = match &encoder {
        Encoder::Length(0) => {
            wr.write_all(out).await?;
            return Ok(());
        }
        Encoder::Length(n) => (*n, None),
        Encoder::Chunked(allowed) => (0, Some(allowed.as_deref())),
    };
    let mut trailers = None;
    loop {
        // Whatever is ready at once leaves with what is waiting in `out`.
        let next = match body.frame().now_or_never() {
            Some(next) => next,
            None => {
                if !out.is_empty() {
                    wr.write_all(out).await?;
                    out.clear();
                }
                body.frame().await
            }
        };
        let Some(frame) = next else { break };
        let frame = frame.map_err(Into::into)?;
        let data = match frame.into_data() {
            Ok(d) => d,
            Err(frame) => {
                trailers = frame.into_trailers().ok();
                continue;
            }
        };
        if data.is_empty() {
            continue;
        }
        if chunked.is_some() {
            encode::chunk_size(out, data.len());
        } else {
            let n = data.len() as u64;
            if n > left {
                return Err("the answer's body is longer than its length".into());
            }
            left -= n;
        }
        if out.len() + data.len() <= COPY_BEHIND {
            out.extend_from_slice(&data);
        } else {
            wr.write_all(out).await?;
            out.clear();
            wr.write_all(&data).await?;
        }
        if chunked.is_some() {
            out.extend_from_slice(b"\r\n");
        }
    }
    match chunked {
        Some(allowed) => {
            encode::chunked_end(out, allowed, &trailers.unwrap_or_default());
        }
        None if left > 0 => return Err("the answer's body ended before its length".into()),
        None => {}
    }
    if !out.is_empty() {
        wr.write_all(out).await?;
        out.clear();
    }
    Ok(())
}
