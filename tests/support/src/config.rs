//! proxy.toml for tests, built rather than written out: [`Route`] renders one `[[routes]]`
//! table, [`ProxyToml`] a whole file, [`static_proxy`] the commonest set-up (a static
//! credential and one route).

use ims_proxy::config::{Config, ConfigError};
use ims_proxy::Running;
use ims_proxy::Snapshot;
use std::fmt;

/// The paths every proxy a test starts takes, unless its config names them, so that one
/// suite, parameterised rather than copied, covers each (`.ci/run` runs it twice: the
/// defaults, then the other paths):
/// - `IMS_PROXY_TEST_OUTBOUND=pool` sets `client.connection_affinity = false` (HTTP/1.1
///   upstream connections on the per-thread shelves instead of caller connections);
/// - `IMS_PROXY_TEST_HTTP1=lean` (or `hyper`) sets `server.http1`: which server reads
///   HTTP/1.1 on the proxy port.
pub fn on_outbound_path(toml: &str) -> String {
    let pool = std::env::var("IMS_PROXY_TEST_OUTBOUND").is_ok_and(|v| v == "pool");
    let http1 = std::env::var("IMS_PROXY_TEST_HTTP1")
        .ok()
        .filter(|v| v == "lean" || v == "hyper");
    let toml = match pool && !toml.contains("connection_affinity") {
        true => with_key(toml, "client", "connection_affinity = false"),
        false => toml.to_string(),
    };
    match http1 {
        Some(v) if !toml.contains("http1") => {
            with_key(&toml, "server", &format!("http1 = \"{v}\""))
        }
        _ => toml,
    }
}

/// `toml` with `line` in its `[table]`, which is added when it has none.
fn with_key(toml: &str, table: &str, line: &str) -> String {
    let header = format!("[{table}]");
    let mut out = String::with_capacity(toml.len() + 48);
    let mut placed = false;
    for l in toml.lines() {
        out.push_str(l);
        out.push('\n');
        if !placed && l.trim() == header {
            out.push_str(line);
            out.push('\n');
            placed = true;
        }
    }
    if !placed {
        out.push_str(&format!("\n{header}\n{line}\n"));
    }
    out
}

/// The static credential's token, API key and org, as the upstream receives them.
pub const STATIC_TOKEN: &str = "static-token-abc";
pub const STATIC_CLIENT_ID: &str = "client-123";
pub const STATIC_ORG: &str = "ORG123@AdobeOrg";

/// `[credentials.NAME]` of type `static` with [`STATIC_TOKEN`], [`STATIC_CLIENT_ID`] and
/// [`STATIC_ORG`].
pub fn static_credential(name: &str) -> String {
    format!(
        "[credentials.{name}]\ntype = \"static\"\naccess_token = \"{STATIC_TOKEN}\"\n\
         client_id = \"{STATIC_CLIENT_ID}\"\norg_id = \"{STATIC_ORG}\"\n"
    )
}

/// One `[[routes]]` table. The credential is `cred` unless set.
#[derive(Clone, Debug)]
pub struct Route {
    prefix: String,
    upstream: Option<String>,
    credential: String,
    api: Option<String>,
    extra: Vec<String>,
}

impl Route {
    pub fn new(prefix: &str) -> Route {
        Route {
            prefix: prefix.into(),
            upstream: None,
            credential: "cred".into(),
            api: None,
            extra: Vec::new(),
        }
    }

    pub fn upstream(mut self, url: impl Into<String>) -> Route {
        self.upstream = Some(url.into());
        self
    }

    pub fn credential(mut self, name: &str) -> Route {
        self.credential = name.into();
        self
    }

    /// An Adobe preset (`campaign`, `cloud-manager`, ...).
    pub fn api(mut self, preset: &str) -> Route {
        self.api = Some(preset.into());
        self
    }

    /// More keys for this route, as TOML lines (`max_body_size = 16`).
    pub fn extra(mut self, toml: &str) -> Route {
        self.extra.push(toml.into());
        self
    }

    pub fn toml(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "[[routes]]\nprefix = \"{}\"", self.prefix)?;
        if let Some(u) = &self.upstream {
            writeln!(f, "upstream = \"{u}\"")?;
        }
        writeln!(f, "credential = \"{}\"", self.credential)?;
        if let Some(a) = &self.api {
            writeln!(f, "api = \"{a}\"")?;
        }
        for e in &self.extra {
            writeln!(f, "{e}")?;
        }
        Ok(())
    }
}

/// A whole proxy.toml: tables before the credentials (`[server]`, `[admin]`, `[client]`),
/// credentials, routes, then anything else (`[[clients]]`).
#[derive(Clone, Debug, Default)]
pub struct ProxyToml {
    sections: Vec<String>,
    credentials: Vec<String>,
    routes: Vec<Route>,
    rest: Vec<String>,
}

/// A static credential `cred` and `route`: the most common test set-up.
pub fn static_proxy(route: Route) -> ProxyToml {
    ProxyToml::new().static_credential("cred").route(route)
}

impl ProxyToml {
    pub fn new() -> ProxyToml {
        ProxyToml::default()
    }

    /// Any TOML that goes before the credentials: a `[server]`, `[client]`, ... table.
    pub fn section(mut self, toml: &str) -> ProxyToml {
        self.sections.push(toml.into());
        self
    }

    /// `[admin]` on 127.0.0.1:0.
    pub fn admin(self) -> ProxyToml {
        self.section("[admin]\nlisten = \"127.0.0.1:0\"")
    }

    /// `[client]` with these keys (`request_timeout = "5s"`).
    pub fn client(self, keys: &str) -> ProxyToml {
        self.section(&format!("[client]\n{keys}"))
    }

    /// A `[credentials.NAME]` table as TOML (see [`crate::ims::Ims`] for IMS ones).
    pub fn credential(mut self, toml: impl Into<String>) -> ProxyToml {
        self.credentials.push(toml.into());
        self
    }

    /// The static credential `name` (see [`static_credential`]).
    pub fn static_credential(self, name: &str) -> ProxyToml {
        self.credential(static_credential(name))
    }

    pub fn route(mut self, route: Route) -> ProxyToml {
        self.routes.push(route);
        self
    }

    /// TOML that goes last: `[[clients]]` tables, or a hand-written route.
    pub fn append(mut self, toml: &str) -> ProxyToml {
        self.rest.push(toml.into());
        self
    }

    pub fn toml(&self) -> String {
        self.to_string()
    }

    /// The parsed configuration (as written; `start` moves the listener to port 0).
    pub fn parse(&self) -> Config {
        // On the suite's outbound path, as `start` is: a snapshot built from this and swapped
        // into a running proxy must not differ from it in `[client]` by the path alone.
        Config::from_toml(&on_outbound_path(&self.toml()))
            .unwrap_or_else(|e| panic!("test config: {e}\n{self}"))
    }

    /// The error building a snapshot from this configuration gives; panics if it builds.
    pub fn build_error(&self) -> ConfigError {
        match Snapshot::build(&self.parse(), None) {
            Ok(_) => panic!("expected a config error from:\n{self}"),
            Err(e) => e,
        }
    }

    /// The proxy started in-process on 127.0.0.1:0.
    pub async fn start(&self) -> Running {
        crate::proxy::start_proxy(&self.toml()).await
    }
}

impl fmt::Display for ProxyToml {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in self.sections.iter().chain(&self.credentials) {
            writeln!(f, "{}\n", s.trim_end())?;
        }
        for r in &self.routes {
            writeln!(f, "{r}")?;
        }
        for s in &self.rest {
            writeln!(f, "{}\n", s.trim_end())?;
        }
        Ok(())
    }
}
