//! The fleet's shared store as a whole (`[shared]`): the connection ([`super::store`]), the
//! seal ([`super::seal`]), the key prefix and the names of keys.

use super::seal::Seal;
use super::store::{Endpoint, SharedState, Store};
use crate::base::secret::Secret;
use crate::config::{ConfigError, SharedConfig};
use sha2::{Digest, Sha256};
use std::sync::Arc;

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
