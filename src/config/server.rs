//! `[server]` and `[admin]`: where the proxy listens, its TLS, and the limits a caller meets.

use super::error::ConfigError;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

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
    /// Names callers reach the proxy by, beyond IP addresses and `localhost` (a Kubernetes
    /// Service's, a load balancer's; `*.example.com` for any name under one): a request whose
    /// `Host` is another name is refused, as a DNS-rebinding page's would be. Applies to the
    /// admin listener too.
    #[serde(default)]
    pub hostnames: Vec<String>,
    /// Web origins (`https://app.example.com`) whose pages may send requests through the
    /// proxy; any other request a browser marks as from another site is refused.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    pub tls: Option<TlsConfig>,
    /// Which server reads HTTP/1.1 on the proxy port: `lean` (the proxy's own, for the
    /// common exchange; it hands anything else to hyper), or `hyper` for hyper's throughout.
    #[serde(default)]
    pub http1: Http1,
    #[serde(default)]
    pub limits: LimitsConfig,
}

/// `server.http1`: which server reads HTTP/1.1 requests on the proxy port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Http1 {
    /// hyper's HTTP/1 server, behind the framing watcher.
    Hyper,
    /// The proxy's own reader for the common exchange (one `Content-Length` or chunked body,
    /// no upgrade, no `Expect`) on a plain-TCP listener; any other request, from its first
    /// byte on, goes to hyper on a fresh connection state. TLS listeners always use hyper.
    /// The default: the whole suite, the differential fuzz target and the parity tests hold
    /// on it as on hyper's.
    #[default]
    Lean,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            shutdown_grace: default_shutdown_grace(),
            allow_unauthenticated: false,
            hostnames: Vec::new(),
            allowed_origins: Vec::new(),
            tls: None,
            http1: Http1::default(),
            limits: Default::default(),
        }
    }
}

fn default_shutdown_grace() -> Duration {
    Duration::from_secs(30)
}

/// `[admin]`: the health, readiness and metrics listener, off unless `listen` is set. Its
/// limits are small: probes and scrapes need a handful of connections, and whatever it holds
/// is taken from the file descriptors the proxy port can use.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    pub listen: Option<String>,
    /// Open admin connections; more are answered 503 and closed.
    pub max_connections: usize,
    /// Deadline for a connection's first request head.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// A connection with no request in flight is closed after this.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: None,
            max_connections: 32,
            header_read_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(30),
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}

/// `[server.tls]`: HTTPS on the listener, mutual TLS with `client_ca_file`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The server certificate chain (PEM), leaf first.
    pub cert_file: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// CA bundle (PEM) for client certificates; when set, every client must present one.
    pub client_ca_file: Option<PathBuf>,
}

/// A byte count written as an integer (`1048576`) or with a unit (`"64 KiB"`, `"10MB"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(ByteSize(n)),
            Raw::S(s) => parse_byte_size(&s).map(ByteSize).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "{s:?} is not a size (examples: 65536, \"64 KiB\", \"10 MB\")"
                ))
            }),
        }
    }
}

pub fn parse_byte_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" | "k" => 1_000,
        "kib" => 1 << 10,
        "mb" | "m" => 1_000_000,
        "mib" => 1 << 20,
        "gb" | "g" => 1_000_000_000,
        "gib" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// `[server.limits]`. Every limit has a default that suits a proxy for REST APIs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// All request header names and values together (431 beyond).
    pub max_header_size: ByteSize,
    /// Number of request header fields (431 beyond).
    pub max_headers: usize,
    /// Length of the request target, path and query (414 beyond).
    pub max_uri_length: ByteSize,
    /// Default request body limit for routes without their own `max_body_size`.
    pub max_body_size: Option<ByteSize>,
    /// Open client connections; more are answered 503 and closed.
    pub max_connections: usize,
    /// Open connections from one client address (IPv6: one /64); 0 turns the cap off.
    pub max_connections_per_peer: usize,
    /// Deadline for a client's TLS handshake and HTTP/1 request head (slowloris). For HTTP/1
    /// the timer also runs while a kept-alive connection waits for its next request.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// A connection with no request in flight (HTTP/2: no open stream; PINGs do not count)
    /// is closed after this.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// A connection's whole life (nginx `keepalive_time`): past it, requests in flight finish
    /// and the connection closes (HTTP/1.1 `Connection: close`, HTTP/2 GOAWAY).
    #[serde(with = "humantime_serde")]
    pub max_connection_age: Duration,
    /// HTTP/2 streams one connection may have open at once.
    pub h2_max_concurrent_streams: u32,
    /// HTTP/2 streams a client may open and reset before they are served ("rapid reset",
    /// CVE-2023-44487); beyond it the connection gets GOAWAY.
    pub h2_max_pending_reset_streams: usize,
    /// HTTP/2 streams the proxy may have to reset because of client errors before it closes
    /// the connection (CVE-2024-27316-style floods).
    pub h2_max_local_error_reset_streams: usize,
    /// HTTP/2 streams the client may reset after the proxy accepted them and before their
    /// response ended (Envoy's premature resets): at this many, when they are at least half
    /// the connection's streams, the connection gets GOAWAY.
    pub h2_max_premature_resets: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_header_size: ByteSize(64 << 10),
            max_headers: 100,
            max_uri_length: ByteSize(8 << 10),
            max_body_size: None,
            max_connections: 1024,
            max_connections_per_peer: 256,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connection_age: Duration::from_secs(3600),
            h2_max_concurrent_streams: 100,
            h2_max_pending_reset_streams: 20,
            h2_max_local_error_reset_streams: 1024,
            h2_max_premature_resets: 100,
        }
    }
}

impl LimitsConfig {
    /// The most a request head (request line and headers) may take on the wire.
    pub fn max_head_bytes(&self) -> usize {
        saturating_usize(self.max_header_size.0.saturating_add(self.max_uri_length.0))
            .saturating_add(1024)
    }
}

fn saturating_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Resolves `host:port` for `key`.
pub fn resolve_addr(key: &str, listen: &str) -> Result<std::net::SocketAddr, ConfigError> {
    use std::net::ToSocketAddrs;
    let err = |r: String| ConfigError::new(key, r);
    let mut addrs = listen
        .to_socket_addrs()
        .map_err(|e| err(format!("{listen:?} is not host:port: {e}")))?;
    addrs
        .next()
        .ok_or_else(|| err(format!("{listen:?} resolves to no address")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_and_without_units() {
        assert_eq!(parse_byte_size("65536"), Some(65536));
        assert_eq!(parse_byte_size("64 KiB"), Some(65536));
        assert_eq!(parse_byte_size("10MB"), Some(10_000_000));
        assert_eq!(parse_byte_size("1 gib"), Some(1 << 30));
        assert_eq!(parse_byte_size("ten"), None);
        assert_eq!(parse_byte_size("5 parsecs"), None);
        assert_eq!(parse_byte_size("99999999999999999999 GiB"), None);
    }
}
