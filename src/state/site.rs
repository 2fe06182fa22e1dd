//! Which sites may use the proxy: the defence against a web page in a browser that can reach
//! the proxy (on a laptop, beside a sidecar, in `ims-proxy demo`) making requests that leave
//! with the organisation's token. A page has two ways in, both closed here:
//!
//! - DNS rebinding: the page's own name (`attacker.example`) is re-pointed at 127.0.0.1, so to
//!   the browser the proxy *is* the page's origin and the page may read its answers. Its
//!   requests say `Host: attacker.example:8080`; only IP addresses, `localhost` and
//!   `server.hostnames` are accepted.
//! - Cross-site requests: any page may send "simple" requests (a form POST, a `no-cors` fetch)
//!   anywhere; it cannot read the answer, but the request is made. Browsers mark them with
//!   `Origin` and `Sec-Fetch-Site`: a request with an `Origin` not in `server.allowed_origins`,
//!   or whose `Sec-Fetch-Site` is not `same-origin` or `none` (the user typed the URL), is
//!   refused.
//!
//! Callers that are not browsers (Adobe's SDKs, curl, Prometheus) send neither header, and an
//! address or a configured name as `Host`.
//!
//! Any IP address is accepted as `Host`, not only the listener's own: rebinding needs a name
//! (a page whose origin is an address can only be served by that address), and a connection's
//! local address is often not the one its caller dialled (a Docker port mapping, a Kubernetes
//! Service's cluster IP, a wildcard bind reached by a pod IP).

use crate::config::{ConfigError, ServerConfig};
use http::{header, HeaderMap, HeaderName, HeaderValue, Uri};

/// Fetch Metadata (W3C): where the browser says a request comes from.
const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");

/// The longest piece of a refused header a refusal repeats.
const SHOWN: usize = 100;

#[derive(Debug, Default)]
pub struct SitePolicy {
    /// Lowercase, without a trailing dot; a `*.example.com` entry is kept as `.example.com`.
    hostnames: Vec<Box<str>>,
    /// Serialised as browsers send them: `scheme://host[:port]`, lowercase, no default port.
    origins: Vec<Box<str>>,
}

/// A request refused because of where a browser would have sent it from.
#[derive(Debug, thiserror::Error)]
pub enum SiteRefusal {
    #[error(
        "Host {0:?} is not a name of this proxy: use an IP address or localhost, or add the name \
         to server.hostnames (a web page whose own name points here, DNS rebinding, would send \
         such a Host)"
    )]
    HostNotAllowed(String),
    #[error(
        "a browser sent this request from another site ({0}): ims-proxy refuses it so that no \
         web page can use the organisation's credential; add the page's origin to \
         server.allowed_origins if it may"
    )]
    CrossSite(String),
}

impl SiteRefusal {
    /// The header the request was refused for, as sent (shortened), for the log.
    pub fn what(&self) -> &str {
        match self {
            SiteRefusal::HostNotAllowed(s) | SiteRefusal::CrossSite(s) => s,
        }
    }
}

impl SitePolicy {
    pub fn build(server: &ServerConfig) -> Result<SitePolicy, ConfigError> {
        Ok(SitePolicy {
            hostnames: each("server.hostnames", &server.hostnames, hostname)?,
            origins: each("server.allowed_origins", &server.allowed_origins, origin)?,
        })
    }

    pub fn hostnames(&self) -> impl Iterator<Item = String> + '_ {
        self.hostnames.iter().map(|h| match h.strip_prefix('.') {
            Some(rest) => format!("*.{rest}"),
            None => h.to_string(),
        })
    }

    pub fn origins(&self) -> impl Iterator<Item = &str> {
        self.origins.iter().map(|o| &**o)
    }

    /// Admits a request or says why not. `host`: whether `Host` (and h2's `:authority`) is
    /// checked; inside a forward tunnel it is not, because the tunnel's `CONNECT` host, checked
    /// against the routes, decides where the request goes.
    pub fn check(&self, uri: &Uri, headers: &HeaderMap, host: bool) -> Result<(), SiteRefusal> {
        if host {
            if let Some(a) = uri.authority() {
                self.check_host(a.as_str().as_bytes())?;
            }
            for v in headers.get_all(header::HOST) {
                self.check_host(v.as_bytes())?;
            }
        }
        let mut origins = headers.get_all(header::ORIGIN).iter().peekable();
        if origins.peek().is_some() {
            // An origin the operator allowed may send what its pages need, from another site
            // by definition: `Sec-Fetch-Site` then says nothing more.
            for o in origins {
                if !self.origins.iter().any(|a| o.as_bytes() == a.as_bytes()) {
                    return Err(SiteRefusal::CrossSite(format!("Origin: {}", shown(o))));
                }
            }
            return Ok(());
        }
        for v in headers.get_all(SEC_FETCH_SITE) {
            if !matches!(v.as_bytes(), b"same-origin" | b"none") {
                return Err(SiteRefusal::CrossSite(format!(
                    "Sec-Fetch-Site: {}",
                    shown(v)
                )));
            }
        }
        Ok(())
    }

    fn check_host(&self, authority: &[u8]) -> Result<(), SiteRefusal> {
        let refused = || SiteRefusal::HostNotAllowed(shown_bytes(authority));
        let name = host_part(authority).ok_or_else(refused)?;
        if self.accepts(name) {
            Ok(())
        } else {
            Err(refused())
        }
    }

    fn accepts(&self, host: &str) -> bool {
        if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            return v6.parse::<std::net::Ipv6Addr>().is_ok();
        }
        if host.parse::<std::net::Ipv4Addr>().is_ok() {
            return true;
        }
        let name = host.strip_suffix('.').unwrap_or(host);
        if name.eq_ignore_ascii_case("localhost") {
            return true;
        }
        self.hostnames.iter().any(|h| match h.strip_prefix('.') {
            // `*.example.com`: one or more labels, then the suffix.
            Some(_) => {
                name.len() > h.len()
                    && name
                        .get(name.len() - h.len()..)
                        .is_some_and(|tail| tail.eq_ignore_ascii_case(h))
            }
            None => name.eq_ignore_ascii_case(h),
        })
    }
}

/// The host of `host[:port]` (`[v6]` keeps its brackets), or `None` when it is not one.
fn host_part(authority: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(authority).ok()?;
    let (host, port) = if text.starts_with('[') {
        let end = text.find(']')? + 1;
        let (host, rest) = text.split_at(end);
        match rest {
            "" => (host, ""),
            _ => (host, rest.strip_prefix(':')?),
        }
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, port),
            None => (text, ""),
        }
    };
    let port_ok = port.bytes().all(|b| b.is_ascii_digit()) && port.len() <= 5;
    (!host.is_empty() && port_ok).then_some(host)
}

fn shown(v: &HeaderValue) -> String {
    shown_bytes(v.as_bytes())
}

fn shown_bytes(b: &[u8]) -> String {
    String::from_utf8_lossy(b).chars().take(SHOWN).collect()
}

/// Every entry of the list at `key` through `parse`; the first error names its entry.
fn each(
    key: &str,
    entries: &[String],
    parse: fn(&str) -> Result<Box<str>, String>,
) -> Result<Vec<Box<str>>, ConfigError> {
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| parse(e).map_err(|r| ConfigError::new(format!("{key}[{i}]"), r)))
        .collect()
}

/// A `server.hostnames` entry, normalised, or why it is not a host name.
fn hostname(entry: &str) -> Result<Box<str>, String> {
    let name = entry.trim().to_ascii_lowercase();
    let name = name.strip_suffix('.').unwrap_or(&name);
    let (wildcard, rest) = match name.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, name),
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if rest.is_empty() || rest.len() > 253 || !rest.split('.').all(label_ok) {
        return Err(format!(
            "{entry:?} is not a host name: write the name alone, without scheme, port or path \
             (\"ims-proxy.tools.svc\", \"*.example.com\"); IP addresses and localhost need no entry"
        ));
    }
    if wildcard && !rest.contains('.') {
        return Err(format!(
            "{entry:?} would accept a name under a top-level domain, which anyone can register \
             and point here; name the domain (\"*.example.com\")"
        ));
    }
    Ok(if wildcard {
        format!(".{rest}").into()
    } else {
        rest.into()
    })
}

/// A `server.allowed_origins` entry as browsers serialise it, or why it is not an origin.
fn origin(entry: &str) -> Result<Box<str>, String> {
    let trimmed = entry.trim();
    if trimmed == "null" || trimmed == "*" {
        return Err(format!(
            "{entry:?} would allow every site (browsers send `Origin: null` from any sandboxed \
             page); name each origin, e.g. \"https://app.example.com\""
        ));
    }
    let bad = || {
        format!(
            "{entry:?} is not a web origin: write scheme://host[:port] with no path, as browsers \
             send it (\"https://app.example.com\", \"http://localhost:3000\")"
        )
    };
    let uri: Uri = trimmed.parse().map_err(|_| bad())?;
    let scheme = uri
        .scheme_str()
        .map(str::to_ascii_lowercase)
        .ok_or_else(bad)?;
    let authority = uri.authority().ok_or_else(bad)?;
    let path_ok = matches!(uri.path(), "" | "/") && uri.query().is_none();
    if !matches!(scheme.as_str(), "http" | "https")
        || !path_ok
        || authority.as_str().contains('@')
        || trimmed.ends_with('?')
    {
        return Err(bad());
    }
    let host = authority.host().to_ascii_lowercase();
    let default_port = if scheme == "https" { 443 } else { 80 };
    Ok(match authority.port_u16() {
        Some(p) if p != default_port => format!("{scheme}://{host}:{p}"),
        _ => format!("{scheme}://{host}"),
    }
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(hostnames: &[&str], origins: &[&str]) -> SitePolicy {
        let server = ServerConfig {
            hostnames: hostnames.iter().map(|s| s.to_string()).collect(),
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            ..ServerConfig::default()
        };
        SitePolicy::build(&server).expect("policy")
    }

    fn host(p: &SitePolicy, h: &str) -> bool {
        p.check_host(h.as_bytes()).is_ok()
    }

    #[test]
    fn addresses_localhost_and_configured_names_are_accepted_as_host() {
        let p = policy(&["ims-proxy.tools.svc", "*.example.com"], &[]);
        for ok in [
            "127.0.0.1:8080",
            "127.0.0.1",
            "10.1.2.3:9090",
            "[::1]:8080",
            "[::1]",
            "localhost:8080",
            "LOCALHOST",
            "localhost.:8080",
            "ims-proxy.tools.svc:8080",
            "IMS-Proxy.Tools.Svc.",
            "a.example.com",
            "a.b.example.com:443",
        ] {
            assert!(host(&p, ok), "{ok} refused");
        }
        for refused in [
            "rebind.test:8080",
            "example.com",
            "ims-proxy.tools.svc.attacker.test",
            "xexample.com",
            "localhost.attacker.test",
            "127.0.0.1.nip.io",
            "[::1",
            "[::1]x",
            "[evil]:80",
            "::1",
            "127.0.0.1:80:80",
            "127.0.0.1:port",
            "",
            ":8080",
        ] {
            assert!(!host(&p, refused), "{refused} accepted");
        }
    }

    #[test]
    fn hostnames_must_be_names_and_wildcards_need_a_domain() {
        assert!(hostname("gw.example.com").is_ok());
        assert_eq!(hostname("*.Example.com.").as_deref(), Ok(".example.com"));
        for bad in [
            "http://gw",
            "gw:8080",
            "gw/x",
            "*",
            "*.com",
            "",
            "a..b",
            "a b",
        ] {
            assert!(hostname(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn origins_are_kept_as_browsers_send_them() {
        assert_eq!(
            origin("HTTPS://App.Example.com:443/").as_deref(),
            Ok("https://app.example.com")
        );
        assert_eq!(
            origin("http://localhost:3000").as_deref(),
            Ok("http://localhost:3000")
        );
        for bad in [
            "null",
            "*",
            "app.example.com",
            "https://app.example.com/path",
            "https://u:p@app.example.com",
            "ftp://app.example.com",
            "https://app.example.com?x",
        ] {
            assert!(origin(bad).is_err(), "{bad} accepted");
        }
    }
}
