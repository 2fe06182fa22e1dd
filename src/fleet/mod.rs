//! What the replicas of one fleet share when `[shared]` is set: one IMS token per credential
//! ([`tokens`]), and the state of the shared store itself ([`store`]: the Redis connection,
//! its deadline and circuit breaker). Tokens are sealed at rest ([`seal`]).
//!
//! Key names carry no client id, secret or token: each credential's keys sit under a hash of
//! its identity (IMS URL and client id), which is also the Redis Cluster hash tag, so every
//! key of one credential lives in one slot and a script may touch them together:
//! `PREFIX:{HASH}:token:SCOPES`, `PREFIX:{HASH}:token-lock:SCOPES`.
//!
//! Without `[shared]` nothing here runs: a credential keeps its token in process, as before.

pub mod seal;
pub mod store;
pub mod tokens;

use crate::base::secret::Secret;
use crate::config::{ConfigError, SharedConfig};
use seal::Seal;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use store::{Endpoint, Store};

pub use store::{SharedError, SharedState};
pub use tokens::{SharedToken, Stored, Version};

/// What a `[shared]` table was built from, file contents included, so a reload can tell
/// whether the connection (and every credential using it) can be kept.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedSpec {
    config: SharedConfig,
    /// The password and the seal key's SHA-256, as read from their files.
    material: Vec<Secret>,
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

    pub fn seal(&self) -> &Seal {
        &self.seal
    }

    /// `PREFIX:{HASH}:what`, where HASH stands for the credential (IMS URL and client id)
    /// without revealing it.
    pub fn credential_key(&self, ims_url: &str, client_id: &str, what: &str) -> String {
        format!(
            "{}:{{{}}}:{what}",
            self.prefix,
            credential_hash(ims_url, client_id)
        )
    }
}

/// The first 16 hex digits of SHA-256 over the IMS URL and the client id: Adobe's quota and
/// tokens belong to the credential, and this names it in Redis.
pub fn credential_hash(ims_url: &str, client_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(ims_url.trim_end_matches('/').as_bytes());
    h.update([0]);
    h.update(client_id.as_bytes());
    hex(&h.finalize()[..8])
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
