//! What replicas share. Two kinds of decision are made here, for every replica alike:
//!
//! - **rates**: may a request go now, later (after a wait it can queue for), or not; asked of
//!   every [`Limit`] that applies to the request at once (a route's `rate_limit`, its
//!   credential's `quota`), so a request is counted by all of them or by none;
//! - **cool-downs**: after an upstream's `429`, a credential and upstream host are left alone
//!   until its `Retry-After` has passed ([`CooldownKey`]).
//!
//! Without `[shared]` both are in-process and exact: [`gcra`] and [`cooldown`]. With it, the
//! same calls go to Redis (one script per decision, on the server's clock), so that a limit
//! means the same for one replica or ten; `state/` and `pipeline/` call [`Fleet`] and never ask
//! which one they have.
//!
//! With `[shared]` ([`Shared`]): the connection ([`store`]: Redis behind a deadline and a
//! circuit breaker), one IMS token per credential for the fleet ([`tokens`], sealed at rest by
//! [`seal`]). Key names carry no client id, secret or token: each credential's keys sit under
//! a hash of its identity (IMS URL and client id), which is also the Redis Cluster hash tag,
//! so every key of one credential lives in one slot and one script may touch them together:
//! `PREFIX:{HASH}:token:SCOPES`, `PREFIX:{HASH}:token-lock:SCOPES`.

pub mod cooldown;
pub mod gcra;
pub mod quota;
pub mod seal;
pub mod store;
pub mod tokens;

pub use cooldown::{CooldownRow, Cooldowns};
pub use gcra::Gcra;
pub use store::{SharedError, SharedState};
pub use tokens::{SharedToken, Stored, Version};

use crate::base::secret::Secret;
use crate::config::{ConfigError, SharedConfig};
use seal::Seal;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use store::{Endpoint, Store};

/// A rate: `per_second` on average, `burst` at once (GCRA's interval and tolerance).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: u32,
}

impl Rate {
    /// Time between two requests at the steady rate (GCRA's T).
    pub fn interval(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.per_second)
    }
}

/// Which credential a key belongs to: `[credentials.NAME]` and its client id. Keys compare
/// both, here and in the shared store, which derives key names from a hash of them and never
/// stores the client id in clear.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CredentialKey {
    /// `[credentials.NAME]`: for logs, metrics and the status page.
    pub name: Arc<str>,
    pub identity: Arc<str>,
}

/// What a [`Limit`] limits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LimitKey {
    /// `[credentials.NAME] quota`: the requests of every route using the credential.
    Quota(CredentialKey),
    /// `rate_limit` of the route with this prefix (its credential gives the hash tag).
    Route {
        credential: CredentialKey,
        prefix: Arc<str>,
    },
}

impl LimitKey {
    pub fn credential(&self) -> &CredentialKey {
        match self {
            LimitKey::Quota(c) | LimitKey::Route { credential: c, .. } => c,
        }
    }
}

/// One rate limit, built with the snapshot and kept across reloads while its key and rate
/// are unchanged. `local` is the in-process state: the decision without `[shared]`, and the
/// fallback (at `rate / replicas`, the shared store's business) while the store is away.
#[derive(Debug)]
pub struct Limit {
    pub key: LimitKey,
    pub rate: Rate,
    pub local: Gcra,
}

impl Limit {
    pub fn new(key: LimitKey, rate: Rate) -> Limit {
        Limit {
            key,
            rate,
            local: Gcra::new(rate),
        }
    }
}

/// A credential and the upstream host it was throttled by.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CooldownKey {
    pub credential: CredentialKey,
    /// Lower-case host (no port) of the route's upstream.
    pub host: Arc<str>,
}

/// One request's question: the limits that apply to it (none, one or two; on the caller's
/// stack, not allocated), the cool-down to respect, and how long it may wait.
#[derive(Debug)]
pub struct Ask<'a> {
    pub limits: &'a [&'a Limit],
    pub cooldown: Option<&'a CooldownKey>,
    /// The longest wait the request accepts (what is left of its `queue_timeout`); a slot
    /// further away is not reserved.
    pub max_wait: Duration,
}

/// The answer to an [`Ask`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A slot is reserved in every limit: send after `wait` (zero: now). If the request does
    /// not go out after all, [`Fleet::release`] gives the slots back.
    Go { wait: Duration },
    /// Over a limit (`limits[index]`, the one furthest from having room): nothing reserved;
    /// in `retry_after` every limit would have room again for one request.
    Over { index: usize, retry_after: Duration },
    /// The credential and host are cooling down after an upstream 429, for `remaining` more.
    CoolingDown { remaining: Duration },
}

/// The handle requests decide through; cheap to clone, kept across reloads (see
/// `Snapshot::build`).
///
/// With `[shared]`, `shared` holds the fleet-wide side ([`quota`]): each method asks Redis
/// (or its local share while Redis cannot be asked); with `None` every method is the
/// in-process one.
#[derive(Debug, Clone, Default)]
pub struct Fleet {
    cooldowns: Arc<Cooldowns>,
    shared: Option<Arc<quota::SharedLimits>>,
}

impl Fleet {
    /// A single process's: every decision in-process.
    pub fn local() -> Fleet {
        Fleet::default()
    }

    /// The handle for a snapshot: `previous`'s while its `[shared]` is the same store (its
    /// cool-downs and fallback shares go on), otherwise a new one keeping the cool-downs.
    pub fn for_snapshot(previous: Option<&Fleet>, shared: Option<&Arc<Shared>>) -> Fleet {
        let same = match (previous.and_then(|p| p.shared.as_ref()), shared) {
            (Some(old), Some(new)) => Arc::ptr_eq(old.shared(), new),
            (None, None) => true,
            _ => false,
        };
        match previous {
            Some(p) if same => p.clone(),
            _ => {
                let cooldowns = previous.map(|p| p.cooldowns.clone()).unwrap_or_default();
                Fleet {
                    shared: shared
                        .map(|s| Arc::new(quota::SharedLimits::new(s.clone(), cooldowns.clone()))),
                    cooldowns,
                }
            }
        }
    }

    /// The cool-downs this replica reads from the fleet: its routes'. No-op without `[shared]`.
    pub fn watch(&self, keys: impl IntoIterator<Item = CooldownKey>) {
        if let Some(s) = &self.shared {
            s.watch(keys);
        }
    }

    /// Starts reading the fleet's cool-downs (once; needs a Tokio runtime).
    pub fn start(&self) {
        if let Some(s) = &self.shared {
            s.start();
        }
    }

    /// Decides `ask`: the cool-down first (a throttled credential reserves nothing), then
    /// every limit at once. Local: no await point, no allocation, one uncontended lock per
    /// limit. Shared: one round trip, none for a request with no limit.
    pub async fn reserve(&self, ask: &Ask<'_>) -> Verdict {
        if let Some(remaining) = ask.cooldown.and_then(|k| self.cooldowns.remaining(k)) {
            return Verdict::CoolingDown { remaining };
        }
        match &self.shared {
            Some(s) if !ask.limits.is_empty() => {
                s.reserve(ask.limits, ask.cooldown, ask.max_wait).await
            }
            _ => gcra::reserve_all(ask.limits, ask.max_wait),
        }
    }

    /// Gives back the slots a [`Verdict::Go`] reserved, for a request that did not go out
    /// (its caller left while it queued, a concurrency wait timed out, a cool-down began).
    /// Must not block: it runs in `Drop`.
    pub fn release(&self, limits: &[&Limit]) {
        if let Some(s) = &self.shared {
            s.release(limits);
            return;
        }
        for l in limits {
            l.local.release();
        }
    }

    /// An upstream answered 429 for `key`: nothing more goes to it for `length`. A cool-down
    /// already running longer is kept (the later end wins). With `[shared]`, the fleet
    /// learns it too.
    pub fn start_cooldown(&self, key: &CooldownKey, length: Duration) {
        self.cooldowns.start(key, length);
        if let Some(s) = &self.shared {
            s.start_cooldown(key, length);
        }
    }

    /// How long `key` is still cooling down, if it is. On every request of a route with no
    /// limit, so it must stay cheap: with no cool-down running anywhere it is one atomic load.
    pub fn cooldown(&self, key: &CooldownKey) -> Option<Duration> {
        self.cooldowns.remaining(key)
    }

    /// The cool-downs running now, for the status page.
    pub fn cooldowns(&self) -> Vec<CooldownRow> {
        self.cooldowns.running()
    }
}

/// What a `[shared]` table was built from, file contents included, so a reload can tell
/// whether the connection (and every credential using it) can be kept.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedSpec {
    config: SharedConfig,
    /// The password and the seal key's SHA-256, as read from their files.
    material: Vec<Secret>,
}

/// What `/readyz` and the status page say of the shared store.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SharedStatus {
    /// `up`, `down` (tokens and limits are local meanwhile) or `connecting`.
    pub state: &'static str,
    /// Why it is down; never a password.
    pub error: Option<String>,
    pub key_prefix: String,
}

/// The shared store of a fleet: the connection, the seal, the key prefix.
#[derive(Debug)]
pub struct Shared {
    pub store: Arc<Store>,
    seal: Seal,
    prefix: String,
    /// Each replica's share of a quota while the store is unreachable.
    pub replicas: u32,
    spec: SharedSpec,
}

impl Shared {
    /// Builds the store from `[shared]` without any I/O beyond reading its files: the first
    /// call connects.
    pub fn build(cfg: &SharedConfig) -> Result<Shared, ConfigError> {
        let endpoint = Endpoint::from_config(cfg)?;
        let Some(seal_path) = &cfg.seal_key_file else {
            return Err(ConfigError::new(
                "shared.seal_key_file",
                "required with [shared]: tokens are sealed with it before they are stored \
                 (32 random bytes: `head -c 32 /dev/urandom > seal.key`, the same file on every \
                 replica)",
            ));
        };
        let seal = Seal::load(seal_path)?;
        let prefix = cfg.key_prefix.trim().to_string();
        if prefix.is_empty() || prefix.contains(['{', '}']) || prefix.contains(char::is_whitespace)
        {
            return Err(ConfigError::new(
                "shared.key_prefix",
                "must be non-empty, without spaces or braces (braces are Redis Cluster hash tags)",
            ));
        }
        if cfg.timeout.is_zero() {
            return Err(ConfigError::new(
                "shared.timeout",
                "must be more than 0 (e.g. \"50ms\")",
            ));
        }
        if cfg.replicas == 0 {
            return Err(ConfigError::new(
                "shared.replicas",
                "must be at least 1: how many replicas share the quota",
            ));
        }
        let mut material = Vec::new();
        if let Some(p) = &cfg.password_file {
            material.push(
                crate::base::secret::read_secret_file(p)
                    .map_err(|r| ConfigError::new("shared.password_file", r))?,
            );
        }
        let key_bytes = std::fs::read(seal_path).unwrap_or_default();
        material.push(Secret::new(hex(&Sha256::digest(&key_bytes))));
        Ok(Shared {
            store: Arc::new(Store::new(endpoint, prefix.clone(), cfg.timeout)),
            seal,
            prefix,
            replicas: cfg.replicas,
            spec: SharedSpec {
                config: cfg.clone(),
                material,
            },
        })
    }

    pub fn spec(&self) -> &SharedSpec {
        &self.spec
    }

    /// For `/readyz` and the status page: whether the fleet shares, and why not.
    pub fn status(&self) -> SharedStatus {
        let (state, error) = self.store.state();
        SharedStatus {
            state: match state {
                SharedState::Connecting => "connecting",
                SharedState::Up => "up",
                SharedState::Down => "down",
            },
            error,
            key_prefix: self.prefix.clone(),
        }
    }

    pub fn seal(&self) -> &Seal {
        &self.seal
    }

    /// `PREFIX:{HASH}:what`, where HASH stands for the credential (its client id) without
    /// revealing it: Adobe's quota and tokens belong to the credential.
    pub fn credential_key(&self, client_id: &str, what: &str) -> String {
        format!("{}:{{{}}}:{what}", self.prefix, short_hash(client_id))
    }
}

/// The first 16 hex digits of SHA-256: a name for a value that does not reveal it.
pub fn short_hash(value: &str) -> String {
    hex(&Sha256::digest(value.as_bytes())[..8])
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
