//! Upstreams over TLS: trusted through `client.ca_file`, HTTP/2 by ALPN when offered.

use support::tls::TestPki;
use support::*;

/// The proxy trusting `pki`'s CA, with route `/api` to `upstream`.
async fn trusting(pki: &TestPki, upstream: String) -> ims_proxy::Running {
    static_proxy(Route::new("/api").upstream(upstream))
        .client(&format!("ca_file = \"{}\"", pki.ca_path()))
        .start()
        .await
}

#[tokio::test]
async fn tls_upstreams_trusted_by_the_ca_file_are_reached_over_http2() {
    let pki = TestPki::new();
    let up = FakeUpstream::start_tls(&pki).await;
    let p = trusting(&pki, format!("{}/base", up.url())).await;
    let got = get(&proxy_url(&p, "/api/x?y=1")).await;
    assert_eq!(got.status, 200);
    let r = up.only_request();
    assert_eq!(r.version, http::Version::HTTP_2);
    assert_eq!(r.target, "/base/x?y=1");
    assert_eq!(r.headers["authorization"], format!("Bearer {STATIC_TOKEN}"));
}

#[tokio::test]
async fn upstream_connections_are_reused() {
    let pki = TestPki::new();
    let up = FakeUpstream::start_tls(&pki).await;
    let p = trusting(&pki, up.url()).await;
    assert_eq!(get(&proxy_url(&p, "/api/x")).await.status, 200);
    // One connection, or two when an HTTP/1.1 caller's own connection (affinity) learnt
    // that the upstream speaks h2 and gave way to the pool's.
    let first = up.connections();
    assert!(first <= 2, "{first} connections for one request");
    for _ in 0..4 {
        assert_eq!(get(&proxy_url(&p, "/api/x")).await.status, 200);
    }
    assert_eq!(up.count(), 5);
    assert_eq!(up.connections(), first);
}
