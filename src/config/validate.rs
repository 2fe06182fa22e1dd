//! Values that parse but would make the proxy serve nothing: refused like a parse error, so a
//! truncated file or a slip of the finger never becomes an empty or dead proxy (at start the
//! proxy exits 2; a reload keeps the configuration that is serving).

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
