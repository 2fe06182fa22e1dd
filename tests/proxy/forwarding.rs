//! What the upstream receives and what the client gets back, through real sockets.

use std::time::Duration;
use support::*;

/// The proxy with route `/api` (and `extra`) to `up`'s `/base`.
async fn proxy_to(up: &FakeUpstream, extra: &str) -> ims_proxy::Running {
    let route = Route::new("/api")
        .upstream(format!("{}/base", up.url()))
        .extra(extra);
    static_proxy(route).start().await
}

#[tokio::test]
async fn forwards_prefix_rest_and_query_to_the_upstream_base_path() {
    let up = FakeUpstream::start().await;
    let p = proxy_to(&up, "").await;
    let got = get(&proxy_url(&p, "/api/v1/segments?limit=2&x=y")).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json()["ok"], true);
    assert_eq!(up.only_request().target, "/base/v1/segments?limit=2&x=y");
}

#[tokio::test]
async fn adds_bearer_token_and_api_key() {
    let up = FakeUpstream::start().await;
    let p = proxy_to(&up, "").await;
    get(&proxy_url(&p, "/api/x")).await;
    let r = up.only_request();
    assert_eq!(r.headers["authorization"], format!("Bearer {STATIC_TOKEN}"));
    assert_eq!(r.headers["x-api-key"], STATIC_CLIENT_ID);
    assert!(r.headers.get("x-gw-ims-org-id").is_none());
}

#[tokio::test]
async fn org_id_header_is_sent_when_the_route_asks_for_it() {
    let up = FakeUpstream::start().await;
    let p = proxy_to(&up, "org_id_header = true").await;
    get(&proxy_url(&p, "/api/x")).await;
    assert_eq!(up.only_request().headers["x-gw-ims-org-id"], STATIC_ORG);
}

#[tokio::test]
async fn route_static_headers_are_added() {
    let up = FakeUpstream::start().await;
    let p = proxy_to(
        &up,
        r#"headers = { "X-Custom" = "yes", "Accept" = "application/json" }"#,
    )
    .await;
    get(&proxy_url(&p, "/api/x")).await;
    let r = up.only_request();
    assert_eq!(r.headers["x-custom"], "yes");
    assert_eq!(r.headers["accept"], "application/json");
}

#[tokio::test]
async fn path_and_query_reach_the_upstream_byte_for_byte() {
    let up = FakeUpstream::start().await;
    let p = proxy_to(&up, "").await;
    let path = "/api/a%2Fb/c+d//e/%C3%A9t%c3%a9/./f/../g?q=a+b%20c&%2F=%3D&empty=&x";
    let got = get(&proxy_url(&p, path)).await;
    assert_eq!(got.status, 200);
    assert_eq!(
        up.only_request().target,
        "/base/a%2Fb/c+d//e/%C3%A9t%c3%a9/./f/../g?q=a+b%20c&%2F=%3D&empty=&x"
    );
}

#[tokio::test]
async fn the_prefix_alone_maps_to_the_base_path() {
    let up = FakeUpstream::start().await;
    let p = proxy_to(&up, "").await;
    get(&proxy_url(&p, "/api")).await;
    get(&proxy_url(&p, "/api?x=1")).await;
    let r = up.requests();
    assert_eq!(r[0].target, "/base");
    assert_eq!(r[1].target, "/base?x=1");
}

#[tokio::test]
async fn client_credentials_and_cookies_never_reach_the_upstream() {
    let up = FakeUpstream::start().await;
    let p = proxy_to(&up, "").await;
    Req::get(proxy_url(&p, "/api/x"))
        .header("authorization", "Bearer client-own-token")
        .header("x-api-key", "client-own-key")
        .header("x-gw-ims-org-id", "EVIL@AdobeOrg")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .header("cookie", "session=1")
        .send()
        .await;
    let r = up.only_request();
    assert_eq!(r.headers.get_all("authorization").iter().count(), 1);
    assert_eq!(r.headers["authorization"], format!("Bearer {STATIC_TOKEN}"));
    assert_eq!(r.headers["x-api-key"], STATIC_CLIENT_ID);
    assert!(r.headers.get("x-gw-ims-org-id").is_none());
    assert!(r.headers.get("proxy-authorization").is_none());
    assert!(r.headers.get("cookie").is_none());
}

#[tokio::test]
async fn hop_by_hop_headers_and_those_named_in_connection_are_removed() {
    let up = FakeUpstream::start().await;
    let p = proxy_to(&up, "").await;
    let raw = "GET /api/x HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive, X-Hop\r\nX-Hop: secret\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nUpgrade: websocket\r\nX-Kept: 1\r\n\r\n";
    let mut conn = RawConn::connect(p.addr).await;
    assert!(conn.write(raw.as_bytes()).await);
    // The first bytes of the answer: by then the upstream has the request.
    conn.read_until(Duration::from_secs(10), |b| !b.is_empty())
        .await;
    let r = up.only_request();
    for h in ["x-hop", "keep-alive", "te", "upgrade", "connection"] {
        assert!(r.headers.get(h).is_none(), "{h} must not be forwarded");
    }
    assert_eq!(r.headers["x-kept"], "1");
}

#[tokio::test]
async fn host_is_the_upstream_and_forwarded_headers_describe_the_client() {
    let up = FakeUpstream::start().await;
    let p = static_proxy(Route::new("/api").upstream(format!("{}/base", up.url())))
        .section("[server]\nhostnames = [\"gateway.example\"]")
        .start()
        .await;
    Req::get(proxy_url(&p, "/api/x"))
        .header("host", "gateway.example:8080")
        .header("x-forwarded-for", "10.1.2.3")
        .send()
        .await;
    let r = up.only_request();
    assert_eq!(r.headers["host"], up.addr.to_string());
    assert_eq!(r.headers["x-forwarded-for"], "10.1.2.3, 127.0.0.1");
    assert_eq!(r.headers["x-forwarded-proto"], "http");
    assert_eq!(r.headers["x-forwarded-host"], "gateway.example:8080");
}

#[tokio::test]
async fn location_into_the_upstream_is_rewritten_to_the_proxy_prefix() {
    let up_addr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let a = up_addr.clone();
    let up = FakeUpstream::responding(move |rec| {
        let loc = match rec.target.as_str() {
            "/base/abs" => format!("http://{}/base/jobs/42?x=1", a.lock().unwrap()),
            "/base/rel" => "/base/jobs/43".to_string(),
            "/base/other" => "https://elsewhere.example/base/jobs/44".to_string(),
            _ => "/outside/base".to_string(),
        };
        http::Response::builder()
            .status(201)
            .header("location", loc)
            .body(full(""))
            .unwrap()
    })
    .await;
    *up_addr.lock().unwrap() = up.addr.to_string();
    let p = proxy_to(&up, "").await;
    assert_eq!(
        get(&proxy_url(&p, "/api/abs")).await.header("location"),
        Some("/api/jobs/42?x=1")
    );
    assert_eq!(
        get(&proxy_url(&p, "/api/rel")).await.header("location"),
        Some("/api/jobs/43")
    );
    assert_eq!(
        get(&proxy_url(&p, "/api/other")).await.header("location"),
        Some("https://elsewhere.example/base/jobs/44")
    );
    assert_eq!(
        get(&proxy_url(&p, "/api/x")).await.header("location"),
        Some("/outside/base")
    );
}

#[tokio::test]
async fn every_response_carries_the_clients_request_id() {
    let up = FakeUpstream::start().await;
    let p = proxy_to(&up, "").await;
    let got = Req::get(proxy_url(&p, "/api/x"))
        .header("x-request-id", "abc-123")
        .send()
        .await;
    assert_eq!(got.header("x-request-id"), Some("abc-123"));
    assert_eq!(up.only_request().headers["x-request-id"], "abc-123");
    let got = get(&proxy_url(&p, "/nowhere")).await;
    let id = got.header("x-request-id").expect("generated request id");
    assert_eq!(got.json()["request_id"], id);
}

#[tokio::test]
async fn request_bodies_and_methods_are_forwarded() {
    let up = FakeUpstream::start().await;
    let p = proxy_to(&up, "").await;
    let got = Req::post(proxy_url(&p, "/api/jobs"))
        .header("content-type", "application/json")
        .body(&br#"{"regulation":"gdpr"}"#[..])
        .send()
        .await;
    assert_eq!(got.status, 200);
    let r = up.only_request();
    assert_eq!(r.method, http::Method::POST);
    assert_eq!(&r.body[..], br#"{"regulation":"gdpr"}"#);
    assert_eq!(r.headers["content-type"], "application/json");
}

#[tokio::test]
async fn http2_clients_are_served_with_prior_knowledge() {
    let up = FakeUpstream::start().await;
    let p = proxy_to(&up, "").await;
    let got = Req::post(proxy_url(&p, "/api/h2?x=1"))
        .body("hello")
        .h2()
        .send()
        .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json()["ok"], true);
    let r = up.only_request();
    assert_eq!(r.target, "/base/h2?x=1");
    assert_eq!(&r.body[..], b"hello");
    assert_eq!(r.headers["authorization"], format!("Bearer {STATIC_TOKEN}"));
    assert_eq!(r.headers["host"], up.addr.to_string());
}
