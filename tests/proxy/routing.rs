//! Which route a request takes, and what is refused before anything is forwarded.

use std::time::Duration;
use support::*;

const DEADLINE: Duration = Duration::from_secs(10);

/// `/campaign` to `a`'s `/short` and `/campaign/special/` to `b`'s `/long`.
async fn two_routes(a: &FakeUpstream, b: &FakeUpstream) -> ims_proxy::Running {
    ProxyToml::new()
        .static_credential("cred")
        .route(Route::new("/campaign").upstream(format!("{}/short", a.url())))
        .route(Route::new("/campaign/special/").upstream(format!("{}/long", b.url())))
        .start()
        .await
}

/// Sends `raw` to the proxy and reads until it closes.
async fn exchange(p: &ims_proxy::Running, raw: &str) -> String {
    raw_send(p.addr, raw.as_bytes(), DEADLINE).await.text
}

#[tokio::test]
async fn the_longest_matching_prefix_wins() {
    let (a, b) = (FakeUpstream::start().await, FakeUpstream::start().await);
    let p = two_routes(&a, &b).await;
    get(&proxy_url(&p, "/campaign/special/x")).await;
    get(&proxy_url(&p, "/campaign/specialist")).await;
    assert_eq!(b.only_request().target, "/long/x");
    assert_eq!(a.only_request().target, "/short/specialist");
}

#[tokio::test]
async fn prefixes_match_whole_path_segments_only() {
    let (a, b) = (FakeUpstream::start().await, FakeUpstream::start().await);
    let p = two_routes(&a, &b).await;
    let got = get(&proxy_url(&p, "/campaignx/y")).await;
    assert_eq!(got.status, 404);
    assert_eq!(a.count() + b.count(), 0);
}

#[tokio::test]
async fn no_route_is_a_404_in_adobes_error_shape() {
    let (a, b) = (FakeUpstream::start().await, FakeUpstream::start().await);
    let p = two_routes(&a, &b).await;
    let got = get(&proxy_url(&p, "/unknown/path")).await;
    assert_eq!(got.status, 404);
    assert_eq!(got.header("content-type"), Some("application/json"));
    let j = got.json();
    assert_eq!(j["error_code"], "no_route");
    assert!(j["message"].as_str().unwrap().contains("/unknown/path"));
    assert_eq!(j["request_id"], got.header("x-request-id").unwrap());
}

#[tokio::test]
async fn dot_segments_climbing_above_the_base_are_refused_and_not_forwarded() {
    let (a, b) = (FakeUpstream::start().await, FakeUpstream::start().await);
    let p = two_routes(&a, &b).await;
    for path in [
        "/campaign/../../admin",
        "/campaign/%2e%2e/x",
        "/campaign/a/%2E%2E/%2e%2e/x",
        "/campaign/..%2f..%2fx",
    ] {
        let raw = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        let resp = exchange(&p, &raw).await;
        assert!(resp.starts_with("HTTP/1.1 400"), "{path}: {resp}");
        assert!(
            resp.contains("\"error_code\":\"bad_request\""),
            "{path}: {resp}"
        );
    }
    assert_eq!(a.count() + b.count(), 0);
}

#[tokio::test]
async fn dot_segments_that_stay_inside_the_base_are_forwarded_byte_for_byte() {
    let (a, b) = (FakeUpstream::start().await, FakeUpstream::start().await);
    let p = two_routes(&a, &b).await;
    let raw = "GET /campaign/a/../b/./c HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    let resp = exchange(&p, raw).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert_eq!(a.only_request().target, "/short/a/../b/./c");
}

#[tokio::test]
async fn absolute_form_targets_are_refused_so_this_is_never_an_open_proxy() {
    let (a, b) = (FakeUpstream::start().await, FakeUpstream::start().await);
    let p = two_routes(&a, &b).await;
    let raw = format!(
        "GET http://{}/campaign/x HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        a.addr, a.addr
    );
    let resp = exchange(&p, &raw).await;
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    assert_eq!(a.count() + b.count(), 0);
}

#[tokio::test]
async fn connect_is_refused() {
    let (a, b) = (FakeUpstream::start().await, FakeUpstream::start().await);
    let p = two_routes(&a, &b).await;
    let raw = format!(
        "CONNECT {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        a.addr, a.addr
    );
    let resp = exchange(&p, &raw).await;
    assert!(resp.starts_with("HTTP/1.1 405"), "{resp}");
    assert_eq!(a.count() + b.count(), 0);
}
