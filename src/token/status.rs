//! What `/readyz` and `check` report of a credential: its state, from its token cache.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CredentialState {
    /// A valid token is held.
    Ok,
    /// No valid token yet, a fetch is under way.
    Refreshing,
    /// The last fetch failed and no valid token is held.
    Failing,
    /// A valid token is held, but an upstream answered 401 to a token IMS had just issued
    /// after an earlier 401 (the replay): IMS accepts the credential and the API does not.
    /// Until an upstream accepts one of its tokens again. Not a readiness failure: every
    /// replica shares the credential, and the other routes may work.
    Rejected,
}

/// A credential's state as `/readyz` reports it. `last_error` carries IMS's `error` and
/// `error_description`, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CredentialStatus {
    pub state: CredentialState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl CredentialStatus {
    pub fn is_ok(&self) -> bool {
        self.state == CredentialState::Ok
    }

    /// Whether a usable token is held: what `/readyz` asks of every credential.
    pub fn holds_token(&self) -> bool {
        matches!(self.state, CredentialState::Ok | CredentialState::Rejected)
    }
}
