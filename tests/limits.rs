//! Limits: a client that exceeds one gets an error; nothing is forwarded; others are unaffected.

mod support;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::raw::raw_send;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const DEADLINE: Duration = Duration::from_secs(10);

async fn limited(up: &FakeUpstream, limits: &str, route_extra: &str) -> ims_proxy::Running {
    let toml = format!(
        "[server.limits]\n{limits}\n{}",
        static_route("/api", route_extra, &up.url())
    );
    start_proxy(&toml).await
}

fn get_req(url: String) -> Request<Full<Bytes>> {
    Request::get(url).body(Full::default()).expect("request")
}

#[tokio::test]
async fn headers_larger_than_the_limit_get_431_and_nothing_is_forwarded() {
    let up = FakeUpstream::start().await;
    let p = limited(&up, "max_header_size = \"1 KiB\"", "").await;
    let req = Request::get(proxy_url(&p, "/api/x"))
        .header("x-big", "a".repeat(2000))
        .body(Full::<Bytes>::default())
        .expect("request");
    let got = send(&h1_client(), req).await;
    assert_eq!(got.status, 431);
    assert_eq!(got.json()["error_code"], "headers_too_large");
    assert_eq!(up.count(), 0);
    assert_eq!(get(&proxy_url(&p, "/api/ok")).await.status, 200);
}

#[tokio::test]
async fn a_request_head_beyond_the_read_buffer_gets_431_and_the_connection_closes() {
    let up = FakeUpstream::start().await;
    let p = limited(&up, "max_header_size = \"1 KiB\"", "").await;
    let raw = format!(
        "GET /api/x HTTP/1.1\r\nHost: p\r\nX-Huge: {}\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let reply = raw_send(p.addr, raw.as_bytes(), DEADLINE).await;
    assert_eq!(reply.status(), Some(431), "{}", reply.text);
    assert!(reply.closed);
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn too_many_headers_get_431_and_nothing_is_forwarded() {
    let up = FakeUpstream::start().await;
    let p = limited(&up, "max_headers = 10", "").await;
    let mut b = Request::get(proxy_url(&p, "/api/x"));
    for i in 0..20 {
        b = b.header(format!("x-h{i}"), "v");
    }
    let got = send(
        &h1_client(),
        b.body(Full::<Bytes>::default()).expect("request"),
    )
    .await;
    assert_eq!(got.status, 431);
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn a_uri_longer_than_the_limit_gets_414_and_nothing_is_forwarded() {
    let up = FakeUpstream::start().await;
    let p = limited(&up, "max_uri_length = 100", "").await;
    let got = get(&proxy_url(&p, &format!("/api/{}", "a".repeat(200)))).await;
    assert_eq!(got.status, 414);
    assert_eq!(got.json()["error_code"], "uri_too_long");
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn a_declared_body_over_the_routes_limit_gets_413_before_the_upstream_is_contacted() {
    let up = FakeUpstream::start().await;
    let p = limited(&up, "", "max_body_size = 16").await;
    let req = Request::post(proxy_url(&p, "/api/x"))
        .body(Full::new(Bytes::from(vec![b'x'; 100])))
        .expect("request");
    let got = send(&h1_client(), req).await;
    assert_eq!(got.status, 413);
    assert_eq!(got.json()["error_code"], "payload_too_large");
    assert_eq!(up.connections(), 0);
}

#[tokio::test]
async fn a_body_exactly_at_the_limit_is_forwarded() {
    let up = FakeUpstream::start().await;
    let p = limited(&up, "", "max_body_size = \"16B\"").await;
    let req = Request::post(proxy_url(&p, "/api/x"))
        .body(Full::new(Bytes::from(vec![b'x'; 16])))
        .expect("request");
    assert_eq!(send(&h1_client(), req).await.status, 200);
    assert_eq!(up.only_request().body.len(), 16);
}

#[tokio::test]
async fn the_server_wide_body_limit_applies_to_routes_without_their_own() {
    let up = FakeUpstream::start().await;
    let p = limited(&up, "max_body_size = 8", "").await;
    let req = Request::post(proxy_url(&p, "/api/x"))
        .body(Full::new(Bytes::from(vec![b'x'; 9])))
        .expect("request");
    assert_eq!(send(&h1_client(), req).await.status, 413);
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn a_streamed_body_that_grows_past_the_limit_gets_413_and_never_arrives_whole() {
    let started = Arc::new(AtomicUsize::new(0));
    let complete = Arc::new(AtomicUsize::new(0));
    let (s, c) = (started.clone(), complete.clone());
    let up = FakeUpstream::with_handler(move |req| {
        let (s, c) = (s.clone(), c.clone());
        async move {
            s.fetch_add(1, Ordering::SeqCst);
            if req.into_body().collect().await.is_ok() {
                c.fetch_add(1, Ordering::SeqCst);
            }
            http::Response::new(full("done"))
        }
    })
    .await;
    let p = limited(&up, "", "max_body_size = 64").await;
    let mut conn = TcpStream::connect(p.addr).await.expect("connect");
    conn.write_all(
        b"POST /api/x HTTP/1.1\r\nHost: p\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n",
    )
    .await
    .expect("write");
    assert!(eventually(DEADLINE, || started.load(Ordering::SeqCst) == 1).await);
    let big = format!("64\r\n{}\r\n0\r\n\r\n", "y".repeat(100));
    let _ = conn.write_all(big.as_bytes()).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(DEADLINE, conn.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert_eq!(
        complete.load(Ordering::SeqCst),
        0,
        "the upstream must never get the whole body"
    );
}

#[tokio::test]
async fn a_slowloris_client_is_cut_off_and_others_are_served_meanwhile() {
    let up = FakeUpstream::start().await;
    let p = limited(&up, "header_read_timeout = \"300ms\"", "").await;
    let began = Instant::now();
    let slow = tokio::spawn(raw_send(
        p.addr,
        b"GET /api/x HTTP/1.1\r\nHost: p\r\nX-Slow: ",
        DEADLINE,
    ));
    assert_eq!(get(&proxy_url(&p, "/api/fine")).await.status, 200);
    let reply = slow.await.expect("task");
    assert!(
        reply.closed,
        "a client that never finishes its head must be disconnected"
    );
    assert!(began.elapsed() < DEADLINE);
    assert_eq!(up.count(), 1);
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let up = FakeUpstream::start().await;
    let p = limited(
        &up,
        "idle_timeout = \"300ms\"\nheader_read_timeout = \"60s\"",
        "",
    )
    .await;
    // HTTP/2 prior knowledge, then silence: no header timer applies, only the idle one.
    let began = Instant::now();
    let reply = raw_send(p.addr, &h2_preface(), DEADLINE).await;
    assert!(reply.closed, "the idle connection must be closed");
    assert!(
        began.elapsed() < Duration::from_secs(8),
        "{:?}",
        began.elapsed()
    );
}

/// Sends one keep-alive request and reads its whole response, leaving the connection open.
async fn keep_alive_request(addr: std::net::SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET /api/x HTTP/1.1\r\nHost: p\r\n\r\n")
        .await
        .expect("write");
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&out).contains("{\"ok\":true}") {
        let n = tokio::time::timeout(DEADLINE, s.read(&mut buf))
            .await
            .expect("response in time")
            .expect("read");
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&out));
        out.extend_from_slice(&buf[..n]);
    }
    s
}

#[tokio::test]
async fn connections_beyond_the_maximum_get_503_and_a_freed_slot_is_reused() {
    let up = FakeUpstream::start().await;
    let p = limited(&up, "max_connections = 2", "").await;
    let a = keep_alive_request(p.addr).await;
    let _b = keep_alive_request(p.addr).await;
    let reply = raw_send(p.addr, b"GET /api/x HTTP/1.1\r\nHost: p\r\n\r\n", DEADLINE).await;
    assert_eq!(reply.status(), Some(503), "{}", reply.text);
    assert!(reply.text.contains("too_many_connections"));
    assert!(reply.closed);
    assert_eq!(up.count(), 2);
    drop(a);
    let end = Instant::now() + DEADLINE;
    loop {
        let r = raw_send(
            p.addr,
            b"GET /api/x HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n",
            DEADLINE,
        )
        .await;
        if r.status() == Some(200) {
            break;
        }
        assert!(
            Instant::now() < end,
            "the freed slot was never reused: {}",
            r.text
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn h2_preface() -> Vec<u8> {
    let mut v = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    v.extend_from_slice(&frame(4, 0, 0, &[]));
    v
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut v = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    v.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// Frames from the bytes of an HTTP/2 server: (type, flags, stream, payload).
fn parse_frames(mut b: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
    let mut out = Vec::new();
    while b.len() >= 9 {
        let len = (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]);
        if b.len() < 9 + len {
            break;
        }
        let stream = u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff;
        out.push((b[3], b[4], stream, b[9..9 + len].to_vec()));
        b = &b[9 + len..];
    }
    out
}

async fn h2_exchange(addr: std::net::SocketAddr, raw: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(raw).await.expect("write");
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    let _ = tokio::time::timeout(DEADLINE, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
            if parse_frames(&out)
                .iter()
                .any(|f| f.0 == 7 || f.0 == 4 && f.1 == 0 && raw.len() <= 33)
            {
                return;
            }
        }
    })
    .await;
    parse_frames(&out)
}

#[tokio::test]
async fn http2_advertises_the_configured_maximum_of_concurrent_streams() {
    let up = FakeUpstream::start().await;
    let p = limited(&up, "h2_max_concurrent_streams = 7", "").await;
    let frames = h2_exchange(p.addr, &h2_preface()).await;
    let settings = frames
        .iter()
        .find(|f| f.0 == 4 && f.1 & 1 == 0)
        .expect("the server's SETTINGS frame");
    let max = settings.3.chunks(6).find_map(|e| {
        (u16::from_be_bytes([e[0], e[1]]) == 3)
            .then(|| u32::from_be_bytes([e[2], e[3], e[4], e[5]]))
    });
    assert_eq!(max, Some(7));
}

#[tokio::test]
async fn an_http2_rapid_reset_flood_gets_goaway_and_other_clients_are_served() {
    let up = FakeUpstream::start().await;
    let p = limited(&up, "h2_max_pending_reset_streams = 5", "").await;
    let mut raw = h2_preface();
    // HEADERS (END_STREAM | END_HEADERS) with GET, http, "/" from HPACK's static table, each
    // cancelled at once: the CVE-2023-44487 pattern.
    for i in 0..200u32 {
        let id = 2 * i + 1;
        raw.extend_from_slice(&frame(1, 0x5, id, &[0x82, 0x86, 0x84]));
        raw.extend_from_slice(&frame(3, 0, id, &8u32.to_be_bytes()));
    }
    let frames = h2_exchange(p.addr, &raw).await;
    let goaway = frames.iter().find(|f| f.0 == 7).expect("a GOAWAY frame");
    let code = u32::from_be_bytes([goaway.3[4], goaway.3[5], goaway.3[6], goaway.3[7]]);
    assert_eq!(code, 0xb, "ENHANCE_YOUR_CALM");
    let req = get_req(proxy_url(&p, "/api/after"));
    assert_eq!(send(&h2c_client(), req).await.status, 200);
    assert_eq!(up.count(), 1);
}
