//! Everything a request needs, built once from a validated [`Config`]: the route table with its
//! credentials, the callers, the outbound client, the listener's TLS. A reload builds a new
//! snapshot and swaps it in whole; [`Snapshot::build`] is the one place that decides what the
//! new snapshot keeps of the one it replaces.

use super::ca::Intercepted;
use super::callers::Callers;
use super::forward::Forward;
use super::limits::ConnLimits;
use super::routes::{label, CoolDown, Route, RouteTable, DEFAULT_COOL_DOWN_MAX};
use super::shaping::{rate, RouteLimiter, Shaping};
use super::site::SitePolicy;
use super::tls::ListenerTls;
use crate::base::secret::warn_if_exposed;
use crate::config::{
    normalise_prefix, resolve_addr, Config, ConfigError, CredentialKind, LimitsConfig,
    OnUpstream429, OutboundConfig,
};
use crate::fleet::{CooldownKey, Fleet, Limit, LimitKey, Shared};
use crate::outbound::Outbound;
use crate::token::Credential;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Adobe's `Retry-After`s are seconds to minutes; a day is far beyond any of them.
const MAX_COOL_DOWN_MAX: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug)]
pub struct Snapshot {
    pub listen: SocketAddr,
    pub routes: RouteTable,
    pub credentials: BTreeMap<String, Arc<Credential>>,
    /// `[shared]`: the fleet's Redis, kept across reloads while its settings and files stay.
    pub shared: Option<Arc<Shared>>,
    pub outbound: Outbound,
    /// What `outbound` was built from (the `[client]` table and the CA file's bytes).
    outbound_source: (OutboundConfig, Option<Vec<u8>>),
    pub request_timeout: Duration,
    /// For the forward listener's blind tunnels.
    pub outbound_connect_timeout: Duration,
    /// Longest pause between two frames of a body in flight, either way.
    pub body_idle_timeout: Duration,
    /// Per-route rate and concurrency limiters by prefix, for the routes that set them or
    /// whose credential has a `quota`.
    pub shaping: Shaping,
    /// Each credential's `quota`, by credential name, for those that set one.
    pub quotas: BTreeMap<String, Arc<Limit>>,
    /// Where rate and cool-down decisions are made: in-process, or shared by the replicas.
    pub fleet: Fleet,
    pub shutdown_grace: Duration,
    pub admin_listen: Option<SocketAddr>,
    /// `[[clients]]`; empty when access control is off.
    pub callers: Callers,
    /// `server.hostnames` and `server.allowed_origins`: which `Host`s and web pages may use
    /// the proxy and admin listeners.
    pub sites: SitePolicy,
    /// Listener TLS, rebuilt from the files on every snapshot (so on every reload).
    pub tls: Option<ListenerTls>,
    /// `[forward]`: the forward-proxy listener's policy and CA.
    pub forward: Option<Forward>,
    /// `[ims_endpoint] prefix`, normalised: IMS's token endpoints on the reverse listener.
    pub ims_prefix: Option<String>,
    pub limits: LimitsConfig,
    /// `server.http1`: which server reads HTTP/1.1 on the proxy port.
    pub http1: crate::config::Http1,
    /// The proxy port's connection limits.
    pub conn_limits: ConnLimits,
    /// The admin port's (built from `[admin]` even when it has no listener).
    pub admin_limits: ConnLimits,
}

impl Snapshot {
    /// Builds a snapshot from `config`. Does no network I/O and spawns nothing (see
    /// [`Snapshot::start_refreshers`]). With the snapshot it replaces as `previous`, it keeps:
    /// - the outbound client and its warm pool, when `[client]` and its CA file are unchanged;
    /// - each credential whose config and files are unchanged, with its cached token and
    ///   running refresher (no IMS call);
    /// - each route limiter whose settings are unchanged, with its tokens and requests in
    ///   flight; each credential quota whose rate and credential are unchanged;
    /// - the fleet handle, with the cool-downs running;
    /// - each route's request counts (the status page's), while its prefix stays;
    /// - the listen addresses, which only a restart can change (with a warning).
    pub fn build(config: &Config, previous: Option<&Snapshot>) -> Result<Snapshot, ConfigError> {
        let mut listen = resolve_addr("server.listen", &config.server.listen)?;
        let mut admin_listen = match &config.admin.listen {
            Some(a) => Some(resolve_addr("admin.listen", a)?),
            None => None,
        };
        let conn_limits = ConnLimits::proxy(&config.server.limits, config.server.shutdown_grace);
        let admin_limits = ConnLimits::admin(&config.admin);
        let outbound_source = (
            config.outbound.clone(),
            config
                .outbound
                .ca_file
                .as_ref()
                .and_then(|p| std::fs::read(p).ok()),
        );
        let outbound = match previous {
            Some(p) if p.outbound_source == outbound_source => p.outbound.clone(),
            _ => Outbound::new(&config.outbound)?,
        };
        let shared = match &config.shared {
            None => None,
            Some(cfg) => {
                let fresh = Shared::build(cfg)?;
                let kept = previous
                    .and_then(|p| p.shared.as_ref())
                    .filter(|old| old.spec() == fresh.spec())
                    .cloned();
                Some(kept.unwrap_or_else(|| Arc::new(fresh)))
            }
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
            let fresh = Credential::build(
                name,
                cfg,
                apis,
                &outbound,
                &config.outbound,
                shared.as_ref(),
            )?;
            let kept = previous
                .and_then(|p| p.credentials.get(name))
                .filter(|old| old.same_as(&fresh))
                .cloned();
            credentials.insert(name.clone(), kept.unwrap_or_else(|| Arc::new(fresh)));
        }
        let fleet = Fleet::for_snapshot(previous.map(|p| &p.fleet), shared.as_ref());
        let mut quotas = BTreeMap::new();
        for (name, cfg) in &config.credentials {
            let (Some(q), Some(c)) = (&cfg.quota, credentials.get(name)) else {
                continue;
            };
            let fresh = Limit::new(
                LimitKey::Quota(c.fleet_key.clone()),
                rate(&format!("credentials.{name}.quota"), q)?,
            );
            let kept = previous
                .and_then(|p| p.quotas.get(name))
                .filter(|old| old.key == fresh.key && old.rate == fresh.rate)
                .cloned();
            quotas.insert(name.clone(), kept.unwrap_or_else(|| Arc::new(fresh)));
        }
        let mut routes = Vec::with_capacity(config.routes.len());
        let mut shaping = Shaping::new();
        let mut seen = BTreeMap::new();
        let default_max_body = config.server.limits.max_body_size.map(|b| b.0);
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
            let mut route = Route::build(i, rc, &credentials, default_max_body)?;
            // The status page's counts and rates run on over a reload while the prefix stays.
            if let Some(old) = previous.and_then(|p| p.routes.iter().find(|r| r.prefix == prefix)) {
                route.stats = old.stats.clone();
            }
            let credential_config = config.credentials.get(&rc.credential);
            route.cool_down = match credential_config {
                Some(cc) if cc.on_upstream_429 == OnUpstream429::CoolDown => {
                    let max = cc.cool_down_max.unwrap_or(DEFAULT_COOL_DOWN_MAX);
                    if max.is_zero() || max > MAX_COOL_DOWN_MAX {
                        return Err(ConfigError::new(
                            format!("credentials.{}.cool_down_max", rc.credential),
                            "must be above 0 and at most 24h (to never cool down, set \
                             on_upstream_429 = \"pass\")",
                        ));
                    }
                    Some(CoolDown {
                        key: CooldownKey {
                            credential: route.credential.fleet_key.clone(),
                            host: route.upstream.authority.host().to_ascii_lowercase().into(),
                        },
                        max,
                    })
                }
                _ => None,
            };
            let quota = quotas.get(&rc.credential).cloned();
            let limiter = RouteLimiter::from_config(
                &key,
                label(&prefix),
                rc,
                &route.credential.fleet_key,
                quota,
            )?;
            if let Some(l) = limiter {
                let kept = previous
                    .and_then(|p| p.shaping.get(&prefix))
                    .filter(|old| old.same_as(&l))
                    .cloned();
                shaping.insert(prefix, kept.unwrap_or_else(|| Arc::new(l)));
            }
            routes.push(route);
        }
        let prefixes: Vec<String> = routes.iter().map(|r| r.prefix.clone()).collect();
        let ims_prefix = match &config.ims_endpoint {
            None => None,
            Some(e) => {
                let p = normalise_prefix(&e.prefix)
                    .map_err(|r| ConfigError::new("ims_endpoint.prefix", r))?;
                if p.is_empty() || prefixes.contains(&p) {
                    return Err(ConfigError::new(
                        "ims_endpoint.prefix",
                        format!(
                            "{:?} must be a prefix of its own, not \"/\" or a route's",
                            e.prefix
                        ),
                    ));
                }
                Some(p)
            }
        };
        let callers = Callers::build(&config.callers, &prefixes)?;
        let sites = SitePolicy::build(&config.server)?;
        let tls = config
            .server
            .tls
            .as_ref()
            .map(ListenerTls::build)
            .transpose()?;
        check_exposure(config, "server.listen", listen, &callers, tls.as_ref())?;
        warn_if_unnamed(&sites, listen, admin_listen);
        let mut forward = match &config.forward {
            None => None,
            Some(f) => {
                let ims_hosts: Vec<String> = credentials
                    .values()
                    .filter_map(|c| c.ims_host())
                    .chain(crate::adobe::SDK_IMS_HOSTS.map(String::from))
                    .collect();
                check_public_urls(config, &routes)?;
                let intercepted = intercepted(&routes, &ims_hosts);
                let fwd = Forward::build(
                    f,
                    ims_hosts,
                    &intercepted,
                    previous.and_then(|p| p.forward.as_ref()),
                )?;
                // The forward listener has no TLS of its own: callers need keys beyond loopback.
                check_exposure(config, "forward.listen", fwd.listen, &callers, None)?;
                Some(fwd)
            }
        };
        // Last, so that a more specific error (a bad key, say) is reported first.
        crate::config::validate(config)?;
        warn_about_secret_files(config);
        if let Some(p) = previous {
            // Listeners are bound once; say so rather than pretend the change took effect.
            if listen != p.listen {
                tracing::warn!(
                    configured = %listen,
                    serving = %p.listen,
                    "server.listen changed; it takes effect after a restart"
                );
                listen = p.listen;
            }
            if let (Some(new), Some(old)) = (forward.as_mut(), p.forward.as_ref()) {
                if new.listen != old.listen {
                    tracing::warn!("forward.listen changed; it takes effect after a restart");
                    new.listen = old.listen;
                }
            }
            if admin_listen != p.admin_listen {
                tracing::warn!("admin.listen changed; it takes effect after a restart");
                admin_listen = p.admin_listen;
            }
        }
        Ok(Snapshot {
            listen,
            routes: RouteTable::new(routes),
            credentials,
            shared,
            outbound,
            outbound_source,
            request_timeout: config.outbound.request_timeout,
            outbound_connect_timeout: config.outbound.connect_timeout,
            body_idle_timeout: config.outbound.body_idle_timeout,
            shaping,
            quotas,
            fleet,
            shutdown_grace: config.server.shutdown_grace,
            admin_listen,
            callers,
            sites,
            tls,
            forward,
            ims_prefix,
            limits: config.server.limits.clone(),
            http1: config.server.http1,
            conn_limits,
            admin_limits,
        })
    }

    /// Starts the token refreshers (each credential's first fetch happens there, in the
    /// background, so IMS being down never delays start-up). Needs a Tokio runtime.
    pub fn start_refreshers(&self) {
        for c in self.credentials.values() {
            c.start_refresher();
        }
        // With `[shared]`: the fleet's cool-downs for these routes, read in the background.
        self.fleet.watch(
            self.routes
                .iter()
                .filter_map(|r| r.cool_down.as_ref())
                .map(|c| c.key.clone()),
        );
        self.fleet.start();
    }

    /// Declares at zero every metrics series this configuration's label values make known
    /// (each route, each IMS credential, ...), so the first scrape has them all. Called
    /// whenever a snapshot is put in place; a series already counting keeps its value.
    pub fn declare_metrics(&self) {
        crate::metrics::declare_common();
        for route in self.routes.iter() {
            crate::metrics::declare_route(route.label());
            crate::metrics::declare_route_refusals(route.label());
            if self.shaping.contains_key(&route.prefix) {
                crate::metrics::declare_route_limits(route.label());
            }
        }
        for (name, credential) in &self.credentials {
            if credential.is_managed() {
                crate::metrics::declare_credential(name);
            }
            if self.quotas.contains_key(name) {
                crate::metrics::declare_quota(name);
            }
        }
        for route in self.routes.iter() {
            if let Some(c) = &route.cool_down {
                crate::metrics::declare_cool_down(&route.credential.name, &c.key.host);
            }
        }
        crate::metrics::declare_site_refused("reverse", true);
        if self.admin_listen.is_some() {
            crate::metrics::declare_site_refused("admin", true);
        }
        if self.forward.is_some() {
            crate::metrics::declare_forward();
            crate::metrics::declare_site_refused("forward", false);
        }
        if self.shared.is_some() {
            crate::metrics::declare_shared();
        }
    }

    /// What `check` prints: the resolved routes, with secrets never shown.
    pub fn describe(&self) -> String {
        let mut out = format!("listen: {}\n", self.listen);
        if let Some(a) = self.admin_listen {
            out.push_str(&format!("admin: {a}\n"));
        }
        out.push_str(&format!("egress: {}\n", self.outbound.egress.description));
        out.push_str(&format!(
            "tls: {}\nclients: {}\n",
            match &self.tls {
                None => "off",
                Some(t) if t.mutual => "on, client certificates required",
                Some(_) => "on",
            },
            self.callers.len(),
        ));
        let hostnames: Vec<String> = self.sites.hostnames().collect();
        out.push_str(&format!(
            "hostnames: IP addresses, localhost{}\n",
            hostnames.iter().fold(String::new(), |s, h| s + ", " + h)
        ));
        let origins: Vec<&str> = self.sites.origins().collect();
        if !origins.is_empty() {
            out.push_str(&format!("allowed origins: {}\n", origins.join(", ")));
        }
        if let Some(f) = &self.forward {
            out.push_str(&format!("forward: {} (CA {})\n", f.listen, f.ca.describe()));
            for w in f.ca.warnings() {
                out.push_str(&format!("warning: {w}\n"));
            }
            out.push_str(&self.describe_forward(f));
        }
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
                    CredentialKind::Jwt => "metascopes",
                    _ => "scopes",
                };
                out.push_str(&format!(
                    " ims_url={ims} {what}={}",
                    c.requested_scopes().join(",")
                ));
            }
            if let Some(q) = self.quotas.get(name) {
                out.push_str(&format!(
                    " quota={}/s,burst={}",
                    q.rate.per_second, q.rate.burst
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
                r.label(),
                r.upstream,
                r.api.map_or("-", |a| a.name()),
                r.credential.name,
                headers.join(", "),
            ));
        }
        out
    }
}

impl Snapshot {
    /// Every host the forward listener intercepts (and for which route), answers itself, or
    /// tunnels; and the routes it leaves alone.
    fn describe_forward(&self, f: &Forward) -> String {
        let mut out = String::new();
        let mut routes: Vec<&Route> = self.routes.iter().collect();
        routes.sort_by(|a, b| a.prefix.cmp(&b.prefix));
        let mut hosts: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in &routes {
            for p in &r.public {
                hosts
                    .entry(p.authority.host().to_ascii_lowercase())
                    .or_default()
                    .push(format!("{p} -> route {}", r.label()));
            }
        }
        for (host, to) in &hosts {
            out.push_str(&format!(
                "forward intercepts {host}:443: {}\n",
                to.join(", ")
            ));
        }
        for host in f.ims_hosts() {
            out.push_str(&format!(
                "forward intercepts {host}:443: IMS token endpoint, answered by the proxy\n"
            ));
        }
        for pattern in f.passthrough() {
            out.push_str(&format!(
                "forward tunnels {pattern}: passthrough, not intercepted\n"
            ));
        }
        for r in routes.iter().filter(|r| r.public.is_empty()) {
            let why = if r.intercept {
                "no public URL"
            } else {
                "intercept = false"
            };
            out.push_str(&format!(
                "forward ignores route {}: {why} (reverse listener only)\n",
                r.label()
            ));
        }
        out.push_str("forward refuses every other host: 403 forward_refused\n");
        out
    }
}

/// The hosts the forward listener may terminate TLS for, each with where it comes from.
fn intercepted(routes: &[Route], ims_hosts: &[String]) -> Vec<Intercepted> {
    let mut out: Vec<Intercepted> = Vec::new();
    let routes = routes.iter().flat_map(|r| {
        r.public.iter().map(move |public| {
            (
                // An IPv6 literal without its brackets, as a certificate names it.
                public
                    .authority
                    .host()
                    .trim_matches(['[', ']'])
                    .to_ascii_lowercase(),
                format!("the public URL of route {}", r.label()),
            )
        })
    });
    let ims = ims_hosts
        .iter()
        .map(|h| (h.clone(), "an IMS host".to_string()));
    for (host, origin) in routes.chain(ims) {
        if !out.iter().any(|i| i.host == host) {
            out.push(Intercepted { host, origin });
        }
    }
    out
}

/// The forward listener matches intercepted requests by public URL: a preset route whose URL
/// cannot be derived would see every SDK request refused (`403 forward_refused`) with nothing
/// said at start, and two routes with the same URL would make it guess. Both are refused, each
/// naming what to set; `intercept = false` keeps a route off the forward listener on purpose.
fn check_public_urls(config: &Config, routes: &[Route]) -> Result<(), ConfigError> {
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    for (i, (rc, r)) in config.routes.iter().zip(routes).enumerate() {
        if let Some(api) = rc.api {
            if r.public.is_empty() && rc.intercept != Some(false) {
                return Err(ConfigError::new(
                    format!("routes[{i}].tenant"),
                    format!(
                        "required with [forward]: the forward listener intercepts api = \"{api}\" \
                         at https://mc.adobe.io/{{tenant}}/campaign, and this route's `upstream` \
                         does not say which tenant, so every SDK request for it would be refused \
                         (403 forward_refused); set tenant (the Campaign tenant id in the SDK's \
                         URL) or public_url, or intercept = false to keep the route off the \
                         forward listener"
                    ),
                ));
            }
        }
        for public in &r.public {
            let url = public.to_string().to_ascii_lowercase();
            if let Some(other) = seen.insert(url.clone(), r.label()) {
                return Err(ConfigError::new(
                    format!("routes[{i}].public_url"),
                    format!(
                        "routes {other} and {} have the same public URL {url}: the forward \
                         listener could not choose; give one its own public_url, or \
                         intercept = false to keep it off the forward listener",
                        r.label()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Safe by default: whoever reaches the listener acts with the organisation's Adobe
/// privileges, so listening beyond loopback needs someone to check who is calling.
fn check_exposure(
    config: &Config,
    key: &str,
    listen: SocketAddr,
    callers: &Callers,
    tls: Option<&ListenerTls>,
) -> Result<(), ConfigError> {
    let mutual = tls.is_some_and(|t| t.mutual);
    if listen.ip().is_loopback() || callers.is_enabled() || mutual {
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
        key,
        format!(
            "{listen} is reachable from other hosts, and anyone who reaches it acts with your \
             organisation's Adobe privileges: configure [[clients]] keys or server.tls.client_ca_file \
             (mutual TLS), listen on 127.0.0.1, or set server.allow_unauthenticated = true if the \
             network already restricts who can connect"
        ),
    ))
}

/// A listener beyond loopback is usually reached by a name (a Kubernetes Service's, a load
/// balancer's, a DNS entry): without `server.hostnames` every such request is refused.
fn warn_if_unnamed(sites: &SitePolicy, listen: SocketAddr, admin: Option<SocketAddr>) {
    if sites.hostnames().next().is_some() {
        return;
    }
    for (key, addr) in std::iter::once(("server.listen", listen))
        .chain(admin.map(|a| ("admin.listen", a)))
        .filter(|(_, a)| !a.ip().is_loopback())
    {
        tracing::warn!(
            %addr,
            "{key} is reachable from other hosts but server.hostnames is empty: only requests \
             addressed to an IP address or localhost are answered; add the names callers use \
             (a Kubernetes Service's, a load balancer's) to server.hostnames"
        );
    }
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
                warn_if_exposed(&format!("credentials.{name}.{field}"), path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(per_second_a: f64, per_second_b: f64) -> Config {
        let route = |prefix: &str, per_second: f64| {
            format!(
                "[[routes]]\nprefix = \"{prefix}\"\nupstream = \"http://127.0.0.1:1\"\n\
                 credential = \"c\"\nrate_limit = {{ per_second = {per_second}, burst = 1 }}\n"
            )
        };
        let toml = format!(
            "[credentials.c]\ntype = \"static\"\naccess_token = \"t\"\nclient_id = \"id\"\n{}{}",
            route("/a", per_second_a),
            route("/b", per_second_b)
        );
        Config::from_toml(&toml).unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn a_rebuild_keeps_unchanged_limiters_only() {
        let first = Snapshot::build(&config(1.0, 1.0), None).unwrap_or_else(|e| panic!("{e}"));
        let second =
            Snapshot::build(&config(1.0, 5.0), Some(&first)).unwrap_or_else(|e| panic!("{e}"));
        assert!(Arc::ptr_eq(&first.shaping["/a"], &second.shaping["/a"]));
        assert!(!Arc::ptr_eq(&first.shaping["/b"], &second.shaping["/b"]));
    }

    #[tokio::test]
    async fn a_rebuild_keeps_each_routes_counts_by_prefix() {
        let first = Snapshot::build(&config(1.0, 1.0), None).unwrap_or_else(|e| panic!("{e}"));
        let route = |s: &Snapshot, path: &str| s.routes.find(path).map(|(r, _)| r.stats.clone());
        if let Some(a) = route(&first, "/a") {
            a.record(200);
        }
        let second =
            Snapshot::build(&config(1.0, 5.0), Some(&first)).unwrap_or_else(|e| panic!("{e}"));
        let counts = route(&second, "/a").map(|s| s.counts().requests);
        assert_eq!(counts, Some(1));
    }
}
