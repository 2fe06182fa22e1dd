//! Availability: no client can hold the proxy's connections, file descriptors or upstream
//! connections so that others are locked out. Every clock here is shortened in the config so
//! the tests wait fractions of a second, with deadlines far above them.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use support::*;

const DEADLINE: Duration = Duration::from_secs(10);

/// The proxy with `[server.limits]` set to `limits` in front of `up` on `/api`.
async fn limited(up: &FakeUpstream, limits: &str) -> ims_proxy::Running {
    static_proxy(Route::new("/api").upstream(up.url()))
        .section(&format!("[server.limits]\n{limits}"))
        .start()
        .await
}

// ---- HTTP/2 frames, by hand ------------------------------------------------------------

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut v = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    v.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// The client preface and an empty SETTINGS frame.
fn h2_preface() -> Vec<u8> {
    let mut v = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    v.extend_from_slice(&frame(4, 0, 0, &[]));
    v
}

/// HEADERS (END_STREAM | END_HEADERS) for `GET http://p/api/x`, HPACK by hand: GET and http
/// from the static table, `:path` and `:authority` as literals without indexing.
fn h2_get(stream: u32) -> Vec<u8> {
    let mut block = vec![0x82, 0x86, 0x04, 6];
    block.extend_from_slice(b"/api/x");
    block.extend_from_slice(&[0x01, 9]);
    block.extend_from_slice(b"127.0.0.1");
    frame(1, 0x5, stream, &block)
}

const GOAWAY: u8 = 7;

/// Frames from the bytes of an HTTP/2 server: (type, flags, stream).
fn frames(mut b: &[u8]) -> Vec<(u8, u8, u32)> {
    let mut out = Vec::new();
    if b.len() >= 24 && b.starts_with(b"PRI") {
        b = &b[24..];
    }
    while b.len() >= 9 {
        let len = (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]);
        if b.len() < 9 + len {
            break;
        }
        let stream = u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff;
        out.push((b[3], b[4], stream));
        b = &b[9 + len..];
    }
    out
}

/// The payloads of the PINGs (not their ACKs) the server sent.
fn pings(mut b: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while b.len() >= 9 {
        let len = (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]);
        if b.len() < 9 + len {
            break;
        }
        if b[3] == 6 && b[4] & 0x1 == 0 {
            out.push(b[9..9 + len].to_vec());
        }
        b = &b[9 + len..];
    }
    out
}

fn has_goaway(b: &[u8]) -> bool {
    frames(b).iter().any(|f| f.0 == GOAWAY)
}

// ---- 1. silent connections -------------------------------------------------------------

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_header_read_timeout() {
    let up = FakeUpstream::start().await;
    let p = limited(
        &up,
        "header_read_timeout = \"300ms\"\nidle_timeout = \"60s\"",
    )
    .await;
    let began = Instant::now();
    let reply = RawConn::connect(p.addr).await.read_to_close(DEADLINE).await;
    assert!(reply.closed, "a silent connection must be closed");
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "closed after {:?}, not after the header read timeout",
        began.elapsed()
    );
}

#[tokio::test]
async fn a_connection_that_stops_inside_the_http2_preface_is_closed_after_the_header_read_timeout()
{
    let up = FakeUpstream::start().await;
    let p = limited(
        &up,
        "header_read_timeout = \"300ms\"\nidle_timeout = \"60s\"",
    )
    .await;
    let began = Instant::now();
    let reply = raw_send(p.addr, b"PRI * HTTP/2.0\r\n", DEADLINE).await;
    assert!(
        reply.closed,
        "a half-sent preface must not hold the connection"
    );
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "{:?}",
        began.elapsed()
    );
}

#[tokio::test]
async fn silent_connections_that_fill_every_slot_give_them_back_after_the_header_read_timeout() {
    let up = FakeUpstream::start().await;
    let p = limited(
        &up,
        "max_connections = 20\nheader_read_timeout = \"300ms\"\nidle_timeout = \"60s\"",
    )
    .await;
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(RawConn::connect(p.addr).await);
    }
    let served = poll(DEADLINE, || async {
        let r = raw_send(
            p.addr,
            b"GET /api/x HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
            DEADLINE,
        )
        .await;
        (r.status() == Some(200)).then_some(())
    })
    .await;
    assert!(served.is_some(), "silent connections kept every slot");
    drop(silent);
}

// ---- 2. HTTP/2 idle and connection age -------------------------------------------------

#[tokio::test]
async fn an_http2_connection_that_only_sends_pings_is_closed_after_the_idle_timeout() {
    let up = FakeUpstream::start().await;
    let p = limited(&up, "idle_timeout = \"300ms\"").await;
    let began = Instant::now();
    let mut conn = RawConn::connect(p.addr).await;
    assert!(conn.write(&h2_preface()).await);
    // A PING every 50 ms, as a client keeping the connection warm would.
    while !conn.closed() && began.elapsed() < DEADLINE {
        if !conn.write(&frame(6, 0, 0, &[0; 8])).await {
            break;
        }
        conn.read_until(Duration::from_millis(50), |_| false).await;
    }
    assert!(
        conn.closed() || has_goaway(conn.received()),
        "PINGs kept the connection open for {:?}",
        began.elapsed()
    );
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "{:?}",
        began.elapsed()
    );
}

#[tokio::test]
async fn an_http2_connection_past_its_maximum_age_gets_goaway_and_its_request_in_flight_completes()
{
    let up = FakeUpstream::held().await;
    let p = limited(&up, "max_connection_age = \"300ms\"").await;
    let mut conn = RawConn::connect(p.addr).await;
    let mut raw = h2_preface();
    raw.extend_from_slice(&h2_get(1));
    assert!(conn.write(&raw).await);
    assert!(eventually(DEADLINE, || up.count() == 1).await);
    assert!(
        conn.read_until(DEADLINE, has_goaway).await,
        "no GOAWAY after the maximum age: {:?}",
        frames(conn.received())
    );
    up.release();
    let ended = |b: &[u8]| {
        frames(b)
            .iter()
            .any(|f| f.2 == 1 && f.1 & 0x1 != 0 && (f.0 == 0 || f.0 == 1))
    };
    assert!(
        conn.read_until(DEADLINE, ended).await,
        "the request in flight did not complete: {:?}",
        frames(conn.received())
    );
    assert!(frames(conn.received()).iter().any(|f| f.0 == 1 && f.2 == 1));
    // The server's graceful GOAWAY waits for the answer to its PING, as clients give it.
    for payload in pings(conn.received()) {
        assert!(conn.write(&frame(6, 0x1, 0, &payload)).await);
    }
    let reply = conn.read_to_close(DEADLINE).await;
    assert!(reply.closed, "the drained connection must close");
}

#[tokio::test]
async fn an_http1_connection_past_its_maximum_age_is_closed_between_whole_responses() {
    let up = FakeUpstream::start().await;
    let p = limited(&up, "max_connection_age = \"300ms\"").await;
    let began = Instant::now();
    let mut conn = RawConn::connect(p.addr).await;
    let mut answered = 0usize;
    let mut said_close = false;
    while began.elapsed() < DEADLINE {
        if !conn
            .write(b"GET /api/x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .await
        {
            break;
        }
        let want = answered + 1;
        let whole = conn
            .read_until(DEADLINE, |b| {
                String::from_utf8_lossy(b).matches("{\"ok\":true}").count() >= want
            })
            .await;
        if !whole {
            break;
        }
        answered = want;
        let text = conn.text();
        let last_head = text
            .rsplit("HTTP/1.1 ")
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        if last_head.contains("connection: close") {
            said_close = true;
            break;
        }
    }
    let reply = conn.read_to_close(DEADLINE).await;
    assert!(reply.closed, "an old connection must be closed");
    let age = began.elapsed();
    assert!(
        answered >= 1 && age < Duration::from_secs(8),
        "{answered} answers, {age:?}"
    );
    // Closed either with `Connection: close` on a response, or while idle between two.
    assert!(
        said_close || !reply.text.contains("HTTP/1.1 5"),
        "{}",
        reply.text
    );
}

// ---- 3. per client address -------------------------------------------------------------

const SOURCE_A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
const SOURCE_B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 3));

/// One keep-alive request from `source`, answered whole; the connection is left open.
async fn held_from(addr: SocketAddr, source: IpAddr) -> RawConn {
    let mut conn = RawConn::connect_from(addr, source).await;
    assert!(
        conn.write(b"GET /api/x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .await
    );
    let whole = conn
        .read_until(DEADLINE, |b| {
            String::from_utf8_lossy(b).contains("{\"ok\":true}")
        })
        .await;
    assert!(whole, "not served: {}", conn.text());
    conn
}

#[tokio::test]
async fn connections_beyond_the_cap_for_one_address_get_503_while_other_addresses_are_served() {
    let up = FakeUpstream::start().await;
    let p = limited(&up, "max_connections_per_peer = 2").await;
    let _a1 = held_from(p.addr, SOURCE_A).await;
    let _a2 = held_from(p.addr, SOURCE_A).await;
    let mut third = RawConn::connect_from(p.addr, SOURCE_A).await;
    third
        .write(b"GET /api/x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await;
    let reply = third.read_to_close(DEADLINE).await;
    assert_eq!(reply.status(), Some(503), "{}", reply.text);
    assert!(reply.text.contains("too_many_connections_from_peer"));
    assert!(reply.closed);
    let _b = held_from(p.addr, SOURCE_B).await;
    assert_eq!(up.count(), 3);
}

#[tokio::test]
async fn with_the_default_limits_one_loopback_client_holds_a_hundred_connections() {
    let up = FakeUpstream::start().await;
    let p = static_proxy(Route::new("/api").upstream(up.url()))
        .start()
        .await;
    let mut held = Vec::new();
    for _ in 0..100 {
        held.push(held_from(p.addr, IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)).await);
    }
    assert_eq!(up.count(), 100);
}

// ---- 4. the admin listener and file descriptors -----------------------------------------

async fn with_admin(admin: &str) -> ims_proxy::Running {
    let up = FakeUpstream::start().await;
    let p = static_proxy(Route::new("/api").upstream(up.url()))
        .section(&format!("[admin]\nlisten = \"127.0.0.1:0\"\n{admin}"))
        .start()
        .await;
    std::mem::forget(up);
    p
}

#[tokio::test]
async fn admin_connections_beyond_its_cap_get_503_and_the_proxy_port_keeps_answering() {
    let p = with_admin("max_connections = 4\nheader_read_timeout = \"60s\"").await;
    let admin = p.admin_addr.expect("admin");
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(RawConn::connect(admin).await);
    }
    let refused = poll(DEADLINE, || async {
        let r = raw_send(admin, b"", Duration::from_secs(2)).await;
        (r.status() == Some(503) && r.closed).then_some(r.text)
    })
    .await;
    assert!(
        refused.is_some_and(|t| t.contains("too_many_connections")),
        "the admin listener took a fifth connection"
    );
    assert_eq!(get(&proxy_url(&p, "/api/x")).await.status, 200);
    drop(idle);
}

#[tokio::test]
async fn a_silent_admin_connection_is_closed_after_the_admin_header_read_timeout() {
    let p = with_admin("header_read_timeout = \"300ms\"").await;
    let began = Instant::now();
    let reply = RawConn::connect(p.admin_addr.expect("admin"))
        .await
        .read_to_close(DEADLINE)
        .await;
    assert!(reply.closed);
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "{:?}",
        began.elapsed()
    );
}

#[tokio::test]
async fn an_idle_admin_connection_is_closed_after_the_admin_idle_timeout() {
    let p = with_admin("idle_timeout = \"300ms\"\nheader_read_timeout = \"60s\"").await;
    let mut conn = RawConn::connect(p.admin_addr.expect("admin")).await;
    assert!(
        conn.write(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
    );
    assert!(
        conn.read_until(DEADLINE, |b| String::from_utf8_lossy(b).contains("ok\n"))
            .await
    );
    let began = Instant::now();
    let reply = conn.read_to_close(DEADLINE).await;
    assert!(reply.closed, "the idle admin connection must be closed");
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "{:?}",
        began.elapsed()
    );
}

#[tokio::test]
async fn near_the_file_descriptor_limit_new_connections_get_503_and_the_admin_port_answers() {
    let up = FakeUpstream::start().await;
    let toml = static_proxy(Route::new("/api").upstream(up.url()))
        .section("[server]\nlisten = \"127.0.0.1:0\"")
        .section("[server.limits]\nmax_connections = 1000\nheader_read_timeout = \"60s\"")
        .section("[admin]\nlisten = \"127.0.0.1:0\"\nmax_connections = 4")
        .toml();
    // 128 descriptors: 32 kept back, 4 for the admin port, 92 for connections.
    let child = ChildProxy::spawn_with_fd_limit(&toml, 128);
    let addr = child.addr().await;
    let mut held = Vec::new();
    let mut refused = 0usize;
    for _ in 0..140 {
        let mut c = RawConn::connect(addr).await;
        if c.read_until(Duration::from_millis(20), |b| b.ends_with(b"}\n"))
            .await
        {
            assert!(c.text().contains("too_many_connections"), "{}", c.text());
            refused += 1;
        } else {
            held.push(c);
        }
    }
    assert!(
        refused >= 40,
        "{refused} of 140 connections were refused with an answer; {} held",
        held.len()
    );
    child.assert_serving_within_its_descriptors().await;
    drop(held);
}

// ---- 5. premature resets and the upstream circuit breaker --------------------------------

#[tokio::test]
async fn an_http2_client_that_resets_the_streams_the_proxy_accepted_gets_goaway() {
    let up = FakeUpstream::held().await;
    let p = limited(&up, "h2_max_premature_resets = 10").await;
    let mut conn = RawConn::connect(p.addr).await;
    assert!(conn.write(&h2_preface()).await);
    let mut sent = 0u32;
    while sent < 100 && !has_goaway(conn.received()) && !conn.closed() {
        let id = 2 * sent + 1;
        if !conn.write(&h2_get(id)).await {
            break;
        }
        sent += 1;
        // Reset only once the request reached the upstream: accepted, not pending.
        let forwarded = sent as usize;
        if !eventually(DEADLINE, || up.count() >= forwarded).await {
            break;
        }
        if !conn.write(&frame(3, 0, id, &8u32.to_be_bytes())).await {
            break;
        }
        conn.read_until(Duration::from_millis(5), has_goaway).await;
    }
    conn.read_until(DEADLINE, has_goaway).await;
    assert!(
        has_goaway(conn.received()) || conn.closed(),
        "no GOAWAY or close after {sent} reset streams"
    );
    assert!(
        conn.read_to_close(DEADLINE).await.closed,
        "the connection must close"
    );
    assert!(
        up.count() <= 12,
        "{} requests reached the upstream",
        up.count()
    );
}

/// A rapid-reset client that reconnects: for `run`, opens connection after connection and on
/// each opens streams in batches of 20 and resets them (RST_STREAM CANCEL) 5 ms later, until
/// the proxy closes the connection (or refuses it). Returns the connections it
/// got to send on, and those refused at once.
async fn rapid_reset_reconnecting(addr: std::net::SocketAddr, run: Duration) -> (usize, usize) {
    let end = Instant::now() + run;
    let (mut used, mut refused) = (0, 0);
    while Instant::now() < end {
        let mut conn = RawConn::connect(addr).await;
        if !conn.write(&h2_preface()).await {
            refused += 1;
            continue;
        }
        let mut id = 1u32;
        let mut sent_any = false;
        while Instant::now() < end && !conn.closed() && !has_goaway(conn.received()) {
            let (mut opened, mut resets) = (Vec::new(), Vec::new());
            for _ in 0..20 {
                opened.extend_from_slice(&h2_get(id));
                resets.extend_from_slice(&frame(3, 0, id, &8u32.to_be_bytes()));
                id += 2;
            }
            if !conn.write(&opened).await {
                break;
            }
            sent_any = true;
            // Long enough for the proxy to forward them, far shorter than any answer.
            conn.read_until(Duration::from_millis(5), has_goaway).await;
            if !conn.write(&resets).await {
                break;
            }
        }
        if sent_any && !conn.text().starts_with("HTTP/1.1 429") {
            used += 1;
        } else {
            refused += 1;
        }
    }
    (used, refused)
}

#[tokio::test]
async fn a_client_address_sent_goaway_for_early_resets_is_refused_when_it_reconnects() {
    let up = FakeUpstream::held().await;
    let p = limited(&up, "h2_max_premature_resets = 10").await;
    let (used, refused) = rapid_reset_reconnecting(p.addr, Duration::from_secs(2)).await;
    eprintln!(
        "a 2 s rapid-reset run: {} requests reached the upstream over {used} connections; \
         {refused} connections refused",
        up.count()
    );
    assert!(
        up.count() <= 10 + 2 * 20,
        "{} requests reached the upstream over {used} connections",
        up.count()
    );
    let get = format!("GET /api/x HTTP/1.1\r\nHost: {}\r\n\r\n", p.addr);
    let refusal = raw_send(p.addr, get.as_bytes(), DEADLINE).await;
    assert_eq!(refusal.status(), Some(429), "{}", refusal.text);
    assert!(refusal.text.contains("too_many_resets"), "{}", refusal.text);
    assert!(refusal.closed);
}

#[tokio::test]
async fn connections_to_one_upstream_stop_at_the_cap_and_requests_beyond_it_get_503() {
    let up = FakeUpstream::held().await;
    let p = static_proxy(Route::new("/api").upstream(up.url()))
        .client("max_connections_per_upstream = 2\nconnect_timeout = \"300ms\"")
        .start()
        .await;
    let url = proxy_url(&p, "/api/x");
    let first: Vec<_> = (0..2)
        .map(|_| tokio::spawn(get_owned(url.clone())))
        .collect();
    assert!(eventually(DEADLINE, || up.count() == 2).await);
    let beyond: Vec<_> = (0..3)
        .map(|_| tokio::spawn(get_owned(url.clone())))
        .collect();
    for b in beyond {
        let got = b.await.expect("task");
        assert_eq!(got.status, 503, "{}", got.text());
        assert_eq!(got.json()["error_code"], "upstream_connection_limit");
    }
    assert_eq!(up.connections(), 2);
    up.release();
    for f in first {
        assert_eq!(f.await.expect("task").status, 200);
    }
}

#[tokio::test]
async fn a_request_beyond_the_upstream_cap_waits_for_a_connection_to_free() {
    let up = FakeUpstream::held().await;
    let p = static_proxy(Route::new("/api").upstream(up.url()))
        .client("max_connections_per_upstream = 1\nconnect_timeout = \"10s\"")
        .start()
        .await;
    let url = proxy_url(&p, "/api/x");
    let first = tokio::spawn(get_owned(url.clone()));
    assert!(eventually(DEADLINE, || up.count() == 1).await);
    let second = tokio::spawn(get_owned(url.clone()));
    up.release();
    assert_eq!(first.await.expect("task").status, 200);
    assert_eq!(second.await.expect("task").status, 200);
    // On the first's connection (the pool's, or one its caller had put back idle), or on a
    // new one once the first's was let go for the waiter: either way after it freed.
    assert_eq!(up.count(), 2);
}

async fn get_owned(url: String) -> Got {
    get(&url).await
}

// ---- configuration ---------------------------------------------------------------------

#[test]
fn zero_where_zero_is_not_off_is_a_config_error_naming_the_key() {
    for (section, key) in [
        (
            "[server.limits]\nmax_connection_age = \"0s\"",
            "server.limits.max_connection_age",
        ),
        (
            "[server.limits]\nh2_max_premature_resets = 0",
            "server.limits.h2_max_premature_resets",
        ),
        ("[admin]\nmax_connections = 0", "admin.max_connections"),
        (
            "[admin]\nheader_read_timeout = \"0s\"",
            "admin.header_read_timeout",
        ),
        ("[admin]\nidle_timeout = \"0s\"", "admin.idle_timeout"),
        (
            "[client]\nmax_connections_per_upstream = 0",
            "client.max_connections_per_upstream",
        ),
    ] {
        let err = static_proxy(Route::new("/api").upstream("http://127.0.0.1:1"))
            .section(section)
            .build_error();
        assert_eq!(err.key, key, "{err}");
    }
}

#[test]
fn a_per_peer_cap_of_zero_turns_it_off() {
    let config = static_proxy(Route::new("/api").upstream("http://127.0.0.1:1"))
        .section("[server.limits]\nmax_connections_per_peer = 0")
        .parse();
    let snap = ims_proxy::Snapshot::build(&config, None).expect("builds");
    assert_eq!(snap.conn_limits.max_connections_per_peer, None);
}
