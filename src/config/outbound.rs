//! `[client]`: how the proxy reaches upstreams and IMS (the outbound side). The TOML keeps its
//! historical name; in the code it is "outbound", because "client" names nobody else here.

use crate::base::secret::Secret;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundConfig {
    /// Extra trust anchors (PEM), added to the built-in webpki roots.
    pub ca_file: Option<PathBuf>,
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Deadline for the upstream's response head, counted from when the request body has been
    /// sent (an upload takes as long as it takes while bytes flow).
    #[serde(default = "default_request_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Longest pause between two reads of a body in flight, either way: the caller's request
    /// body, the upstream reading it, the upstream's response body (nginx's
    /// `proxy_send_timeout`/`proxy_read_timeout`).
    #[serde(default = "default_body_idle_timeout", with = "humantime_serde")]
    pub body_idle_timeout: Duration,
    #[serde(default = "default_pool_idle_timeout", with = "humantime_serde")]
    pub pool_idle_timeout: Duration,
    /// Egress proxy for IMS and upstream traffic (`http://[user:pass@]host:port`); overrides
    /// `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY`. A `Secret` because it may carry a password.
    pub proxy: Option<Secret>,
    /// Hosts reached directly, curl's `NO_PROXY` syntax; overrides `NO_PROXY`.
    pub no_proxy: Option<String>,
    /// Connections open at once to one upstream (scheme, host and port), pooled ones
    /// included: a circuit breaker, so that no caller can make the proxy open thousands of
    /// connections carrying the organisation's token. Beyond it a request waits up to
    /// `connect_timeout` for one, then gets 503.
    #[serde(default = "default_max_connections_per_upstream")]
    pub max_connections_per_upstream: usize,
    /// Requests one caller (a `[[clients]]` name, or an address where there are no keys)
    /// may have in flight to one upstream at once: its share of that upstream's
    /// connections, so that one application cannot hold them all. Beyond it a request waits
    /// up to `connect_timeout` for one of the caller's own to end, then gets 503. Unset:
    /// three quarters of `max_connections_per_upstream`.
    pub max_in_flight_per_caller: Option<usize>,
    /// Each HTTP/1.1 caller connection keeps an HTTP/1.1 upstream connection of its own for
    /// its requests, rather than taking one from the shared pool per request: cheaper per
    /// request. One upstream's at a time (requests to others use the pool); it closes with
    /// its caller's connection, or goes to another caller when the cap needs it. `false`:
    /// the pool for everything.
    #[serde(default = "default_connection_affinity")]
    pub connection_affinity: bool,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        OutboundConfig {
            ca_file: None,
            connect_timeout: default_connect_timeout(),
            request_timeout: default_request_timeout(),
            body_idle_timeout: default_body_idle_timeout(),
            pool_idle_timeout: default_pool_idle_timeout(),
            proxy: None,
            no_proxy: None,
            max_connections_per_upstream: default_max_connections_per_upstream(),
            max_in_flight_per_caller: None,
            connection_affinity: default_connection_affinity(),
        }
    }
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_body_idle_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_pool_idle_timeout() -> Duration {
    Duration::from_secs(90)
}
fn default_max_connections_per_upstream() -> usize {
    256
}
fn default_connection_affinity() -> bool {
    true
}
