//! `client.max_connections_per_upstream` is a cap on what the upstream may be sent at once,
//! not a queue behind idle connections or behind one caller: an idle connection, whichever
//! thread's pool or caller connection holds it, gives way to a request at the cap; and one
//! caller cannot take every connection from the others
//! (`client.max_in_flight_per_caller`).
//!
//! The proxy here is the real binary on two threads (`TOKIO_WORKER_THREADS=2`: two
//! thread-per-core runtimes, each with its own pool), as `ims-proxy run` serves in
//! production; which thread a caller connection lands on is the kernel's choice
//! (`SO_REUSEPORT`), so each test sends enough callers that both threads get some.

use http::{Response, StatusCode};
use std::net::SocketAddr;
use std::time::Duration;
use support::*;

/// Well short of the `connect_timeout` the tests set (a minute): an answer within it did
/// not wait for a connection to time out.
const PROMPTLY: Duration = Duration::from_secs(20);

/// Fresh callers after a burst: with two threads, all twelve landing on the burst's thread
/// happens once in 2,048 runs.
const FRESH_CALLERS: usize = 12;

const AFFINITY: &str = "connection_affinity = true";
const POOL: &str = "connection_affinity = false";

/// The real binary on two threads, sending `/api` to `up` with these `[client]` keys,
/// and `clients` (`[[clients]]` tables) appended.
async fn two_threads(up: &str, client: &str, clients: &str) -> (ChildProxy, SocketAddr) {
    let toml = static_proxy(Route::new("/api").upstream(up))
        .section("[server]\nlisten = \"127.0.0.1:0\"")
        .client(client)
        .append(clients)
        .toml();
    let child = ChildProxy::spawn_with_env(&toml, &[], &[("TOKIO_WORKER_THREADS", "2")]);
    let addr = child.addr().await;
    (child, addr)
}

/// An upstream that holds `/slow` until released and answers everything else at once.
async fn slow_and_fast() -> (FakeUpstream, tokio::sync::watch::Sender<bool>) {
    let (open, gate) = tokio::sync::watch::channel(false);
    let up = FakeUpstream::with_handler(move |req| {
        let mut gate = gate.clone();
        async move {
            if req.uri().path().starts_with("/slow") {
                let _ = gate.wait_for(|o| *o).await;
            }
            Response::new(full("done"))
        }
    })
    .await;
    (up, open)
}

/// How many requests to `/slow` have reached `up` (and are held there until released).
fn held(up: &FakeUpstream) -> usize {
    up.requests()
        .iter()
        .filter(|r| r.target.starts_with("/slow"))
        .count()
}

/// `n` requests to `/api/slow` at once over one h2c caller connection (so on one thread),
/// held by the upstream until `open` is set, then all answered: they leave `n` idle
/// upstream connections in that thread's pool.
async fn h2_burst(
    addr: SocketAddr,
    up: &FakeUpstream,
    open: &tokio::sync::watch::Sender<bool>,
    n: usize,
) {
    let caller = h2c_client();
    // One connection first, so that the burst's streams share it.
    let warm = Req::get(format!("http://{addr}/api/warm"))
        .send_on(&caller)
        .await;
    assert_eq!(warm.status, 200, "{}", warm.text());
    let streams: Vec<_> = (0..n)
        .map(|i| {
            let caller = caller.clone();
            let url = format!("http://{addr}/api/slow/{i}");
            tokio::spawn(async move { Req::get(url).send_on(&caller).await })
        })
        .collect();
    assert!(
        eventually(PROMPTLY, || held(up) == n).await,
        "{} of {n} burst requests reached the upstream",
        held(up)
    );
    open.send_replace(true);
    for s in streams {
        let got = s.await.expect("task");
        assert_eq!(got.status, 200, "{}", got.text());
    }
}

/// How `FRESH_CALLERS` callers fared, each on a connection of its own, all at once: the
/// statuses of those answered within [`PROMPTLY`], and how many were not.
async fn fresh_callers(addr: SocketAddr) -> (Vec<StatusCode>, usize) {
    let callers: Vec<_> = (0..FRESH_CALLERS)
        .map(|i| {
            let url = format!("http://{addr}/api/fresh/{i}");
            tokio::spawn(async move {
                let send = async { H1Conn::open(addr).await.send(Req::get(url)).await };
                tokio::time::timeout(PROMPTLY, send)
                    .await
                    .ok()
                    .map(|g| g.status)
            })
        })
        .collect();
    let (mut answered, mut waited) = (Vec::new(), 0);
    for c in callers {
        match c.await.expect("task") {
            Some(status) => answered.push(status),
            None => waited += 1,
        }
    }
    (answered, waited)
}

/// The cap the burst tests set, and the number of the burst's requests.
const BURST: usize = 3;

/// The real binary on two threads with these `[client]` keys, the cap at [`BURST`] and a
/// minute to wait for a connection, after a burst that left all [`BURST`] connections idle
/// in one thread's pool.
async fn after_a_burst(client: &str) -> (ChildProxy, SocketAddr, FakeUpstream) {
    let (up, open) = slow_and_fast().await;
    let (child, addr) = two_threads(
        &up.url(),
        &format!("{client}\nmax_connections_per_upstream = {BURST}\nconnect_timeout = \"60s\""),
        "",
    )
    .await;
    h2_burst(addr, &up, &open, BURST).await;
    (child, addr, up)
}

/// The burst's connections all idle in one thread's pool; then fresh HTTP/1.1 callers,
/// some on the other thread.
async fn after_a_burst_fresh_callers_on_either_thread_are_served(client: &str) {
    let (_child, addr, _up) = after_a_burst(client).await;
    let (answered, waited) = fresh_callers(addr).await;
    assert_eq!(
        waited, 0,
        "{waited} of {FRESH_CALLERS} fresh callers waited for a connection although all {BURST} were idle"
    );
    assert!(answered.iter().all(|s| *s == 200), "{answered:?}");
}

/// As [`after_a_burst_fresh_callers_on_either_thread_are_served`], one fresh caller after
/// the other: each is served on one of the burst's connections, taken from whichever thread
/// (or caller connection) holds it idle, and none is opened.
async fn after_a_burst_idle_connections_are_handed_over_not_reopened(client: &str) {
    let (_child, addr, up) = after_a_burst(client).await;
    let opened = up.connections();
    // Kept open: a caller connection's held upstream connection closes with it.
    let mut callers = Vec::new();
    for i in 0..FRESH_CALLERS {
        let mut caller = H1Conn::open(addr).await;
        let send = caller.send(Req::get(format!("http://{addr}/api/fresh/{i}")));
        let got = tokio::time::timeout(PROMPTLY, send)
            .await
            .unwrap_or_else(|_| panic!("fresh caller {i} waited for a connection"));
        assert_eq!(got.status, 200, "{}", got.text());
        callers.push(caller);
    }
    assert_eq!(
        up.connections(),
        opened,
        "no connection opened after the burst"
    );
}

#[tokio::test]
async fn after_a_burst_the_pools_idle_connections_are_handed_to_callers_on_the_other_thread() {
    after_a_burst_idle_connections_are_handed_over_not_reopened(POOL).await;
}

#[tokio::test]
async fn after_a_burst_http1_callers_with_affinity_take_idle_connections_from_the_other_thread() {
    after_a_burst_idle_connections_are_handed_over_not_reopened(AFFINITY).await;
}

#[tokio::test]
async fn after_a_burst_the_pools_idle_connections_serve_callers_on_the_other_thread() {
    after_a_burst_fresh_callers_on_either_thread_are_served(POOL).await;
}

#[tokio::test]
async fn after_a_burst_http1_callers_with_affinity_are_served_on_either_thread() {
    after_a_burst_fresh_callers_on_either_thread_are_served(AFFINITY).await;
}

const KEY_A: &str = "caller-a-key-0123456789abcdef";
const KEY_B: &str = "caller-b-key-0123456789abcdef";

fn two_callers() -> String {
    format!(
        "[[clients]]\nname = \"a\"\nkey = \"{KEY_A}\"\n\n\
         [[clients]]\nname = \"b\"\nkey = \"{KEY_B}\"\n"
    )
}

/// Caller `a` sends `many` slow requests at once, more than the upstream's cap (as h2c
/// streams on one connection, or each on an HTTP/1.1 connection of its own); caller `b`
/// then sends one. `b` must get a connection.
async fn one_caller_cannot_take_every_connection(client: &str, a_over_h2: bool) {
    let (up, open) = slow_and_fast().await;
    let (cap, many) = (4, 8);
    let (_child, addr) = two_threads(
        &up.url(),
        &format!("{client}\nmax_connections_per_upstream = {cap}\nconnect_timeout = \"3s\""),
        &two_callers(),
    )
    .await;
    let a = h2c_client();
    let greedy: Vec<_> = (0..many)
        .map(|i| {
            let a = a.clone();
            let req = Req::get(format!("http://{addr}/api/slow/{i}")).header("x-proxy-key", KEY_A);
            tokio::spawn(async move {
                if a_over_h2 {
                    req.send_on(&a).await
                } else {
                    H1Conn::open(addr).await.send(req).await
                }
            })
        })
        .collect();
    assert!(eventually(PROMPTLY, || held(&up) >= cap - 1).await);
    // A moment for more of `a`'s requests to arrive, as they would without a share: the
    // figure below is then what `a` really holds.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let held_by_a = held(&up);
    let b = tokio::time::timeout(
        PROMPTLY,
        Req::get(format!("http://{addr}/api/fast"))
            .header("x-proxy-key", KEY_B)
            .send(),
    )
    .await
    .expect("b answered within 20 s");
    assert_eq!(
        b.status,
        200,
        "caller b: {} ({held_by_a} of {cap} connections held by caller a)",
        b.text()
    );
    assert!(held_by_a < cap, "caller a holds all {cap} connections");
    // Beyond its share, `a`'s requests wait for its own to end (within `connect_timeout`),
    // then are refused; those it holds are still held.
    let beyond = many - held_by_a;
    assert!(
        eventually(PROMPTLY, || greedy
            .iter()
            .filter(|g| g.is_finished())
            .count()
            == beyond)
        .await,
        "a's requests beyond its share were answered"
    );
    open.send_replace(true);
    let mut refused = 0;
    for g in greedy {
        let got = g.await.expect("task");
        match got.status.as_u16() {
            200 => {}
            503 => {
                assert_eq!(
                    got.json()["error_code"],
                    "caller_upstream_share",
                    "{}",
                    got.text()
                );
                assert!(
                    got.text().contains("max_in_flight_per_caller"),
                    "{}",
                    got.text()
                );
                refused += 1;
            }
            other => panic!("caller a got {other}: {}", got.text()),
        }
    }
    assert_eq!(
        held(&up),
        held_by_a,
        "a's refused requests never reached the upstream"
    );
    assert_eq!(refused, beyond);
}

#[tokio::test]
async fn one_caller_with_many_h2_streams_leaves_another_caller_a_connection() {
    one_caller_cannot_take_every_connection(POOL, true).await;
}

#[tokio::test]
async fn one_caller_with_many_http1_connections_leaves_another_caller_a_connection() {
    one_caller_cannot_take_every_connection(AFFINITY, false).await;
}

#[tokio::test]
async fn without_keys_each_client_address_has_a_share_of_its_own() {
    let (up, open) = slow_and_fast().await;
    let (cap, many) = (4, 6);
    let (_child, addr) = two_threads(
        &up.url(),
        &format!("max_connections_per_upstream = {cap}\nconnect_timeout = \"60s\""),
        "",
    )
    .await;
    let greedy_ip: std::net::IpAddr = [127, 0, 0, 2].into();
    let greedy: Vec<_> = (0..many)
        .map(|i| {
            let req = Req::get(format!("http://{addr}/api/slow/{i}"));
            tokio::spawn(async move { H1Conn::open_from(addr, greedy_ip).await.send(req).await })
        })
        .collect();
    assert!(eventually(PROMPTLY, || held(&up) >= cap - 1).await);
    let mut other = H1Conn::open_from(addr, [127, 0, 0, 3].into()).await;
    let got = tokio::time::timeout(
        PROMPTLY,
        other.send(Req::get(format!("http://{addr}/api/fast"))),
    )
    .await
    .expect("the other address answered within 20 s");
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(held(&up), cap - 1, "127.0.0.2 holds its share, no more");
    open.send_replace(true);
    for g in greedy {
        assert_eq!(
            g.await.expect("task").status,
            200,
            "within the minute's wait"
        );
    }
}

#[tokio::test]
async fn an_idle_upstream_connection_without_a_caller_slot_is_closed_after_pool_idle_timeout() {
    let up = RawUpstream::replying(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        .then(End::Hold)
        .start()
        .await;
    let p = static_proxy(Route::new("/api").upstream(up.url()))
        .client("pool_idle_timeout = \"1s\"")
        .start()
        .await;
    // An h2 caller's request has no caller slot, on either outbound path.
    let got = Req::get(proxy_url(&p, "/api/x")).h2().send().await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert!(
        eventually(PROMPTLY, || up.closed() == 1).await,
        "the idle connection is still open"
    );
}

#[test]
fn a_share_of_zero_or_beyond_the_cap_is_a_config_error_naming_the_key() {
    for (keys, reason) in [
        ("max_in_flight_per_caller = 0", "at least 1"),
        (
            "max_connections_per_upstream = 4\nmax_in_flight_per_caller = 5",
            "more than client.max_connections_per_upstream (4)",
        ),
    ] {
        let err = static_proxy(Route::new("/api").upstream("http://127.0.0.1:1"))
            .client(keys)
            .build_error();
        assert_eq!(err.key, "client.max_in_flight_per_caller", "{err}");
        assert!(err.to_string().contains(reason), "{err}");
    }
}

#[test]
fn a_share_up_to_the_cap_is_accepted() {
    let config = static_proxy(Route::new("/api").upstream("http://127.0.0.1:1"))
        .client("max_connections_per_upstream = 4\nmax_in_flight_per_caller = 4")
        .parse();
    assert!(ims_proxy::Snapshot::build(&config, None).is_ok());
}
