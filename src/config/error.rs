//! The configuration layer's one error.

/// The one error type of the configuration layer: the key path (`routes[1].credential`) and
/// why it is wrong. Printed as `error: <key>: <reason>` and exits with status 2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct ConfigError {
    pub key: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            reason: reason.into(),
        }
    }
}
