//! Adobe's own 429s pass through untouched; the proxy's per-route limits queue, then refuse
//! with 429 `rate_limited` and `Retry-After`.
//!
//! A test binary of its own: it installs the process-wide log capture
//! (`support::logs::capture_trace`), which would log every other test's proxy at trace level.

use std::time::{Duration, Instant};
use support::config::static_credential;
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
    let up = FakeUpstream::responding(|_| adobe_429(&[("retry-after", "7")])).await;
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
        (
            "rate_limit = { per_second = 1e-300 }",
            "routes[0].rate_limit.per_second",
        ),
    ] {
        let err = static_proxy(Route::new("/a").upstream("http://x").extra(extra)).build_error();
        assert_eq!(err.key, key);
    }
}

/// A static credential `name` with these extra keys (`quota = {...}`).
fn credential(name: &str, extra: &str) -> String {
    format!("{}{extra}\n", static_credential(name))
}

fn retry_after(got: &Got) -> u64 {
    got.header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Retry-After in seconds: {:?}", got.headers))
}

/// Two routes of one credential, `extra` on each.
async fn two_routes(
    cred: &str,
    cred_extra: &str,
    extra: &str,
    up: &FakeUpstream,
) -> ims_proxy::Running {
    ProxyToml::new()
        .credential(credential(cred, cred_extra))
        .route(
            Route::new(&format!("/{cred}-a"))
                .upstream(up.url())
                .credential(cred)
                .extra(extra),
        )
        .route(
            Route::new(&format!("/{cred}-b"))
                .upstream(up.url())
                .credential(cred)
                .extra(extra),
        )
        .admin()
        .start()
        .await
}

#[tokio::test]
async fn a_credential_quota_counts_the_requests_of_all_its_routes_together() {
    let up = FakeUpstream::start().await;
    // One request every 2 s, two at once; no queue: over it, refused at once.
    let p = two_routes(
        "qall",
        "quota = { per_second = 0.5, burst = 2 }",
        "queue_size = 0",
        &up,
    )
    .await;
    let started = Instant::now();
    let mut got = Vec::new();
    for i in 0..6 {
        let route = if i % 2 == 0 { "qall-a" } else { "qall-b" };
        got.push(get(&proxy_url(&p, &format!("/{route}/{i}"))).await);
    }
    // The quota's bound over the window the requests took: the burst, then one per 2 s.
    let allowed = 2 + (started.elapsed().as_secs() / 2) as usize;
    let passed = got.iter().filter(|g| g.status == 200).count();
    assert_eq!(up.count(), passed);
    assert!(
        passed <= allowed,
        "{passed} requests reached the upstream, the quota allows {allowed}"
    );
    let refused: Vec<&Got> = got.iter().filter(|g| g.status != 200).collect();
    assert!(!refused.is_empty());
    for r in &refused {
        assert_eq!(r.status, 429);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.json()["error_code"], "quota_exceeded");
    }
    let text = metrics(&p).await;
    assert_eq!(
        metric_value(
            &text,
            "ims_proxy_quota_limited_total",
            &[("credential", "qall")]
        ),
        Some(refused.len() as f64)
    );
    // The Retry-After works: after it, the next request of either route goes through.
    let wait = retry_after(refused[refused.len() - 1]);
    assert!((1..=2).contains(&wait), "Retry-After: {wait}");
    tokio::time::sleep(Duration::from_secs(wait)).await;
    assert_eq!(get(&proxy_url(&p, "/qall-b/after")).await.status, 200);
}

#[tokio::test]
async fn over_the_quota_requests_wait_in_their_routes_queue_and_all_go_through() {
    let up = FakeUpstream::start().await;
    let p = two_routes(
        "qqueue",
        "quota = { per_second = 5, burst = 1 }",
        "queue_timeout = \"5s\"",
        &up,
    )
    .await;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..4 {
        let route = if i % 2 == 0 { "qqueue-a" } else { "qqueue-b" };
        tasks.push(tokio::spawn(get_owned(proxy_url(
            &p,
            &format!("/{route}/{i}"),
        ))));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    // One from the burst, then one per 200 ms, whichever route they came by.
    assert!(started.elapsed() >= Duration::from_millis(600));
    assert_eq!(up.count(), 4);
}

#[tokio::test]
async fn over_the_quota_a_request_that_cannot_wait_its_queue_timeout_is_refused_at_once() {
    let up = FakeUpstream::start().await;
    let p = two_routes(
        "qtimeout",
        "quota = { per_second = 0.1, burst = 1 }",
        "queue_timeout = \"1s\"",
        &up,
    )
    .await;
    assert_eq!(get(&proxy_url(&p, "/qtimeout-a/1")).await.status, 200);
    let started = Instant::now();
    let got = get(&proxy_url(&p, "/qtimeout-b/2")).await;
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(got.status, 429);
    assert_eq!(got.json()["error_code"], "quota_exceeded");
    assert_eq!(retry_after(&got), 10);
    assert_eq!(up.count(), 1);
}

#[tokio::test]
async fn a_routes_rate_limit_and_its_credentials_quota_both_apply() {
    let up = FakeUpstream::start().await;
    let p = ProxyToml::new()
        .credential(credential(
            "qboth",
            "quota = { per_second = 0.1, burst = 2 }",
        ))
        .route(
            Route::new("/qboth-tight")
                .upstream(up.url())
                .credential("qboth")
                .extra("rate_limit = { per_second = 0.1, burst = 1 }\nqueue_size = 0"),
        )
        .route(
            Route::new("/qboth-wide")
                .upstream(up.url())
                .credential("qboth")
                .extra("queue_size = 0"),
        )
        .start()
        .await;
    assert_eq!(get(&proxy_url(&p, "/qboth-tight/1")).await.status, 200);
    // The route's own limit is spent, the quota is not.
    let got = get(&proxy_url(&p, "/qboth-tight/2")).await;
    assert_eq!(got.json()["error_code"], "rate_limited");
    assert_eq!(get(&proxy_url(&p, "/qboth-wide/3")).await.status, 200);
    // Now the quota is spent too, for both routes.
    let got = get(&proxy_url(&p, "/qboth-wide/4")).await;
    assert_eq!(got.status, 429);
    assert_eq!(got.json()["error_code"], "quota_exceeded");
    assert_eq!(up.count(), 2);
}

#[tokio::test]
async fn the_status_page_shows_each_credential_quota() {
    let up = FakeUpstream::start().await;
    let p = two_routes(
        "qstatus",
        "quota = { per_second = 20, burst = 40 }",
        "",
        &up,
    )
    .await;
    let got = get(&admin_url(&p, "/status.json")).await;
    let quotas = &got.json()["quotas"];
    assert_eq!(quotas[0]["credential"], "qstatus");
    assert_eq!(quotas[0]["per_second"], 20.0);
    assert_eq!(quotas[0]["burst"], 40);
    let page = get(&admin_url(&p, "/")).await;
    assert!(String::from_utf8_lossy(&page.body)
        .contains("<td>qstatus</td><td class=\"num\">20</td><td class=\"num\">40</td>"));
}

#[tokio::test]
async fn an_invalid_quota_is_a_config_error_naming_the_key() {
    for (extra, key) in [
        (
            "quota = { per_second = 0 }",
            "credentials.cred.quota.per_second",
        ),
        (
            "quota = { per_second = 1, burst = 0 }",
            "credentials.cred.quota.burst",
        ),
        ("cool_down_max = \"0s\"", "credentials.cred.cool_down_max"),
        (
            "cool_down_max = \"100years\"",
            "credentials.cred.cool_down_max",
        ),
        (
            "quota = { per_second = 1e-300 }",
            "credentials.cred.quota.per_second",
        ),
        (
            "quota = { per_second = 1, burst = 4000000000 }",
            "credentials.cred.quota.burst",
        ),
    ] {
        let err = ProxyToml::new()
            .credential(credential("cred", extra))
            .route(Route::new("/a").upstream("http://x"))
            .build_error();
        assert_eq!(err.key, key);
    }
}

/// An upstream that answers its first request 429 with these headers and Adobe's body, and
/// every later one 200.
async fn throttling_once(headers: &'static [(&'static str, String)]) -> FakeUpstream {
    let seen = std::sync::atomic::AtomicUsize::new(0);
    FakeUpstream::responding(move |_| {
        if seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) > 0 {
            return http::Response::new(full("ok"));
        }
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        adobe_429(&headers)
    })
    .await
}

fn leak(headers: Vec<(&'static str, String)>) -> &'static [(&'static str, String)] {
    Box::leak(headers.into_boxed_slice())
}

#[tokio::test]
async fn after_an_upstream_429_the_credential_and_host_are_answered_locally_until_retry_after() {
    let up = throttling_once(leak(vec![("retry-after", "2".into())])).await;
    let p = ProxyToml::new()
        .credential(credential("cool", ""))
        .route(Route::new("/cool").upstream(up.url()).credential("cool"))
        .admin()
        .start()
        .await;
    // The 429 that starts the cool-down passes through untouched.
    let first = get(&proxy_url(&p, "/cool/1")).await;
    let throttled_at = Instant::now();
    assert_eq!(first.status, 429);
    assert_eq!(first.header("retry-after"), Some("2"));
    assert_eq!(
        &first.body[..],
        br#"{"error_code":"429050","message":"Too many requests"}"#
    );
    // The next ones are answered here, with what is left of the Retry-After.
    let local = get(&proxy_url(&p, "/cool/2")).await;
    assert_eq!(local.status, 429);
    assert_eq!(local.header("content-type"), Some("application/json"));
    assert_eq!(local.json()["error_code"], "upstream_throttled");
    assert!(local.json()["request_id"].is_string());
    let first_wait = retry_after(&local);
    assert!((1..=2).contains(&first_wait), "Retry-After: {first_wait}");
    let status = get(&admin_url(&p, "/status.json")).await.json();
    assert_eq!(status["cool_downs"][0]["credential"], "cool");
    assert_eq!(status["cool_downs"][0]["host"], "127.0.0.1");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let later = get(&proxy_url(&p, "/cool/3")).await;
    if throttled_at.elapsed() < Duration::from_secs(2) {
        assert_eq!(later.status, 429);
        assert_eq!(retry_after(&later), 1);
    }
    assert_eq!(
        up.count(),
        1,
        "a request reached the upstream during its cool-down"
    );
    // It ends by itself.
    let resumed = poll(DEADLINE, || async {
        let got = get(&proxy_url(&p, "/cool/4")).await;
        (got.status == 200).then_some(Instant::now())
    })
    .await
    .expect("requests never resumed");
    assert!(resumed.duration_since(throttled_at) >= Duration::from_millis(1900));
    assert_eq!(up.count(), 2);
    let text = metrics(&p).await;
    assert_eq!(
        metric_value(
            &text,
            "ims_proxy_upstream_cool_downs_total",
            &[("credential", "cool"), ("host", "127.0.0.1")]
        ),
        Some(1.0)
    );
    assert!(
        metric_value(
            &text,
            "ims_proxy_cool_down_refused_total",
            &[("credential", "cool")]
        ) >= Some(2.0)
    );
}

#[tokio::test]
async fn a_cool_down_holds_back_only_its_own_credential() {
    let up = throttling_once(leak(vec![("retry-after", "30".into())])).await;
    let p = ProxyToml::new()
        .credential(credential("coolone", ""))
        .credential(credential("coolother", ""))
        .route(
            Route::new("/coolone")
                .upstream(up.url())
                .credential("coolone"),
        )
        .route(
            Route::new("/coolother")
                .upstream(up.url())
                .credential("coolother"),
        )
        .start()
        .await;
    assert_eq!(get(&proxy_url(&p, "/coolone/1")).await.status, 429);
    assert_eq!(
        get(&proxy_url(&p, "/coolone/2")).await.json()["error_code"],
        "upstream_throttled"
    );
    assert_eq!(get(&proxy_url(&p, "/coolother/3")).await.status, 200);
    assert_eq!(up.count(), 2);
}

#[tokio::test]
async fn an_http_date_retry_after_sets_the_cool_down() {
    let at = std::time::SystemTime::now() + Duration::from_secs(4);
    let up = throttling_once(leak(vec![("retry-after", httpdate::fmt_http_date(at))])).await;
    let p = ProxyToml::new()
        .credential(credential("cooldate", ""))
        .route(
            Route::new("/cooldate")
                .upstream(up.url())
                .credential("cooldate"),
        )
        .start()
        .await;
    assert_eq!(get(&proxy_url(&p, "/cooldate/1")).await.status, 429);
    let local = get(&proxy_url(&p, "/cooldate/2")).await;
    assert_eq!(local.json()["error_code"], "upstream_throttled");
    // An HTTP date has whole seconds: 4 s from a moment within the last second.
    assert!(
        (1..=4).contains(&retry_after(&local)),
        "{:?}",
        local.headers
    );
    assert_eq!(up.count(), 1);
}

#[tokio::test]
async fn a_retry_after_beyond_cool_down_max_is_capped() {
    let up = throttling_once(leak(vec![("retry-after", "3600".into())])).await;
    let p = ProxyToml::new()
        .credential(credential("coolcap", "cool_down_max = \"1s\""))
        .route(
            Route::new("/coolcap")
                .upstream(up.url())
                .credential("coolcap"),
        )
        .start()
        .await;
    let first = get(&proxy_url(&p, "/coolcap/1")).await;
    // The upstream's answer itself is not rewritten.
    assert_eq!(first.header("retry-after"), Some("3600"));
    let local = get(&proxy_url(&p, "/coolcap/2")).await;
    assert_eq!(local.json()["error_code"], "upstream_throttled");
    assert_eq!(retry_after(&local), 1);
    let resumed = poll(DEADLINE, || async {
        (get(&proxy_url(&p, "/coolcap/3")).await.status == 200).then_some(())
    })
    .await;
    assert!(resumed.is_some(), "the cap did not end the cool-down");
}

#[tokio::test]
async fn a_429_without_retry_after_cools_down_for_a_second() {
    let up = throttling_once(leak(vec![])).await;
    let p = ProxyToml::new()
        .credential(credential("coolbare", ""))
        .route(
            Route::new("/coolbare")
                .upstream(up.url())
                .credential("coolbare"),
        )
        .start()
        .await;
    assert_eq!(get(&proxy_url(&p, "/coolbare/1")).await.status, 429);
    let local = get(&proxy_url(&p, "/coolbare/2")).await;
    assert_eq!(local.json()["error_code"], "upstream_throttled");
    assert_eq!(retry_after(&local), 1);
    assert!(poll(DEADLINE, || async {
        (get(&proxy_url(&p, "/coolbare/3")).await.status == 200).then_some(())
    })
    .await
    .is_some());
}

#[tokio::test]
async fn with_on_upstream_429_pass_every_request_still_reaches_the_upstream() {
    let up = throttling_once(leak(vec![("retry-after", "30".into())])).await;
    let p = ProxyToml::new()
        .credential(credential("coolpass", "on_upstream_429 = \"pass\""))
        .route(
            Route::new("/coolpass")
                .upstream(up.url())
                .credential("coolpass"),
        )
        .start()
        .await;
    assert_eq!(get(&proxy_url(&p, "/coolpass/1")).await.status, 429);
    assert_eq!(get(&proxy_url(&p, "/coolpass/2")).await.status, 200);
    assert_eq!(up.count(), 2);
}

#[tokio::test]
async fn a_request_queued_for_a_rate_slot_does_not_wait_out_a_cool_down() {
    let up = throttling_once(leak(vec![("retry-after", "30".into())])).await;
    let p = ProxyToml::new()
        .credential(credential("coolq", ""))
        .route(
            Route::new("/coolq")
                .upstream(up.url())
                .credential("coolq")
                .extra("rate_limit = { per_second = 0.5, burst = 1 }\nqueue_timeout = \"10s\""),
        )
        .start()
        .await;
    let first = tokio::spawn(get_owned(proxy_url(&p, "/coolq/1")));
    assert!(eventually(DEADLINE, || up.count() == 1).await);
    // Queued for the next slot, 2 s away; meanwhile the first one's 429 starts a cool-down.
    let queued = tokio::spawn({
        let url = proxy_url(&p, "/coolq/2");
        async move { get(&url).await }
    });
    assert_eq!(first.await.unwrap(), 429);
    let got = queued.await.unwrap();
    assert_eq!(got.status, 429);
    assert_eq!(got.json()["error_code"], "upstream_throttled");
    assert!(retry_after(&got) > 20);
    assert_eq!(up.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_concurrent_callers_gets_the_quota_and_no_more() {
    let up = FakeUpstream::start().await;
    let p = two_routes(
        "qburst",
        "quota = { per_second = 4, burst = 4 }",
        "queue_timeout = \"1s\"",
        &up,
    )
    .await;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let route = if i % 2 == 0 { "qburst-a" } else { "qburst-b" };
        let url = proxy_url(&p, &format!("/{route}/{i}"));
        tasks.push(tokio::spawn(async move { get(&url).await }));
    }
    let mut passed = 0;
    for t in tasks {
        let got = t.await.unwrap();
        match got.status.as_u16() {
            200 => passed += 1,
            429 => {
                assert_eq!(got.json()["error_code"], "quota_exceeded");
                assert!(retry_after(&got) >= 1);
            }
            other => panic!("unexpected {other}"),
        }
    }
    // The burst at once, then one every 250 ms for as long as requests arrived, plus the 1 s
    // the last of them could wait.
    let bound = 4 + 4 * (started.elapsed().as_secs() as usize + 2);
    assert!(
        (8..=bound).contains(&passed),
        "{passed} passed, bound {bound}"
    );
    assert_eq!(up.count(), passed);
}

#[tokio::test]
async fn the_access_log_marks_the_429_that_started_a_cool_down_and_the_local_answers() {
    let logs = support::logs::capture_trace();
    let up = throttling_once(leak(vec![("retry-after", "30".into())])).await;
    let p = ProxyToml::new()
        .credential(credential("coollog", ""))
        .route(
            Route::new("/coollog")
                .upstream(up.url())
                .credential("coollog"),
        )
        .start()
        .await;
    for id in ["coollog-1", "coollog-2"] {
        Req::get(proxy_url(&p, "/coollog/x"))
            .header("x-request-id", id)
            .send()
            .await;
    }
    let started = logs.access_line("coollog-1").await;
    assert_eq!(started["cool_down"], "started");
    assert_eq!(started["http.response.status_code"], 429);
    assert_eq!(started["fault"], "-");
    let local = logs.access_line("coollog-2").await;
    assert_eq!(local["cool_down"], "local");
    assert_eq!(local["fault"], "upstream");
    assert!(
        local.get("upstream_us").is_none(),
        "nothing was sent upstream"
    );
}

#[tokio::test]
async fn without_cool_down_max_a_retry_after_is_capped_at_60_seconds() {
    let up = throttling_once(leak(vec![("retry-after", "3600".into())])).await;
    let p = ProxyToml::new()
        .credential(credential("cooldefault", ""))
        .route(
            Route::new("/cooldefault")
                .upstream(up.url())
                .credential("cooldefault"),
        )
        .start()
        .await;
    get(&proxy_url(&p, "/cooldefault/1")).await;
    let local = get(&proxy_url(&p, "/cooldefault/2")).await;
    assert_eq!(local.json()["error_code"], "upstream_throttled");
    assert_eq!(retry_after(&local), 60);
}
