//! The admin listener: health, readiness and Prometheus metrics, on their own port.
//!
//! A test binary of its own: the Prometheus recorder is process-wide, and these tests look for
//! series of a credential named `cred`, which any other in-process proxy with a credential of
//! that name would record too (the assertion could then no longer fail).

use std::time::Duration;
use support::ims::{Ims, OAUTH_SECRET};
use support::*;

const DEADLINE: Duration = Duration::from_secs(10);

async fn proxy_with_admin(prefix: &str, up: &FakeUpstream) -> ims_proxy::Running {
    static_proxy(Route::new(prefix).upstream(up.url()))
        .admin()
        .start()
        .await
}

/// The proxy with `credential` (an IMS one) on route `/api` (Cloud Manager) and an admin
/// listener.
async fn ims_proxy_with_admin(credential: String, up: &FakeUpstream) -> ims_proxy::Running {
    ProxyToml::new()
        .admin()
        .credential(credential)
        .route(Route::new("/api").upstream(up.url()).api("cloud-manager"))
        .start()
        .await
}

/// `GET url` until `done` holds for the answer; that answer, or None at the deadline.
async fn get_until(url: &str, done: impl Fn(&Got) -> bool) -> Option<Got> {
    poll(DEADLINE, || async {
        let got = get(url).await;
        done(&got).then_some(got)
    })
    .await
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
    let up = FakeUpstream::held().await;
    let p = proxy_with_admin("/api", &up).await;
    let admin = admin_url(&p, "/readyz");
    let url = proxy_url(&p, "/api/slow");
    let in_flight = tokio::spawn(async move { get(&url).await });
    assert!(eventually(DEADLINE, || up.count() == 1).await);
    let stopping = tokio::spawn(p.stop());
    let got = get_until(&admin, |got| got.status == 503)
        .await
        .expect("/readyz turned 503 while draining");
    assert_eq!(got.json()["status"], "not_ready");
    assert_eq!(got.json()["reason"], "shutting down");
    assert_eq!(got.json()["credentials"]["cred"]["state"], "ok");
    up.release();
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
    let post = Req::post(proxy_url(&p, &format!("{route}/y")))
        .body("hello")
        .send()
        .await;
    assert_eq!(post.status, 500);

    // The access record (and so the metrics) is written when the body is done, just after
    // the client has read it: poll rather than assume.
    let count = |text: &str| {
        metric_value(
            text,
            "ims_proxy_request_duration_seconds_count",
            &[("route", route)],
        )
    };
    let admin = p.admin_addr.expect("admin listener");
    let all_three = poll(DEADLINE, || async {
        let text = metrics_text(admin).await;
        (count(&text) == Some(3.0)).then_some(text)
    })
    .await;
    let text = match all_three {
        Some(text) => text,
        None => metrics_text(admin).await,
    };
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
    let text = metrics_text(p.admin_addr.expect("admin listener")).await;
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
    let p = static_proxy(Route::new("/api").upstream(up.url()))
        .start()
        .await;
    assert_eq!(p.admin_addr, None);
}

#[tokio::test]
async fn readyz_reports_an_ims_credentials_token_expiry_once_it_has_one() {
    let ims = Ims::start().await;
    let up = FakeUpstream::start().await;
    let p = ims_proxy_with_admin(ims.oauth_credential("cred", ""), &up).await;
    let got = get_until(&admin_url(&p, "/readyz"), |got| got.status == 200)
        .await
        .expect("ready once the first token arrived");
    let cred = &got.json()["credentials"]["cred"];
    assert_eq!(cred["state"], "ok");
    let secs = cred["expires_in_seconds"].as_u64().expect("an expiry");
    assert!(secs > 80_000 && secs < 86_400, "{secs}");
    let text = metrics_text(p.admin_addr.expect("admin listener")).await;
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
    let ims = Ims::start().await;
    let up = FakeUpstream::start().await;
    let wrong = ims
        .oauth_credential("cred", "")
        .replace(OAUTH_SECRET, "wrong-secret");
    let p = ims_proxy_with_admin(wrong, &up).await;
    let got = get_until(&admin_url(&p, "/readyz"), |got| {
        got.json()["credentials"]["cred"]["state"] == "failing"
    })
    .await
    .expect("the credential is reported failing");
    assert_eq!(got.status, 503);
    assert_eq!(got.json()["status"], "not_ready");
    let err = got.json()["credentials"]["cred"]["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(err.contains("invalid_client"), "{err}");
    assert!(!got.body.windows(12).any(|w| w == b"wrong-secret"));
}
