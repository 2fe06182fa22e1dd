//! Credentials stay bound to their route's upstream: the proxy never follows a redirect, and
//! nothing the client sends can point the token at another host.

use support::*;

/// An upstream that answers every request with `status` and `Location: location`.
async fn redirecting(status: u16, location: String) -> FakeUpstream {
    FakeUpstream::responding(move |_| {
        http::Response::builder()
            .status(status)
            .header("location", location.clone())
            .body(full(""))
            .expect("response")
    })
    .await
}

async fn proxy_to(up: &FakeUpstream) -> ims_proxy::Running {
    static_proxy(Route::new("/api").upstream(up.url()))
        .start()
        .await
}

#[tokio::test]
async fn a_redirect_to_another_host_reaches_the_client_and_no_token_reaches_that_host() {
    let elsewhere = FakeUpstream::start().await;
    let up = redirecting(302, format!("{}/steal", elsewhere.url())).await;
    let p = proxy_to(&up).await;
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
    let up = redirecting(307, format!("{}/again", elsewhere.url())).await;
    let p = proxy_to(&up).await;
    let got = Req::post(proxy_url(&p, "/api/x"))
        .body("payload")
        .send()
        .await;
    assert_eq!(got.status, 307);
    assert_eq!(elsewhere.connections(), 0);
}

#[tokio::test]
async fn the_clients_host_header_does_not_choose_the_upstream() {
    let elsewhere = FakeUpstream::start().await;
    let up = FakeUpstream::start().await;
    let p = proxy_to(&up).await;
    let got = Req::get(proxy_url(&p, "/api/x"))
        .header("host", &elsewhere.addr.to_string())
        .send()
        .await;
    assert_eq!(got.status, 200);
    let r = up.only_request();
    assert_eq!(r.headers["host"], up.addr.to_string());
    assert_eq!(elsewhere.connections(), 0);
}
