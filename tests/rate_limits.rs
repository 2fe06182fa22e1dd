//! Adobe's own 429s pass through untouched; the proxy's per-route limits queue, then refuse
//! with 429 `rate_limited` and `Retry-After`.

use std::time::{Duration, Instant};
use support::*;

const DEADLINE: Duration = Duration::from_secs(10);

/// The proxy with one route, `prefix` with `extra`, and an admin listener.
async fn limited(prefix: &str, extra: &str, up: &FakeUpstream) -> ims_proxy::Running {
    static_proxy(Route::new(prefix).upstream(up.url()).extra(extra))
        .admin()
        .start()
        .await
}

async fn metrics(p: &ims_proxy::Running) -> String {
    metrics_text(p.admin_addr.expect("admin listener")).await
}

/// Also the core's rule that upstream 4xx/5xx answers reach the client unchanged.
#[tokio::test]
async fn an_upstream_429_and_its_retry_after_pass_through_untouched() {
    let up = FakeUpstream::responding(|_| {
        http::Response::builder()
            .status(429)
            .header("retry-after", "7")
            .header("content-type", "application/json;charset=UTF-8")
            .body(full(
                r#"{"error_code":"429050","message":"Too many requests"}"#,
            ))
            .unwrap()
    })
    .await;
    let p = static_proxy(Route::new("/api").upstream(up.url()))
        .start()
        .await;
    let got = get(&proxy_url(&p, "/api/x")).await;
    assert_eq!(got.status, 429);
    assert_eq!(got.header("retry-after"), Some("7"));
    assert_eq!(
        got.header("content-type"),
        Some("application/json;charset=UTF-8")
    );
    assert_eq!(
        &got.body[..],
        br#"{"error_code":"429050","message":"Too many requests"}"#
    );
}

#[tokio::test]
async fn over_the_rate_a_request_that_cannot_wait_gets_429_rate_limited_with_retry_after() {
    let up = FakeUpstream::start().await;
    let route = "/rl-refuse";
    let extra = "rate_limit = { per_second = 0.1, burst = 1 }\nqueue_timeout = \"1s\"";
    let p = limited(route, extra, &up).await;
    assert_eq!(get(&proxy_url(&p, "/rl-refuse/a")).await.status, 200);
    let started = Instant::now();
    let got = get(&proxy_url(&p, "/rl-refuse/b")).await;
    // The next token is 10 s away, beyond the 1 s queue timeout: refused without waiting.
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(got.status, 429);
    assert_eq!(got.header("retry-after"), Some("10"));
    assert_eq!(got.header("content-type"), Some("application/json"));
    assert_eq!(got.json()["error_code"], "rate_limited");
    assert_eq!(up.count(), 1);
    let text = metrics(&p).await;
    assert_eq!(
        metric_value(&text, "ims_proxy_rate_limited_total", &[("route", route)]),
        Some(1.0)
    );
    assert_eq!(
        metric_value(
            &text,
            "ims_proxy_requests_total",
            &[("route", route), ("method", "GET"), ("status", "4xx")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn requests_over_the_rate_wait_in_the_queue_and_all_go_through() {
    let up = FakeUpstream::start().await;
    let extra = "rate_limit = { per_second = 5, burst = 1 }\nqueue_timeout = \"5s\"";
    let p = limited("/rl-queue", extra, &up).await;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..3 {
        let url = proxy_url(&p, &format!("/rl-queue/{i}"));
        tasks.push(tokio::spawn(async move { get(&url).await.status }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    // One from the burst, then one per 200 ms.
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(up.count(), 3);
}

#[tokio::test]
async fn max_concurrent_queues_up_to_queue_size_then_refuses() {
    let up = FakeUpstream::held().await;
    let route = "/rl-conc";
    let extra = "max_concurrent = 1\nqueue_size = 1\nqueue_timeout = \"10s\"";
    let p = limited(route, extra, &up).await;
    let first = tokio::spawn(get_owned(proxy_url(&p, "/rl-conc/1")));
    assert!(eventually(DEADLINE, || up.count() == 1).await);
    let second = tokio::spawn(get_owned(proxy_url(&p, "/rl-conc/2")));
    let queued = poll(DEADLINE, || async {
        let text = metrics(&p).await;
        let queued = metric_value(&text, "ims_proxy_rate_limit_queued", &[("route", route)]);
        (queued == Some(1.0)).then_some(())
    })
    .await;
    assert!(queued.is_some(), "the second request never queued");
    let third = get(&proxy_url(&p, "/rl-conc/3")).await;
    assert_eq!(third.status, 429);
    assert_eq!(third.json()["error_code"], "rate_limited");
    assert!(third.header("retry-after").is_some());
    assert_eq!(up.count(), 1, "queued request went out over max_concurrent");
    up.release();
    assert_eq!(first.await.unwrap(), 200);
    assert_eq!(second.await.unwrap(), 200);
    assert_eq!(up.count(), 2);
}

async fn get_owned(url: String) -> http::StatusCode {
    get(&url).await.status
}

#[tokio::test]
async fn invalid_limits_are_config_errors_naming_the_key() {
    for (extra, key) in [
        (
            "rate_limit = { per_second = 0 }",
            "routes[0].rate_limit.per_second",
        ),
        (
            "rate_limit = { per_second = 1, burst = 0 }",
            "routes[0].rate_limit.burst",
        ),
        ("max_concurrent = 0", "routes[0].max_concurrent"),
    ] {
        let err = static_proxy(Route::new("/a").upstream("http://x").extra(extra)).build_error();
        assert_eq!(err.key, key);
    }
}
