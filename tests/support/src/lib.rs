//! Test support for ims-proxy's integration tests, as a library of builders.
//!
//! A test reads as a spec of both sides of an exchange:
//!
//! ```no_run
//! # async fn t() {
//! use ims_proxy_test_support::*;
//! let up = FakeUpstream::start().await; // records what it receives
//! let p = static_proxy(Route::new("/api").upstream(up.url())).start().await;
//! let got = Req::get(proxy_url(&p, "/api/x")).header("x-request-id", "a").send().await;
//! assert_eq!(got.status, 200);
//! assert_eq!(up.only_request().target, "/x");
//! # }
//! ```
//!
//! - the proxy's side: [`config`] renders TOML ([`ProxyToml`], [`Route`], the static
//!   credential); [`proxy`] starts it in-process; [`child`] and [`cli`] run the real binary;
//! - the upstream's side: [`upstream`] (recording, custom, or holding its answers until
//!   released), [`raw_upstream`] (exact bytes back: broken framing, bodies cut short),
//!   [`hasty`] (answers before it has read the body, and reads the body as requests),
//!   [`ims`] (the library's fake IMS with registered clients), [`sandbox`],
//!   [`connect_proxy`] (a corporate egress proxy), [`tls`] (a throwaway PKI), [`redis`] (a
//!   real `redis-server` per test, with TLS, ACLs and faults by signal);
//! - the client's side: [`client`] (HTTP/1.1 and h2c requests read whole, on one kept
//!   connection when it matters: [`H1Conn`]), [`raw`] (bytes no well-behaved client sends);
//! - what to assert on: [`metrics`] (Prometheus text), [`logs`] (captured trace logs),
//!   [`browser`] (a page's DOM as headless Chromium rendered it),
//!   [`otlp`] (the spans an OTLP collector received).
//!
//! Everything binds 127.0.0.1:0 and waits with bounded deadlines ([`eventually`], [`poll`]).

pub mod browser;
pub mod child;
pub mod cli;
pub mod client;
pub mod config;
pub mod connect_proxy;
pub mod fleet;
pub mod forward;
pub mod hasty;
pub mod ims;
pub mod logs;
pub mod metrics;
pub mod otlp;
pub mod proxy;
pub mod raw;
pub mod raw_upstream;
pub mod redis;
pub mod sandbox;
pub mod tls;
pub mod upstream;

pub use child::{ChildProxy, Spawned};
pub use cli::{Cli, Output};
pub use client::{
    get, h1_client, h2c_client, h2c_to, read_body, send, BodyEnd, Got, H1Conn, Req, TestClient,
};
pub use config::{static_proxy, ProxyToml, Route, STATIC_CLIENT_ID, STATIC_ORG, STATIC_TOKEN};
pub use connect_proxy::ConnectProxy;
pub use fleet::{Fleet, SharedSetup};
pub use hasty::{hasty_answer, HastyUpstream};
pub use metrics::{metric_value, metrics_text};
pub use otlp::{OtlpReceiver, ReceivedSpan};
pub use proxy::{admin_url, proxy_url, start_proxy};
pub use raw::{raw_send, RawConn, RawReply};
pub use raw_upstream::{End, RawUpstream};
pub use redis::RedisServer;
pub use upstream::{adobe_429, full, BoxError, FakeUpstream, Recorded, UpBody};

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Binds 127.0.0.1:0 and serves each accepted connection with `on_conn` on a task of its
/// own, until the returned sender is dropped: the accept loop of every fake server here.
pub(crate) async fn listen<F, Fut>(on_conn: F) -> (SocketAddr, tokio::sync::oneshot::Sender<()>)
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                a = listener.accept() => match a { Ok((s, _)) => s, Err(_) => continue },
                _ = &mut rx => return,
            };
            tokio::spawn(on_conn(stream));
        }
    });
    (addr, tx)
}

/// An address on 127.0.0.1 that nothing listens on: a port that was free a moment ago
/// (bound, then let go), for "unreachable" cases.
pub fn unused_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// Polls `cond` until it holds or `deadline` passes; for tests on a loaded machine.
pub async fn eventually<F: FnMut() -> bool>(deadline: Duration, mut cond: F) -> bool {
    poll(deadline, || std::future::ready(cond().then_some(())))
        .await
        .is_some()
}

/// Calls `f` until it yields `Some` or `deadline` passes: [`eventually`] for conditions that
/// need a request (or other `.await`) to find out.
pub async fn poll<T, F, Fut>(deadline: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let end = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= end {
            return None;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
