//! Values that parse but would make the proxy serve nothing: refused like a parse error, so a
//! truncated file or a slip of the finger never becomes an empty or dead proxy (at start the
//! proxy exits 2; a reload keeps the configuration that is serving).

use super::credentials::CredentialKind;
use super::error::ConfigError;
use super::file::Config;
use std::time::Duration;

pub fn validate(config: &Config) -> Result<(), ConfigError> {
    if config.routes.is_empty() {
        return Err(ConfigError::new(
            "routes",
            "at least one [[routes]] entry is required: without one every request would get 404",
        ));
    }
    scopes_derivable(config)?;
    listeners_distinct(config)?;
    for (i, r) in config.routes.iter().enumerate() {
        // With `upstream` set, tenant and stage only name the public URL the forward
        // listener intercepts for the route; without a forward listener (or with
        // `public_url`) nothing reads them.
        let unused = r.upstream.is_some() && (config.forward.is_none() || r.public_url.is_some());
        if unused && r.tenant.is_some() {
            return Err(ConfigError::new(
                format!("routes[{i}].tenant"),
                "unused: `upstream` is set, and the tenant only builds Campaign's default \
                 upstream (https://mc.adobe.io/{tenant}/campaign); remove one of them \
                 (a tenant in the URL goes into `upstream` itself)",
            ));
        }
        if unused && r.stage {
            return Err(ConfigError::new(
                format!("routes[{i}].stage"),
                "unused: `upstream` is set, and `stage` only builds Campaign's default \
                 upstream ({tenant}-mkt-stage); remove one of them",
            ));
        }
    }
    let limits = &config.server.limits;
    at_least_one(
        "server.limits.max_connections",
        limits.max_connections as u64,
    )?;
    at_least_one("server.limits.max_headers", limits.max_headers as u64)?;
    at_least_one("server.limits.max_header_size", limits.max_header_size.0)?;
    at_least_one("server.limits.max_uri_length", limits.max_uri_length.0)?;
    at_least_one(
        "server.limits.h2_max_concurrent_streams",
        u64::from(limits.h2_max_concurrent_streams),
    )?;
    not_zero(
        "server.limits.header_read_timeout",
        limits.header_read_timeout,
    )?;
    not_zero("server.limits.idle_timeout", limits.idle_timeout)?;
    not_zero("client.request_timeout", config.outbound.request_timeout)?;
    not_zero("client.connect_timeout", config.outbound.connect_timeout)?;
    not_zero(
        "client.body_idle_timeout",
        config.outbound.body_idle_timeout,
    )?;
    // 0 means "off" only for max_connections_per_peer; these have no off.
    not_zero(
        "server.limits.max_connection_age",
        limits.max_connection_age,
    )?;
    at_least_one(
        "server.limits.h2_max_premature_resets",
        limits.h2_max_premature_resets as u64,
    )?;
    at_least_one(
        "client.max_connections_per_upstream",
        config.outbound.max_connections_per_upstream as u64,
    )?;
    if let Some(share) = config.outbound.max_in_flight_per_caller {
        at_least_one("client.max_in_flight_per_caller", share as u64)?;
        let cap = config.outbound.max_connections_per_upstream;
        if share > cap {
            return Err(ConfigError::new(
                "client.max_in_flight_per_caller",
                format!(
                    "{share} is more than client.max_connections_per_upstream ({cap}): a caller's share is part of the upstream's connections; set it to {cap} to let one caller take them all"
                ),
            ));
        }
    }
    at_least_one("admin.max_connections", config.admin.max_connections as u64)?;
    not_zero(
        "admin.header_read_timeout",
        config.admin.header_read_timeout,
    )?;
    not_zero("admin.idle_timeout", config.admin.idle_timeout)?;
    Ok(())
}

fn at_least_one(key: &str, n: u64) -> Result<(), ConfigError> {
    if n == 0 {
        return Err(ConfigError::new(
            key,
            "must be at least 1: 0 would refuse every request",
        ));
    }
    Ok(())
}

fn not_zero(key: &str, d: Duration) -> Result<(), ConfigError> {
    if d.is_zero() {
        return Err(ConfigError::new(
            key,
            "must be longer than 0s: 0s would cut every connection or request at once",
        ));
    }
    Ok(())
}

/// An `oauth` credential without `scopes` asks IMS for the scopes its routes' presets
/// document; a route whose API documents none (or that has no preset) would then get a token
/// without its scopes, and fail only in production. So the scopes must be listed.
fn scopes_derivable(config: &Config) -> Result<(), ConfigError> {
    for (name, c) in &config.credentials {
        if c.kind != CredentialKind::Oauth || c.scopes.is_some() {
            continue;
        }
        let undocumented = config
            .routes
            .iter()
            .filter(|r| r.credential == *name)
            .find(|r| r.api.is_none_or(|a| a.oauth_scopes().is_empty()));
        if let Some(r) = undocumented {
            let what = match r.api {
                Some(a) => format!(
                    "Adobe documents no OAuth scopes for api = \"{a}\" (route {:?})",
                    r.prefix
                ),
                None => format!("route {:?} has no `api` preset to supply them", r.prefix),
            };
            return Err(ConfigError::new(
                format!("credentials.{name}.scopes"),
                format!(
                    "required: {what}; copy the scopes from Adobe Developer Console (your project, \
                     the OAuth Server-to-Server credential's page, \"Scopes\") into \
                     scopes = [\"...\"]"
                ),
            ));
        }
    }
    Ok(())
}

/// The admin port on the proxy port would make one of them fail to bind.
fn listeners_distinct(config: &Config) -> Result<(), ConfigError> {
    let server = config.server.listen.as_str();
    if let Some(admin) = &config.admin.listen {
        if same_address(admin, server) {
            return Err(ConfigError::new(
                "admin.listen",
                format!(
                    "{admin:?} is the proxy's own address (server.listen = {server:?}): give the \
                     admin listener a port of its own"
                ),
            ));
        }
    }
    if let Some(f) = &config.forward {
        let admin = config.admin.listen.as_deref();
        if same_address(&f.listen, server) || admin.is_some_and(|a| same_address(&f.listen, a)) {
            return Err(ConfigError::new(
                "forward.listen",
                format!(
                    "{:?} is also server.listen or admin.listen: give it a port of its own",
                    f.listen
                ),
            ));
        }
    }
    Ok(())
}

/// Whether two `host:port` listen addresses would clash (port 0 never does).
fn same_address(a: &str, b: &str) -> bool {
    use std::net::ToSocketAddrs;
    let first = |s: &str| s.to_socket_addrs().ok().and_then(|mut i| i.next());
    match (first(a), first(b)) {
        (Some(x), Some(y)) => {
            x.port() != 0
                && x.port() == y.port()
                && (x.ip() == y.ip() || x.ip().is_unspecified() || y.ip().is_unspecified())
        }
        _ => false,
    }
}
