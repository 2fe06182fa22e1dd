//! What `/readyz` and `check --online` ask of a credential: its state, and a way to fetch a
//! token now. For static credentials both are trivial; the refreshing credentials (jwt,
//! oauth) answer from their token cache and IMS.

use super::{Credential, TokenError};
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
}

impl Credential {
    /// Answers from the token cache: `ok` while a usable token is held, `failing` when the
    /// last IMS call failed and none is, `refreshing` while the first fetch is under way.
    pub fn status(&self) -> CredentialStatus {
        let now = std::time::Instant::now();
        let last_error = self.last_error();
        match self.usable_until(now) {
            Some(until) => CredentialStatus {
                state: CredentialState::Ok,
                expires_in_seconds: until.map(|u| u.saturating_duration_since(now).as_secs()),
                last_error,
            },
            None if last_error.is_some() => CredentialStatus {
                state: CredentialState::Failing,
                expires_in_seconds: None,
                last_error,
            },
            None => CredentialStatus {
                state: CredentialState::Refreshing,
                expires_in_seconds: None,
                last_error: None,
            },
        }
    }

    /// Obtains a usable token now (from IMS when none is cached), for `check --online`;
    /// the error carries IMS's own `error` and `error_description`.
    pub async fn fetch_fresh(&self) -> Result<(), TokenError> {
        self.bearer().await.map(|_| ())
    }
}
