//! Configuration: `proxy.toml` merged with `IMS_PROXY_*` environment variables (`__` between
//! levels) through figment, deserialized strictly (an unknown key is an error, so a typo never
//! silently drops a setting). Only serde types live here; semantic checks that need more than
//! one field happen when the runtime state is built from a `Config`.

mod callers;
mod credentials;
mod env;
mod error;
mod file;
mod forward;
mod outbound;
mod routes;
mod server;
mod shared;
mod tracing;
mod validate;

pub use callers::CallerConfig;
pub use credentials::{CredentialConfig, CredentialKind, OnUpstream429};
pub use error::ConfigError;
pub use file::{key_path, Config};
pub use forward::{ForwardConfig, ImsEndpointConfig};
pub use outbound::OutboundConfig;
pub use routes::{normalise_prefix, RateLimitConfig, RouteConfig};
pub use server::{
    parse_byte_size, resolve_addr, AdminConfig, ByteSize, Http1, LimitsConfig, ServerConfig,
    TlsConfig,
};
pub use shared::{SharedConfig, DEFAULT_KEY_PREFIX, DEFAULT_SHARED_TIMEOUT};
pub use tracing::{SpanBatch, TracingConfig};
pub use validate::validate;
