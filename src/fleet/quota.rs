//! Rate decisions and cool-downs for the whole fleet, on Redis (`[shared]`).
//!
//! One Lua script per decision ([`RESERVE`]): on Redis's own clock (`TIME`, never a replica's),
//! it checks the credential's cool-down and then runs GCRA over every limit of the request at
//! once, all or nothing, exactly as the in-process [`super::gcra::reserve_all`] does, and
//! answers go (after a wait), over (with the exact time until there is room) or cooling down
//! (with what remains). Each limit is one key holding its TAT in microseconds, with a TTL that
//! ends when the TAT is past (an absent key is a full bucket).
//!
//! Cool-downs: an upstream 429 seen by one replica is written with `SET PX` (the later end
//! wins) at once, and every replica reads the cool-down keys of its routes every
//! [`COOLDOWN_POLL`] in one pipelined round trip into its local registry, so a route with no
//! limit (whose requests never ask Redis) learns of it within that time. A poll rather than
//! pub/sub: no second connection, nothing to resubscribe after an outage, and a replica that
//! starts during a cool-down learns it at its first poll.
//!
//! While Redis cannot be asked, each replica decides alone at `rate / replicas` (and
//! `burst / replicas`, at least 1), so the fleet together stays near the configured rate.

use super::cooldown::Cooldowns;
use super::gcra::{self, Limit, Rate, Verdict};
use super::keys::{CooldownKey, LimitKey};
use super::shared::{short_hash, Shared};
use super::store::SharedError;
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

/// How often a replica reads the fleet's cool-downs for its routes.
pub const COOLDOWN_POLL: Duration = Duration::from_millis(250);

/// KEYS: [cool-down key if ARGV[1] == '1'], then one key per limit.
/// ARGV: has_cooldown, max_wait_us, then per limit interval_us, tolerance_us.
/// Returns {0, wait_us} go, {1, retry_after_us, index} over, {2, remaining_us} cooling down.
const RESERVE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local first = 1
if ARGV[1] == '1' then
  local pt = redis.call('PTTL', KEYS[1])
  if pt > 0 then return {2, pt * 1000} end
  first = 2
end
local max_wait = tonumber(ARGV[2])
local worst, worst_i = 0, 0
local next_tat = {}
for i = first, #KEYS do
  local j = i - first
  local interval = tonumber(ARGV[3 + 2 * j])
  local tolerance = tonumber(ARGV[4 + 2 * j])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0') or 0
  if tat < now then tat = now end
  local wait = tat - now - tolerance
  if wait < 0 then wait = 0 end
  if wait > worst then worst, worst_i = wait, j end
  next_tat[i] = tat + interval
end
if worst > max_wait then return {1, string.format('%.0f', worst), worst_i} end
for i = first, #KEYS do
  local ttl = math.ceil((next_tat[i] - now) / 1000) + 1
  redis.call('SET', KEYS[i], string.format('%.0f', next_tat[i]), 'PX', ttl)
end
return {0, string.format('%.0f', worst)}
";

/// KEYS: one per limit. ARGV: interval_us per limit. A slot back, never more than a full bucket.
const RELEASE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
for i = 1, #KEYS do
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0') or 0
  local back = tat - tonumber(ARGV[i])
  if back > now then
    redis.call('SET', KEYS[i], string.format('%.0f', back), 'PX', math.ceil((back - now) / 1000) + 1)
  elseif tat > 0 then
    redis.call('DEL', KEYS[i])
  end
end
return 0
";

/// KEYS[1]: the cool-down. ARGV[1]: its length in ms. The later end wins.
const COOL_DOWN: &str = r"
local pt = redis.call('PTTL', KEYS[1])
local ms = tonumber(ARGV[1])
if pt < ms then redis.call('SET', KEYS[1], '1', 'PX', ms) end
return 0
";

static RESERVE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(RESERVE));
static RELEASE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(RELEASE));
static COOL_DOWN_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(COOL_DOWN));

/// The fleet-wide side of [`super::Fleet`].
#[derive(Debug)]
pub struct SharedLimits {
    shared: Arc<Shared>,
    cooldowns: Arc<Cooldowns>,
    /// Each limit at `rate / replicas`, for decisions while Redis cannot be asked.
    fallback: Mutex<HashMap<LimitKey, Arc<Limit>>>,
    /// The cool-down keys of the routes served now, read every [`COOLDOWN_POLL`].
    watched: ArcSwap<Vec<(CooldownKey, String)>>,
    polling: AtomicBool,
}

impl SharedLimits {
    pub fn new(shared: Arc<Shared>, cooldowns: Arc<Cooldowns>) -> SharedLimits {
        SharedLimits {
            shared,
            cooldowns,
            fallback: Mutex::new(HashMap::new()),
            watched: ArcSwap::from_pointee(Vec::new()),
            polling: AtomicBool::new(false),
        }
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    fn limit_key(&self, key: &LimitKey) -> String {
        match key {
            LimitKey::Quota(c) => self.shared.credential_key(&c.identity, "quota"),
            LimitKey::Route { credential, prefix } => self.shared.credential_key(
                &credential.identity,
                &format!("rate:{}", short_hash(prefix)),
            ),
        }
    }

    fn cooldown_key(&self, key: &CooldownKey) -> String {
        self.shared.credential_key(
            &key.credential.identity,
            &format!("cool-down:{}", short_hash(&key.host)),
        )
    }

    /// One round trip: the cool-down, then every limit, all or nothing.
    pub async fn reserve(
        &self,
        limits: &[&Limit],
        cooldown: Option<&CooldownKey>,
        max_wait: Duration,
    ) -> Verdict {
        let mut script = RESERVE_SCRIPT.prepare_invoke();
        let script = {
            let s = &mut script;
            match cooldown {
                Some(k) => {
                    s.key(self.cooldown_key(k)).arg("1");
                }
                None => {
                    s.arg("0");
                }
            }
            s.arg(micros(max_wait));
            for l in limits {
                let (interval, tolerance) = gcra_params(l.rate);
                s.key(self.limit_key(&l.key))
                    .arg(micros(interval))
                    .arg(micros(tolerance));
            }
            script
        };
        let answer: Result<Vec<i64>, SharedError> = self
            .shared
            .store
            .call(|mut c| async move { script.invoke_async(&mut c).await })
            .await;
        match answer.as_deref() {
            Ok([0, wait, ..]) => Verdict::Go {
                wait: from_micros(*wait),
            },
            Ok([1, retry, index, ..]) => Verdict::Over {
                index: usize::try_from(*index).unwrap_or(0),
                retry_after: from_micros(*retry),
            },
            Ok([2, remaining, ..]) => {
                let remaining = from_micros(*remaining);
                if let Some(k) = cooldown {
                    self.cooldowns.start(k, remaining);
                }
                Verdict::CoolingDown { remaining }
            }
            _ => {
                crate::metrics::shared_fallback("quota");
                self.reserve_locally(limits, max_wait)
            }
        }
    }

    /// The decision while Redis cannot be asked: this replica's share of every limit.
    fn reserve_locally(&self, limits: &[&Limit], max_wait: Duration) -> Verdict {
        let replicas = self.shared.replicas.max(1);
        let shares: Vec<Arc<Limit>> = {
            let mut map = self.fallback.lock().unwrap_or_else(|p| p.into_inner());
            limits
                .iter()
                .map(|l| {
                    let share = Rate {
                        per_second: l.rate.per_second / f64::from(replicas),
                        burst: (l.rate.burst / replicas).max(1),
                    };
                    let entry = map
                        .entry(l.key.clone())
                        .or_insert_with(|| Arc::new(Limit::new(l.key.clone(), share)));
                    if entry.rate != share {
                        *entry = Arc::new(Limit::new(l.key.clone(), share));
                    }
                    entry.clone()
                })
                .collect()
        };
        let refs: Vec<&Limit> = shares.iter().map(Arc::as_ref).collect();
        gcra::reserve_all(&refs, max_wait)
    }

    /// Gives the slots back, in the background (this runs in `Drop`).
    pub fn release(self: &Arc<Self>, limits: &[&Limit]) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut script = RELEASE_SCRIPT.prepare_invoke();
        for l in limits {
            let (interval, _) = gcra_params(l.rate);
            script.key(self.limit_key(&l.key)).arg(micros(interval));
        }
        let this = self.clone();
        rt.spawn(async move {
            let _ = this
                .shared
                .store
                .call(|mut c| async move { script.invoke_async::<i64>(&mut c).await })
                .await;
        });
    }

    /// Tells the fleet, in the background (this runs on the response path).
    pub fn start_cooldown(self: &Arc<Self>, key: &CooldownKey, length: Duration) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let redis_key = self.cooldown_key(key);
        let ms = length.as_millis().max(1) as u64;
        let this = self.clone();
        rt.spawn(async move {
            let r = this
                .shared
                .store
                .call(|mut c| async move {
                    COOL_DOWN_SCRIPT
                        .key(&redis_key)
                        .arg(ms)
                        .invoke_async::<i64>(&mut c)
                        .await
                })
                .await;
            if r.is_err() {
                crate::metrics::shared_fallback("cool_down");
            }
        });
    }

    /// The cool-down keys to read: those of the routes of the snapshot being served.
    pub fn watch(&self, keys: impl IntoIterator<Item = CooldownKey>) {
        let mut list: Vec<(CooldownKey, String)> = Vec::new();
        for k in keys {
            if !list.iter().any(|(w, _)| *w == k) {
                let redis_key = self.cooldown_key(&k);
                list.push((k, redis_key));
            }
        }
        self.watched.store(Arc::new(list));
    }

    /// Starts reading the fleet's cool-downs, once.
    pub fn start(self: &Arc<Self>) {
        if self.polling.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(COOLDOWN_POLL).await;
                let Some(this) = weak.upgrade() else { return };
                this.poll_cooldowns().await;
            }
        });
    }

    async fn poll_cooldowns(&self) {
        let watched = self.watched.load_full();
        if watched.is_empty() {
            return;
        }
        let mut pipe = redis::pipe();
        for (_, k) in watched.iter() {
            pipe.cmd("PTTL").arg(k);
        }
        let Ok(ttls) = self
            .shared
            .store
            .call(|mut c| async move { pipe.query_async::<Vec<i64>>(&mut c).await })
            .await
        else {
            return;
        };
        for ((key, _), ms) in watched.iter().zip(ttls) {
            if ms > 0 {
                self.cooldowns.start(key, Duration::from_millis(ms as u64));
            }
        }
    }
}

/// GCRA's interval (1 / rate) and tolerance ((burst - 1) intervals), as the in-process one.
fn gcra_params(rate: Rate) -> (Duration, Duration) {
    let interval = rate.interval();
    (interval, interval * rate.burst.saturating_sub(1))
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn from_micros(us: i64) -> Duration {
    Duration::from_micros(u64::try_from(us).unwrap_or(0))
}
