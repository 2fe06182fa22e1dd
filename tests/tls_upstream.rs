//! Upstreams over TLS: trusted through `client.ca_file`, HTTP/2 by ALPN when offered.

mod support;

use support::*;

#[tokio::test]
async fn tls_upstreams_trusted_by_the_ca_file_are_reached_over_http2() {
    let pki = support::tls::TestPki::new();
    let up = FakeUpstream::start_tls(&pki).await;
    let toml = format!(
        "[client]\nca_file = \"{}\"\n{}",
        pki.ca_path(),
        static_route("/api", "", &format!("{}/base", up.url()))
    );
    let p = start_proxy(&toml).await;
    let got = get(&proxy_url(&p, "/api/x?y=1")).await;
    assert_eq!(got.status, 200);
    let r = up.only_request();
    assert_eq!(r.version, http::Version::HTTP_2);
    assert_eq!(r.target, "/base/x?y=1");
    assert_eq!(r.headers["authorization"], "Bearer static-token-abc");
}

#[tokio::test]
async fn upstream_connections_are_reused() {
    let pki = support::tls::TestPki::new();
    let up = FakeUpstream::start_tls(&pki).await;
    let toml = format!(
        "[client]\nca_file = \"{}\"\n{}",
        pki.ca_path(),
        static_route("/api", "", &up.url())
    );
    let p = start_proxy(&toml).await;
    for _ in 0..5 {
        assert_eq!(get(&proxy_url(&p, "/api/x")).await.status, 200);
    }
    assert_eq!(up.count(), 5);
    assert_eq!(up.connections(), 1);
}
