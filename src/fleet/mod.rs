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
pub mod keys;

pub use cooldown::{CooldownRow, Cooldowns};
pub use gcra::{Ask, Limit, Rate, Verdict};
pub use keys::{CooldownKey, CredentialKey, LimitKey};

use std::sync::Arc;
use std::time::Duration;

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
