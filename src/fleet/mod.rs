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

pub mod cooldown;
pub mod gcra;

pub use cooldown::{CooldownRow, Cooldowns};
pub use gcra::Gcra;

use std::sync::Arc;
use std::time::Duration;

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
/// The fleet side adds a field here, `shared: Option<Arc<store::Store>>`, and a first branch
/// to each method below; with `None` every method is the in-process one.
#[derive(Debug, Clone, Default)]
pub struct Fleet {
    cooldowns: Arc<Cooldowns>,
}

impl Fleet {
    /// A single process's: every decision in-process.
    pub fn local() -> Fleet {
        Fleet::default()
    }

    /// Decides `ask`: the cool-down first (a throttled credential reserves nothing), then
    /// every limit at once. Local: no await point, no allocation, one uncontended lock per
    /// limit. Shared: one round trip.
    pub async fn reserve(&self, ask: &Ask<'_>) -> Verdict {
        if let Some(remaining) = ask.cooldown.and_then(|k| self.cooldowns.remaining(k)) {
            return Verdict::CoolingDown { remaining };
        }
        gcra::reserve_all(ask.limits, ask.max_wait)
    }

    /// Gives back the slots a [`Verdict::Go`] reserved, for a request that did not go out
    /// (its caller left while it queued, a concurrency wait timed out, a cool-down began).
    /// Must not block: it runs in `Drop`.
    pub fn release(&self, limits: &[&Limit]) {
        for l in limits {
            l.local.release();
        }
    }

    /// An upstream answered 429 for `key`: nothing more goes to it for `length`. A cool-down
    /// already running longer is kept (the later end wins).
    pub fn start_cooldown(&self, key: &CooldownKey, length: Duration) {
        self.cooldowns.start(key, length);
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
