//! Access tokens, one [`Credential`] per `[credentials.NAME]`. A request reads the current
//! token without locks or waiting; only a cold or expired cache makes requests wait, and then
//! they all share one fetch.

use crate::config::{ConfigError, CredentialConfig, CredentialKind};
use crate::secret::Secret;
use arc_swap::ArcSwapOption;
use http::HeaderValue;
use std::path::Path;
use std::sync::Arc;

pub mod status;
pub use status::{CredentialState, CredentialStatus};

#[derive(Debug, Clone, thiserror::Error)]
pub enum TokenError {
    #[error("{0}")]
    Unavailable(String),
}

/// A token ready to send: the `Authorization` value is built once, not per request.
#[derive(Debug)]
pub struct Token {
    pub bearer: HeaderValue,
}

/// What a route needs from a credential: its token and the identity headers.
#[derive(Debug)]
pub struct Credential {
    pub name: String,
    pub kind: CredentialKind,
    /// `x-api-key`: always the credential's client id.
    pub api_key: HeaderValue,
    /// `x-gw-ims-org-id`, for the APIs that require it.
    pub org_id: Option<HeaderValue>,
    current: ArcSwapOption<Token>,
}

impl Credential {
    /// Builds a credential from its config; `key` is `credentials.NAME` for error messages.
    pub fn from_config(name: &str, cfg: &CredentialConfig) -> Result<Credential, ConfigError> {
        let key = format!("credentials.{name}");
        let client_id = required(&key, "client_id", cfg.client_id.as_deref(), cfg.kind)?;
        let api_key = header_value(&key, "client_id", client_id)?;
        let org_id = match cfg.org_id.as_deref() {
            Some(o) if !o.trim().is_empty() => Some(header_value(&key, "org_id", o)?),
            _ => None,
        };
        let current = match cfg.kind {
            CredentialKind::Static => {
                let token = static_token(&key, cfg)?;
                Some(Arc::new(Token {
                    bearer: bearer_header(&key, &token)?,
                }))
            }
            other => {
                return Err(ConfigError::new(
                    format!("{key}.type"),
                    format!("credential type {other:?} is not supported yet"),
                ))
            }
        };
        Ok(Credential {
            name: name.to_string(),
            kind: cfg.kind,
            api_key,
            org_id,
            current: ArcSwapOption::new(current),
        })
    }

    pub(crate) fn has_token(&self) -> bool {
        self.current.load().is_some()
    }

    /// The `Authorization` header value for the current token.
    pub async fn bearer(&self) -> Result<HeaderValue, TokenError> {
        match self.current.load().as_ref() {
            Some(t) => Ok(t.bearer.clone()),
            None => Err(TokenError::Unavailable("no token has been obtained".into())),
        }
    }
}

fn required<'a>(
    key: &str,
    field: &str,
    value: Option<&'a str>,
    kind: CredentialKind,
) -> Result<&'a str, ConfigError> {
    match value {
        Some(v) if !v.trim().is_empty() => Ok(v.trim()),
        _ => Err(ConfigError::new(
            format!("{key}.{field}"),
            format!("required for type = \"{kind}\""),
        )),
    }
}

fn header_value(key: &str, field: &str, v: &str) -> Result<HeaderValue, ConfigError> {
    HeaderValue::from_str(v.trim()).map_err(|_| {
        ConfigError::new(
            format!("{key}.{field}"),
            "contains characters not allowed in an HTTP header",
        )
    })
}

/// `Bearer <token>`, marked sensitive so HTTP/2 never puts it in a compression table.
pub fn bearer_header(key: &str, token: &Secret) -> Result<HeaderValue, ConfigError> {
    let mut v = HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
        ConfigError::new(
            key.to_string(),
            "the access token contains characters not allowed in an HTTP header",
        )
    })?;
    v.set_sensitive(true);
    Ok(v)
}

fn static_token(key: &str, cfg: &CredentialConfig) -> Result<Secret, ConfigError> {
    match (&cfg.access_token, &cfg.access_token_file) {
        (Some(_), Some(_)) => Err(ConfigError::new(
            format!("{key}.access_token_file"),
            "give either access_token or access_token_file, not both",
        )),
        (Some(t), None) if !t.is_empty() => Ok(Secret::new(t.expose().trim())),
        (None, Some(path)) => read_secret_file(&format!("{key}.access_token_file"), path),
        _ => Err(ConfigError::new(
            format!("{key}.access_token"),
            "required for type = \"static\" (or access_token_file)",
        )),
    }
}

/// Reads a secret from a file, trimmed. The error names the file, never its content.
pub fn read_secret_file(key: &str, path: &Path) -> Result<Secret, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(key, format!("cannot read {}: {e}", path.display())))?;
    let text = text.trim();
    if text.is_empty() {
        return Err(ConfigError::new(
            key,
            format!("{} is empty", path.display()),
        ));
    }
    Ok(Secret::new(text))
}
