//! What a connection has done, for the limits on its time: whether it has shown what it is
//! (a request, or the HTTP/2 preface), when it last had no request in flight, and how many of
//! its HTTP/2 streams the client reset early. The in-flight mark rides in the response body,
//! so a streaming response keeps its connection busy; bytes alone (HTTP/2 PINGs, SETTINGS)
//! do not.

use crate::base::error::BoxError;
use crate::body::Observer;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::Notify;

/// A stream reset by its client sooner than this after it began, before its response ended,
/// is premature (Envoy's `premature_reset_min_stream_lifetime_seconds`).
const PREMATURE: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct Activity {
    started: Instant,
    /// When the connection last went from busy to idle, in ms since `started`.
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
    /// A request began, or the HTTP/2 preface arrived.
    shown: AtomicBool,
    /// HTTP/2 streams that ended, and those the client reset prematurely: its address's.
    strikes: Arc<Strikes>,
    premature_limit: Option<usize>,
    abuse: Notify,
}

/// HTTP/2 streams that ended, and those of them reset prematurely, counted for one client
/// address across its connections: a client that reconnects (or opens several connections)
/// does not start the count again.
#[derive(Debug, Default)]
pub struct Strikes {
    streams: AtomicUsize,
    premature: AtomicUsize,
}

impl Activity {
    /// `strikes`: the client address's counts ([`super::capacity::Resets`]), or a fresh one
    /// where resets are not counted per address.
    pub fn new(premature_limit: Option<usize>, strikes: Arc<Strikes>) -> Arc<Activity> {
        Arc::new(Activity {
            started: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            shown: AtomicBool::new(false),
            strikes,
            premature_limit,
            abuse: Notify::new(),
        })
    }

    fn touch(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let now = self.started.elapsed();
        now.saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::Relaxed)))
    }

    fn show(&self) {
        self.shown.store(true, Ordering::Relaxed);
    }

    /// Marks a request in flight until the returned guard (kept with the response body) drops.
    /// `h2`: the request is an HTTP/2 stream, whose early reset counts (see [`Self::abused`]).
    pub fn begin(self: &Arc<Self>, h2: bool) -> InFlight {
        self.show();
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let counted = h2 && self.premature_limit.is_some();
        InFlight {
            activity: self.clone(),
            began: counted.then(Instant::now),
            done: false,
        }
    }

    /// Resolves once the connection has had no request in flight for `timeout`.
    pub async fn idle(self: Arc<Self>, timeout: Duration) {
        loop {
            let idle_for = self.idle_for();
            let busy = self.in_flight.load(Ordering::Acquire) > 0;
            if !busy && idle_for >= timeout {
                return;
            }
            let wait = if busy { timeout } else { timeout - idle_for };
            tokio::time::sleep(wait.max(Duration::from_millis(10))).await;
        }
    }

    /// Resolves when `limit` has passed without the connection showing what it is: no request
    /// head complete and no HTTP/2 preface. Never resolves for one that has.
    pub async fn silent_after(self: Arc<Self>, limit: Duration) {
        tokio::time::sleep(limit).await;
        if self.shown.load(Ordering::Relaxed) {
            std::future::pending::<()>().await;
        }
    }

    /// Resolves when the client has reset enough streams prematurely: at least the limit, and
    /// at least half of the streams that ended (Envoy's rule, so a client that cancels now
    /// and then is not punished), counted over all of its address's connections.
    pub async fn abused(self: Arc<Self>) {
        self.abuse.notified().await;
    }

    /// Counts one ended stream; whether the connection is now abusive (and told so).
    fn stream_ended(&self, premature: bool) -> bool {
        let Some(limit) = self.premature_limit else {
            return false;
        };
        let streams = self.strikes.streams.fetch_add(1, Ordering::AcqRel) + 1;
        if !premature {
            return false;
        }
        let p = self.strikes.premature.fetch_add(1, Ordering::AcqRel) + 1;
        let abusive = p >= limit && p.saturating_mul(2) >= streams;
        if abusive {
            self.abuse.notify_one();
        }
        abusive
    }
}

pub struct InFlight {
    activity: Arc<Activity>,
    /// When an HTTP/2 stream began, when its resets are counted.
    began: Option<Instant>,
    /// The response ended, or failed on the proxy's or upstream's side: not the client's reset.
    done: bool,
}

impl InFlight {
    /// The response is complete as it stands (its body is empty), so dropping it unread is
    /// no reset.
    pub fn complete(&mut self) {
        self.done = true;
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.activity.touch();
        self.activity.in_flight.fetch_sub(1, Ordering::AcqRel);
        if let Some(began) = self.began {
            self.activity
                .stream_ended(!self.done && began.elapsed() < PREMATURE);
        }
    }
}

/// Held by the response body until it ends.
impl Observer for InFlight {
    fn on_error(&mut self, _error: &BoxError) {
        self.done = true;
    }

    fn on_end(&mut self, completed: bool) {
        self.done |= completed;
    }
}

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Connection I/O that tells [`Activity`] when the HTTP/2 preface has arrived whole; past the
/// first bytes it only passes them on.
pub struct PrefaceWatch<I> {
    inner: I,
    activity: Arc<Activity>,
    /// Preface bytes matched so far; `None` once decided either way.
    matched: Option<usize>,
}

impl<I> PrefaceWatch<I> {
    pub fn new(inner: I, activity: Arc<Activity>) -> Self {
        PrefaceWatch {
            inner,
            activity,
            matched: Some(0),
        }
    }

    fn observe(&mut self, fresh: &[u8]) {
        let Some(m) = self.matched else { return };
        let n = fresh.len().min(PREFACE.len() - m);
        self.matched = if fresh[..n] != PREFACE[m..m + n] {
            None
        } else if m + n == PREFACE.len() {
            self.activity.show();
            None
        } else {
            Some(m + n)
        };
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for PrefaceWatch<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if self.matched.is_some() && buf.filled().len() > before {
            let this = &mut *self;
            this.observe(&buf.filled()[before..]);
        }
        r
    }
}

crate::base::io::write_through!(PrefaceWatch);

#[cfg(test)]
mod tests {
    use super::*;

    fn shown_after(parts: &[&[u8]]) -> bool {
        let a = Activity::new(None, Arc::default());
        let mut w = PrefaceWatch::new((), a.clone());
        for p in parts {
            w.observe(p);
        }
        a.shown.load(Ordering::Relaxed)
    }

    #[test]
    fn the_preface_counts_only_when_whole_whatever_the_read_sizes() {
        assert!(shown_after(&[PREFACE]));
        assert!(shown_after(&[
            &PREFACE[..3],
            &PREFACE[3..20],
            &PREFACE[20..]
        ]));
        assert!(!shown_after(&[&PREFACE[..23]]));
        assert!(!shown_after(&[b"GET / HTTP/1.1\r\n"]));
        assert!(!shown_after(&[b"PRI * HTTP/1.1\r\n\r\nSM\r\n\r\n"]));
    }

    #[test]
    fn premature_resets_trip_only_when_they_are_at_least_half_the_streams() {
        let a = Activity::new(Some(4), Arc::default());
        for _ in 0..10 {
            assert!(!a.stream_ended(false));
        }
        // The limit is reached at the 4th, but 4..9 of 14..19 streams are less than half.
        for _ in 0..9 {
            assert!(!a.stream_ended(true));
        }
        assert!(a.stream_ended(true), "10 of 20");
    }

    #[test]
    fn premature_resets_trip_at_the_limit_on_a_fresh_connection() {
        let a = Activity::new(Some(3), Arc::default());
        assert!(!a.stream_ended(true));
        assert!(!a.stream_ended(true));
        assert!(a.stream_ended(true));
    }

    #[test]
    fn premature_resets_add_up_over_the_connections_of_one_address() {
        let strikes = Arc::<Strikes>::default();
        let first = Activity::new(Some(3), strikes.clone());
        assert!(!first.stream_ended(true));
        assert!(!first.stream_ended(true));
        let second = Activity::new(Some(3), strikes);
        assert!(
            second.stream_ended(true),
            "the third of the address's resets"
        );
    }
}
