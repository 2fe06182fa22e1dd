//! `proxy.toml` and the `IMS_PROXY_*` environment, merged by figment into a [`Config`].

use super::callers::CallerConfig;
use super::credentials::CredentialConfig;
use super::env;
use super::error::ConfigError;
use super::forward::{ForwardConfig, ImsEndpointConfig};
use super::outbound::OutboundConfig;
use super::routes::RouteConfig;
use super::server::{AdminConfig, ServerConfig};
use super::shared::SharedConfig;
use super::tracing::TracingConfig;
use figment::providers::{Format, Serialized, Toml};
use figment::value::Dict;
use figment::Figment;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
    /// `[tracing]`: span export, off unless asked for.
    #[serde(default)]
    pub tracing: TracingConfig,
    /// `[shared]`: the Redis a fleet of replicas shares; each process on its own without it.
    pub shared: Option<SharedConfig>,
}

impl Config {
    /// Reads `path` (which must exist), overlays `IMS_PROXY_*` environment variables (see
    /// `env`), and resolves relative paths against the directory of `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        if let Err(e) = std::fs::metadata(path) {
            return Err(ConfigError::new(
                "config",
                format!("cannot read {}: {}", path.display(), e),
            ));
        }
        let mut tree: Dict = Figment::from(Toml::file_exact(path))
            .extract()
            .map_err(figment_error)?;
        let vars = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .filter_map(|(k, v)| Some((k.strip_prefix(env::PREFIX)?.to_string(), v)))
            .collect();
        env::overlay(&mut tree, vars)?;
        let mut config = Self::from_tree(tree)?;
        config.resolve_paths(&config_dir(path));
        if config.tracing.otlp {
            // Checked here so that `check` refuses them too, before anything starts.
            super::tracing::SpanBatch::from_env(|k| std::env::var(k).ok())?;
        }
        Ok(config)
    }

    /// Parses a TOML string alone (no environment, paths as written); used by tests and `demo`.
    pub fn from_toml(toml: &str) -> Result<Config, ConfigError> {
        let tree: Dict = Figment::from(Toml::string(toml))
            .extract()
            .map_err(figment_error)?;
        Self::from_tree(tree)
    }

    fn from_tree(tree: Dict) -> Result<Config, ConfigError> {
        if let Some((path, value)) = env::find_placeholder(&tree) {
            return Err(ConfigError::new(
                key_path(&path),
                format!(
                    "{value:?} is still a placeholder from proxy.toml.example: put in the value \
                     Adobe Developer Console shows for your project (or set it with an IMS_PROXY_ variable)"
                ),
            ));
        }
        Figment::from(Serialized::defaults(tree))
            .extract()
            .map_err(figment_error)
    }

    /// Every file or directory the configuration depends on besides itself, with its key: the
    /// one list that `check` prints, `run --watch` watches and relative paths are resolved in.
    pub fn paths(&self) -> Vec<(String, PathBuf)> {
        let mut copy = self.clone();
        copy.paths_mut()
            .into_iter()
            .map(|(key, p)| (key, p.clone()))
            .collect()
    }

    fn paths_mut(&mut self) -> Vec<(String, &mut PathBuf)> {
        let mut out: Vec<(String, &mut PathBuf)> = Vec::new();
        if let Some(p) = &mut self.outbound.ca_file {
            out.push(("client.ca_file".into(), p));
        }
        if let Some(tls) = &mut self.server.tls {
            out.push(("server.tls.cert_file".into(), &mut tls.cert_file));
            out.push(("server.tls.key_file".into(), &mut tls.key_file));
            if let Some(p) = &mut tls.client_ca_file {
                out.push(("server.tls.client_ca_file".into(), p));
            }
        }
        for (name, c) in &mut self.credentials {
            let fields = [
                ("access_token_file", &mut c.access_token_file),
                ("client_secret_file", &mut c.client_secret_file),
                ("private_key_file", &mut c.private_key_file),
            ];
            for (field, p) in fields {
                if let Some(p) = p {
                    out.push((format!("credentials.{name}.{field}"), p));
                }
            }
        }
        for (i, c) in self.callers.iter_mut().enumerate() {
            if let Some(p) = &mut c.key_file {
                out.push((format!("clients[{i}].key_file"), p));
            }
        }
        if let Some(f) = &mut self.forward {
            out.push(("forward.ca_dir".into(), &mut f.ca_dir));
        }
        if let Some(s) = &mut self.shared {
            let fields = [
                ("password_file", &mut s.password_file),
                ("ca_file", &mut s.ca_file),
                ("seal_key_file", &mut s.seal_key_file),
            ];
            for (field, p) in fields {
                if let Some(p) = p {
                    out.push((format!("shared.{field}"), p));
                }
            }
        }
        out
    }

    /// Makes every relative path absolute against `dir`, the config file's directory (as
    /// nginx and systemd do), whichever source it came from.
    fn resolve_paths(&mut self, dir: &Path) {
        for (_, p) in self.paths_mut() {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        }
    }
}

/// The directory `path` is in, made absolute (so `check` prints where files really are).
fn config_dir(path: &Path) -> PathBuf {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    // `a/./b` reads badly; `..` is kept (a symlinked directory makes it meaningful).
    dir.components().collect()
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
        Kind::UnknownVariant(found, expected) => format!(
            "unknown value {found:?} (known: {})",
            expected
                .iter()
                .map(|e| format!("{e:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Kind::InvalidType(figment::error::Actual::Unsigned(n), expected)
            if expected.contains("duration") =>
        {
            format!("a duration needs a unit: write \"{n}s\" (or \"{n}ms\", \"{n}m\")")
        }
        Kind::InvalidType(figment::error::Actual::Signed(n), expected)
            if expected.contains("duration") =>
        {
            format!("a duration needs a unit: write \"{n}s\" (or \"{n}ms\", \"{n}m\")")
        }
        Kind::InvalidType(figment::error::Actual::Float(n), expected)
            if expected.contains("duration") =>
        {
            format!(
                "a duration needs a unit: write \"{n}s\" (or \"{}ms\")",
                n * 1000.0
            )
        }
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
