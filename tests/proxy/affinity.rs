//! Connection affinity (`client.connection_affinity`, on by default): each HTTP/1.1 caller
//! connection's requests go to an HTTP/1.1 upstream over one upstream connection of its own.
//! What the pool did for them still holds: the per-upstream cap, a connection the upstream
//! closed while idle, a connection whose response was refused. The callers here are
//! [`H1Conn`]s, so that one caller connection is exactly one TCP connection.

use ims_proxy::Running;
use std::time::Duration;
use support::tls::TestPki;
use support::*;

/// Well short of the `connect_timeout` the cap tests set: an answer within it did not wait
/// for a permit to time out.
const PROMPTLY: Duration = Duration::from_secs(20);

const OK_KEEP_ALIVE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

/// Named, not left to the default: the suite's pool pass (`IMS_PROXY_TEST_OUTBOUND=pool`)
/// must not turn these tests' subject off.
const AFFINITY: &str = "connection_affinity = true";

async fn proxy_to(upstream: String) -> Running {
    static_proxy(Route::new("/api").upstream(upstream))
        .client(AFFINITY)
        .start()
        .await
}

/// One connection allowed to the upstream, and a minute to wait for it: an answer within
/// [`PROMPTLY`] did not wait for a permit.
async fn capped_at_one(up: &FakeUpstream) -> Running {
    static_proxy(Route::new("/api").upstream(up.url()))
        .client(&format!(
            "{AFFINITY}\nmax_connections_per_upstream = 1\nconnect_timeout = \"60s\""
        ))
        .start()
        .await
}

/// `req` on `caller`, answered within [`PROMPTLY`].
async fn promptly(caller: &mut H1Conn, req: Req, what: &str) -> Got {
    tokio::time::timeout(PROMPTLY, caller.send(req))
        .await
        .unwrap_or_else(|_| panic!("{what}"))
}

fn api(p: &Running, path: &str) -> Req {
    Req::get(proxy_url(p, path))
}

#[tokio::test]
async fn a_callers_sequential_requests_reach_the_upstream_over_one_connection() {
    let up = FakeUpstream::start().await;
    let p = proxy_to(up.url()).await;
    let mut caller = H1Conn::open(p.addr).await;
    for path in ["/api/a", "/api/b?q=1", "/api/c"] {
        assert_eq!(caller.send(api(&p, path)).await.status, 200);
    }
    assert_eq!(up.conns(), [1, 1, 1]);
    let r = up.requests();
    assert_eq!(r[1].target, "/b?q=1", "origin-form on the wire");
    assert_eq!(r[1].version, http::Version::HTTP_11);
    assert_eq!(r[1].headers["host"], up.addr.to_string());
}

#[tokio::test]
async fn two_caller_connections_use_two_upstream_connections() {
    let up = FakeUpstream::start().await;
    let p = proxy_to(up.url()).await;
    let (mut a, mut b) = (H1Conn::open(p.addr).await, H1Conn::open(p.addr).await);
    for _ in 0..2 {
        assert_eq!(a.send(api(&p, "/api/a")).await.status, 200);
        assert_eq!(b.send(api(&p, "/api/b")).await.status, 200);
    }
    assert_eq!(up.conns(), [1, 2, 1, 2]);
}

#[tokio::test]
async fn an_upstream_closing_its_idle_connection_does_not_fail_the_callers_next_request() {
    // Each upstream connection answers one request, then closes.
    let up = RawUpstream::replying(OK_KEEP_ALIVE)
        .then(End::Close)
        .start()
        .await;
    let p = proxy_to(up.url()).await;
    let mut caller = H1Conn::open(p.addr).await;
    for _ in 0..2 {
        let got = caller.send(api(&p, "/api/x")).await;
        assert_eq!(got.status, 200, "{}", got.text());
    }
    assert_eq!(up.connections(), 2);
}

#[tokio::test]
async fn a_post_lost_on_a_reused_connection_after_its_bytes_were_written_is_not_sent_again() {
    // The upstream answers the first request, reads the second and closes without answer.
    let up = RawUpstream::replying(OK_KEEP_ALIVE)
        .then(End::LoseNext)
        .start()
        .await;
    let p = proxy_to(up.url()).await;
    let mut caller = H1Conn::open(p.addr).await;
    assert_eq!(caller.send(api(&p, "/api/x")).await.status, 200);
    let got = caller
        .send(Req::post(proxy_url(&p, "/api/order")).body("pay once"))
        .await;
    assert_eq!(got.status, 502, "{}", got.text());
    assert_eq!(got.json()["error_code"], "upstream_unreachable");
    assert_eq!(up.received().matches("POST /order ").count(), 1);
    assert_eq!(up.connections(), 1);
}

#[tokio::test]
async fn after_a_refused_response_framing_the_callers_next_request_gets_a_new_connection() {
    // One answer per connection, then only listening: reusing it would leave the second
    // request without an answer.
    let up = RawUpstream::replying(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhello\r\n0\r\n\r\n",
    )
    .then(End::Hold)
    .start()
    .await;
    let p = proxy_to(up.url()).await;
    let mut caller = H1Conn::open(p.addr).await;
    for _ in 0..2 {
        let got = caller.send(api(&p, "/api/x")).await;
        assert_eq!(got.status, 502, "{}", got.text());
        assert_eq!(got.json()["error_code"], "upstream_bad_framing");
    }
    assert_eq!(up.connections(), 2);
}

#[tokio::test]
async fn without_affinity_caller_connections_share_the_pools_upstream_connection() {
    let up = FakeUpstream::start().await;
    let p = static_proxy(Route::new("/api").upstream(up.url()))
        .client("connection_affinity = false")
        .start()
        .await;
    let (mut a, mut b) = (H1Conn::open(p.addr).await, H1Conn::open(p.addr).await);
    for _ in 0..2 {
        assert_eq!(a.send(api(&p, "/api/a")).await.status, 200);
        assert_eq!(b.send(api(&p, "/api/b")).await.status, 200);
    }
    assert_eq!(up.connections(), 1);
}

#[tokio::test]
async fn at_the_cap_an_idle_callers_connection_serves_another_caller_at_once() {
    let up = FakeUpstream::start().await;
    let p = capped_at_one(&up).await;
    let mut a = H1Conn::open(p.addr).await;
    assert_eq!(a.send(api(&p, "/api/a")).await.status, 200);
    // `a` stays open and idle, holding the only connection the cap allows.
    let mut b = H1Conn::open(p.addr).await;
    let got = promptly(
        &mut b,
        api(&p, "/api/b"),
        "answered without waiting for connect_timeout",
    )
    .await;
    assert_eq!(got.status, 200);
    let got = promptly(
        &mut a,
        api(&p, "/api/a"),
        "and the first caller gets it back as promptly",
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(
        up.conns(),
        [1, 1, 1],
        "one connection, handed over each time"
    );
}

#[tokio::test]
async fn an_https_upstream_speaking_http1_is_reached_over_one_connection_per_caller() {
    let pki = TestPki::new();
    let up = FakeUpstream::start_tls_h1(&pki).await;
    let p = static_proxy(Route::new("/api").upstream(up.url()))
        .client(&format!("{AFFINITY}\nca_file = \"{}\"", pki.ca_path()))
        .start()
        .await;
    let mut caller = H1Conn::open(p.addr).await;
    for _ in 0..3 {
        assert_eq!(caller.send(api(&p, "/api/x")).await.status, 200);
    }
    let r = up.requests();
    assert!(r.iter().all(|r| r.version == http::Version::HTTP_11));
    assert_eq!(up.conns(), [1, 1, 1]);
}

#[tokio::test]
async fn an_upstream_choosing_h2_serves_http1_callers_from_the_shared_pool() {
    let pki = TestPki::new();
    let up = FakeUpstream::start_tls(&pki).await;
    let p = static_proxy(Route::new("/api").upstream(up.url()))
        .client(&format!("{AFFINITY}\nca_file = \"{}\"", pki.ca_path()))
        .start()
        .await;
    let (mut a, mut b) = (H1Conn::open(p.addr).await, H1Conn::open(p.addr).await);
    assert_eq!(a.send(api(&p, "/api/a")).await.status, 200);
    // The connection that learnt of h2 was let go; the pool's own carries the request.
    let learnt = up.connections();
    for _ in 0..2 {
        assert_eq!(a.send(api(&p, "/api/a")).await.status, 200);
        assert_eq!(b.send(api(&p, "/api/b")).await.status, 200);
    }
    let r = up.requests();
    assert!(r.iter().all(|r| r.version == http::Version::HTTP_2));
    assert_eq!(
        up.connections(),
        learnt,
        "no connection opened after the first request"
    );
}

#[tokio::test]
async fn at_the_cap_with_the_pool_holding_the_connection_idle_an_http1_caller_is_served_at_once() {
    let up = FakeUpstream::start().await;
    let p = capped_at_one(&up).await;
    // An h2 caller's request leaves the only connection the cap allows idle in the pool.
    assert_eq!(api(&p, "/api/a").h2().send().await.status, 200);
    let mut h1 = H1Conn::open(p.addr).await;
    for path in ["/api/b", "/api/c"] {
        let got = promptly(
            &mut h1,
            api(&p, path),
            "answered without waiting for connect_timeout",
        )
        .await;
        assert_eq!(got.status, 200);
    }
    assert_eq!(
        up.conns(),
        [1, 1, 1],
        "all three over the pool's one connection"
    );
}

#[tokio::test]
async fn h2_callers_are_served_alongside_http1_callers() {
    let up = FakeUpstream::start().await;
    let p = proxy_to(up.url()).await;
    let mut h1 = H1Conn::open(p.addr).await;
    assert_eq!(h1.send(api(&p, "/api/a")).await.status, 200);
    assert_eq!(api(&p, "/api/b").h2().send().await.status, 200);
    assert_eq!(h1.send(api(&p, "/api/c")).await.status, 200);
    let conns = up.conns();
    assert_eq!(
        conns[0], conns[2],
        "the HTTP/1.1 caller kept its connection"
    );
}

#[tokio::test]
async fn a_callers_requests_to_a_second_upstream_use_the_pool_and_leave_the_first_connection_held()
{
    let (first, second) = (FakeUpstream::start().await, FakeUpstream::start().await);
    let p = ProxyToml::new()
        .client(AFFINITY)
        .static_credential("cred")
        .route(Route::new("/one").upstream(first.url()))
        .route(Route::new("/two").upstream(second.url()))
        .start()
        .await;
    let mut caller = H1Conn::open(p.addr).await;
    for _ in 0..2 {
        assert_eq!(caller.send(api(&p, "/one/x")).await.status, 200);
        assert_eq!(caller.send(api(&p, "/two/x")).await.status, 200);
    }
    assert_eq!(first.conns(), [1, 1]);
    assert_eq!(second.count(), 2);
}
