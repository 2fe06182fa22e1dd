//! Prometheus metrics, all named `ims_proxy_*`, recorded through the `metrics` facade and
//! rendered by `metrics-exporter-prometheus` on the admin listener's `/metrics`.
//!
//! Recording goes through the small functions below rather than `metrics::counter!` calls
//! scattered over the code, so names, labels and label values (never a secret, never an
//! unbounded value such as a path) are decided in one place.
//!
//! The recorder is process-wide: [`init`] installs it once and every later call (another
//! `start()` in the same process, as in the tests) reuses it.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

pub const REQUESTS: &str = "ims_proxy_requests_total";
pub const REQUEST_DURATION: &str = "ims_proxy_request_duration_seconds";
pub const UPSTREAM_DURATION: &str = "ims_proxy_upstream_duration_seconds";
pub const REQUEST_BYTES: &str = "ims_proxy_request_bytes_total";
pub const RESPONSE_BYTES: &str = "ims_proxy_response_bytes_total";
pub const OPEN_CONNECTIONS: &str = "ims_proxy_open_connections";
pub const TOKEN_REFRESHES: &str = "ims_proxy_token_refreshes_total";
pub const TOKEN_EXPIRY: &str = "ims_proxy_token_expiry_seconds";
pub const CONFIG_RELOADS: &str = "ims_proxy_config_reloads_total";
pub const UPSTREAM_401_REPLAYS: &str = "ims_proxy_upstream_401_replays_total";
pub const RATE_LIMITED: &str = "ims_proxy_rate_limited_total";
pub const RATE_LIMIT_QUEUED: &str = "ims_proxy_rate_limit_queued";
pub const FORWARD_REFUSED: &str = "ims_proxy_forward_refused_total";

/// Latency buckets in seconds: Adobe's APIs answer in tens of milliseconds to tens of seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder if no recorder is installed yet, and returns its handle.
/// `None` when some other recorder owns the process (an embedding application's): then
/// ims-proxy's metrics go there and `/metrics` says so.
pub fn init() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .ok()?;
            match builder.install_recorder() {
                Ok(handle) => {
                    describe();
                    spawn_upkeep(handle.clone());
                    Some(handle)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed; /metrics is unavailable");
                    None
                }
            }
        })
        .as_ref()
}

/// Histogram samples are kept raw until upkeep folds them into buckets; without a scrape
/// they would pile up, so fold them on a timer too.
fn spawn_upkeep(handle: PrometheusHandle) {
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                handle.run_upkeep();
            }
        });
    }
}

/// The text exposition, or `None` if the recorder is not ours.
pub fn render() -> Option<String> {
    init().map(|h| h.render())
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        REQUESTS,
        "Requests answered, by route, method and status class"
    );
    describe_histogram!(
        REQUEST_DURATION,
        Unit::Seconds,
        "Time from request arrival to the end of the response body"
    );
    describe_histogram!(
        UPSTREAM_DURATION,
        Unit::Seconds,
        "Time from sending to the upstream until its response headers"
    );
    describe_counter!(
        REQUEST_BYTES,
        Unit::Bytes,
        "Request body bytes received from clients"
    );
    describe_counter!(
        RESPONSE_BYTES,
        Unit::Bytes,
        "Response body bytes sent to clients"
    );
    describe_gauge!(OPEN_CONNECTIONS, "Client connections currently open");
    describe_counter!(
        TOKEN_REFRESHES,
        "Token fetches from IMS, by credential and result"
    );
    describe_gauge!(
        TOKEN_EXPIRY,
        Unit::Seconds,
        "Seconds until the credential's current token expires"
    );
    describe_counter!(CONFIG_RELOADS, "Configuration reloads, by result");
    describe_counter!(
        UPSTREAM_401_REPLAYS,
        "Requests replayed with a fresh token after an upstream 401"
    );
    describe_counter!(
        RATE_LIMITED,
        "Requests refused with 429 rate_limited by the proxy's own limits"
    );
    describe_counter!(
        FORWARD_REFUSED,
        "CONNECT requests the forward listener refused (a host no route serves)"
    );
    describe_gauge!(
        RATE_LIMIT_QUEUED,
        "Requests waiting in a route's rate-limit queue"
    );
}

/// `2xx`, `4xx`, ...: the status class keeps the series count small.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// Methods outside the standard set are folded into `OTHER` so a client cannot mint series.
pub fn method_label(method: &http::Method) -> &'static str {
    use http::Method as M;
    match *method {
        M::GET => "GET",
        M::HEAD => "HEAD",
        M::POST => "POST",
        M::PUT => "PUT",
        M::PATCH => "PATCH",
        M::DELETE => "DELETE",
        M::OPTIONS => "OPTIONS",
        M::CONNECT => "CONNECT",
        M::TRACE => "TRACE",
        _ => "OTHER",
    }
}

/// One finished request. `route` is the configured prefix (or `-` when none matched), never
/// the request path.
pub struct RequestRecord<'a> {
    pub route: &'a str,
    pub method: &'a http::Method,
    pub status: u16,
    pub duration: Duration,
    pub upstream: Option<Duration>,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

pub fn request(r: &RequestRecord<'_>) {
    let route = r.route.to_string();
    metrics::counter!(REQUESTS, "route" => route.clone(), "method" => method_label(r.method), "status" => status_class(r.status))
        .increment(1);
    metrics::histogram!(REQUEST_DURATION, "route" => route.clone())
        .record(r.duration.as_secs_f64());
    if let Some(up) = r.upstream {
        metrics::histogram!(UPSTREAM_DURATION, "route" => route.clone()).record(up.as_secs_f64());
    }
    metrics::counter!(REQUEST_BYTES, "route" => route.clone()).increment(r.bytes_in);
    metrics::counter!(RESPONSE_BYTES, "route" => route).increment(r.bytes_out);
}

pub fn connection_opened() {
    metrics::gauge!(OPEN_CONNECTIONS).increment(1.0);
}

pub fn connection_closed() {
    metrics::gauge!(OPEN_CONNECTIONS).decrement(1.0);
}

/// A token fetch from IMS finished (`ok` false: IMS refused or was unreachable).
pub fn token_refresh(credential: &str, ok: bool) {
    metrics::counter!(TOKEN_REFRESHES, "credential" => credential.to_string(), "result" => if ok { "ok" } else { "error" })
        .increment(1);
}

/// Seconds until the credential's current token expires; set whenever a token is published.
pub fn token_expiry(credential: &str, seconds: f64) {
    metrics::gauge!(TOKEN_EXPIRY, "credential" => credential.to_string()).set(seconds);
}

pub fn upstream_401_replay(credential: &str) {
    metrics::counter!(UPSTREAM_401_REPLAYS, "credential" => credential.to_string()).increment(1);
}

pub fn reload(ok: bool) {
    metrics::counter!(CONFIG_RELOADS, "result" => if ok { "ok" } else { "error" }).increment(1);
}

pub fn rate_limited(route: &str) {
    metrics::counter!(RATE_LIMITED, "route" => route.to_string()).increment(1);
}

pub fn rate_limit_queued(route: &str, delta: f64) {
    metrics::gauge!(RATE_LIMIT_QUEUED, "route" => route.to_string()).increment(delta);
}

pub fn forward_refused() {
    metrics::counter!(FORWARD_REFUSED).increment(1);
}
