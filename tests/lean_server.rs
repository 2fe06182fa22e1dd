//! The lean HTTP/1.1 server (`server.http1 = "lean"`) answers the common exchange itself, and
//! hands what it cannot frame with certainty to hyper, whose answer the caller then gets: the
//! same as on `http1 = "hyper"`. (The whole suite runs on each: the lean server is the
//! default, and `.ci/run`'s second pass sets `IMS_PROXY_TEST_HTTP1=hyper`.)

use std::time::Duration;
use support::*;

const WAIT: Duration = Duration::from_secs(20);

async fn proxy_on(http1: &str, up: &FakeUpstream) -> ims_proxy::Running {
    static_proxy(Route::new("/api").upstream(up.url()))
        .section(&format!("[server]\nhttp1 = \"{http1}\""))
        .start()
        .await
}

/// Log lines saying this caller's connection went to hyper (the capture writes each event
/// twice, as text and as JSON).
fn handed_off(logs: &logs::LogCapture, conn: &RawConn) -> usize {
    let peer = conn.local_addr().to_string();
    logs.text()
        .lines()
        .filter(|l| l.contains("handing the connection to hyper") && l.contains(&peer))
        .count()
}

#[tokio::test]
async fn the_lean_server_answers_pipelined_requests_with_every_body_framing_itself() {
    let logs = logs::capture_trace();
    let up = FakeUpstream::start().await;
    let p = proxy_on("lean", &up).await;
    let mut conn = RawConn::connect(p.addr).await;
    // Three requests in one write: no body, a length, chunks (one with an extension), and
    // the chunked one split mid-chunk across a second write.
    let first = "GET /api/one?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n\
                 POST /api/two HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nhello\
                 POST /api/three HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n\
                 3;x=y\r\nabc\r\n4\r\nde";
    assert!(conn.write(first.as_bytes()).await);
    assert!(conn.write(b"fg\r\n0\r\n\r\n").await);
    let three = conn
        .read_until(WAIT, |r| {
            String::from_utf8_lossy(r)
                .matches("HTTP/1.1 200 OK")
                .count()
                == 3
        })
        .await;
    assert!(three, "{}", conn.text());
    let seen: Vec<(String, String)> = up
        .requests()
        .iter()
        .map(|r| {
            (
                r.target.clone(),
                String::from_utf8_lossy(&r.body).into_owned(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("/one?x=1".into(), String::new()),
            ("/two".into(), "hello".into()),
            ("/three".into(), "abcdefg".into()),
        ]
    );
    for r in up.requests() {
        assert_eq!(r.headers["authorization"], format!("Bearer {STATIC_TOKEN}"));
    }
    assert_eq!(handed_off(&logs, &conn), 0, "the lean server handed it off");
}

/// The caller's answer to `raw` on each server: status line and the proxy's error code.
async fn answers(raw: &str) -> Vec<(Option<u16>, Option<String>, usize)> {
    let logs = logs::capture_trace();
    let mut out = Vec::new();
    for http1 in ["hyper", "lean"] {
        let up = FakeUpstream::start().await;
        let p = proxy_on(http1, &up).await;
        let mut conn = RawConn::connect(p.addr).await;
        assert!(conn.write(raw.as_bytes()).await);
        // Not half-closed: a caller that closes its side while its request is in flight
        // cancels it, on either server.
        conn.read_until(WAIT, |r| String::from_utf8_lossy(r).contains("\r\n\r\n"))
            .await;
        let text = conn.text();
        let code = text
            .split("\"error_code\":\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .map(str::to_string);
        let status = text.get(9..12).and_then(|s| s.parse().ok());
        out.push((status, code, up.count()));
        if http1 == "lean" {
            assert!(
                handed_off(&logs, &conn) > 0,
                "{raw:?} was not handed to hyper"
            );
        }
    }
    out
}

#[tokio::test]
async fn requests_the_lean_server_cannot_frame_with_certainty_get_hypers_answer() {
    for raw in [
        // Two framings, two lengths, an unknown coding: refused, nothing forwarded.
        "POST /api/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST /api/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        "POST /api/x HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: gzip\r\n\r\nhello",
        // obs-fold and a bare CR in a field.
        "GET /api/x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: 1\r\n  2\r\n\r\n",
        "GET /api/x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: 1\r2\r\n\r\n",
        // What it leaves to hyper although hyper takes it: HTTP/1.0, Expect.
        "GET /api/x HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n",
        "POST /api/x HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello",
    ] {
        let got = answers(raw).await;
        assert_eq!(got[0], got[1], "{raw:?}: hyper, then lean");
        assert!(got[0].0.is_some(), "{raw:?}: no answer");
    }
}

#[tokio::test]
async fn a_chunked_body_cut_short_by_the_caller_never_reaches_the_upstream_as_complete() {
    let up = FakeUpstream::start().await;
    let p = proxy_on("lean", &up).await;
    let mut conn = RawConn::connect(p.addr).await;
    let raw = "POST /api/x HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n";
    assert!(conn.write(raw.as_bytes()).await);
    conn.shutdown_write().await;
    let reply = conn.read_to_close(WAIT).await;
    // Forwarded chunked, then cut off: the upstream never saw the last chunk.
    assert!(
        up.requests().iter().all(|r| r.body != "hello"),
        "a complete body reached the upstream: {:?}; the caller got {}",
        up.requests(),
        reply.text
    );
}

/// Sets its flag when dropped: the upstream's handler was cancelled (its connection closed).
struct Dropped(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_caller_that_leaves_mid_request_cancels_its_upstream_request_on_either_server() {
    for http1 in ["hyper", "lean"] {
        let cancelled = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = cancelled.clone();
        let up = FakeUpstream::with_handler(move |_req| {
            let dropped = Dropped(flag.clone());
            async move {
                tokio::time::sleep(Duration::from_secs(300)).await;
                drop(dropped);
                http::Response::new(full("too late"))
            }
        })
        .await;
        let p = static_proxy(Route::new("/api").upstream(up.url()))
            .section(&format!("[server]\nhttp1 = \"{http1}\""))
            .client("request_timeout = \"300s\"")
            .start()
            .await;
        let mut conn = RawConn::connect(p.addr).await;
        assert!(
            conn.write(b"GET /api/slow HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                .await
        );
        assert!(
            eventually(WAIT, || up.count() == 1).await,
            "{http1}: not forwarded"
        );
        drop(conn);
        let gone = eventually(WAIT, || cancelled.load(std::sync::atomic::Ordering::SeqCst)).await;
        assert!(gone, "{http1}: the upstream request outlived its caller");
    }
}
