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
//! [`seal`]), the decisions and cool-downs on Redis ([`quota`]). Key names carry no client id,
//! secret or token: each credential's keys sit under a hash of its client id, which is also
//! the Redis Cluster hash tag, so every key of one credential lives in one slot and one script
//! may touch them together: `PREFIX:{HASH}:token:…`, `PREFIX:{HASH}:quota`, ...

pub mod cooldown;
pub mod gcra;
pub mod keys;
pub mod quota;
pub mod seal;
pub mod shared;
pub mod store;
pub mod tokens;

pub use cooldown::{CooldownRow, Cooldowns};
pub use gcra::{Ask, Limit, Rate, Verdict};
pub use keys::{CooldownKey, CredentialKey, LimitKey};
pub use shared::{Shared, SharedSpec, SharedStatus};
pub use store::SharedError;
pub use tokens::{SharedToken, Stored, Version};

use std::sync::Arc;
use std::time::Duration;

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

    /// Connects to the shared store and starts reading the fleet's cool-downs (once; needs a
    /// Tokio runtime).
    pub fn start(&self) {
        if let Some(s) = &self.shared {
            s.shared().store.start();
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
