//! `[server.tls]`: HTTPS on the listener, mutual TLS, certificates reloaded with the snapshot.

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use ims_proxy::config::Config;
use std::sync::Arc;
use std::time::Duration;
use support::tls::{Identity, TestPki};
use support::*;

struct Setup {
    pki: TestPki,
    dir: tempfile::TempDir,
    up: FakeUpstream,
}

impl Setup {
    async fn new() -> Setup {
        Setup {
            pki: TestPki::new(),
            dir: tempfile::tempdir().expect("tempdir"),
            up: FakeUpstream::start().await,
        }
    }

    fn config(&self, server_cn: &str, mutual: bool) -> Config {
        let (cert, key) = self
            .pki
            .server_identity(server_cn)
            .write(self.dir.path(), server_cn);
        let ca = self.dir.path().join("clients-ca.pem");
        std::fs::write(&ca, &self.pki.ca_pem).expect("write ca");
        let client_ca = if mutual {
            format!("client_ca_file = \"{}\"", ca.display())
        } else {
            String::new()
        };
        let tls =
            format!("[server.tls]\ncert_file = \"{cert}\"\nkey_file = \"{key}\"\n{client_ca}");
        let mut c = static_proxy(Route::new("/api").upstream(self.up.url()))
            .section(&tls)
            .parse();
        c.server.listen = "127.0.0.1:0".into();
        c
    }
}

async fn https_get(
    pki: &TestPki,
    identity: Option<&Identity>,
    addr: std::net::SocketAddr,
    h2: bool,
) -> Result<(http::StatusCode, http::Version), String> {
    let mut tls = pki.client_config(identity);
    // hyper-rustls sets ALPN itself from enable_http1/enable_http2.
    tls.alpn_protocols.clear();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .enable_http2()
        .build();
    let client = if h2 {
        Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build(https)
    } else {
        Client::builder(TokioExecutor::new()).build(https)
    };
    let req = Request::get(format!("https://localhost:{}/api/x", addr.port()))
        .body(Full::<Bytes>::default())
        .expect("request");
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| format!("{e:?}"))?;
    let (parts, body) = resp.into_parts();
    let _ = body.collect().await;
    Ok((parts.status, parts.version))
}

#[tokio::test]
async fn a_tls_listener_serves_https_over_http1_and_http2() {
    let s = Setup::new().await;
    let p = ims_proxy::start(&s.config("server-a", false))
        .await
        .expect("start");
    let (status, _) = https_get(&s.pki, None, p.addr, false).await.expect("h1");
    assert_eq!(status, 200);
    let (status, version) = https_get(&s.pki, None, p.addr, true).await.expect("h2");
    assert_eq!(
        (status, version),
        (http::StatusCode::OK, http::Version::HTTP_2)
    );
    assert_eq!(s.up.count(), 2);
    assert_eq!(s.up.requests()[0].headers["x-forwarded-proto"], "https");
}

#[tokio::test]
async fn plain_http_to_a_tls_listener_is_not_served() {
    let s = Setup::new().await;
    let p = ims_proxy::start(&s.config("server-a", false))
        .await
        .expect("start");
    let reply = raw_send(
        p.addr,
        b"GET /api/x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        Duration::from_secs(10),
    )
    .await;
    assert!(reply.closed);
    assert!(!reply.text.contains("200"), "{}", reply.text);
    assert_eq!(s.up.count(), 0);
}

#[tokio::test]
async fn with_mutual_tls_a_client_without_a_certificate_cannot_connect() {
    let s = Setup::new().await;
    let p = ims_proxy::start(&s.config("server-a", true))
        .await
        .expect("start");
    assert!(https_get(&s.pki, None, p.addr, false).await.is_err());
    assert_eq!(s.up.count(), 0);
}

#[tokio::test]
async fn with_mutual_tls_a_certificate_from_another_ca_cannot_connect() {
    let s = Setup::new().await;
    let p = ims_proxy::start(&s.config("server-a", true))
        .await
        .expect("start");
    let stranger = TestPki::new().client_identity("stranger");
    assert!(https_get(&s.pki, Some(&stranger), p.addr, false)
        .await
        .is_err());
    assert_eq!(s.up.count(), 0);
}

#[tokio::test]
async fn with_mutual_tls_a_client_with_a_certificate_from_the_ca_is_served() {
    let s = Setup::new().await;
    let p = ims_proxy::start(&s.config("server-a", true))
        .await
        .expect("start");
    let me = s.pki.client_identity("batch-job");
    let (status, _) = https_get(&s.pki, Some(&me), p.addr, false)
        .await
        .expect("request");
    assert_eq!(status, 200);
    assert_eq!(s.up.count(), 1);
}

#[tokio::test]
async fn a_new_snapshot_brings_new_certificates_to_new_connections() {
    let s = Setup::new().await;
    let p = ims_proxy::start(&s.config("server-a", false))
        .await
        .expect("start");
    let addr = p.addr;
    let before = s.pki.presented_cert(addr).await;
    // What a reload does: build a snapshot from the config (re-reading the files) and swap it.
    let second = ims_proxy::Snapshot::build(&s.config("server-b", false), None).expect("b");
    p.shared().snapshot.store(Arc::new(second));
    let after = s.pki.presented_cert(addr).await;
    assert_ne!(before, after, "the renewed certificate must be served");
    p.stop().await;
}
