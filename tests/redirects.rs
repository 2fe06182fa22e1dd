//! Credentials stay bound to their route's upstream: the proxy never follows a redirect, and
//! nothing the client sends can point the token at another host.

mod support;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use support::*;

#[tokio::test]
async fn a_redirect_to_another_host_reaches_the_client_and_no_token_reaches_that_host() {
    let elsewhere = FakeUpstream::start().await;
    let target = format!("{}/steal", elsewhere.url());
    let up = FakeUpstream::responding(move |_| {
        http::Response::builder()
            .status(302)
            .header("location", target.clone())
            .body(full(""))
            .expect("response")
    })
    .await;
    let p = start_proxy(&static_route("/api", "", &up.url())).await;
    let got = get(&proxy_url(&p, "/api/x")).await;
    assert_eq!(got.status, 302);
    assert_eq!(
        got.header("location"),
        Some(format!("{}/steal", elsewhere.url()).as_str())
    );
    assert_eq!(up.count(), 1);
    assert_eq!(
        elsewhere.connections(),
        0,
        "the proxy must not follow the redirect"
    );
}

#[tokio::test]
async fn a_307_with_a_body_is_not_replayed_anywhere() {
    let elsewhere = FakeUpstream::start().await;
    let target = format!("{}/again", elsewhere.url());
    let up = FakeUpstream::responding(move |_| {
        http::Response::builder()
            .status(307)
            .header("location", target.clone())
            .body(full(""))
            .expect("response")
    })
    .await;
    let p = start_proxy(&static_route("/api", "", &up.url())).await;
    let req = Request::post(proxy_url(&p, "/api/x"))
        .body(Full::new(Bytes::from_static(b"payload")))
        .expect("request");
    assert_eq!(send(&h1_client(), req).await.status, 307);
    assert_eq!(elsewhere.connections(), 0);
}

#[tokio::test]
async fn the_clients_host_header_does_not_choose_the_upstream() {
    let elsewhere = FakeUpstream::start().await;
    let up = FakeUpstream::start().await;
    let p = start_proxy(&static_route("/api", "", &up.url())).await;
    let req = Request::get(proxy_url(&p, "/api/x"))
        .header("host", elsewhere.addr.to_string())
        .body(Full::<Bytes>::default())
        .expect("request");
    assert_eq!(send(&h1_client(), req).await.status, 200);
    let r = up.only_request();
    assert_eq!(r.headers["host"], up.addr.to_string());
    assert_eq!(elsewhere.connections(), 0);
}
