//! `[credentials.NAME]`: where each credential's tokens come from.

use super::routes::RateLimitConfig;
use crate::base::secret::Secret;
use serde::Deserialize;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CredentialKind {
    Static,
    Jwt,
    Oauth,
}

impl fmt::Display for CredentialKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CredentialKind::Static => "static",
            CredentialKind::Jwt => "jwt",
            CredentialKind::Oauth => "oauth",
        })
    }
}

/// One `[credentials.NAME]` table. Flat rather than an enum per type so that a missing or
/// misplaced field gets an error naming the field and the type, not serde's "no variant".
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialConfig {
    #[serde(rename = "type")]
    pub kind: CredentialKind,
    pub client_id: Option<String>,
    pub org_id: Option<String>,
    pub access_token: Option<Secret>,
    pub access_token_file: Option<PathBuf>,
    pub client_secret: Option<Secret>,
    pub client_secret_file: Option<PathBuf>,
    pub technical_account_id: Option<String>,
    pub private_key_file: Option<PathBuf>,
    pub metascopes: Option<Vec<String>>,
    pub scopes: Option<Vec<String>>,
    pub ims_url: Option<String>,
    /// Fraction of a token's lifetime after which it is refreshed in the background.
    pub refresh_at: Option<f64>,
    /// Requests whose body is at most this many bytes are replayed once after an upstream 401.
    pub replay_body_limit: Option<u64>,
    /// Adobe's quota is the credential's, across its APIs: the requests of every route using
    /// it, as a rate (`per_second`, `burst`).
    pub quota: Option<RateLimitConfig>,
    /// What an upstream `429` does: starts a cool-down for the credential and the upstream's
    /// host (the default), or only passes through.
    #[serde(default)]
    pub on_upstream_429: OnUpstream429,
    /// The longest cool-down an upstream's `Retry-After` may ask for.
    #[serde(default, with = "humantime_serde")]
    pub cool_down_max: Option<Duration>,
}

/// `on_upstream_429`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnUpstream429 {
    /// Until the upstream's `Retry-After` has passed, its requests are answered locally.
    #[default]
    CoolDown,
    /// The 429 reaches the caller that caused it, and nothing else changes.
    Pass,
}
