//! `[shared]`: the Redis (or Valkey) that replicas of one fleet share tokens, quota and
//! cool-downs through. Absent: every process is on its own, as a single replica is.

use crate::base::secret::Secret;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// Redis answers in well under a millisecond on a healthy network; a call that takes longer
/// than this is treated as an outage, so a hung Redis costs one such wait, not one per request.
pub const DEFAULT_SHARED_TIMEOUT: Duration = Duration::from_millis(50);
pub const DEFAULT_KEY_PREFIX: &str = "ims-proxy";

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedConfig {
    /// `redis://[user@]host[:port][/db]` or `rediss://` for TLS; never a password.
    pub url: String,
    /// Also `IMS_PROXY_SHARED__PASSWORD`; never logged.
    pub password: Option<Secret>,
    pub password_file: Option<PathBuf>,
    /// The CA (PEM) that signed the server's certificate, for `rediss://` with a private CA.
    pub ca_file: Option<PathBuf>,
    /// Every key starts with this and `:`, so several fleets can share one Redis.
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
    /// 32 random bytes (raw, or 64 hex digits, or base64): tokens are sealed with it.
    pub seal_key_file: Option<PathBuf>,
    /// The longest any one Redis call may take.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// How many replicas share the quota: while Redis is unreachable each keeps 1/replicas.
    #[serde(default = "default_replicas")]
    pub replicas: u32,
}

fn default_key_prefix() -> String {
    DEFAULT_KEY_PREFIX.to_string()
}

fn default_timeout() -> Duration {
    DEFAULT_SHARED_TIMEOUT
}

fn default_replicas() -> u32 {
    1
}
