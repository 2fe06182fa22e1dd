//! What the client gets when the upstream cannot be reached or does not answer in time.

use support::*;

async fn proxy_to(upstream: String) -> ims_proxy::Running {
    static_proxy(Route::new("/api").upstream(upstream))
        .start()
        .await
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_502() {
    let p = proxy_to(format!("http://{}", unused_addr())).await;
    let got = get(&proxy_url(&p, "/api/x")).await;
    assert_eq!(got.status, 502);
    assert_eq!(got.header("content-type"), Some("application/json"));
    assert_eq!(got.json()["error_code"], "upstream_unreachable");
}

#[tokio::test]
async fn an_upstream_that_does_not_answer_in_time_is_a_504() {
    // Never released: the answer would come long after the timeout.
    let up = FakeUpstream::held().await;
    let p = static_proxy(Route::new("/api").upstream(up.url()))
        .client("request_timeout = \"300ms\"")
        .start()
        .await;
    let got = get(&proxy_url(&p, "/api/x")).await;
    assert_eq!(got.status, 504);
    assert_eq!(got.json()["error_code"], "upstream_timeout");
    assert_eq!(up.count(), 1);
}

#[tokio::test]
async fn an_upstream_with_an_untrusted_certificate_is_a_502() {
    let pki = support::tls::TestPki::new();
    let up = FakeUpstream::start_tls(&pki).await;
    // No ca_file: the test CA is not trusted.
    let p = proxy_to(up.url()).await;
    let got = get(&proxy_url(&p, "/api/x")).await;
    assert_eq!(got.status, 502);
    assert_eq!(got.json()["error_code"], "upstream_unreachable");
    assert_eq!(up.count(), 0);
}
