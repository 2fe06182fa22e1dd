//! `[[routes]]`: which prefix goes to which upstream with which credential, and its shaping.

use crate::adobe::Api;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub prefix: String,
    pub api: Option<Api>,
    pub tenant: Option<String>,
    #[serde(default)]
    pub stage: bool,
    pub upstream: Option<String>,
    /// The URL clients know the API by, for the forward listener: requests intercepted for it
    /// go to this route. Presets know theirs (`https://mc.adobe.io/{tenant}/campaign`, ...).
    pub public_url: Option<String>,
    /// `false`: the forward listener does not intercept for this route (reverse listener
    /// only), e.g. a second route for the same API with another credential.
    pub intercept: Option<bool>,
    /// `check --online`'s authenticated read, `"GET /path?query"` relative to the upstream;
    /// presets know theirs.
    pub probe: Option<String>,
    pub credential: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// For routes without a preset: also send `x-gw-ims-org-id`.
    pub org_id_header: Option<bool>,
    /// Largest request body this route forwards (413 beyond); unlimited when absent.
    pub max_body_size: Option<super::server::ByteSize>,
    /// Outbound request rate: a token bucket refilled at `per_second`, holding `burst`.
    pub rate_limit: Option<RateLimitConfig>,
    /// At most this many requests to the upstream at once (response bodies included).
    pub max_concurrent: Option<u32>,
    /// Requests over `rate_limit` or `max_concurrent` wait in a queue of this many...
    #[serde(default = "default_queue_size")]
    pub queue_size: u32,
    /// ...for at most this long; past either bound they get 429 `rate_limited`.
    #[serde(default = "default_queue_timeout", with = "humantime_serde")]
    pub queue_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    pub per_second: f64,
    pub burst: Option<u32>,
}

fn default_queue_size() -> u32 {
    100
}
fn default_queue_timeout() -> Duration {
    Duration::from_secs(10)
}

/// A route prefix as the route table holds it: "/a/b" without trailing slash, "" for "/".
pub fn normalise_prefix(p: &str) -> Result<String, String> {
    if !p.starts_with('/') {
        return Err(format!("{p:?} must start with '/'"));
    }
    if p.contains(['?', '#', '%', ' ']) {
        return Err(format!("{p:?} may contain only a plain path"));
    }
    if p.split('/').any(|s| s == "." || s == "..") {
        return Err(format!("{p:?} may not contain dot-segments"));
    }
    Ok(p.trim_end_matches('/').to_string())
}
