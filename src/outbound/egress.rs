//! Egress through a corporate proxy, for IMS and upstream traffic alike.
//!
//! The proxy to use comes from `[client] proxy` or else the environment (`HTTPS_PROXY`,
//! `HTTP_PROXY`, `ALL_PROXY`, lower case too), and the exemptions from `[client] no_proxy` or
//! else `NO_PROXY`, with curl's rules (hyper-util's [`Matcher`]). HTTPS destinations go
//! through a CONNECT tunnel (hyper-util's [`Tunnel`]) so TLS stays end to end; plain HTTP
//! destinations are sent to the proxy in absolute form, which is what proxies that refuse
//! CONNECT to port 80 (squid's default) expect.

use super::breaker::{Breaker, Held};
use crate::base::error::{error_chain, BoxError};
use crate::config::{ConfigError, OutboundConfig};
use http::{HeaderValue, Uri};
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;
use tower_service::Service;

/// Which proxy, if any, each destination goes through.
pub struct Egress {
    matcher: Matcher,
    /// No proxy is configured: every destination is reached directly, without asking the
    /// matcher (which parses `no_proxy` hosts) on each request.
    direct_only: bool,
    /// For `check` and logs: the proxies without their credentials.
    pub description: String,
}

impl std::fmt::Debug for Egress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.description)
    }
}

fn env_first(names: &[&str]) -> String {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.trim().is_empty()))
        .unwrap_or_default()
}

impl Egress {
    pub fn from_config(cfg: &OutboundConfig) -> Result<Egress, ConfigError> {
        let no = match &cfg.no_proxy {
            Some(n) => n.clone(),
            None => env_first(&["NO_PROXY", "no_proxy"]),
        };
        let (http, https, source) = match &cfg.proxy {
            Some(p) => {
                let p = p.expose().trim().to_string();
                let shown =
                    validate_proxy_url(&p).map_err(|r| ConfigError::new("client.proxy", r))?;
                (p.clone(), p, format!("client.proxy = {shown}"))
            }
            None => {
                let all = env_first(&["ALL_PROXY", "all_proxy"]);
                let mut http = env_first(&["HTTP_PROXY", "http_proxy"]);
                let mut https = env_first(&["HTTPS_PROXY", "https_proxy"]);
                if http.is_empty() {
                    http = all.clone();
                }
                if https.is_empty() {
                    https = all;
                }
                // A bad environment variable is not this config's fault, but silently going
                // direct would surprise whoever set it: refuse it the same way.
                let mut shown = Vec::new();
                for (name, v) in [("HTTP_PROXY", &http), ("HTTPS_PROXY", &https)] {
                    if !v.is_empty() {
                        let s = validate_proxy_url(v)
                            .map_err(|r| ConfigError::new(format!("environment {name}"), r))?;
                        shown.push(format!("{name}={s}"));
                    }
                }
                let source = if shown.is_empty() {
                    "direct".to_string()
                } else {
                    shown.join(", ")
                };
                (http, https, source)
            }
        };
        let description = if no.trim().is_empty() || source == "direct" {
            source
        } else {
            format!("{source}, except no_proxy = {no}")
        };
        let direct_only = http.is_empty() && https.is_empty();
        let matcher = Matcher::builder().http(http).https(https).no(no).build();
        Ok(Egress {
            matcher,
            direct_only,
            description,
        })
    }

    /// Whether a request to `dst` goes straight to it or through the proxy.
    pub fn via(&self, dst: &Uri) -> Via {
        if self.direct_only {
            return Via::Direct;
        }
        let Some(proxy) = self.matcher.intercept(dst) else {
            return Via::Direct;
        };
        // HTTPS carries the credentials in the CONNECT instead.
        let auth = match (dst.scheme_str(), proxy.basic_auth()) {
            (Some("http"), Some(v)) => {
                let mut v = v.clone();
                v.set_sensitive(true);
                Some(v)
            }
            _ => None,
        };
        Via::Proxy { forward_auth: auth }
    }

    /// The `Proxy-Authorization` value a plain-HTTP request to `dst` must carry, if it goes
    /// through a proxy with credentials. (HTTPS carries it in the CONNECT instead.)
    pub fn forward_auth(&self, dst: &Uri) -> Option<HeaderValue> {
        match self.via(dst) {
            Via::Proxy { forward_auth } => forward_auth,
            Via::Direct => None,
        }
    }
}

/// How a request leaves the proxy.
pub enum Via {
    Direct,
    /// Through the egress proxy; `forward_auth` is the `Proxy-Authorization` a plain-HTTP
    /// request must carry.
    Proxy {
        forward_auth: Option<HeaderValue>,
    },
}

/// Accepts `http://[user:pass@]host:port` or `host:port`; returns it with any credentials
/// hidden (`http://[redacted]@host:port`).
fn validate_proxy_url(raw: &str) -> Result<String, String> {
    let with_scheme = if raw.contains("://") {
        raw.to_string()
    } else {
        format!("http://{raw}")
    };
    let url = url::Url::parse(&with_scheme).map_err(|e| format!("not a proxy URL: {e}"))?;
    if url.scheme() != "http" {
        return Err(format!(
            "proxy scheme {:?} is not supported (use http://host:port; HTTPS destinations are tunnelled with CONNECT)",
            url.scheme()
        ));
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or("the proxy URL has no host")?;
    let port = url.port_or_known_default().unwrap_or(80);
    // The user name too: it is half of the credential, and some proxies take a token there.
    let user = if url.username().is_empty() && url.password().is_none() {
        ""
    } else {
        "[redacted]@"
    };
    Ok(format!("http://{user}{host}:{port}"))
}

/// The connector under the TLS layer: direct, tunnelled, or to a forwarding proxy; each
/// connection admitted by the breaker first.
#[derive(Clone)]
pub struct EgressConnector {
    http: HttpConnector,
    egress: Arc<Egress>,
    connect_timeout: Duration,
    breaker: Arc<Breaker>,
}

impl EgressConnector {
    pub fn new(
        http: HttpConnector,
        egress: Arc<Egress>,
        connect_timeout: Duration,
        breaker: Arc<Breaker>,
    ) -> Self {
        EgressConnector {
            http,
            egress,
            connect_timeout,
            breaker,
        }
    }
}

impl Service<Uri> for EgressConnector {
    type Response = EgressStream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<EgressStream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let mut http = self.http.clone();
        let intercept = self.egress.matcher.intercept(&dst);
        let timeout = self.connect_timeout;
        let breaker = self.breaker.clone();
        Box::pin(async move {
            let held = breaker.admit(&dst).await?;
            let Some(proxy) = intercept else {
                let io = http.call(dst).await?;
                return Ok(EgressStream {
                    io,
                    proxied: false,
                    _held: held,
                });
            };
            if dst.scheme_str() == Some("https") {
                let mut tunnel = Tunnel::new(proxy.uri().clone(), http);
                if let Some(auth) = proxy.basic_auth() {
                    tunnel = tunnel.with_auth(auth.clone());
                }
                // The connector's own timeout covers only the TCP connect to the proxy; a
                // proxy that accepts and then stalls the CONNECT must not hang the request.
                let io = tokio::time::timeout(timeout, tunnel.call(dst))
                    .await
                    .map_err(|_| -> BoxError {
                        format!(
                            "proxy {} did not open a tunnel within {timeout:?}",
                            proxy.uri()
                        )
                        .into()
                    })?
                    .map_err(|e| -> BoxError {
                        format!("proxy {}: {}", proxy.uri(), error_chain(&e)).into()
                    })?;
                Ok(EgressStream {
                    io,
                    proxied: false,
                    _held: held,
                })
            } else {
                let io = http.call(proxy.uri().clone()).await?;
                Ok(EgressStream {
                    io,
                    proxied: true,
                    _held: held,
                })
            }
        })
    }
}

/// A TCP connection that knows whether it goes to a forwarding proxy, so the client sends
/// absolute-form request targets on it.
pub struct EgressStream {
    io: TokioIo<TcpStream>,
    proxied: bool,
    /// The breaker's permit and the descriptor slot, given back when the connection drops.
    _held: Held,
}

impl Connection for EgressStream {
    fn connected(&self) -> Connected {
        self.io.inner().connected().proxy(self.proxied)
    }
}

impl Read for EgressStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl Write for EgressStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls_are_validated_and_shown_without_password() {
        assert_eq!(
            validate_proxy_url("http://u:secret@proxy.corp:3128").unwrap(),
            "http://[redacted]@proxy.corp:3128"
        );
        assert_eq!(
            validate_proxy_url("proxy.corp:8080").unwrap(),
            "http://proxy.corp:8080"
        );
        assert!(validate_proxy_url("socks5://proxy.corp:1080").is_err());
        assert!(validate_proxy_url("https://proxy.corp:443").is_err());
    }

    #[test]
    fn forward_auth_only_for_plain_http_through_the_proxy() {
        let cfg = OutboundConfig {
            proxy: Some(crate::base::secret::Secret::new(
                "http://u:p@127.0.0.1:3128",
            )),
            no_proxy: Some("direct.example".into()),
            ..OutboundConfig::default()
        };
        let e = Egress::from_config(&cfg).unwrap();
        let auth = e
            .forward_auth(&Uri::from_static("http://api.example/x"))
            .unwrap();
        assert_eq!(auth, "Basic dTpw");
        assert!(e
            .forward_auth(&Uri::from_static("https://api.example/x"))
            .is_none());
        assert!(e
            .forward_auth(&Uri::from_static("http://direct.example/x"))
            .is_none());
        assert!(!e.description.contains(":p@"));
    }
}
