//! `proxy.toml` and the `IMS_PROXY_*` environment, merged by figment into a [`Config`].

use super::callers::CallerConfig;
use super::credentials::CredentialConfig;
use super::error::ConfigError;
use super::forward::{ForwardConfig, ImsEndpointConfig};
use super::outbound::OutboundConfig;
use super::routes::RouteConfig;
use super::server::{AdminConfig, ServerConfig};
use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    /// `[client]`: the outbound side (upstreams and IMS).
    #[serde(default, rename = "client")]
    pub outbound: OutboundConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub credentials: BTreeMap<String, CredentialConfig>,
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// `[[clients]]`: who may call the proxy.
    #[serde(default, rename = "clients")]
    pub callers: Vec<CallerConfig>,
    /// `[forward]`: the forward-proxy listener, off unless present.
    pub forward: Option<ForwardConfig>,
    /// `[ims_endpoint]`: IMS's token endpoints answered on the reverse listener, off unless
    /// present.
    pub ims_endpoint: Option<ImsEndpointConfig>,
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
    const SECTIONS: [&str; 8] = [
        "server",
        "admin",
        "client",
        "credentials",
        "routes",
        "clients",
        "forward",
        "ims_endpoint",
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
    use std::time::Duration;

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
        assert_eq!(c.outbound.request_timeout, Duration::from_secs(60));
    }
}
