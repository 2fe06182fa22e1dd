//! Nothing of the caller's reaches the upstream that the proxy strips from the head, by other
//! roads: request trailers (dropped), underscored twins of header names (dropped), a caller's
//! own `Forwarded` (dropped); and response trailers reach the caller without hop-by-hop names.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use std::time::Duration;
use support::*;

const SMUGGLED: [&str; 5] = [
    "x-api-key",
    "x-gw-ims-org-id",
    "cookie",
    "proxy-authorization",
    "x-proxy-key",
];

async fn proxy_to(up: &FakeUpstream) -> ims_proxy::Running {
    static_proxy(Route::new("/api").upstream(up.url()))
        .start()
        .await
}

/// Nothing the caller sent as `evil` reached the upstream, in the head or in trailers.
fn assert_nothing_smuggled(r: &Recorded) {
    assert_eq!(r.body, "hello");
    for (name, value) in r.headers.iter().chain(r.trailers.iter().flatten()) {
        assert_ne!(value, "evil", "{name} reached the upstream");
    }
    assert_eq!(r.trailers, None, "request trailers are dropped");
    assert_eq!(r.headers["x-api-key"], STATIC_CLIENT_ID);
}

#[tokio::test]
async fn http1_request_trailers_never_reach_the_upstream() {
    let up = FakeUpstream::start().await;
    let p = proxy_to(&up).await;
    let mut raw = format!(
        "POST /api/x HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nTrailer: {}\r\n\
Connection: close\r\n\r\n5\r\nhello\r\n0\r\n",
        SMUGGLED.join(", ")
    );
    for name in SMUGGLED {
        raw.push_str(&format!("{name}: evil\r\n"));
    }
    raw.push_str("\r\n");
    let reply = raw_send(p.addr, raw.as_bytes(), Duration::from_secs(10)).await;
    assert_eq!(reply.status(), Some(200), "{}", reply.text);
    assert_nothing_smuggled(&up.only_request());
}

#[tokio::test]
async fn h2_request_trailers_never_reach_the_upstream() {
    let up = FakeUpstream::start().await;
    let p = proxy_to(&up).await;
    let mut trailers = HeaderMap::new();
    for name in SMUGGLED {
        trailers.insert(name, HeaderValue::from_static("evil"));
    }
    let frames = futures_util::stream::iter([
        Ok::<_, BoxError>(Frame::data(Bytes::from_static(b"hello"))),
        Ok(Frame::trailers(trailers)),
    ]);
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<UpBody>();
    let req = Request::post(proxy_url(&p, "/api/x"))
        .header("trailer", SMUGGLED.join(", "))
        .body(BodyExt::boxed(StreamBody::new(frames)))
        .expect("request");
    let resp = tokio::time::timeout(Duration::from_secs(30), client.request(req))
        .await
        .expect("in time")
        .expect("response");
    assert_eq!(resp.status(), 200);
    assert_nothing_smuggled(&up.only_request());
}

#[tokio::test]
async fn header_names_with_underscores_are_dropped_before_forwarding() {
    let up = FakeUpstream::start().await;
    let p = proxy_to(&up).await;
    let got = Req::get(proxy_url(&p, "/api/x"))
        .headers(&[
            ("x_api_key", "evil"),
            ("x_gw_ims_org_id", "evil"),
            ("X_Proxy_Key", "evil"),
            ("x_custom", "evil"),
            ("x-kept", "yes"),
        ])
        .send()
        .await;
    assert_eq!(got.status, 200);
    let r = up.only_request();
    assert!(
        r.headers.keys().all(|n| !n.as_str().contains('_')),
        "{:?}",
        r.headers
    );
    assert_eq!(r.headers["x-api-key"], STATIC_CLIENT_ID);
    assert_eq!(r.headers["x-kept"], "yes");
}

#[tokio::test]
async fn a_callers_forwarded_header_is_dropped_beside_the_proxys_x_forwarded_headers() {
    let up = FakeUpstream::start().await;
    let p = proxy_to(&up).await;
    let got = Req::get(proxy_url(&p, "/api/x"))
        .header("forwarded", "for=203.0.113.9;host=evil.example;proto=https")
        .send()
        .await;
    assert_eq!(got.status, 200);
    let r = up.only_request();
    assert!(r.headers.get("forwarded").is_none(), "{:?}", r.headers);
    assert_eq!(r.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(r.headers["x-forwarded-proto"], "http");
}

#[tokio::test]
async fn response_trailers_reach_an_h2_caller_without_hop_by_hop_names() {
    let up = RawUpstream::replying(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-checksum\r\n\r\n\
5\r\nhello\r\n0\r\nx-checksum: abc\r\nkeep-alive: timeout=5\r\nproxy-authenticate: Basic\r\n\r\n",
    )
    .then(End::Hold)
    .start()
    .await;
    let p = static_proxy(Route::new("/api").upstream(up.url()))
        .start()
        .await;
    let resp = Req::get(proxy_url(&p, "/api/x")).h2().response().await;
    assert_eq!(resp.status(), 200);
    let end = read_body(resp).await;
    assert_eq!(end.error, None);
    assert_eq!(end.data, "hello");
    let trailers = end.trailers.expect("the upstream's trailers arrive");
    assert_eq!(trailers["x-checksum"], "abc");
    assert!(trailers.get("keep-alive").is_none(), "{trailers:?}");
    assert!(trailers.get("proxy-authenticate").is_none(), "{trailers:?}");
}
