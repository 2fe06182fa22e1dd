//! Configuration: `proxy.toml` merged with `IMS_PROXY_*` environment variables (`__` between
//! levels) through figment, deserialized strictly (an unknown key is an error, so a typo never
//! silently drops a setting). Semantic checks that need more than one field live in
//! [`crate::snapshot`], which turns a `Config` into what requests use.

use crate::adobe::Api;
use crate::secret::Secret;
use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The one error type of the configuration layer: the key path (`routes[1].credential`) and
/// why it is wrong. Printed as `error: <key>: <reason>` and exits with status 2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct ConfigError {
    pub key: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub client: ClientConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub credentials: BTreeMap<String, CredentialConfig>,
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Who may use the proxy; see [`crate::access`].
    #[serde(default)]
    pub clients: Vec<crate::clients::ClientConfig>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(default = "default_listen")]
    pub listen: String,
    /// How long requests in flight (streams included) may run on after SIGTERM/SIGINT.
    #[serde(default = "default_shutdown_grace", with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Listening beyond loopback with neither `[[clients]]` nor mutual TLS is refused unless
    /// this says the network in front of the proxy already restricts who reaches it.
    #[serde(default)]
    pub allow_unauthenticated: bool,
    pub tls: Option<crate::tls::TlsConfig>,
    #[serde(default)]
    pub limits: crate::limits::LimitsConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            shutdown_grace: default_shutdown_grace(),
            allow_unauthenticated: false,
            tls: None,
            limits: Default::default(),
        }
    }
}

fn default_shutdown_grace() -> Duration {
    Duration::from_secs(30)
}

/// `[admin]`: the health, readiness and metrics listener, off unless `listen` is set.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    pub listen: Option<String>,
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// Extra trust anchors (PEM), added to the built-in webpki roots.
    pub ca_file: Option<PathBuf>,
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Deadline for the upstream's response headers; bodies stream without a deadline.
    #[serde(default = "default_request_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    #[serde(default = "default_pool_idle_timeout", with = "humantime_serde")]
    pub pool_idle_timeout: Duration,
    /// Egress proxy for IMS and upstream traffic (`http://[user:pass@]host:port`); overrides
    /// `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY`. A `Secret` because it may carry a password.
    pub proxy: Option<Secret>,
    /// Hosts reached directly, curl's `NO_PROXY` syntax; overrides `NO_PROXY`.
    pub no_proxy: Option<String>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            ca_file: None,
            connect_timeout: default_connect_timeout(),
            request_timeout: default_request_timeout(),
            pool_idle_timeout: default_pool_idle_timeout(),
            proxy: None,
            no_proxy: None,
        }
    }
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_pool_idle_timeout() -> Duration {
    Duration::from_secs(90)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CredentialKind {
    Static,
    Jwt,
    Oauth,
}

impl fmt::Display for CredentialKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CredentialKind::Static => "static",
            CredentialKind::Jwt => "jwt",
            CredentialKind::Oauth => "oauth",
        })
    }
}

/// One `[credentials.NAME]` table. Flat rather than an enum per type so that a missing or
/// misplaced field gets an error naming the field and the type, not serde's "no variant".
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialConfig {
    #[serde(rename = "type")]
    pub kind: CredentialKind,
    pub client_id: Option<String>,
    pub org_id: Option<String>,
    pub access_token: Option<Secret>,
    pub access_token_file: Option<PathBuf>,
    pub client_secret: Option<Secret>,
    pub client_secret_file: Option<PathBuf>,
    pub technical_account_id: Option<String>,
    pub private_key_file: Option<PathBuf>,
    pub metascopes: Option<Vec<String>>,
    pub scopes: Option<Vec<String>>,
    pub ims_url: Option<String>,
    /// Fraction of a token's lifetime after which it is refreshed in the background.
    pub refresh_at: Option<f64>,
    /// Requests whose body is at most this many bytes are replayed once after an upstream 401.
    pub replay_body_limit: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub prefix: String,
    pub api: Option<Api>,
    pub tenant: Option<String>,
    #[serde(default)]
    pub stage: bool,
    pub upstream: Option<String>,
    pub credential: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// For routes without a preset: also send `x-gw-ims-org-id`.
    pub org_id_header: Option<bool>,
    /// Largest request body this route forwards (413 beyond); unlimited when absent.
    pub max_body_size: Option<crate::limits::ByteSize>,
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

impl Config {
    /// Reads `path` (which must exist) and overlays `IMS_PROXY_*` environment variables.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        if let Err(e) = std::fs::metadata(path) {
            return Err(ConfigError::new(
                "config",
                format!("cannot read {}: {}", path.display(), e),
            ));
        }
        Self::from_figment(
            Figment::new().merge(Toml::file_exact(path)).merge(
                Env::prefixed("IMS_PROXY_")
                    .filter(|key| !is_service_link(key.as_str()))
                    .split("__"),
            ),
        )
    }

    /// Parses a TOML string alone (no environment); used by tests and `demo`.
    pub fn from_toml(toml: &str) -> Result<Config, ConfigError> {
        Self::from_figment(Figment::new().merge(Toml::string(toml)))
    }

    fn from_figment(figment: Figment) -> Result<Config, ConfigError> {
        figment.extract().map_err(figment_error)
    }
}

/// Kubernetes gives every pod `IMS_PROXY_PORT`, `IMS_PROXY_SERVICE_HOST` and the like when a
/// Service is named `ims-proxy`; Docker links do the same. They are not settings: a variable
/// whose name has no `__` and is not a top-level section is one of those, and is ignored.
/// Anything with `__` still goes through, so a misspelt section remains an error.
fn is_service_link(key: &str) -> bool {
    const SECTIONS: [&str; 6] = [
        "server",
        "admin",
        "client",
        "credentials",
        "routes",
        "clients",
    ];
    !key.contains("__") && !SECTIONS.iter().any(|s| key.eq_ignore_ascii_case(s))
}

/// Turns figment's error into `key.path[1].field: reason`.
fn figment_error(err: figment::Error) -> ConfigError {
    use figment::error::Kind;
    let mut path = err.path.clone();
    let reason = match &err.kind {
        Kind::MissingField(field) => {
            if path.last().map(String::as_str) != Some(field.as_ref()) {
                path.push(field.to_string());
            }
            "missing field".to_string()
        }
        Kind::UnknownField(field, expected) => {
            // Some figment versions already end the path with the field; others do not.
            if path.last() != Some(field) {
                path.push(field.clone());
            }
            if expected.is_empty() {
                "unknown key".to_string()
            } else {
                format!("unknown key (expected one of: {})", expected.join(", "))
            }
        }
        Kind::Message(m) => m.clone(),
        other => other.to_string(),
    };
    let key = key_path(&path);
    ConfigError::new(if key.is_empty() { "config".into() } else { key }, reason)
}

/// `["routes", "1", "credential"]` → `routes[1].credential`.
pub fn key_path(parts: &[String]) -> String {
    let mut out = String::new();
    for p in parts {
        if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) {
            out.push('[');
            out.push_str(p);
            out.push(']');
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths_render_indices_in_brackets() {
        let p = ["routes", "1", "credential"].map(String::from);
        assert_eq!(key_path(&p), "routes[1].credential");
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let err =
            Config::from_toml("[server]\nlisten = \"127.0.0.1:1\"\nlistne = 1\n").unwrap_err();
        assert_eq!(err.key, "server.listne");
    }

    #[test]
    fn defaults_apply_when_sections_are_absent() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:8080");
        assert_eq!(c.client.request_timeout, Duration::from_secs(60));
    }
}
