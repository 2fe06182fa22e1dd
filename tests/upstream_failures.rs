//! What the client gets when the upstream cannot be reached or does not answer in time.

mod support;

use std::time::Duration;
use support::*;

#[tokio::test]
async fn an_unreachable_upstream_is_a_502() {
    // Bind and drop, so the port is (almost certainly) closed.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let p = start_proxy(&static_route(
        "/api",
        "",
        &format!("http://127.0.0.1:{port}"),
    ))
    .await;
    let got = get(&proxy_url(&p, "/api/x")).await;
    assert_eq!(got.status, 502);
    assert_eq!(got.header("content-type"), Some("application/json"));
    assert_eq!(got.json()["error_code"], "upstream_unreachable");
}

#[tokio::test]
async fn an_upstream_that_does_not_answer_in_time_is_a_504() {
    let up = FakeUpstream::with_handler(|_req| async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        http::Response::new(full(""))
    })
    .await;
    let toml = format!(
        "[client]\nrequest_timeout = \"300ms\"\n{}",
        static_route("/api", "", &up.url())
    );
    let p = start_proxy(&toml).await;
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
    let p = start_proxy(&static_route("/api", "", &up.url())).await;
    let got = get(&proxy_url(&p, "/api/x")).await;
    assert_eq!(got.status, 502);
    assert_eq!(got.json()["error_code"], "upstream_unreachable");
    assert_eq!(up.count(), 0);
}
