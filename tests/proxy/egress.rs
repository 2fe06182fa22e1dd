//! Egress through a corporate proxy: CONNECT tunnels for HTTPS, absolute-form for HTTP, basic
//! credentials, and the no_proxy exemption. (Environment variables: tests/operator/lifecycle.rs,
//! in a child process, since changing this process's environment would race other tests.)

use support::tls::TestPki;
use support::*;

/// Route `/api` to `upstream` with `[client] proxy = proxy` and the optional keys.
fn via_proxy(proxy: &str, no_proxy: Option<&str>, ca: Option<&str>, upstream: String) -> ProxyToml {
    let mut client = format!("proxy = \"{proxy}\"\n");
    if let Some(n) = no_proxy {
        client.push_str(&format!("no_proxy = \"{n}\"\n"));
    }
    if let Some(ca) = ca {
        client.push_str(&format!("ca_file = \"{ca}\"\n"));
    }
    static_proxy(Route::new("/api").upstream(upstream)).client(&client)
}

fn with_auth(p: &ConnectProxy) -> String {
    format!("http://user:pa%3Ass@{}", p.addr)
}

#[tokio::test]
async fn https_upstreams_are_reached_through_a_connect_tunnel_with_proxy_credentials() {
    let pki = TestPki::new();
    let up = FakeUpstream::start_tls(&pki).await;
    let corp = ConnectProxy::start().await;
    let p = via_proxy(
        &with_auth(&corp),
        None,
        Some(&pki.ca_path()),
        format!("{}/base", up.url()),
    )
    .start()
    .await;
    let got = get(&proxy_url(&p, "/api/x?y=1")).await;
    assert_eq!(got.status, 200, "{:?}", got.body);
    let seen = corp.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].method, "CONNECT");
    assert_eq!(seen[0].target, up.addr.to_string());
    // base64("user:pa:ss"): the URL's percent-encoding is decoded before encoding.
    assert_eq!(
        seen[0].proxy_authorization.as_deref(),
        Some("Basic dXNlcjpwYTpzcw==")
    );
    let r = up.only_request();
    assert_eq!(r.target, "/base/x?y=1");
    assert_eq!(r.headers["authorization"], format!("Bearer {STATIC_TOKEN}"));
    // Proxy credentials are for the proxy alone.
    assert!(r.headers.get("proxy-authorization").is_none());
}

#[tokio::test]
async fn http_upstreams_are_sent_to_the_proxy_in_absolute_form_with_credentials() {
    let up = FakeUpstream::start().await;
    let corp = ConnectProxy::start().await;
    let p = via_proxy(&with_auth(&corp), None, None, format!("{}/base", up.url()))
        .start()
        .await;
    let got = get(&proxy_url(&p, "/api/x")).await;
    assert_eq!(got.status, 200);
    let seen = corp.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].target, format!("{}/base/x", up.url()));
    assert_eq!(
        seen[0].proxy_authorization.as_deref(),
        Some("Basic dXNlcjpwYTpzcw==")
    );
    assert_eq!(up.only_request().target, "/base/x");
}

#[tokio::test]
async fn hosts_in_no_proxy_are_reached_directly() {
    let up = FakeUpstream::start().await;
    let corp = ConnectProxy::start().await;
    let p = via_proxy(&corp.url(), Some("example.com, 127.0.0.1"), None, up.url())
        .start()
        .await;
    assert_eq!(get(&proxy_url(&p, "/api/x")).await.status, 200);
    assert_eq!(up.count(), 1);
    assert!(corp.seen().is_empty(), "{:?}", corp.seen());
}

#[tokio::test]
async fn an_unreachable_egress_proxy_is_a_502_naming_the_proxy() {
    let pki = TestPki::new();
    let up = FakeUpstream::start_tls(&pki).await;
    let closed = unused_addr();
    let p = via_proxy(
        &format!("http://{closed}"),
        None,
        Some(&pki.ca_path()),
        up.url(),
    )
    .start()
    .await;
    let got = get(&proxy_url(&p, "/api/x")).await;
    assert_eq!(got.status, 502);
    assert_eq!(got.json()["error_code"], "upstream_unreachable");
    let msg = got.json()["message"].as_str().unwrap().to_string();
    assert!(msg.contains(&closed.to_string()), "{msg}");
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn unsupported_proxy_schemes_are_config_errors() {
    let err = via_proxy("socks5://127.0.0.1:1080", None, None, "https://x".into()).build_error();
    assert_eq!(err.key, "client.proxy");
}
