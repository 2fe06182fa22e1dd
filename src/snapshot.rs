//! Everything a request needs, built once from a validated [`Config`]: the route table with its
//! credentials, and the upstream client. A reload builds a new snapshot and swaps it in whole.

use crate::clients::AccessControl;
use crate::config::{Config, ConfigError};
use crate::limits::LimitsConfig;
use crate::routes::{Route, RouteTable, Upstream};
use crate::token::Credential;
use crate::upstream::UpstreamClient;
use http::{HeaderName, HeaderValue};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Debug)]
pub struct Snapshot {
    pub listen: SocketAddr,
    pub routes: RouteTable,
    pub credentials: BTreeMap<String, Arc<Credential>>,
    pub client: UpstreamClient,
    /// What `client` was built from (the `[client]` table and the CA file's bytes): a reload
    /// that changes neither keeps `client` and its warm connection pool.
    client_source: (crate::config::ClientConfig, Option<Vec<u8>>),
    pub request_timeout: std::time::Duration,
    /// Per-route rate and concurrency limiters by prefix, for the routes that set them.
    pub rate_limits: crate::ratelimit::Limits,
    pub shutdown_grace: std::time::Duration,
    pub admin_listen: Option<SocketAddr>,
    /// `[[clients]]`; empty when access control is off.
    pub access: AccessControl,
    /// Listener TLS, rebuilt from the files on every snapshot (so on every reload).
    pub tls: Option<crate::tls::Listener>,
    pub limits: LimitsConfig,
}

/// Headers the proxy owns: a route may not set them, because the proxy sets or strips them.
const RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "x-api-key",
    "x-gw-ims-org-id",
    "host",
    "connection",
    "transfer-encoding",
    "content-length",
    "proxy-authorization",
    "cookie",
    "keep-alive",
    "te",
    "upgrade",
];

impl Snapshot {
    pub fn build(config: &Config) -> Result<Snapshot, ConfigError> {
        Self::build_with(config, None)
    }

    /// Builds a snapshot, keeping each credential of `previous` whose config and files are
    /// unchanged (with its cached token and running refresher) instead of a new one. Does no
    /// network I/O and spawns nothing: see [`Snapshot::start_refreshers`].
    pub fn build_with(
        config: &Config,
        previous: Option<&Snapshot>,
    ) -> Result<Snapshot, ConfigError> {
        let listen = resolve_listen(&config.server.listen)?;
        let client_source = (
            config.client.clone(),
            config
                .client
                .ca_file
                .as_ref()
                .and_then(|p| std::fs::read(p).ok()),
        );
        let client = match previous {
            Some(p) if p.client_source == client_source => p.client.clone(),
            _ => UpstreamClient::new(&config.client)?,
        };
        let mut presets: BTreeMap<&str, Vec<crate::adobe::Api>> = BTreeMap::new();
        for rc in &config.routes {
            if let Some(api) = rc.api {
                presets.entry(rc.credential.as_str()).or_default().push(api);
            }
        }
        let mut credentials = BTreeMap::new();
        for (name, cfg) in &config.credentials {
            let apis = presets.get(name.as_str()).map_or(&[][..], Vec::as_slice);
            let fresh = Credential::build(name, cfg, apis, &client, &config.client)?;
            let kept = previous
                .and_then(|p| p.credentials.get(name))
                .filter(|old| old.same_as(&fresh))
                .cloned();
            credentials.insert(name.clone(), kept.unwrap_or_else(|| Arc::new(fresh)));
        }
        let mut routes = Vec::with_capacity(config.routes.len());
        let mut rate_limits = crate::ratelimit::Limits::new();
        let mut seen = BTreeMap::new();
        for (i, rc) in config.routes.iter().enumerate() {
            let key = format!("routes[{i}]");
            let prefix = normalise_prefix(&rc.prefix)
                .map_err(|r| ConfigError::new(format!("{key}.prefix"), r))?;
            if let Some(j) = seen.insert(prefix.clone(), i) {
                return Err(ConfigError::new(
                    format!("{key}.prefix"),
                    format!("duplicate prefix {:?} (also routes[{j}])", rc.prefix),
                ));
            }
            let credential = credentials.get(&rc.credential).cloned().ok_or_else(|| {
                let known: Vec<&str> = credentials.keys().map(String::as_str).collect();
                ConfigError::new(
                    format!("{key}.credential"),
                    format!(
                        "unknown credential {:?} (known: {})",
                        rc.credential,
                        if known.is_empty() {
                            "none".into()
                        } else {
                            known.join(", ")
                        }
                    ),
                )
            })?;
            let upstream_url = match (&rc.upstream, rc.api) {
                (Some(u), _) => u.clone(),
                (None, Some(api)) => api
                    .default_upstream(rc.tenant.as_deref(), rc.stage)
                    .map_err(|r| ConfigError::new(format!("{key}.tenant"), r))?,
                (None, None) => {
                    return Err(ConfigError::new(
                        format!("{key}.upstream"),
                        "required when the route has no `api` preset",
                    ))
                }
            };
            if rc.api != Some(crate::adobe::Api::Campaign) && rc.tenant.is_some() {
                return Err(ConfigError::new(
                    format!("{key}.tenant"),
                    "only used with api = \"campaign\"",
                ));
            }
            let upstream = Upstream::parse(&upstream_url)
                .map_err(|r| ConfigError::new(format!("{key}.upstream"), r))?;
            let send_org_id = match (rc.api, rc.org_id_header) {
                (_, Some(explicit)) => explicit,
                (Some(api), None) => api.sends_org_id(),
                (None, None) => false,
            };
            if send_org_id && credential.org_id.is_none() {
                return Err(ConfigError::new(
                    format!("credentials.{}.org_id", rc.credential),
                    format!("required: route {:?} sends x-gw-ims-org-id", rc.prefix),
                ));
            }
            let mut headers = Vec::new();
            let preset = rc.api.map(|a| a.static_headers()).unwrap_or(&[]);
            for (name, value) in preset {
                if !rc.headers.keys().any(|k| k.eq_ignore_ascii_case(name)) {
                    headers.push((
                        HeaderName::from_static(name),
                        HeaderValue::from_static(value),
                    ));
                }
            }
            for (name, value) in &rc.headers {
                let hkey = format!("{key}.headers.{name}");
                let hname = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| ConfigError::new(&hkey, "not a valid header name"))?;
                if RESERVED_HEADERS.contains(&hname.as_str()) {
                    return Err(ConfigError::new(
                        &hkey,
                        "set by the proxy itself; a route cannot override it",
                    ));
                }
                let hvalue = HeaderValue::from_str(value)
                    .map_err(|_| ConfigError::new(&hkey, "not a valid header value"))?;
                headers.push((hname, hvalue));
            }
            let label = if prefix.is_empty() { "/" } else { &prefix };
            if let Some(l) = crate::ratelimit::RouteLimiter::from_config(&key, label, rc)? {
                rate_limits.insert(prefix.clone(), Arc::new(l));
            }
            routes.push(Route {
                prefix,
                api: rc.api,
                upstream,
                credential,
                send_org_id,
                headers,
                max_body_size: rc
                    .max_body_size
                    .or(config.server.limits.max_body_size)
                    .map(|b| b.0),
            });
        }
        let prefixes: Vec<String> = routes.iter().map(|r| r.prefix.clone()).collect();
        let access = AccessControl::build(&config.clients, &prefixes)?;
        let tls = config
            .server
            .tls
            .as_ref()
            .map(crate::tls::Listener::build)
            .transpose()?;
        check_exposure(config, listen, &access, tls.as_ref())?;
        warn_about_secret_files(config);
        Ok(Snapshot {
            listen,
            routes: RouteTable::new(routes),
            credentials,
            client,
            client_source,
            request_timeout: config.client.request_timeout,
            rate_limits,
            shutdown_grace: config.server.shutdown_grace,
            admin_listen: match &config.admin.listen {
                Some(a) => Some(resolve_addr("admin.listen", a)?),
                None => None,
            },
            access,
            tls,
            limits: config.server.limits.clone(),
        })
    }

    /// Starts the token refreshers (each credential's first fetch happens there, in the
    /// background, so IMS being down never delays start-up). Needs a Tokio runtime.
    pub fn start_refreshers(&self) {
        for c in self.credentials.values() {
            c.start_refresher();
        }
    }

    /// What `check` prints: the resolved routes, with secrets never shown.
    pub fn describe(&self) -> String {
        let mut out = format!("listen: {}\n", self.listen);
        if let Some(a) = self.admin_listen {
            out.push_str(&format!("admin: {a}\n"));
        }
        out.push_str(&format!("egress: {}\n", self.client.egress.description));
        out.push_str(&format!(
            "tls: {}\nclients: {}\n",
            match &self.tls {
                None => "off",
                Some(t) if t.mutual => "on, client certificates required",
                Some(_) => "on",
            },
            self.access.len(),
        ));
        for (name, c) in &self.credentials {
            out.push_str(&format!(
                "credential {name}: type={} client_id={} org_id={}",
                c.kind,
                c.api_key.to_str().unwrap_or("?"),
                c.org_id
                    .as_ref()
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-"),
            ));
            if let Some(ims) = c.ims_url() {
                let what = match c.kind {
                    crate::config::CredentialKind::Jwt => "metascopes",
                    _ => "scopes",
                };
                out.push_str(&format!(
                    " ims_url={ims} {what}={}",
                    c.requested_scopes().join(",")
                ));
            }
            out.push('\n');
        }
        let mut routes: Vec<&Route> = self.routes.iter().collect();
        routes.sort_by(|a, b| a.prefix.cmp(&b.prefix));
        for r in routes {
            let mut headers = vec!["authorization: Bearer [redacted]".to_string()];
            headers.push("x-api-key".into());
            if r.send_org_id {
                headers.push("x-gw-ims-org-id".into());
            }
            for (n, _) in &r.headers {
                headers.push(n.to_string());
            }
            out.push_str(&format!(
                "route {} -> {} (api={}, credential={}, headers: {})\n",
                if r.prefix.is_empty() { "/" } else { &r.prefix },
                r.upstream,
                r.api.map_or("-", |a| a.name()),
                r.credential.name,
                headers.join(", "),
            ));
        }
        out
    }
}

/// Safe by default: whoever reaches the listener acts with the organisation's Adobe
/// privileges, so listening beyond loopback needs someone to check who is calling.
fn check_exposure(
    config: &Config,
    listen: SocketAddr,
    access: &AccessControl,
    tls: Option<&crate::tls::Listener>,
) -> Result<(), ConfigError> {
    let mutual = tls.is_some_and(|t| t.mutual);
    if listen.ip().is_loopback() || access.is_enabled() || mutual {
        return Ok(());
    }
    if config.server.allow_unauthenticated {
        tracing::warn!(
            %listen,
            "listening beyond loopback without client authentication (server.allow_unauthenticated = true)"
        );
        return Ok(());
    }
    Err(ConfigError::new(
        "server.listen",
        format!(
            "{listen} is reachable from other hosts, and anyone who reaches it acts with your \
             organisation's Adobe privileges: configure [[clients]] keys or server.tls.client_ca_file \
             (mutual TLS), listen on 127.0.0.1, or set server.allow_unauthenticated = true if the \
             network already restricts who can connect"
        ),
    ))
}

/// Secret files the credentials point at should be private to the proxy's user.
fn warn_about_secret_files(config: &Config) {
    for (name, c) in &config.credentials {
        for (field, path) in [
            ("access_token_file", &c.access_token_file),
            ("client_secret_file", &c.client_secret_file),
            ("private_key_file", &c.private_key_file),
        ] {
            if let Some(path) = path {
                crate::secret_file::warn_if_exposed(&format!("credentials.{name}.{field}"), path);
            }
        }
    }
}

pub(crate) fn normalise_prefix(p: &str) -> Result<String, String> {
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

fn resolve_listen(listen: &str) -> Result<SocketAddr, ConfigError> {
    resolve_addr("server.listen", listen)
}

fn resolve_addr(key: &str, listen: &str) -> Result<SocketAddr, ConfigError> {
    use std::net::ToSocketAddrs;
    let err = |r: String| ConfigError::new(key, r);
    let mut addrs = listen
        .to_socket_addrs()
        .map_err(|e| err(format!("{listen:?} is not host:port: {e}")))?;
    addrs
        .next()
        .ok_or_else(|| err(format!("{listen:?} resolves to no address")))
}
