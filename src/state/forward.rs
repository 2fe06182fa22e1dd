//! What the forward listener may do with a `CONNECT`: intercept it (a host some route's public
//! URL is on, or a credential's IMS host, port 443), tunnel it blind (a `passthrough` pattern),
//! or refuse it. Never an open proxy: the default is refusal.

use super::ca::{Intercepted, LocalCa};
use super::routes::{same_host, RouteTable};
use crate::config::{resolve_addr, ConfigError, ForwardConfig};
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Debug)]
pub struct Forward {
    pub listen: SocketAddr,
    pub ca: Arc<LocalCa>,
    /// Lower-case patterns: `host`, `*.domain` (any subdomain), either with `:port` (else 443).
    passthrough: Vec<String>,
    /// The hosts of the credentials' IMS URLs: answered by the proxy's own token endpoint.
    ims_hosts: Vec<String>,
}

/// What to do with `CONNECT host:port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Terminate TLS and send each request through the routes.
    Intercept,
    /// Terminate TLS and answer IMS token requests locally.
    Ims,
    /// Copy bytes both ways, unseen.
    Tunnel,
    Refuse,
}

impl Forward {
    /// `intercepted`: every host it may terminate TLS for (the routes' public URLs' and
    /// `ims_hosts`), which the CA must be able to vouch for.
    pub fn build(
        cfg: &ForwardConfig,
        ims_hosts: Vec<String>,
        intercepted: &[Intercepted],
        previous: Option<&Forward>,
    ) -> Result<Forward, ConfigError> {
        let listen = resolve_addr("forward.listen", &cfg.listen)?;
        let ca = match previous {
            // Kept over a reload, unless `ims-proxy ca rotate` replaced it.
            Some(p) if p.ca.is_current(&cfg.ca_dir) => {
                p.ca.check_covers(intercepted)?;
                for w in p.ca.warnings() {
                    tracing::warn!(ca = %p.ca.cert_path().display(), "{w}");
                }
                p.ca.clone()
            }
            _ => Arc::new(LocalCa::load_or_create(&cfg.ca_dir, intercepted)?),
        };
        let mut passthrough = Vec::with_capacity(cfg.passthrough.len());
        for (i, p) in cfg.passthrough.iter().enumerate() {
            let p = p.trim().to_ascii_lowercase();
            let host = p.strip_prefix("*.").unwrap_or(&p);
            if host.is_empty() || host.contains(['/', '*', ' ']) {
                return Err(ConfigError::new(
                    format!("forward.passthrough[{i}]"),
                    format!("{p:?} is not a host pattern (host, *.domain, either with :port)"),
                ));
            }
            passthrough.push(p);
        }
        let mut ims_hosts = ims_hosts;
        ims_hosts.sort();
        ims_hosts.dedup();
        Ok(Forward {
            listen,
            ca,
            passthrough,
            ims_hosts,
        })
    }

    /// The IMS hosts answered by the proxy's own token endpoint, for `check`.
    pub fn ims_hosts(&self) -> &[String] {
        &self.ims_hosts
    }

    /// The `passthrough` patterns, lower-case, for `check`.
    pub fn passthrough(&self) -> &[String] {
        &self.passthrough
    }

    pub fn decide(&self, routes: &RouteTable, host: &str, port: u16) -> Decision {
        let host = host.to_ascii_lowercase();
        if port == 443 && self.ims_hosts.iter().any(|h| same_host(h, &host)) {
            return Decision::Ims;
        }
        if port == 443 && routes.serves_host(&host) {
            return Decision::Intercept;
        }
        if self.passthrough.iter().any(|p| matches(p, &host, port)) {
            return Decision::Tunnel;
        }
        Decision::Refuse
    }
}

fn matches(pattern: &str, host: &str, port: u16) -> bool {
    let (pat_host, pat_port) = match pattern.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().ok()),
        None => (pattern, Some(443)),
    };
    if pat_port != Some(port) {
        return false;
    }
    match pat_host.strip_prefix("*.") {
        Some(domain) => host
            .strip_suffix(domain)
            .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
        None => host == pat_host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passthrough_patterns_match_a_host_or_its_subdomains_on_their_port() {
        assert!(matches(
            "*.blob.core.windows.net",
            "acct.blob.core.windows.net",
            443
        ));
        assert!(!matches(
            "*.blob.core.windows.net",
            "blob.core.windows.net",
            443
        ));
        assert!(!matches(
            "*.blob.core.windows.net",
            "evilblob.core.windows.net",
            443
        ));
        assert!(!matches(
            "*.blob.core.windows.net",
            "acct.blob.core.windows.net",
            80
        ));
        assert!(matches("127.0.0.1:9000", "127.0.0.1", 9000));
        assert!(!matches("127.0.0.1:9000", "127.0.0.1", 9001));
    }
}
