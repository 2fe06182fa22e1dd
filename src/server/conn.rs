//! HTTP on one caller connection through hyper (HTTP/1 behind the framing watcher, or HTTP/2),
//! driven by [`drive`], which enforces the limits on a connection's time (the lean server's
//! too).

use super::framing::{FramingWatch, HeadLimits, Verdict, Verdicts};
use super::idle::{Activity, PrefaceWatch, Strikes};
use crate::base::error::BoxError;
use crate::body::{Inbound, Observed};
use crate::config::LimitsConfig;
use crate::outbound::Affinity;
use crate::pipeline::{self, Ambiguous, ConnMeta, Intercepted, Oversized};
use crate::state::{ConnLimits, Shared, Snapshot};
use http_body::Body as _;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::watch;

/// How a served connection ended, for whoever admitted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ended {
    /// Closed for premature HTTP/2 resets: its address is to be refused for a while.
    Abusive,
    /// Any other way: its end, a limit on its time, a drain.
    Otherwise,
}

/// HTTP on one connection. `intercepted` is set on the forward listener's tunnels: every
/// request on the connection carries it. `strikes`: its client address's stream resets.
pub(super) async fn serve_http<I>(
    io: I,
    meta: ConnMeta,
    snapshot: &Snapshot,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<()>,
    intercepted: Option<Intercepted>,
    strikes: Arc<Strikes>,
) -> Ended
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let activity = Activity::new(snapshot.conn_limits.h2_max_premature_resets, strikes);
    let conn = hyper_conn(io, meta, snapshot, shared, intercepted, activity.clone());
    drive(conn, activity, &snapshot.conn_limits, shutdown, meta.peer).await
}

/// hyper serving one connection (HTTP/1 behind the framing watcher, or HTTP/2), every request
/// through the pipeline; `activity` records what it does for the limits on its time.
pub(super) fn hyper_conn<I>(
    io: I,
    meta: ConnMeta,
    snapshot: &Snapshot,
    shared: Arc<Shared>,
    intercepted: Option<Intercepted>,
    activity: Arc<Activity>,
) -> impl Drainable + Send + 'static
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let limits = &snapshot.limits;
    let verdicts = Verdicts::default();
    let head = head_limits(limits);
    let io = FramingWatch::new(
        PrefaceWatch::new(io, activity.clone()),
        head,
        verdicts.clone(),
    );
    let service_activity = activity.clone();
    // HTTP/1.1 requests come one at a time: one upstream connection serves them all. h2
    // streams run side by side and share the pool's connections instead.
    let affinity = Affinity::new();
    let service = service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
        let shared = shared.clone();
        let h2 = req.version() >= http::Version::HTTP_2;
        let affinity = (!h2).then(|| affinity.clone());
        let mut in_flight = service_activity.begin(h2);
        if !h2 {
            match verdicts.next() {
                None => {}
                Some(Verdict::Ambiguous(reason)) => {
                    req.extensions_mut().insert(Ambiguous(reason));
                }
                Some(Verdict::TargetTooLong) => {
                    req.extensions_mut()
                        .insert(Oversized::Target { limit: head.target });
                }
                Some(Verdict::HeadTooLarge) => {
                    req.extensions_mut()
                        .insert(Oversized::Head { limit: head.bytes });
                }
                Some(Verdict::TooManyFields(count)) => {
                    req.extensions_mut().insert(Oversized::Fields {
                        count,
                        limit: head.fields,
                    });
                }
            }
        }
        if let Some(i) = &intercepted {
            req.extensions_mut().insert(i.clone());
        }
        async move {
            let resp = pipeline::handle(&shared, req.map(Inbound::Hyper), meta, affinity).await;
            // hyper sends an empty body's end with the head and drops it unpolled.
            if resp.body().is_end_stream() {
                in_flight.complete();
            }
            Ok::<_, std::convert::Infallible>(resp.map(|b| Observed::new(b, in_flight)))
        }
    });
    builder(limits)
        .serve_connection(TokioIo::new(io), service)
        .into_owned()
}

/// How long an abusive connection's GOAWAY has to reach its client before the close.
const ABUSE_FLUSH: std::time::Duration = std::time::Duration::from_millis(10);

/// A served connection that can be asked to finish what is in flight and close: HTTP/1.1
/// answers its next response with `Connection: close`, HTTP/2 sends GOAWAY.
pub(super) trait Drainable: Future<Output = Result<(), BoxError>> {
    fn drain(self: Pin<&mut Self>);
}

impl<I, S, B> Drainable for auto::Connection<'static, I, S, TokioExecutor>
where
    S: hyper::service::Service<http::Request<hyper::body::Incoming>, Response = http::Response<B>>
        + Send,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    fn drain(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// Serves `conn` to its end under `limits`' clocks:
/// - silent: no request head (nor HTTP/2 preface) within `header_read_timeout` → closed;
/// - idle: no request in flight for `idle_timeout` → closed;
/// - old: past `max_age` → drained (requests in flight finish), closed after `drain`;
/// - abusive: too many premature HTTP/2 resets → GOAWAY and closed at once;
/// - the listener shutting down → drained (the server bounds the wait).
pub(super) async fn drive<C: Drainable>(
    conn: C,
    activity: Arc<Activity>,
    limits: &ConnLimits,
    mut shutdown: watch::Receiver<()>,
    peer: SocketAddr,
) -> Ended {
    use tokio::time::{sleep_until, Instant};
    tokio::pin!(conn);
    let silent = activity.clone().silent_after(limits.header_read_timeout);
    let idle = activity.clone().idle(limits.idle_timeout);
    let abused = activity.clone().abused();
    let far = Instant::now() + std::time::Duration::from_secs(86400 * 365);
    let aged = sleep_until(limits.max_age.map_or(far, |a| Instant::now() + a));
    let deadline = sleep_until(far);
    tokio::pin!(silent, idle, abused, aged, deadline);
    let (mut draining, mut stopping) = (false, false);
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, %peer, "connection ended with an error");
                }
                return Ended::Otherwise;
            }
            _ = &mut silent => {
                tracing::debug!(%peer, "closing a connection that sent no request in time");
                return Ended::Otherwise;
            }
            _ = &mut idle => {
                tracing::debug!(%peer, "closing idle connection");
                return Ended::Otherwise;
            }
            _ = &mut aged, if !draining => {
                tracing::debug!(%peer, "connection reached its maximum age; draining it");
                draining = true;
                conn.as_mut().drain();
                deadline.as_mut().reset(Instant::now() + limits.drain);
            }
            _ = &mut abused => {
                tracing::warn!(%peer, "closing an HTTP/2 connection whose client resets most of its streams early");
                // GOAWAY, given a moment to leave, then the close: a graceful drain would
                // accept (and forward) the client's next streams until it answers a PING,
                // which an attacker never does.
                conn.as_mut().drain();
                let _ = tokio::time::timeout(ABUSE_FLUSH, conn.as_mut()).await;
                return Ended::Abusive;
            }
            _ = shutdown.changed(), if !stopping => {
                // The server bounds the wait with its grace period.
                stopping = true;
                conn.as_mut().drain();
            }
            _ = &mut deadline, if draining => {
                tracing::debug!(%peer, "closing a connection still busy after its drain");
                return Ended::Otherwise;
            }
        }
    }
}

/// The HTTP/1 head limits the framing watcher enforces: the one limit on a head's size.
pub(super) fn head_limits(limits: &LimitsConfig) -> HeadLimits {
    HeadLimits {
        bytes: limits.max_head_bytes(),
        target: usize::try_from(limits.max_uri_length.0).unwrap_or(usize::MAX),
        fields: limits.max_headers,
    }
}

/// A server builder for one connection with these limits applied.
fn builder(limits: &LimitsConfig) -> auto::Builder<TokioExecutor> {
    use hyper_util::rt::TokioTimer;
    let mut b = auto::Builder::new(TokioExecutor::new());
    // On HTTP/1 the framing watcher enforces the head limits and hands hyper only heads within
    // them (or a stand-in for one that is not), so that the caller gets the 414/431 in the
    // proxy's JSON: hyper's own limits sit above the watcher's and are never reached.
    let head = limits.max_head_bytes();
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(limits.max_headers.saturating_add(1))
        .max_buf_size(head.saturating_add(8192));
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .max_pending_accept_reset_streams(limits.h2_max_pending_reset_streams)
        .max_local_error_reset_streams(limits.h2_max_local_error_reset_streams)
        .max_header_list_size(h2_header_list_size(limits));
    b
}

/// HTTP/2's header-list limit: room for every list the pipeline's own checks would judge (it
/// counts each field as on an HTTP/1.1 wire, name + value + 4; HPACK's accounting adds 32 per
/// field, pseudo-headers included), so that a list over the proxy's limits gets its JSON 431
/// from the pipeline rather than h2's bare one. Only a list far beyond them meets h2's.
fn h2_header_list_size(limits: &LimitsConfig) -> u32 {
    let fields = limits.max_headers.saturating_add(5);
    let size = limits
        .max_head_bytes()
        .saturating_add(fields.saturating_mul(32));
    u32::try_from(size).unwrap_or(u32::MAX)
}
