//! The connection to the fleet's Redis (or Valkey), behind a deadline and a circuit breaker.
//!
//! Every call is bounded by `[shared] timeout`. The first call that fails or runs out of time
//! opens the circuit: the connection is dropped, calls fail at once (the caller decides
//! locally) and a background task probes Redis every [`PROBE_EVERY`] until a fresh connection
//! answers a write under the prefix, then closes the circuit. So a hung Redis costs one
//! timeout, never one per request, and no request ever waits on a probe. Each transition is
//! logged once and shown by `ims_proxy_shared_up`.
//!
//! TCP and TLS are dialled here (tokio-rustls with the ring provider and `ca_file` or the
//! public roots), and the `redis` crate speaks the protocol over the stream.

use crate::base::secret::Secret;
use crate::config::{ConfigError, SharedConfig};
use arc_swap::ArcSwapOption;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, RedisConnectionInfo};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;

/// How often an open circuit tries Redis again.
pub const PROBE_EVERY: Duration = Duration::from_millis(500);
/// A probe's connection, TLS and AUTH included, at least this long (a TLS handshake on a busy
/// host takes longer than one Redis call).
const MIN_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, thiserror::Error)]
pub enum SharedError {
    #[error("the shared store is unreachable (circuit open)")]
    Down,
    #[error("the shared store did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the shared store: {0}")]
    Redis(String),
}

impl From<redis::RedisError> for SharedError {
    fn from(e: redis::RedisError) -> Self {
        SharedError::Redis(e.to_string())
    }
}

/// Where and how to reach Redis, parsed from `[shared]`.
#[derive(Clone)]
pub struct Endpoint {
    host: String,
    port: u16,
    db: i64,
    username: Option<String>,
    password: Option<Secret>,
    /// `rediss://`: the connector and the name the certificate must carry.
    tls: Option<(
        tokio_rustls::TlsConnector,
        rustls_pki_types::ServerName<'static>,
    )>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("db", &self.db)
            .field("username", &self.username)
            .field("password", &self.password)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Endpoint {
    pub fn from_config(cfg: &SharedConfig) -> Result<Endpoint, ConfigError> {
        let raw = cfg.url.trim();
        let err = |r: &str| ConfigError::new("shared.url", r.to_string());
        let url = url::Url::parse(raw)
            .map_err(|_| err("is not a URL (redis://host:6379/0 or rediss://...)"))?;
        let tls = match url.scheme() {
            "redis" => false,
            "rediss" => true,
            other => {
                return Err(err(&format!(
                    "scheme {other:?}: only redis:// and rediss:// (TLS) are supported"
                )))
            }
        };
        if url.password().is_some() {
            return Err(err(
                "has a password in it: URLs end up in logs and process lists; put the \
                 password in shared.password_file or IMS_PROXY_SHARED__PASSWORD and keep only \
                 the user name in the URL (rediss://user@host)",
            ));
        }
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.to_string(),
            Some(url::Host::Ipv4(a)) => a.to_string(),
            Some(url::Host::Ipv6(a)) => a.to_string(),
            None => return Err(err("has no host")),
        };
        if url.query().is_some() || url.fragment().is_some() {
            return Err(err("may not have a query or fragment"));
        }
        let db = match url.path().trim_matches('/') {
            "" => 0,
            d => d
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| err("the path must be a database number (/0)"))?,
        };
        let username = match url.username() {
            "" => None,
            u => Some(
                percent_encoding::percent_decode_str(u)
                    .decode_utf8()
                    .map_err(|_| err("the user name is not UTF-8"))?
                    .into_owned(),
            ),
        };
        let password =
            match (&cfg.password, &cfg.password_file) {
                (Some(_), Some(_)) => return Err(ConfigError::new(
                    "shared.password_file",
                    "give either password (IMS_PROXY_SHARED__PASSWORD) or password_file, not both",
                )),
                (Some(p), None) if !p.is_empty() => Some(Secret::new(p.expose().trim())),
                (None, Some(path)) => Some(
                    crate::base::secret::read_secret_file(path)
                        .map_err(|r| ConfigError::new("shared.password_file", r))?,
                ),
                _ => None,
            };
        if cfg.ca_file.is_some() && !tls {
            return Err(ConfigError::new(
                "shared.ca_file",
                "set, but shared.url is redis:// (no TLS): use rediss:// or remove ca_file",
            ));
        }
        let tls = if tls {
            let name = rustls_pki_types::ServerName::try_from(host.clone())
                .map_err(|_| err("the host is not a valid TLS server name"))?;
            Some((tls_connector(cfg)?, name))
        } else {
            None
        };
        Ok(Endpoint {
            port: url.port().unwrap_or(6379),
            host,
            db,
            username,
            password,
            tls,
        })
    }

    /// `redis://user@host:port/db` (`rediss://` with TLS): where, never the password.
    pub fn describe(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        let user = self
            .username
            .as_deref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("{scheme}://{user}{host}:{}/{}", self.port, self.db)
    }

    fn info(&self) -> RedisConnectionInfo {
        let mut info = RedisConnectionInfo::default().set_db(self.db);
        if let Some(u) = &self.username {
            info = info.set_username(u);
        }
        if let Some(p) = &self.password {
            info = info.set_password(p.expose());
        }
        info
    }

    /// A new connection, AUTH and SELECT done, with its driver spawned.
    async fn connect(&self) -> Result<MultiplexedConnection, SharedError> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| SharedError::Redis(format!("connect {}:{}: {e}", self.host, self.port)))?;
        let _ = tcp.set_nodelay(true);
        let info = self.info();
        let config = AsyncConnectionConfig::new();
        // AUTH (and SELECT) happen while the connection is made: its errors are theirs.
        let hello = |e: redis::RedisError| {
            SharedError::Redis(format!("authentication or database selection refused: {e}"))
        };
        let conn = match &self.tls {
            None => {
                let (conn, driver) = MultiplexedConnection::new_with_config(&info, tcp, config)
                    .await
                    .map_err(hello)?;
                tokio::spawn(driver);
                conn
            }
            Some((connector, name)) => {
                let stream = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| SharedError::Redis(format!("TLS with {}: {e}", self.host)))?;
                let (conn, driver) = MultiplexedConnection::new_with_config(&info, stream, config)
                    .await
                    .map_err(hello)?;
                tokio::spawn(driver);
                conn
            }
        };
        Ok(conn)
    }
}

fn tls_connector(cfg: &SharedConfig) -> Result<tokio_rustls::TlsConnector, ConfigError> {
    let mut roots = rustls::RootCertStore::empty();
    match &cfg.ca_file {
        Some(path) => {
            let err = |r: String| ConfigError::new("shared.ca_file", r);
            for c in crate::base::pem::read_certs(path).map_err(err)? {
                roots
                    .add(c)
                    .map_err(|e| err(format!("{}: {e}", path.display())))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::new("shared", e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// The breaker's view of Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedState {
    /// No call has been made yet.
    Connecting,
    Up,
    Down,
}

/// The shared store: one multiplexed connection, a deadline per call, a breaker.
pub struct Store {
    endpoint: Endpoint,
    prefix: String,
    timeout: Duration,
    conn: ArcSwapOption<MultiplexedConnection>,
    /// Whether the first connection attempt was started, and whether it ended.
    started: AtomicBool,
    first_done: tokio::sync::watch::Sender<bool>,
    probing: AtomicBool,
    state: Mutex<(SharedState, Option<String>)>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("endpoint", &self.endpoint)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("state", &self.state())
            .finish()
    }
}

impl Store {
    pub fn new(endpoint: Endpoint, prefix: String, timeout: Duration) -> Store {
        Store {
            endpoint,
            prefix,
            timeout,
            conn: ArcSwapOption::empty(),
            started: AtomicBool::new(false),
            first_done: tokio::sync::watch::Sender::new(false),
            probing: AtomicBool::new(false),
            state: Mutex::new((SharedState::Connecting, None)),
        }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn connect_timeout(&self) -> Duration {
        (self.timeout * 10).max(MIN_CONNECT_TIMEOUT)
    }

    /// Up, down or not yet tried, and the error that opened the circuit.
    pub fn state(&self) -> (SharedState, Option<String>) {
        self.state
            .lock()
            .map(|s| s.clone())
            .unwrap_or((SharedState::Down, None))
    }

    /// Connects in the background, once: when a snapshot using the store is served, so the
    /// connection is up before the first request needs it.
    pub fn start(self: &Arc<Self>) {
        if self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            this.try_connect().await;
            this.first_done.send_replace(true);
        });
    }

    /// Runs `f` on the connection within `[shared] timeout`; on failure opens the circuit.
    /// While it is open, fails at once. Before the first connection attempt has ended, waits
    /// for it no longer than the timeout either: for the request path.
    pub async fn call<T, F, Fut>(self: &Arc<Self>, f: F) -> Result<T, SharedError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        self.call_after_connecting(self.timeout, f).await
    }

    /// As [`Self::call`], but waits up to a whole connection attempt for the first one: for
    /// the token refresher, so a fleet that starts together does not fetch a token per
    /// replica only because its TLS handshake took longer than one Redis call may.
    pub async fn call_patiently<T, F, Fut>(self: &Arc<Self>, f: F) -> Result<T, SharedError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        self.call_after_connecting(self.connect_timeout(), f).await
    }

    async fn call_after_connecting<T, F, Fut>(
        self: &Arc<Self>,
        first_wait: Duration,
        f: F,
    ) -> Result<T, SharedError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if !*self.first_done.borrow() {
            self.start();
            let mut done = self.first_done.subscribe();
            let _ = tokio::time::timeout(first_wait, done.wait_for(|d| *d)).await;
        }
        let Some(conn) = self.conn.load_full() else {
            return Err(SharedError::Down);
        };
        let result = match tokio::time::timeout(self.timeout, f((*conn).clone())).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => SharedError::from(e),
            Err(_) => SharedError::Timeout(self.timeout),
        };
        crate::metrics::shared_error();
        self.trip(&conn, &result);
        Err(result)
    }

    /// One connection attempt (dial, TLS, AUTH, a write under the prefix), bounded.
    async fn try_connect(self: &Arc<Self>) -> bool {
        match self.open().await {
            Ok(conn) => {
                self.conn.store(Some(Arc::new(conn)));
                self.set_state(SharedState::Up, None);
                true
            }
            Err(e) => {
                self.set_state(SharedState::Down, Some(e.to_string()));
                self.spawn_prober();
                false
            }
        }
    }

    /// A fresh connection that has shown it can write under the prefix; `check --online`
    /// asks the same.
    pub async fn open(&self) -> Result<MultiplexedConnection, SharedError> {
        let attempt = async {
            let mut conn = self.endpoint.connect().await?;
            let key = format!("{}:probe", self.prefix);
            let write = |e: redis::RedisError| {
                SharedError::Redis(format!("a write and delete of {key} refused: {e}"))
            };
            redis::cmd("SET")
                .arg(&key)
                .arg(1)
                .arg("PX")
                .arg(10_000)
                .query_async::<()>(&mut conn)
                .await
                .map_err(write)?;
            redis::cmd("DEL")
                .arg(&key)
                .query_async::<()>(&mut conn)
                .await
                .map_err(write)?;
            Ok(conn)
        };
        let limit = self.connect_timeout();
        match tokio::time::timeout(limit, attempt).await {
            Ok(r) => r,
            Err(_) => Err(SharedError::Timeout(limit)),
        }
    }

    /// Opens the circuit, unless another call already replaced the connection that failed.
    fn trip(self: &Arc<Self>, failed: &Arc<MultiplexedConnection>, why: &SharedError) {
        let current = self.conn.load();
        if !current.as_ref().is_some_and(|c| Arc::ptr_eq(c, failed)) {
            return;
        }
        self.conn.store(None);
        self.set_state(SharedState::Down, Some(why.to_string()));
        self.spawn_prober();
    }

    fn spawn_prober(self: &Arc<Self>) {
        if self.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(PROBE_EVERY).await;
                let Some(store) = weak.upgrade() else { return };
                match store.open().await {
                    Ok(conn) => {
                        store.conn.store(Some(Arc::new(conn)));
                        store.probing.store(false, Ordering::Release);
                        store.set_state(SharedState::Up, None);
                        return;
                    }
                    Err(e) => store.note_probe_failure(&e),
                }
            }
        });
    }

    fn note_probe_failure(&self, e: &SharedError) {
        if let Ok(mut s) = self.state.lock() {
            s.1 = Some(e.to_string());
        }
    }

    /// Records a transition, logging it once.
    fn set_state(&self, to: SharedState, error: Option<String>) {
        let Ok(mut s) = self.state.lock() else { return };
        let from = s.0;
        *s = (to, error.clone());
        drop(s);
        crate::metrics::shared_up(to == SharedState::Up);
        match (from, to) {
            (SharedState::Up, SharedState::Up) | (SharedState::Down, SharedState::Down) => {}
            (_, SharedState::Up) => tracing::info!(
                host = %self.endpoint.host,
                port = self.endpoint.port,
                "shared store reachable: tokens, quota and cool-downs are shared by the fleet"
            ),
            (_, _) => tracing::warn!(
                host = %self.endpoint.host,
                port = self.endpoint.port,
                error = error.as_deref().unwrap_or(""),
                probe_every_ms = PROBE_EVERY.as_millis() as u64,
                "shared store unreachable: tokens and limits are local until it answers again"
            ),
        }
    }
}
