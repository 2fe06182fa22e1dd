//! What the fleet's decisions are about: credentials, their limits and their cool-downs, as
//! keys that compare the same in-process and name the same entries in the shared store.

use std::sync::Arc;

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

/// A credential and the upstream host it was throttled by.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CooldownKey {
    pub credential: CredentialKey,
    /// Lower-case host (no port) of the route's upstream.
    pub host: Arc<str>,
}
