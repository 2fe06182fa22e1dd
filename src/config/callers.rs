//! `[[clients]]`: the callers allowed to use the proxy, each with a key and the routes it may
//! use. The TOML keeps its historical name; in the code they are "callers".

use crate::base::secret::Secret;
use serde::Deserialize;
use std::path::PathBuf;

/// One `[[clients]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallerConfig {
    pub name: String,
    /// Hex of the SHA-256 of the key: the config then holds nothing that grants access.
    pub key_sha256: Option<String>,
    pub key_file: Option<PathBuf>,
    pub key: Option<Secret>,
    /// Route prefixes this client may use; all routes when absent.
    pub routes: Option<Vec<String>>,
}
