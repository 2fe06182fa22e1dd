//! W3C Trace Context through real sockets: what the upstream receives in `traceparent` and
//! `tracestate`, and the `trace_id` in the access log.
//!
//! A test binary of its own: it installs the process-wide log capture
//! (`support::logs::capture_trace`), which would log every other test's proxy at trace level.

use std::time::Duration;
use support::*;

const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

async fn proxy_to(up: &FakeUpstream) -> ims_proxy::Running {
    static_proxy(Route::new("/api").upstream(up.url()))
        .start()
        .await
}

/// `(trace id, parent id, flags)` of a well-formed version-00 `traceparent`.
fn parts(tp: &str) -> (String, String, String) {
    let p: Vec<&str> = tp.split('-').collect();
    assert_eq!(p.len(), 4, "{tp}");
    assert_eq!(p[0], "00", "{tp}");
    let lower_hex = |s: &str, n: usize| {
        s.len() == n && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
    };
    assert!(lower_hex(p[1], 32) && p[1] != "0".repeat(32), "{tp}");
    assert!(lower_hex(p[2], 16) && p[2] != "0".repeat(16), "{tp}");
    assert!(lower_hex(p[3], 2), "{tp}");
    (p[1].into(), p[2].into(), p[3].into())
}

/// The upstream's `traceparent` for one request sent with `headers`.
async fn sent_upstream(headers: &[(&str, &str)]) -> (Option<String>, Option<String>) {
    let up = FakeUpstream::start().await;
    let p = proxy_to(&up).await;
    assert_eq!(
        Req::get(proxy_url(&p, "/api/x"))
            .headers(headers)
            .send()
            .await
            .status,
        200
    );
    let r = up.only_request();
    let h = |n: &str| {
        r.headers
            .get(n)
            .map(|v| v.to_str().unwrap_or("").to_string())
    };
    (h("traceparent"), h("tracestate"))
}

#[tokio::test]
async fn a_valid_traceparent_and_its_tracestate_reach_the_upstream_untouched() {
    let (tp, ts) =
        sent_upstream(&[("traceparent", VALID), ("tracestate", "vendor=a,other=b")]).await;
    assert_eq!(tp.as_deref(), Some(VALID));
    assert_eq!(ts.as_deref(), Some("vendor=a,other=b"));
}

#[tokio::test]
async fn an_invalid_traceparent_is_replaced_by_a_new_trace_and_its_tracestate_dropped() {
    for bad in [
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
        "00-4bf92f3577b34da6a3ce929d0e0e47zz-00f067aa0ba902b7-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
    ] {
        let (tp, ts) = sent_upstream(&[("traceparent", bad), ("tracestate", "vendor=a")]).await;
        let tp = tp.unwrap_or_else(|| panic!("no traceparent upstream for {bad}"));
        let (trace_id, _, flags) = parts(&tp);
        assert_ne!(trace_id, "4bf92f3577b34da6a3ce929d0e0e4736", "{bad}");
        assert_eq!(flags, "00", "{bad}");
        assert_eq!(ts, None, "{bad}");
    }
}

#[tokio::test]
async fn without_a_traceparent_the_proxy_starts_an_unsampled_trace() {
    let (tp, ts) = sent_upstream(&[]).await;
    let (_, _, flags) = parts(&tp.expect("a traceparent upstream"));
    assert_eq!(flags, "00");
    assert_eq!(ts, None);
}

#[tokio::test]
async fn each_started_trace_has_its_own_trace_id() {
    let up = FakeUpstream::start().await;
    let p = proxy_to(&up).await;
    get(&proxy_url(&p, "/api/x")).await;
    get(&proxy_url(&p, "/api/x")).await;
    let ids: Vec<String> = up
        .requests()
        .iter()
        .map(|r| parts(r.headers["traceparent"].to_str().unwrap_or("")).0)
        .collect();
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1]);
}

#[tokio::test]
async fn the_access_log_names_the_callers_trace_id() {
    let logs = logs::capture_trace();
    let up = FakeUpstream::start().await;
    let p = proxy_to(&up).await;
    let id = "trace-id-of-the-caller";
    Req::get(proxy_url(&p, "/api/x"))
        .headers(&[("traceparent", VALID), ("x-request-id", id)])
        .send()
        .await;
    let line = logs.access_line(id).await;
    assert_eq!(line["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
}

#[tokio::test]
async fn the_access_log_names_the_trace_id_the_proxy_started() {
    let logs = logs::capture_trace();
    let up = FakeUpstream::start().await;
    let p = proxy_to(&up).await;
    let id = "trace-id-started-here";
    Req::get(proxy_url(&p, "/api/x"))
        .header("x-request-id", id)
        .send()
        .await;
    let sent = up.only_request().headers["traceparent"]
        .to_str()
        .unwrap_or("")
        .to_string();
    let line = logs.access_line(id).await;
    assert_eq!(line["trace_id"], parts(&sent).0);
}

#[tokio::test]
async fn a_request_the_proxy_refuses_still_has_a_trace_id_in_the_access_log() {
    let logs = logs::capture_trace();
    let up = FakeUpstream::start().await;
    let p = proxy_to(&up).await;
    let id = "trace-id-of-a-404";
    let got = Req::get(proxy_url(&p, "/nowhere"))
        .headers(&[("traceparent", VALID), ("x-request-id", id)])
        .send()
        .await;
    assert_eq!(got.status, 404);
    let line = logs.access_line(id).await;
    assert_eq!(line["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
}

// ---- span export over OTLP (the real binary, a collector on 127.0.0.1) ------------------

const EXPORT_WAIT: Duration = Duration::from_secs(20);

/// The binary with span export on, sending to `collector`, route `/api` to `upstream`.
fn exporting(collector: &str, upstream: &str) -> ChildProxy {
    let toml = static_proxy(Route::new("/api").upstream(upstream))
        .section("[server]\nlisten = \"127.0.0.1:0\"")
        .section("[tracing]\notlp = true")
        .toml();
    ChildProxy::spawn_with_env(
        &toml,
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", collector),
            // Batches go out every 100 ms instead of every 5 s.
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    )
}

async fn one_span(collector: &OtlpReceiver) -> ReceivedSpan {
    let spans = poll(EXPORT_WAIT, || {
        let s = collector.spans();
        std::future::ready((!s.is_empty()).then_some(s))
    })
    .await
    .expect("a span exported within the deadline");
    assert_eq!(spans.len(), 1, "{spans:?}");
    spans[0].clone()
}

async fn child_access_line(child: &ChildProxy, id: &str) -> serde_json::Value {
    poll(EXPORT_WAIT, || {
        std::future::ready(
            child
                .events()
                .into_iter()
                .find(|e| e["target"] == "ims_proxy::access" && e["request_id"] == id),
        )
    })
    .await
    .unwrap_or_else(|| panic!("no access line for {id}: {}", child.stderr()))
}

#[tokio::test]
async fn with_otlp_on_each_request_exports_one_server_span_that_the_upstream_and_the_log_share() {
    let collector = OtlpReceiver::start().await;
    let up = FakeUpstream::start().await;
    let child = exporting(&collector.endpoint(), &up.url());
    let addr = child.addr().await;
    let got = Req::get(format!("http://{addr}/api/x"))
        .header("x-request-id", "exported-1")
        .send()
        .await;
    assert_eq!(got.status, 200);
    let span = one_span(&collector).await;
    let sent = up.only_request().headers["traceparent"]
        .to_str()
        .unwrap_or("")
        .to_string();
    let (trace_id, parent_id, flags) = parts(&sent);
    assert_eq!(span.trace_id, trace_id);
    assert_eq!(
        span.span_id, parent_id,
        "the proxy's span is the upstream's parent"
    );
    assert_eq!(flags, "01");
    assert_eq!(
        span.parent_span_id, "",
        "a trace the proxy started has no parent"
    );
    assert_eq!(
        child_access_line(&child, "exported-1").await["trace_id"],
        trace_id
    );
    assert_eq!(collector.paths(), ["/v1/traces"]);
}

#[tokio::test]
async fn an_exported_span_is_named_and_attributed_as_the_semantic_conventions_say() {
    let collector = OtlpReceiver::start().await;
    let up = FakeUpstream::start().await;
    let child = exporting(&collector.endpoint(), &up.url());
    let addr = child.addr().await;
    get(&format!("http://{addr}/api/x")).await;
    let span = one_span(&collector).await;
    assert_eq!(span.name, "GET /api");
    assert_eq!(span.kind, 2, "SERVER");
    assert_eq!(span.status_code, 0, "unset");
    assert_eq!(span.service_name, "ims-proxy");
    let a = |k: &str| span.attributes.get(k).cloned().unwrap_or_default();
    assert_eq!(a("http.request.method"), "GET");
    assert_eq!(a("url.path"), "/api/x");
    assert_eq!(a("http.response.status_code"), "200");
    assert_eq!(a("http.route"), "/api");
    assert_eq!(a("ims_proxy.credential"), "cred");
    assert_eq!(a("client.address"), "127.0.0.1");
    assert!(!span.attributes.contains_key("error.type"), "{span:?}");
}

#[tokio::test]
async fn with_otlp_on_a_sampled_callers_trace_continues_through_the_proxys_span() {
    let collector = OtlpReceiver::start().await;
    let up = FakeUpstream::start().await;
    let child = exporting(&collector.endpoint(), &up.url());
    let addr = child.addr().await;
    Req::get(format!("http://{addr}/api/x"))
        .headers(&[("traceparent", VALID), ("tracestate", "vendor=a")])
        .send()
        .await;
    let span = one_span(&collector).await;
    assert_eq!(span.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(span.parent_span_id, "00f067aa0ba902b7");
    let r = up.only_request();
    assert_eq!(
        r.headers["traceparent"],
        format!("00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01", span.span_id)
    );
    assert_eq!(r.headers["tracestate"], "vendor=a");
}

#[tokio::test]
async fn a_request_that_fails_upstream_exports_an_error_span_naming_the_fault() {
    let collector = OtlpReceiver::start().await;
    let child = exporting(&collector.endpoint(), "http://127.0.0.1:1");
    let addr = child.addr().await;
    assert_eq!(get(&format!("http://{addr}/api/x")).await.status, 502);
    let span = one_span(&collector).await;
    assert_eq!(span.status_code, 2, "error");
    assert_eq!(span.attributes["error.type"], "upstream");
    assert_eq!(span.attributes["http.response.status_code"], "502");
}

#[tokio::test]
async fn requests_are_served_while_the_collector_is_unreachable() {
    let up = FakeUpstream::start().await;
    let child = exporting("http://127.0.0.1:1", &up.url());
    let addr = child.addr().await;
    for _ in 0..20 {
        assert_eq!(get(&format!("http://{addr}/api/x")).await.status, 200);
    }
    assert_eq!(up.count(), 20);
}

#[tokio::test]
async fn an_otlp_endpoint_that_is_not_a_url_is_a_configuration_error() {
    let toml = static_proxy(Route::new("/api").upstream("http://127.0.0.1:1"))
        .section("[server]\nlisten = \"127.0.0.1:0\"")
        .section("[tracing]\notlp = true")
        .toml();
    let out = Cli::new()
        .config(&toml)
        .arg("run")
        .envs(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://[not a url")])
        .output()
        .await;
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("tracing.otlp"), "{}", out.stderr);
}

#[tokio::test]
async fn otel_batch_settings_out_of_bounds_exit_2_naming_the_variable_before_listening() {
    let toml = static_proxy(Route::new("/api").upstream("http://127.0.0.1:1"))
        .section("[server]\nlisten = \"127.0.0.1:0\"")
        .section("[tracing]\notlp = true")
        .toml();
    let password = "collector-password-never-printed";
    let with_password = format!("http://user:{password}@127.0.0.1:4318");
    let cases = [
        // Spins a core with no traffic.
        ("OTEL_BSP_SCHEDULE_DELAY", "0"),
        ("OTEL_BSP_SCHEDULE_DELAY", "5s"),
        // A 1.4 TB allocation at start (exit 134), and 5 GB for a proxy that never serves.
        ("OTEL_BSP_MAX_QUEUE_SIZE", "4000000000"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "50000000"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "0"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "0"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4096"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", with_password.as_str()),
    ];
    for (name, value) in cases {
        for command in ["check", "run"] {
            let out = Cli::new()
                .config(&toml)
                .arg(command)
                .envs(&[(name, value)])
                .output()
                .await;
            let all = format!("{}{}", out.stdout, out.stderr);
            assert_eq!(out.code, Some(2), "{command} with {name}={value}: {all}");
            assert!(
                out.error_line().starts_with(&format!("error: {name}: ")),
                "{command} with {name}={value}: {all}"
            );
            assert!(!all.contains("listening"), "{all}");
            assert!(!all.contains(password), "{all}");
        }
    }
}

#[test]
fn otel_batch_settings_are_not_read_while_span_export_is_off() {
    let toml = static_proxy(Route::new("/api").upstream("http://127.0.0.1:1")).toml();
    let out = Cli::new()
        .config(&toml)
        .arg("check")
        .envs(&[("OTEL_BSP_SCHEDULE_DELAY", "0")])
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
}

#[tokio::test]
async fn with_otlp_on_spans_reach_a_collector_behind_a_private_ca_through_the_egress_proxy() {
    let pki = support::tls::TestPki::new();
    let collector = OtlpReceiver::start_tls(&pki).await;
    let corp = ConnectProxy::start().await;
    let up = FakeUpstream::start().await;
    let toml = static_proxy(Route::new("/api").upstream(up.url()))
        .section("[server]\nlisten = \"127.0.0.1:0\"")
        .section("[tracing]\notlp = true")
        .client(&format!(
            "ca_file = \"{}\"\nproxy = \"{}\"",
            pki.ca_path(),
            corp.url()
        ))
        .toml();
    let endpoint = format!("https://{}", collector.addr());
    let child = ChildProxy::spawn_with_env(
        &toml,
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    let got = get(&format!("http://{}/api/x", child.addr().await)).await;
    assert_eq!(got.status, 200, "{}", got.text());
    let span = one_span(&collector).await;
    assert_eq!(span.service_name, "ims-proxy");
    let tunnels: Vec<_> = corp
        .seen()
        .into_iter()
        .filter(|s| s.method == "CONNECT")
        .map(|s| s.target)
        .collect();
    assert_eq!(
        tunnels,
        [collector.addr().to_string()],
        "{}",
        child.stderr()
    );
}
