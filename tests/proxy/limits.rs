//! Limits: a client that exceeds one gets an error; nothing is forwarded; others are unaffected.

use http_body_util::BodyExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

const DEADLINE: Duration = Duration::from_secs(10);

/// The proxy with `[server.limits]` set to `limits` and route `/api` with `route_extra`.
async fn limited(up: &FakeUpstream, limits: &str, route_extra: &str) -> ims_proxy::Running {
    static_proxy(Route::new("/api").upstream(up.url()).extra(route_extra))
        .section(&format!("[server.limits]\n{limits}"))
        .start()
        .await
}

#[tokio::test]
async fn headers_larger_than_the_limit_get_431_and_nothing_is_forwarded() {
    let up = FakeUpstream::start().await;
    let p = limited(&up, "max_header_size = \"1 KiB\"", "").await;
    let got = Req::get(proxy_url(&p, "/api/x"))
        .header("x-big", &"a".repeat(2000))
        .send()
        .await;
    assert_eq!(got.status, 431);
    assert_eq!(got.json()["error_code"], "headers_too_large");
    assert_eq!(up.count(), 0);
    assert_eq!(get(&proxy_url(&p, "/api/ok")).await.status, 200);
}

#[tokio::test]
async fn a_head_over_the_limits_but_inside_the_read_buffer_gets_431_not_a_framing_refusal() {
    // 3 KiB of limits, 8 KiB of hyper read buffer: the framing watcher must follow this head.
    let up = FakeUpstream::start().await;
    let limits = "max_header_size = \"1 KiB\"\nmax_uri_length = \"1 KiB\"";
    let p = limited(&up, limits, "").await;
    let got = Req::get(proxy_url(&p, "/api/x"))
        .header("x-big", &"a".repeat(5000))
        .send()
        .await;
    assert_eq!(got.status, 431, "{}", got.text());
    assert_eq!(got.json()["error_code"], "headers_too_large");
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn a_request_head_beyond_the_read_buffer_gets_431_and_the_connection_closes() {
    let up = FakeUpstream::start().await;
    let p = limited(&up, "max_header_size = \"1 KiB\"", "").await;
    let raw = format!(
        "GET /api/x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Huge: {}\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let reply = raw_send(p.addr, raw.as_bytes(), DEADLINE).await;
    assert_refused(&reply, 431, "headers_too_large");
    assert_eq!(up.count(), 0);
}

/// `reply` is the proxy's JSON refusal with `status` and `code`, and the connection closed.
fn assert_refused(reply: &RawReply, status: u16, code: &str) {
    assert_eq!(reply.status(), Some(status), "{}", reply.text);
    assert_eq!(json_of(reply)["error_code"], code, "{}", reply.text);
    assert!(json_of(reply)["request_id"].is_string(), "{}", reply.text);
    assert!(reply.closed, "{}", reply.text);
}

/// The JSON body of a raw reply holding one response.
fn json_of(reply: &RawReply) -> serde_json::Value {
    let body = reply.text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", reply.text))
}

/// A GET of `/api/<target_pad>` whose head is `wire` bytes on the wire, the extra made of
/// optional whitespace before a field's value: which no limit on names, values or the target
/// counts, so only the limit on the head as a whole can refuse it.
fn head_of_size(wire: usize, target_pad: usize) -> Vec<u8> {
    let line = format!(
        "GET /api/{} HTTP/1.1\r\nHost: localhost\r\n",
        "a".repeat(target_pad)
    );
    let fixed = line.len() + "X-Pad:".len() + "v\r\n\r\n".len();
    let head = format!("{line}X-Pad:{}v\r\n\r\n", " ".repeat(wire - fixed));
    assert_eq!(head.len(), wire);
    head.into_bytes()
}

/// `max_header_size` 2 KiB and `max_uri_length` 1 KiB: a head of at most 2 + 1 + 1 KiB.
const SMALL_HEAD: &str = "max_header_size = \"2 KiB\"\nmax_uri_length = \"1 KiB\"";
const SMALL_HEAD_BYTES: usize = 4096;

#[tokio::test]
async fn a_head_at_or_below_the_head_limit_is_forwarded_in_one_read_or_several() {
    let up = FakeUpstream::start().await;
    let p = limited(&up, SMALL_HEAD, "").await;
    for wire in [SMALL_HEAD_BYTES - 1, SMALL_HEAD_BYTES] {
        let head = head_of_size(wire, 1000);
        for split in [head.len(), 1500] {
            let mut conn = RawConn::connect(p.addr).await;
            for part in head.chunks(split) {
                conn.write(part).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            conn.read_until(DEADLINE, |b| b.windows(4).any(|w| w == b"\r\n\r\n"))
                .await;
            assert!(
                conn.text().starts_with("HTTP/1.1 200 "),
                "{wire} bytes in reads of {split}: {}",
                conn.text()
            );
        }
    }
    assert_eq!(up.count(), 4);
}

#[tokio::test]
async fn a_head_one_byte_over_the_head_limit_gets_431_json_in_one_read_or_several() {
    let up = FakeUpstream::start().await;
    let p = limited(&up, SMALL_HEAD, "").await;
    let head = head_of_size(SMALL_HEAD_BYTES + 1, 1000);
    for split in [head.len(), 1500] {
        let mut conn = RawConn::connect(p.addr).await;
        for part in head.chunks(split) {
            conn.write(part).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let reply = conn.read_to_close(DEADLINE).await;
        assert_eq!(
            reply.status(),
            Some(431),
            "reads of {split}: {}",
            reply.text
        );
        assert_eq!(json_of(&reply)["error_code"], "headers_too_large");
        assert!(reply.closed);
    }
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn with_default_limits_a_single_header_of_75_to_127_kib_gets_431_json_not_400() {
    let up = FakeUpstream::start().await;
    let p = limited(&up, "", "").await;
    for kib in [75, 100, 127, 128, 200] {
        let raw = format!(
            "GET /api/x HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\n\r\n",
            "a".repeat(kib * 1024)
        );
        let reply = raw_send(p.addr, raw.as_bytes(), DEADLINE).await;
        assert_eq!(reply.status(), Some(431), "{kib} KiB: {}", reply.text);
        let json = json_of(&reply);
        assert_eq!(json["error_code"], "headers_too_large", "{kib} KiB");
        assert!(json["request_id"].is_string(), "{json}");
        assert!(reply.closed, "{kib} KiB");
    }
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn a_client_that_closes_its_side_after_an_oversized_head_still_gets_the_431() {
    let up = FakeUpstream::start().await;
    let p = limited(&up, SMALL_HEAD, "").await;
    let mut conn = RawConn::connect(p.addr).await;
    conn.write(&head_of_size(SMALL_HEAD_BYTES * 2, 10)).await;
    conn.shutdown_write().await;
    let reply = conn.read_to_close(DEADLINE).await;
    assert_refused(&reply, 431, "headers_too_large");
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn a_flood_of_empty_lines_before_a_request_gets_431_json() {
    let up = FakeUpstream::start().await;
    let p = limited(&up, "", "").await;
    let mut raw = b"\r\n".repeat(50 * 1024);
    raw.extend_from_slice(b"GET /api/x HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let reply = raw_send(p.addr, &raw, DEADLINE).await;
    assert_refused(&reply, 431, "headers_too_large");
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn a_request_line_longer_than_the_head_allows_gets_414_json() {
    let up = FakeUpstream::start().await;
    let p = limited(&up, "", "").await;
    let raw = format!(
        "GET /api/{} HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let reply = raw_send(p.addr, raw.as_bytes(), DEADLINE).await;
    assert_refused(&reply, 414, "uri_too_long");
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn an_oversized_head_pipelined_after_a_request_is_refused_after_that_requests_answer() {
    let up = FakeUpstream::start().await;
    let p = limited(&up, SMALL_HEAD, "").await;
    let mut raw = b"GET /api/first HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec();
    raw.extend_from_slice(&head_of_size(SMALL_HEAD_BYTES * 3, 10));
    let reply = raw_send(p.addr, &raw, DEADLINE).await;
    assert!(reply.text.starts_with("HTTP/1.1 200 "), "{}", reply.text);
    let second = reply.text.find("HTTP/1.1 431 ").map(|at| &reply.text[at..]);
    let second = second.unwrap_or_else(|| panic!("no 431 after the 200: {}", reply.text));
    assert!(
        second.contains("\"error_code\":\"headers_too_large\""),
        "{second}"
    );
    assert!(reply.closed);
    assert_eq!(up.count(), 1);
    assert!(up.only_request().target.ends_with("/first"));
}

#[tokio::test]
async fn over_http2_a_header_list_just_over_the_head_limit_gets_431_json() {
    let up = FakeUpstream::start().await;
    let p = limited(&up, "", "").await;
    // Over the 73 KiB HTTP/1 head limit, within HTTP/2's list limit (it adds 32 per field).
    let got = Req::get(proxy_url(&p, "/api/x"))
        .header("x-big", &"a".repeat(74 * 1024))
        .h2()
        .send()
        .await;
    assert_eq!(got.status, 431, "{}", got.text());
    assert_eq!(got.json()["error_code"], "headers_too_large");
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn too_many_headers_get_431_and_nothing_is_forwarded() {
    let up = FakeUpstream::start().await;
    let p = limited(&up, "max_headers = 10", "").await;
    let req = (0..20).fold(Req::get(proxy_url(&p, "/api/x")), |r, i| {
        r.header(&format!("x-h{i}"), "v")
    });
    let got = req.send().await;
    assert_eq!(got.status, 431);
    assert_eq!(got.json()["error_code"], "headers_too_large");
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
    let got = Req::post(proxy_url(&p, "/api/x"))
        .body(vec![b'x'; 100])
        .send()
        .await;
    assert_eq!(got.status, 413);
    assert_eq!(got.json()["error_code"], "payload_too_large");
    assert_eq!(up.connections(), 0);
}

#[tokio::test]
async fn a_body_exactly_at_the_limit_is_forwarded() {
    let up = FakeUpstream::start().await;
    let p = limited(&up, "", "max_body_size = \"16B\"").await;
    let got = Req::post(proxy_url(&p, "/api/x"))
        .body(vec![b'x'; 16])
        .send()
        .await;
    assert_eq!(got.status, 200);
    assert_eq!(up.only_request().body.len(), 16);
}

#[tokio::test]
async fn the_server_wide_body_limit_applies_to_routes_without_their_own() {
    let up = FakeUpstream::start().await;
    let p = limited(&up, "max_body_size = 8", "").await;
    let got = Req::post(proxy_url(&p, "/api/x"))
        .body(vec![b'x'; 9])
        .send()
        .await;
    assert_eq!(got.status, 413);
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
    let mut conn = RawConn::connect(p.addr).await;
    assert!(
        conn.write(
            b"POST /api/x HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n"
        )
        .await
    );
    assert!(eventually(DEADLINE, || started.load(Ordering::SeqCst) == 1).await);
    let big = format!("64\r\n{}\r\n0\r\n\r\n", "y".repeat(100));
    conn.write(big.as_bytes()).await;
    let reply = conn.read_to_close(DEADLINE).await;
    assert_eq!(reply.status(), Some(413), "{}", reply.text);
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
        b"GET /api/x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ",
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
async fn keep_alive_request(addr: std::net::SocketAddr) -> RawConn {
    let mut conn = RawConn::connect(addr).await;
    assert!(
        conn.write(b"GET /api/x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .await
    );
    let whole = conn
        .read_until(DEADLINE, |b| {
            String::from_utf8_lossy(b).contains("{\"ok\":true}")
        })
        .await;
    assert!(whole, "no whole response in time: {}", conn.text());
    assert!(!conn.closed(), "closed early: {}", conn.text());
    conn
}

#[tokio::test]
async fn connections_beyond_the_maximum_get_503_and_a_freed_slot_is_reused() {
    let up = FakeUpstream::start().await;
    let p = limited(&up, "max_connections = 2", "").await;
    let a = keep_alive_request(p.addr).await;
    let _b = keep_alive_request(p.addr).await;
    let reply = raw_send(
        p.addr,
        b"GET /api/x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        DEADLINE,
    )
    .await;
    assert_eq!(reply.status(), Some(503), "{}", reply.text);
    assert!(reply.text.contains("too_many_connections"));
    assert!(reply.closed);
    assert_eq!(up.count(), 2);
    drop(a);
    let reused = poll(DEADLINE, || async {
        let r = raw_send(
            p.addr,
            b"GET /api/x HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
            DEADLINE,
        )
        .await;
        (r.status() == Some(200)).then_some(())
    })
    .await;
    assert!(reused.is_some(), "the freed slot was never reused");
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

/// Writes `raw` and reads frames until a GOAWAY (or, after a bare preface, the server's
/// SETTINGS), the connection closes, or the deadline passes.
async fn h2_exchange(addr: std::net::SocketAddr, raw: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
    let mut conn = RawConn::connect(addr).await;
    assert!(conn.write(raw).await);
    conn.read_until(DEADLINE, |b| {
        parse_frames(b)
            .iter()
            .any(|f| f.0 == 7 || f.0 == 4 && f.1 == 0 && raw.len() <= 33)
    })
    .await;
    parse_frames(conn.received())
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
    let got = Req::get(proxy_url(&p, "/api/after")).h2().send().await;
    assert_eq!(got.status, 200);
    assert_eq!(up.count(), 1);
}

#[tokio::test]
async fn over_http2_a_header_list_beyond_the_advertised_size_is_refused_by_the_h2_stack() {
    let up = FakeUpstream::start().await;
    let p = limited(&up, "", "").await;
    // Many small fields: within the head's bytes, over HPACK's 32-per-field count.
    let many = (0..3000).fold(Req::get(proxy_url(&p, "/api/x")).h2(), |r, i| {
        r.header(&format!("x-h{i}"), "v")
    });
    let got = many.send().await;
    assert_eq!(got.status, 431);
    assert!(got.body.is_empty(), "h2's own answer: {}", got.text());
    // One field too long for the CONTINUATION frames h2 follows: the connection is ended.
    let huge = Req::get(proxy_url(&p, "/api/x"))
        .header("x-big", &"a".repeat(200 * 1024))
        .h2()
        .build();
    let ended = tokio::time::timeout(DEADLINE, h2c_client().request(huge))
        .await
        .expect("an answer within the deadline");
    let err = format!("{:?}", ended.expect_err("refused"));
    assert!(
        err.contains("GoAway") && err.contains("ENHANCE_YOUR_CALM"),
        "{err}"
    );
    assert_eq!(up.count(), 0);
}
