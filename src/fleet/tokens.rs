//! One IMS token per credential for the whole fleet.
//!
//! The token is stored sealed under `PREFIX:{HASH}:token:SCOPES` with a TTL that ends where
//! the token stops being sent (its expiry margin before IMS's expiry), so a stored token is
//! always one a replica may use, and its remaining life is Redis's, not any replica's clock.
//! The value is `version || seal(lifetime_ms || token)`, the version (16 random bytes) and the
//! key name bound in by the associated data. The version names the token without revealing
//! anything of it: a 401 purges fleet-wide only if the stored version is still the one that
//! got the 401, so replicas that saw the same 401 do not refresh one after another.
//!
//! Fetching is one replica's job: `SET lock NX PX` elects it, the others read the key until
//! the token appears (up to the IMS timeout), and the lock is released by compare-and-delete,
//! so a holder that outlived its lock cannot release another's.

use super::seal::SealError;
use super::shared::{hex, Shared};
use super::store::SharedError;
use crate::base::secret::Secret;
use std::sync::Arc;
use std::time::Duration;

/// Names one stored token; random, so it says nothing about the token.
pub type Version = [u8; 16];

const VERSION_LEN: usize = 16;

/// Deletes KEYS[1] only while it still holds ARGV[1]: the lock's owner releases it.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Deletes KEYS[1] only while its version (the first 16 bytes) is ARGV[1]: a 401 purges the
/// token that got it, never a newer one.
const PURGE: &str = r"
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, 16) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// A token read from the store.
pub struct Stored {
    pub token: Secret,
    /// Its whole lifetime as IMS gave it.
    pub lifetime: Duration,
    /// How long it may still be sent (the key's TTL).
    pub remaining: Duration,
    pub version: Version,
}

/// Holding the fetch for the fleet; released with [`SharedToken::unlock`].
pub struct Lock {
    value: [u8; 16],
}

/// A credential's token in the shared store.
#[derive(Debug)]
pub struct SharedToken {
    shared: Arc<Shared>,
    credential: String,
    key: String,
    lock_key: String,
}

impl SharedToken {
    /// `identity` distinguishes tokens of one client id that differ (IMS, flow, scopes, org).
    pub fn new(
        shared: &Arc<Shared>,
        credential: &str,
        ims_url: &str,
        client_id: &str,
        identity: &[&str],
    ) -> SharedToken {
        let mut parts = vec![ims_url.trim_end_matches('/')];
        parts.extend_from_slice(identity);
        let which = hex(&digest_parts(&parts)[..4]);
        SharedToken {
            shared: shared.clone(),
            credential: credential.to_string(),
            key: shared.credential_key(client_id, &format!("token:{which}")),
            lock_key: shared.credential_key(client_id, &format!("token-lock:{which}")),
        }
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    fn context(&self, version: &[u8]) -> Vec<u8> {
        let mut c = self.key.as_bytes().to_vec();
        c.extend_from_slice(version);
        c
    }

    /// The stored token, if there is one this fleet can open. One sealed with another key is
    /// logged and treated as absent, so the caller fetches a fresh one and replaces it.
    pub async fn read(&self) -> Result<Option<Stored>, SharedError> {
        let key = self.key.clone();
        let (value, pttl): (Option<Vec<u8>>, i64) = self
            .shared
            .store
            .call_patiently(|mut c| async move {
                redis::pipe()
                    .cmd("GET")
                    .arg(&key)
                    .cmd("PTTL")
                    .arg(&key)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        let Some(value) = value else { return Ok(None) };
        if pttl <= 0 {
            return Ok(None);
        }
        match self.open(&value) {
            Ok((version, lifetime, token)) => Ok(Some(Stored {
                token,
                lifetime,
                remaining: Duration::from_millis(pttl as u64),
                version,
            })),
            Err(e) => {
                tracing::warn!(
                    credential = %self.credential,
                    error = %e,
                    "the fleet's shared token cannot be used; fetching a fresh one from IMS \
                     (check that every replica has the same [shared] seal_key_file)"
                );
                Ok(None)
            }
        }
    }

    fn open(&self, value: &[u8]) -> Result<(Version, Duration, Secret), SealError> {
        if value.len() < VERSION_LEN {
            return Err(SealError::WrongKey);
        }
        let (version, sealed) = value.split_at(VERSION_LEN);
        let plain = self.shared.seal().open(&self.context(version), sealed)?;
        if plain.len() < 8 {
            return Err(SealError::WrongKey);
        }
        let (ms, token) = plain.split_at(8);
        let ms = u64::from_be_bytes(ms.try_into().map_err(|_| SealError::WrongKey)?);
        let token = String::from_utf8(token.to_vec()).map_err(|_| SealError::WrongKey)?;
        let version: Version = version.try_into().map_err(|_| SealError::WrongKey)?;
        Ok((version, Duration::from_millis(ms), Secret::new(token)))
    }

    /// Takes the fleet's fetch for `hold` (`SET NX PX`); `None` while another replica holds it.
    pub async fn lock(&self, hold: Duration) -> Result<Option<Lock>, SharedError> {
        let value: [u8; 16] = self
            .shared
            .seal()
            .random()
            .map_err(|e| SharedError::Redis(e.to_string()))?;
        let key = self.lock_key.clone();
        let ms = hold.as_millis().max(1) as u64;
        let got: Option<String> = self
            .shared
            .store
            .call_patiently(|mut c| async move {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(&value[..])
                    .arg("NX")
                    .arg("PX")
                    .arg(ms)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(got.map(|_| Lock { value }))
    }

    pub async fn unlock(&self, lock: Lock) -> Result<(), SharedError> {
        let key = self.lock_key.clone();
        self.shared
            .store
            .call_patiently(|mut c| async move {
                redis::Script::new(RELEASE)
                    .key(&key)
                    .arg(&lock.value[..])
                    .invoke_async::<i64>(&mut c)
                    .await
            })
            .await
            .map(|_| ())
    }

    /// Stores `token` for `usable` (its lifetime less the expiry margin); its version.
    pub async fn store(
        &self,
        token: &Secret,
        lifetime: Duration,
        usable: Duration,
    ) -> Result<Version, SharedError> {
        let seal_err = |e: SealError| SharedError::Redis(e.to_string());
        let version: Version = self.shared.seal().random().map_err(seal_err)?;
        let mut plain = (lifetime.as_millis() as u64).to_be_bytes().to_vec();
        plain.extend_from_slice(token.expose().as_bytes());
        let sealed = self
            .shared
            .seal()
            .seal(&self.context(&version), &plain)
            .map_err(seal_err)?;
        let mut value = version.to_vec();
        value.extend_from_slice(&sealed);
        let key = self.key.clone();
        let ms = usable.as_millis().max(1) as u64;
        self.shared
            .store
            .call_patiently(|mut c| async move {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(value)
                    .arg("PX")
                    .arg(ms)
                    .query_async::<()>(&mut c)
                    .await
            })
            .await?;
        Ok(version)
    }

    /// Deletes the stored token if it is still `version`; whether it did.
    pub async fn purge(&self, version: &Version) -> Result<bool, SharedError> {
        let key = self.key.clone();
        let version = *version;
        let n: i64 = self
            .shared
            .store
            .call_patiently(|mut c| async move {
                redis::Script::new(PURGE)
                    .key(&key)
                    .arg(&version[..])
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(n > 0)
    }
}

/// SHA-256 over `parts`, each ended by a NUL so that no two lists hash alike.
fn digest_parts(parts: &[&str]) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    h.finalize().into()
}
