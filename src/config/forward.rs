//! `[forward]`: the opt-in forward-proxy listener for tools that hard-code Adobe's hosts (Adobe's
//! SDKs): `CONNECT` to an Adobe host a route serves is intercepted with a local CA, anything else
//! is refused unless `passthrough` names it.

use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardConfig {
    /// A port of its own; the reverse listener keeps refusing `CONNECT`.
    pub listen: String,
    /// Where the local CA is kept (`ca.pem`, and `ca.key` readable by the proxy alone),
    /// generated on first start.
    pub ca_dir: PathBuf,
    /// Host patterns (`*.blob.core.windows.net`, `uploads.example.com`) tunnelled blind, never
    /// intercepted: for the storage hosts some Adobe APIs redirect uploads to.
    #[serde(default)]
    pub passthrough: Vec<String>,
}

/// `[ims_endpoint]`: the proxy's own IMS token endpoint on the reverse listener, under `prefix`,
/// for tools whose IMS URL can be set (`http://127.0.0.1:8080/ims`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImsEndpointConfig {
    pub prefix: String,
}
