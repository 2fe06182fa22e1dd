//! No web page can use the organisation's credential: a browser beside the proxy (a laptop, a
//! sidecar's node, `ims-proxy demo`) will send a page's requests to it, but the proxy refuses
//! what only a page sends: a `Host` that is not the proxy's (DNS rebinding), and a request the
//! browser marks as from another site (`Origin`, `Sec-Fetch-Site`). Callers that are not
//! browsers (Adobe's SDKs, curl, Prometheus) send an address or a configured name as `Host`
//! and neither of the other headers.
//!
//! The browser tests run Debian's Chromium headless, as tests/operator/status_page.rs does;
//! set `IMS_PROXY_SKIP_BROWSER=1` to skip them, and only them, where it cannot be installed.
//!
//! A test binary of its own: it installs the process-wide log capture
//! (`support::logs::capture_trace`), which would log every other test's proxy at trace level.

use std::time::Duration;
use support::browser::{self, Chromium};
use support::*;

const DEADLINE: Duration = Duration::from_secs(10);
/// Page time for a page's fetch and form: network waits pause Chromium's virtual clock.
const PAGE_TIME: Duration = Duration::from_secs(5);

/// A recording upstream behind `/api`, a static credential, the admin listener, and `server`
/// lines in `[server]`.
struct Setup {
    up: FakeUpstream,
    proxy: ims_proxy::Running,
}

impl Setup {
    async fn start(server: &str) -> Setup {
        let up = FakeUpstream::start().await;
        let proxy = static_proxy(Route::new("/api").upstream(up.url()))
            .section(&format!("[server]\n{server}"))
            .admin()
            .start()
            .await;
        Setup { up, proxy }
    }

    fn port(&self) -> u16 {
        self.proxy.addr.port()
    }

    fn admin(&self) -> std::net::SocketAddr {
        self.proxy.admin_addr.expect("admin listener")
    }

    /// `POST /api/x` with `headers` (a `host` among them replaces the address's).
    async fn post(&self, headers: &[(&str, &str)]) -> Got {
        Req::post(proxy_url(&self.proxy, "/api/x"))
            .headers(headers)
            .body("payload")
            .send()
            .await
    }
}

/// The proxy's JSON error with `code`, never the upstream's answer.
fn assert_refused(got: &Got, status: u16, code: &str) {
    assert_eq!(got.status, status, "{}", got.text());
    assert_eq!(got.header("content-type"), Some("application/json"));
    let json = got.json();
    assert_eq!(json["error_code"], code, "{json}");
    assert!(json["request_id"].as_str().is_some_and(|id| !id.is_empty()));
}

#[tokio::test]
async fn a_host_naming_another_site_is_refused_with_421_and_nothing_reaches_the_upstream() {
    let s = Setup::start("").await;
    let reply = raw_send(
        s.proxy.addr,
        b"POST /api/x HTTP/1.1\r\nHost: rebind.test:8080\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
        DEADLINE,
    )
    .await;
    assert_eq!(reply.status(), Some(421), "{}", reply.text);
    assert!(
        reply.text.contains("\"error_code\":\"host_not_allowed\""),
        "{}",
        reply.text
    );
    assert!(reply.text.contains("server.hostnames"), "{}", reply.text);
    // A name that merely starts like an allowed one is another name.
    let got = s.post(&[("host", "localhost.rebind.test")]).await;
    assert_refused(&got, 421, "host_not_allowed");
    assert_eq!(s.up.count(), 0);
}

#[tokio::test]
async fn an_address_localhost_or_a_configured_name_is_accepted_as_host() {
    let s = Setup::start(r#"hostnames = ["ims-proxy.tools.svc", "*.gateway.example"]"#).await;
    let port = s.port();
    let hosts = [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        // An address the caller dialled that is not the socket's own (a Service's cluster
        // IP, a Docker port mapping): rebinding needs a name, so any address is accepted.
        "10.96.0.12".to_string(),
        format!("ims-proxy.tools.svc:{port}"),
        "IMS-Proxy.Tools.Svc.".to_string(),
        "eu.gateway.example:443".to_string(),
    ];
    for host in &hosts {
        let got = s.post(&[("host", host)]).await;
        assert_eq!(got.status, 200, "Host {host}: {}", got.text());
    }
    let seen = s.up.requests();
    assert_eq!(seen.len(), hosts.len());
    assert!(seen
        .iter()
        .all(|r| r.headers["authorization"] == format!("Bearer {STATIC_TOKEN}").as_str()));
    // Only under the wildcard's domain, never the domain itself.
    let got = s.post(&[("host", "gateway.example")]).await;
    assert_refused(&got, 421, "host_not_allowed");
}

#[tokio::test]
async fn an_http10_request_without_host_still_passes() {
    let s = Setup::start("").await;
    let reply = raw_send(s.proxy.addr, b"GET /api/x HTTP/1.0\r\n\r\n", DEADLINE).await;
    assert!(reply.text.starts_with("HTTP/1.0 200"), "{}", reply.text);
    assert_eq!(s.up.count(), 1);
}

#[tokio::test]
async fn an_http2_authority_naming_another_site_is_refused_and_an_address_is_accepted() {
    let s = Setup::start("").await;
    let got = h2c_to(s.proxy.addr, Req::get("http://rebind.test:8080/api/x")).await;
    assert_refused(&got, 421, "host_not_allowed");
    assert_eq!(s.up.count(), 0);
    let url = format!("http://localhost:{}/api/x", s.port());
    let got = h2c_to(s.proxy.addr, Req::get(url)).await;
    assert_eq!(got.status, 200, "{}", got.text());
    // A `Host` beside an acceptable `:authority` is checked too.
    let url = format!("http://127.0.0.1:{}/api/x", s.port());
    let got = h2c_to(s.proxy.addr, Req::get(url).header("host", "rebind.test")).await;
    assert_refused(&got, 421, "host_not_allowed");
    assert_eq!(s.up.count(), 1);
}

#[tokio::test]
async fn an_origin_is_refused_unless_server_allowed_origins_lists_it() {
    let s = Setup::start(r#"allowed_origins = ["http://app.test:3000"]"#).await;
    for origin in [
        "http://evil.test",
        "null",
        "http://app.test:3001",
        "http://app.test",
    ] {
        let got = s.post(&[("origin", origin)]).await;
        assert_refused(&got, 403, "cross_site_request");
        assert!(got.text().contains(origin), "{}", got.text());
    }
    assert_eq!(s.up.count(), 0);
    // The listed origin's pages are from another site by definition.
    let got = s
        .post(&[
            ("origin", "http://app.test:3000"),
            ("sec-fetch-site", "cross-site"),
        ])
        .await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(s.up.count(), 1);
}

#[tokio::test]
async fn sec_fetch_site_from_another_site_is_refused_and_same_origin_or_none_pass() {
    let s = Setup::start("").await;
    for site in ["cross-site", "same-site", "unknown"] {
        let got = s.post(&[("sec-fetch-site", site)]).await;
        assert_refused(&got, 403, "cross_site_request");
    }
    assert_eq!(s.up.count(), 0);
    for site in ["same-origin", "none"] {
        let got = s.post(&[("sec-fetch-site", site)]).await;
        assert_eq!(got.status, 200, "{site}: {}", got.text());
    }
    assert_eq!(s.up.count(), 2);
}

#[tokio::test]
async fn a_refusal_is_logged_and_counted_by_listener_and_code() {
    let logs = support::logs::capture_trace();
    let s = Setup::start("").await;
    let count = |text: &str, code: &str| {
        metric_value(
            text,
            "ims_proxy_site_refused_total",
            &[("listener", "reverse"), ("code", code)],
        )
        .unwrap_or(0.0)
    };
    let before = metrics_text(s.admin()).await;
    // Declared at zero from the start, for each listener that is on.
    assert!(metric_value(
        &before,
        "ims_proxy_site_refused_total",
        &[("listener", "admin"), ("code", "host_not_allowed")]
    )
    .is_some());
    s.post(&[("host", "logged-rebind.test")]).await;
    s.post(&[("origin", "http://logged-evil.test")]).await;
    let after = metrics_text(s.admin()).await;
    for code in ["host_not_allowed", "cross_site_request"] {
        assert!(
            count(&after, code) >= count(&before, code) + 1.0,
            "{code}: {after}"
        );
    }
    let text = logs.text();
    for (code, what) in [
        ("host_not_allowed", "logged-rebind.test"),
        ("cross_site_request", "http://logged-evil.test"),
    ] {
        assert!(
            text.lines()
                .any(|l| l.contains("request refused") && l.contains(code) && l.contains(what)),
            "no log line for {what}"
        );
    }
}

#[tokio::test]
async fn the_admin_listener_refuses_a_rebinding_host_on_every_page_but_healthz() {
    let s = Setup::start("").await;
    for path in ["/", "/status.json", "/metrics", "/readyz"] {
        let got = Req::get(format!("http://{}{path}", s.admin()))
            .header("host", "rebind.test:9090")
            .send()
            .await;
        assert_refused(&got, 421, "host_not_allowed");
        assert!(!got.text().contains("cred"), "{path}: {}", got.text());
    }
    let got = Req::get(format!("http://{}/healthz", s.admin()))
        .header("host", "rebind.test:9090")
        .send()
        .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.text(), "ok\n");
}

#[tokio::test]
async fn a_scraper_addressing_the_admin_listener_by_pod_ip_localhost_or_service_name_gets_metrics()
{
    let s = Setup::start(r#"hostnames = ["ims-proxy-admin.monitoring.svc"]"#).await;
    let port = s.admin().port();
    for host in [
        // What Prometheus sends scraping a pod: its IP and port.
        "10.42.0.17:9090".to_string(),
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        "ims-proxy-admin.monitoring.svc:9090".to_string(),
    ] {
        let got = Req::get(format!("http://{}/metrics", s.admin()))
            .header("host", &host)
            .send()
            .await;
        assert_eq!(got.status, 200, "Host {host}: {}", got.text());
        assert!(got.text().contains("ims_proxy_"), "{host}");
    }
}

#[tokio::test]
async fn the_admin_listener_refuses_a_page_from_another_site_but_not_its_own_page() {
    let s = Setup::start("").await;
    let url = format!("http://{}/status.json", s.admin());
    for header in [
        ("sec-fetch-site", "cross-site"),
        ("origin", "http://evil.test"),
    ] {
        let got = Req::get(&url).headers(&[header]).send().await;
        assert_refused(&got, 403, "cross_site_request");
    }
    // The status page's own fetch of its data.
    let got = Req::get(&url)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert!(got.json()["routes"].is_array(), "{}", got.text());
}

/// Where an attacking page's form sends its answer.
#[derive(Clone, Copy)]
enum FormAnswer {
    /// The page itself: the answer becomes the DOM.
    Page,
    /// A frame of the page, which cannot read it. Headless Chromium never finishes a top-level
    /// navigation to another port of the same site under a virtual time budget.
    Frame,
}

/// A page that POSTs to the proxy twice, as any site may without CORS: a `no-cors` fetch, then
/// (when it has ended) a form. `tag` names the paths, so that this page's refusals are told
/// apart in the log.
async fn attacking_page(proxy_port: u16, tag: &str, answer: FormAnswer) -> FakeUpstream {
    let target = match answer {
        FormAnswer::Page => "",
        FormAnswer::Frame => r#"<iframe name="sink"></iframe>"#,
    };
    let form_target = if target.is_empty() { "_self" } else { "sink" };
    let html = format!(
        r#"<!doctype html><html><body>{target}
<form id="f" method="POST" target="{form_target}" action="http://127.0.0.1:{proxy_port}/api/{tag}-form">
<input name="q" value="from-a-form"></form>
<script>
fetch("http://127.0.0.1:{proxy_port}/api/{tag}-fetch", {{method: "POST", mode: "no-cors", body: "from-a-fetch"}})
  .catch(() => {{}})
  .finally(() => document.getElementById("f").submit());
</script></body></html>"#
    );
    FakeUpstream::responding(move |_| {
        http::Response::builder()
            .header("content-type", "text/html; charset=utf-8")
            .body(full(html.clone()))
            .expect("response")
    })
    .await
}

/// The page on `page_host` (served by [`attacking_page`]) in Chromium: the upstream receives
/// nothing, and the proxy refused both requests as cross-site; the form's answer, where the
/// page shows it, is the proxy's JSON error.
async fn page_cannot_post_through_the_proxy(
    chromium: Chromium,
    page_host: &str,
    tag: &str,
    answer: FormAnswer,
) {
    let logs = support::logs::capture_trace();
    let s = Setup::start("").await;
    let page = attacking_page(s.port(), tag, answer).await;
    let url = format!("http://{page_host}:{}/", page.addr.port());
    let mut dom = chromium.dump_dom(&url, PAGE_TIME).await;
    // On a loaded machine Chromium can dump the form's answer committed but not yet parsed
    // (an empty DOM, 1 run in 12 under two busy loops): look again, at most twice.
    for _ in 0..2 {
        if !matches!(answer, FormAnswer::Page) || !dom.trim().is_empty() {
            break;
        }
        dom = chromium.dump_dom(&url, PAGE_TIME).await;
    }
    assert!(
        page.requests().iter().any(|r| r.target == "/"),
        "Chromium did not load the page"
    );
    if let FormAnswer::Page = answer {
        assert!(
            dom.contains(r#""error_code":"cross_site_request""#),
            "the form's answer: {dom}"
        );
    }
    assert_eq!(s.up.count(), 0, "{:?}", s.up.requests());
    // The fetch's answer is opaque to the page; the proxy's log says what it was.
    let text = logs.text();
    for path in [format!("/api/{tag}-fetch"), format!("/api/{tag}-form")] {
        assert!(
            text.lines().any(|l| l.contains("request refused")
                && l.contains("cross_site_request")
                && l.contains(&path)),
            "{path} was not refused as a cross-site request"
        );
    }
}

#[tokio::test]
async fn in_a_real_browser_a_page_on_another_site_cannot_post_through_the_proxy() {
    if browser::skipped() {
        return;
    }
    let chromium = Chromium::new().resolving("attacker.test");
    page_cannot_post_through_the_proxy(chromium, "attacker.test", "other-site", FormAnswer::Page)
        .await;
}

#[tokio::test]
async fn in_a_real_browser_a_page_on_another_port_of_loopback_cannot_post_through_the_proxy() {
    if browser::skipped() {
        return;
    }
    // Another port of the same host is the same site: Sec-Fetch-Site says `same-site`.
    page_cannot_post_through_the_proxy(
        Chromium::new(),
        "127.0.0.1",
        "other-port",
        FormAnswer::Frame,
    )
    .await;
}

#[tokio::test]
async fn in_a_real_browser_a_rebinding_name_gets_the_proxys_json_error_not_the_upstream_or_status()
{
    if browser::skipped() {
        return;
    }
    let s = Setup::start("").await;
    let chromium = Chromium::new().resolving("rebind.test");
    let dom = chromium
        .dump_dom(&format!("http://rebind.test:{}/api/x", s.port()), PAGE_TIME)
        .await;
    assert!(dom.contains(r#""error_code":"host_not_allowed""#), "{dom}");
    assert_eq!(s.up.count(), 0);
    let dom = chromium
        .dump_dom(
            &format!("http://rebind.test:{}/status.json", s.admin().port()),
            PAGE_TIME,
        )
        .await;
    assert!(dom.contains(r#""error_code":"host_not_allowed""#), "{dom}");
    assert!(!dom.contains("\"routes\""), "{dom}");
}
