//! Prometheus metrics, all named `ims_proxy_*`, recorded through the `metrics` facade and
//! rendered by `metrics-exporter-prometheus` on the admin listener's `/metrics`.
//!
//! Recording goes through the small functions below rather than `metrics::counter!` calls
//! scattered over the code, so names, labels and label values (never a secret, never an
//! unbounded value such as a path) are decided in one place.
//!
//! The recorder is process-wide: [`init`] installs it once and every later call (another
//! `start()` in the same process, as in the tests) reuses it.
//!
//! Every labelled series whose label values are known from the configuration is declared at
//! zero ([`declare_common`], [`declare_route`], ...) when a snapshot is put in place, so the
//! first scrape already has it: an alert on `rate(...{result="error"}[5m])` then sees the
//! first error instead of a series appearing from nothing. This module imports nothing of
//! ours, so the callers pass the label values in.

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
pub const UPSTREAM_REFUSALS: &str = "ims_proxy_upstream_refusals_total";
pub const RATE_LIMITED: &str = "ims_proxy_rate_limited_total";
pub const RATE_LIMIT_QUEUED: &str = "ims_proxy_rate_limit_queued";
pub const QUOTA_LIMITED: &str = "ims_proxy_quota_limited_total";
pub const COOL_DOWNS: &str = "ims_proxy_upstream_cool_downs_total";
pub const COOL_DOWN_REFUSED: &str = "ims_proxy_cool_down_refused_total";
pub const FORWARD_REFUSED: &str = "ims_proxy_forward_refused_total";
pub const SITE_REFUSED: &str = "ims_proxy_site_refused_total";
pub const BUILD_INFO: &str = "ims_proxy_build_info";
pub const SHARED_UP: &str = "ims_proxy_shared_up";
pub const SHARED_ERRORS: &str = "ims_proxy_shared_errors_total";
pub const SHARED_FALLBACKS: &str = "ims_proxy_shared_fallbacks_total";
/// What a replica did alone because the shared store could not be asked (`[shared]`).
pub const SHARED_FALLBACK_KINDS: &[&str] = &["token", "quota", "cool_down"];

/// The `route` label of requests that matched no route.
pub const NO_ROUTE: &str = "-";

/// Every value [`method_label`] gives.
pub const METHOD_LABELS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE", "OTHER",
];

/// Every value [`status_class`] gives.
pub const STATUS_CLASSES: &[&str] = &["1xx", "2xx", "3xx", "4xx", "5xx"];

const RESULTS: &[&str] = &["ok", "error"];

/// Latency buckets in seconds: Adobe's APIs answer in tens of milliseconds to tens of seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
static PROCESS: OnceLock<metrics_process::Collector> = OnceLock::new();

fn process() -> &'static metrics_process::Collector {
    PROCESS.get_or_init(metrics_process::Collector::default)
}

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
                    process().describe();
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

/// The text exposition, or `None` if the recorder is not ours. The `process_*` series are
/// read from the operating system here, so they are as fresh as the scrape.
pub fn render() -> Option<String> {
    init().map(|h| {
        process().collect();
        h.render()
    })
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
        UPSTREAM_REFUSALS,
        "Upstream answers 401 or 403 passed to callers, by route and status: Adobe refusing the proxy's credential or org"
    );
    describe_counter!(
        RATE_LIMITED,
        "Requests refused with 429 rate_limited by the proxy's own limits"
    );
    describe_counter!(
        QUOTA_LIMITED,
        "Requests refused with 429 quota_exceeded by their credential's quota"
    );
    describe_counter!(
        COOL_DOWNS,
        "Cool-downs started by an upstream 429, by credential and upstream host"
    );
    describe_counter!(
        COOL_DOWN_REFUSED,
        "Requests answered locally with 429 upstream_throttled during a cool-down"
    );
    describe_counter!(
        FORWARD_REFUSED,
        "CONNECT requests the forward listener refused (a host no route serves)"
    );
    describe_counter!(
        SITE_REFUSED,
        "Requests refused because a browser could have sent them from a web page (a Host that \
         is not the proxy's, another site's Origin or Sec-Fetch-Site), by listener and code"
    );
    describe_gauge!(
        RATE_LIMIT_QUEUED,
        "Requests waiting in a route's rate-limit queue"
    );
    describe_gauge!(
        SHARED_UP,
        "1 while the shared store ([shared], Redis) answers; 0 while the circuit is open"
    );
    describe_counter!(
        SHARED_ERRORS,
        "Calls to the shared store that failed or took longer than [shared] timeout"
    );
    describe_counter!(
        SHARED_FALLBACKS,
        "Decisions taken locally because the shared store could not be asked, by kind"
    );
    describe_gauge!(
        BUILD_INFO,
        "Always 1; the labels say which version and commit is running"
    );
}

/// `ims_proxy_build_info{version, git_sha, build_date} 1`.
pub fn build_info(version: &str, git_sha: &str, build_date: &str) {
    metrics::gauge!(BUILD_INFO, "version" => version.to_string(), "git_sha" => git_sha.to_string(), "build_date" => build_date.to_string())
        .set(1.0);
}

/// The series that do not depend on the configuration: reloads by result, open connections,
/// and the per-route series of requests that matched no route ([`NO_ROUTE`]).
/// Declaring adds zero: a series that already counts keeps its value.
pub fn declare_common() {
    for result in RESULTS {
        metrics::counter!(CONFIG_RELOADS, "result" => *result).increment(0);
    }
    metrics::gauge!(OPEN_CONNECTIONS).increment(0.0);
    declare_route(NO_ROUTE);
}

/// A route's series: requests by every method and status class, durations, bytes.
pub fn declare_route(route: &str) {
    // Taking the handles declares the series; a histogram is then rendered with count 0 until
    // its first sample, and a counter at 0 once it has been added to.
    let series = RouteSeries::new(route);
    for counter in series
        .requests
        .iter()
        .chain([&series.bytes_in, &series.bytes_out])
    {
        counter.increment(0);
    }
}

/// The upstream statuses [`upstream_refusal`] counts.
pub const REFUSAL_STATUSES: &[&str] = &["401", "403"];

/// A configured route's upstream 401 and 403 series (the `-` of unrouted requests has no
/// upstream).
pub fn declare_route_refusals(route: &str) {
    for status in REFUSAL_STATUSES {
        metrics::counter!(UPSTREAM_REFUSALS, "route" => route.to_string(), "status" => *status)
            .increment(0);
    }
}

/// An upstream answered 401 or 403 on `route` (other statuses are not counted here).
pub fn upstream_refusal(route: &str, status: u16) {
    let status = match status {
        401 => "401",
        403 => "403",
        _ => return,
    };
    metrics::counter!(UPSTREAM_REFUSALS, "route" => route.to_string(), "status" => status)
        .increment(1);
}

/// The series of a route that sets `rate_limit` or `max_concurrent` (no other route can
/// refuse or queue).
pub fn declare_route_limits(route: &str) {
    metrics::counter!(RATE_LIMITED, "route" => route.to_string()).increment(0);
    metrics::gauge!(RATE_LIMIT_QUEUED, "route" => route.to_string()).increment(0.0);
}

/// The series of a credential that sets `quota`.
pub fn declare_quota(credential: &str) {
    metrics::counter!(QUOTA_LIMITED, "credential" => credential.to_string()).increment(0);
}

/// The series of a credential whose upstream 429s start cool-downs, for one upstream host.
pub fn declare_cool_down(credential: &str, host: &str) {
    metrics::counter!(COOL_DOWN_REFUSED, "credential" => credential.to_string()).increment(0);
    metrics::counter!(COOL_DOWNS, "credential" => credential.to_string(), "host" => host.to_string())
        .increment(0);
}

/// The series of a credential that gets its tokens from IMS (a static token is never
/// refreshed, has no known expiry and is never replayed). The expiry gauge starts at 0
/// seconds: no token yet is as good as an expired one.
pub fn declare_credential(credential: &str) {
    for result in RESULTS {
        metrics::counter!(TOKEN_REFRESHES, "credential" => credential.to_string(), "result" => *result)
            .increment(0);
    }
    metrics::gauge!(TOKEN_EXPIRY, "credential" => credential.to_string()).increment(0.0);
    metrics::counter!(UPSTREAM_401_REPLAYS, "credential" => credential.to_string()).increment(0);
}

/// The forward listener's refusals, when it is configured.
pub fn declare_forward() {
    metrics::counter!(FORWARD_REFUSED).increment(0);
}

/// `2xx`, `4xx`, ...: the status class keeps the series count small.
pub fn status_class(status: u16) -> &'static str {
    STATUS_CLASSES[status_index(status)]
}

/// `status`'s place in [`STATUS_CLASSES`].
fn status_index(status: u16) -> usize {
    match status {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        _ => 4,
    }
}

/// Methods outside the standard set are folded into `OTHER` so a client cannot mint series.
pub fn method_label(method: &http::Method) -> &'static str {
    METHOD_LABELS[method_index(method)]
}

/// `method`'s place in [`METHOD_LABELS`].
fn method_index(method: &http::Method) -> usize {
    use http::Method as M;
    match *method {
        M::GET => 0,
        M::HEAD => 1,
        M::POST => 2,
        M::PUT => 3,
        M::PATCH => 4,
        M::DELETE => 5,
        M::OPTIONS => 6,
        M::CONNECT => 7,
        M::TRACE => 8,
        _ => 9,
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

/// One route's request series, looked up once. [`request`] builds five label sets, hashes
/// them and looks them up in the recorder for every request; with these handles recording is
/// a few atomic operations. Take them after the recorder is installed: a handle taken before
/// records nowhere.
pub struct RouteSeries {
    /// By [`method_index`], then [`status_index`].
    requests: Vec<metrics::Counter>,
    duration: metrics::Histogram,
    upstream: metrics::Histogram,
    bytes_in: metrics::Counter,
    bytes_out: metrics::Counter,
}

impl RouteSeries {
    pub fn new(route: &str) -> RouteSeries {
        let mut requests = Vec::with_capacity(METHOD_LABELS.len() * STATUS_CLASSES.len());
        for method in METHOD_LABELS {
            for status in STATUS_CLASSES {
                requests.push(metrics::counter!(REQUESTS, "route" => route.to_string(), "method" => *method, "status" => *status));
            }
        }
        RouteSeries {
            requests,
            duration: metrics::histogram!(REQUEST_DURATION, "route" => route.to_string()),
            upstream: metrics::histogram!(UPSTREAM_DURATION, "route" => route.to_string()),
            bytes_in: metrics::counter!(REQUEST_BYTES, "route" => route.to_string()),
            bytes_out: metrics::counter!(RESPONSE_BYTES, "route" => route.to_string()),
        }
    }

    /// The same as [`request`] for this series' route (`r.route` is not read).
    pub fn record(&self, r: &RequestRecord<'_>) {
        let i = method_index(r.method) * STATUS_CLASSES.len() + status_index(r.status);
        if let Some(c) = self.requests.get(i) {
            c.increment(1);
        }
        self.duration.record(r.duration.as_secs_f64());
        if let Some(up) = r.upstream {
            self.upstream.record(up.as_secs_f64());
        }
        self.bytes_in.increment(r.bytes_in);
        self.bytes_out.increment(r.bytes_out);
    }
}

impl std::fmt::Debug for RouteSeries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RouteSeries")
    }
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

pub fn quota_limited(credential: &str) {
    metrics::counter!(QUOTA_LIMITED, "credential" => credential.to_string()).increment(1);
}

pub fn cool_down_started(credential: &str, host: &str) {
    metrics::counter!(COOL_DOWNS, "credential" => credential.to_string(), "host" => host.to_string())
        .increment(1);
}

pub fn cool_down_refused(credential: &str) {
    metrics::counter!(COOL_DOWN_REFUSED, "credential" => credential.to_string()).increment(1);
}

/// A listener's refusal series at zero; `host`: whether it checks `Host` (not in tunnels).
pub fn declare_site_refused(listener: &'static str, host: bool) {
    for code in ["host_not_allowed", "cross_site_request"]
        .into_iter()
        .skip(usize::from(!host))
    {
        metrics::counter!(SITE_REFUSED, "listener" => listener, "code" => code).increment(0);
    }
}

/// A request refused for its `Host`, `Origin` or `Sec-Fetch-Site`, by listener and code.
pub fn site_refused(listener: &'static str, code: &'static str) {
    metrics::counter!(SITE_REFUSED, "listener" => listener, "code" => code).increment(1);
}

pub fn forward_refused() {
    metrics::counter!(FORWARD_REFUSED).increment(1);
}

/// The shared store's series, when `[shared]` is set.
pub fn declare_shared() {
    metrics::gauge!(SHARED_UP).increment(0.0);
    metrics::counter!(SHARED_ERRORS).increment(0);
    for kind in SHARED_FALLBACK_KINDS {
        metrics::counter!(SHARED_FALLBACKS, "kind" => *kind).increment(0);
    }
}

pub fn shared_up(up: bool) {
    metrics::gauge!(SHARED_UP).set(if up { 1.0 } else { 0.0 });
}

pub fn shared_error() {
    metrics::counter!(SHARED_ERRORS).increment(1);
}

/// `kind` is one of [`SHARED_FALLBACK_KINDS`].
pub fn shared_fallback(kind: &'static str) {
    metrics::counter!(SHARED_FALLBACKS, "kind" => kind).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_declared_label_values_are_every_value_a_request_can_be_counted_under() {
        for status in 0..=u16::MAX {
            assert!(STATUS_CLASSES.contains(&status_class(status)), "{status}");
        }
        use http::Method as M;
        let odd = M::from_bytes(b"PROPFIND").expect("a method");
        let all = [
            M::GET,
            M::HEAD,
            M::POST,
            M::PUT,
            M::PATCH,
            M::DELETE,
            M::OPTIONS,
        ];
        for method in all.into_iter().chain([M::CONNECT, M::TRACE, odd]) {
            assert!(METHOD_LABELS.contains(&method_label(&method)), "{method}");
        }
    }
}
