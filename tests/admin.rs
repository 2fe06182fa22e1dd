//! The admin listener: health, readiness and Prometheus metrics, on their own port.

mod support;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use support::*;

const ADMIN: &str = "[admin]\nlisten = \"127.0.0.1:0\"\n";

async fn proxy_with_admin(prefix: &str, up: &FakeUpstream) -> ims_proxy::Running {
    start_proxy(&format!("{ADMIN}{}", static_route(prefix, "", &up.url()))).await
}

fn admin_url(p: &ims_proxy::Running, path: &str) -> String {
    format!("http://{}{}", p.admin_addr.expect("admin listener"), path)
}

#[tokio::test]
async fn healthz_answers_200_on_the_admin_port_and_routes_cannot_shadow_it() {
    let up = FakeUpstream::start().await;
    // A catch-all route on the proxy port: /healthz there is proxied, not answered.
    let p = proxy_with_admin("/", &up).await;
    assert_ne!(p.admin_addr, Some(p.addr));
    let got = get(&admin_url(&p, "/healthz")).await;
    assert_eq!(got.status, 200);
    assert_eq!(&got.body[..], b"ok\n");
    get(&proxy_url(&p, "/healthz")).await;
    assert_eq!(up.only_request().target, "/healthz");
    assert_eq!(get(&admin_url(&p, "/nope")).await.status, 404);
}

#[tokio::test]
async fn readyz_reports_ready_with_each_credentials_state() {
    let up = FakeUpstream::start().await;
    let p = proxy_with_admin("/api", &up).await;
    let got = get(&admin_url(&p, "/readyz")).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.header("content-type"), Some("application/json"));
    assert_eq!(
        got.json(),
        serde_json::json!({"status": "ready", "credentials": {"cred": {"state": "ok"}}})
    );
}

#[tokio::test]
async fn readyz_is_503_not_ready_once_shutdown_begins() {
    // Held response: the proxy cannot finish stopping until it is released.
    let (release_tx, release_rx) = tokio::sync::watch::channel(false);
    let up = FakeUpstream::with_handler(move |_req| {
        let mut rx = release_rx.clone();
        async move {
            let _ = rx.wait_for(|r| *r).await;
            http::Response::new(full("done"))
        }
    })
    .await;
    let p = proxy_with_admin("/api", &up).await;
    let admin = admin_url(&p, "/readyz");
    let url = proxy_url(&p, "/api/slow");
    let in_flight = tokio::spawn(async move { get(&url).await });
    assert!(eventually(std::time::Duration::from_secs(10), || up.count() == 1).await);
    let stopping = tokio::spawn(p.stop());
    let mut saw = None;
    for _ in 0..500 {
        let got = get(&admin).await;
        if got.status == 503 {
            saw = Some(got);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let got = saw.expect("/readyz turned 503 while draining");
    assert_eq!(got.json()["status"], "not_ready");
    assert_eq!(got.json()["reason"], "shutting down");
    assert_eq!(got.json()["credentials"]["cred"]["state"], "ok");
    release_tx.send(true).unwrap();
    assert_eq!(in_flight.await.unwrap().status, 200);
    stopping.await.unwrap();
}

#[tokio::test]
async fn metrics_count_requests_bytes_and_latency_by_route() {
    let up = FakeUpstream::responding(|rec| {
        let status = if rec.method == http::Method::POST {
            500
        } else {
            200
        };
        http::Response::builder()
            .status(status)
            .body(full("0123456789"))
            .unwrap()
    })
    .await;
    let route = "/metrics-test-requests";
    let p = proxy_with_admin(route, &up).await;
    for _ in 0..2 {
        assert_eq!(get(&proxy_url(&p, &format!("{route}/x"))).await.status, 200);
    }
    let post = Request::post(proxy_url(&p, &format!("{route}/y")))
        .body(Full::new(Bytes::from_static(b"hello")))
        .unwrap();
    assert_eq!(send(&h1_client(), post).await.status, 500);

    // The access record (and so the metrics) is written when the body is done, just after
    // the client has read it: poll rather than assume.
    let admin = admin_url(&p, "/metrics");
    let mut text = String::new();
    for _ in 0..200 {
        text = String::from_utf8_lossy(&get(&admin).await.body).into_owned();
        if metric_value(
            &text,
            "ims_proxy_request_duration_seconds_count",
            &[("route", route)],
        ) == Some(3.0)
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let r = ("route", route);
    let v = |name: &str, labels: &[(&str, &str)]| metric_value(&text, name, labels);
    assert_eq!(
        v(
            "ims_proxy_requests_total",
            &[r, ("method", "GET"), ("status", "2xx")]
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        v(
            "ims_proxy_requests_total",
            &[r, ("method", "POST"), ("status", "5xx")]
        ),
        Some(1.0)
    );
    assert_eq!(v("ims_proxy_request_bytes_total", &[r]), Some(5.0));
    assert_eq!(v("ims_proxy_response_bytes_total", &[r]), Some(30.0));
    assert_eq!(
        v("ims_proxy_request_duration_seconds_count", &[r]),
        Some(3.0)
    );
    assert_eq!(
        v("ims_proxy_upstream_duration_seconds_count", &[r]),
        Some(3.0)
    );
    assert!(
        v(
            "ims_proxy_request_duration_seconds_bucket",
            &[r, ("le", "+Inf")]
        ) == Some(3.0)
    );
    assert!(v("ims_proxy_open_connections", &[]).is_some(), "{text}");
    assert!(text.contains("# TYPE ims_proxy_requests_total counter"));
}

#[tokio::test]
async fn token_and_replay_hooks_appear_as_series_labelled_by_credential() {
    let up = FakeUpstream::start().await;
    let p = proxy_with_admin("/hooks", &up).await;
    ims_proxy::metrics::token_refresh("hooks-cred", true);
    ims_proxy::metrics::token_refresh("hooks-cred", false);
    ims_proxy::metrics::token_refresh("hooks-cred", false);
    ims_proxy::metrics::token_expiry("hooks-cred", 3599.0);
    ims_proxy::metrics::upstream_401_replay("hooks-cred");
    let text = String::from_utf8_lossy(&get(&admin_url(&p, "/metrics")).await.body).into_owned();
    let c = ("credential", "hooks-cred");
    let v = |name: &str, labels: &[(&str, &str)]| metric_value(&text, name, labels);
    assert_eq!(
        v("ims_proxy_token_refreshes_total", &[c, ("result", "ok")]),
        Some(1.0)
    );
    assert_eq!(
        v("ims_proxy_token_refreshes_total", &[c, ("result", "error")]),
        Some(2.0)
    );
    assert_eq!(v("ims_proxy_token_expiry_seconds", &[c]), Some(3599.0));
    assert_eq!(v("ims_proxy_upstream_401_replays_total", &[c]), Some(1.0));
}

#[tokio::test]
async fn without_an_admin_section_there_is_no_admin_listener() {
    let up = FakeUpstream::start().await;
    let p = start_proxy(&static_route("/api", "", &up.url())).await;
    assert_eq!(p.admin_addr, None);
}

#[tokio::test]
async fn readyz_reports_an_ims_credentials_token_expiry_once_it_has_one() {
    let ims = support::ims::Ims::start().await;
    let up = FakeUpstream::start().await;
    let toml = format!(
        "{ADMIN}{}{}",
        ims.oauth_credential("cred", ""),
        support::ims::route(&up.url(), Some("cloud-manager"))
    );
    let p = start_proxy(&toml).await;
    let url = admin_url(&p, "/readyz");
    let mut last = None;
    for _ in 0..500 {
        let got = get(&url).await;
        if got.status == 200 {
            last = Some(got);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let got = last.expect("ready once the first token arrived");
    let cred = &got.json()["credentials"]["cred"];
    assert_eq!(cred["state"], "ok");
    let secs = cred["expires_in_seconds"].as_u64().expect("an expiry");
    assert!(secs > 80_000 && secs < 86_400, "{secs}");
    let metrics = get(&admin_url(&p, "/metrics")).await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.lines()
            .any(|l| l.starts_with("ims_proxy_token_expiry_seconds{credential=\"cred\"}")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("ims_proxy_token_refreshes_total{")
                && l.contains("credential=\"cred\"")
                && l.contains("result=\"ok\"")),
        "{text}"
    );
}

#[tokio::test]
async fn readyz_is_503_with_imss_error_while_a_credential_cannot_get_a_token() {
    let ims = support::ims::Ims::start().await;
    let up = FakeUpstream::start().await;
    let toml = format!(
        "{ADMIN}{}{}",
        ims.oauth_credential("cred", "")
            .replace(support::ims::OAUTH_SECRET, "wrong-secret"),
        support::ims::route(&up.url(), Some("cloud-manager"))
    );
    let p = start_proxy(&toml).await;
    let url = admin_url(&p, "/readyz");
    let mut failing = None;
    for _ in 0..500 {
        let got = get(&url).await;
        if got.json()["credentials"]["cred"]["state"] == "failing" {
            failing = Some(got);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let got = failing.expect("the credential is reported failing");
    assert_eq!(got.status, 503);
    assert_eq!(got.json()["status"], "not_ready");
    let err = got.json()["credentials"]["cred"]["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(err.contains("invalid_client"), "{err}");
    assert!(!got.body.windows(12).any(|w| w == b"wrong-secret"));
}
