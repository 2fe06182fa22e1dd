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
    // MERGE(credentials): answer from the token cache (state, expiry, IMS's last error).
    pub fn status(&self) -> CredentialStatus {
        if self.has_token() {
            CredentialStatus {
                state: CredentialState::Ok,
                expires_in_seconds: None,
                last_error: None,
            }
        } else {
            CredentialStatus {
                state: CredentialState::Failing,
                expires_in_seconds: None,
                last_error: Some("no token has been obtained".into()),
            }
        }
    }

    /// Obtains a token now, bypassing any cache, for `check --online`. A static credential
    /// has nothing to fetch: its token is the configured one.
    // MERGE(credentials): jwt/oauth fetch from IMS here and return IMS's error text on failure.
    pub async fn fetch_fresh(&self) -> Result<(), TokenError> {
        self.bearer().await.map(|_| ())
    }
}
