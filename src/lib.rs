//! ims-proxy: an authenticating reverse proxy for Adobe's server-to-server APIs.
//!
//! The way of a request, folder by folder:
//!
//! ```text
//! caller ─> server ─> pipeline ──────────────────────────────────────────────────> Adobe
//!           (accept,   admit ─> caller ─> target ─> prime ─> rewrite ─> exchange ─> respond
//!            TLS,      (framing, (keys)   (route,   (body    (token,    (outbound,  (errors as
//!            h1 + h2,   method,           shaping)  limit)   headers)   401 replay) Adobe JSON,
//!            limits)    head)                                                       access log)
//! ```
//!
//! Imports flow one way, each layer using only those below it (a test checks this):
//!
//! - [`cli`] parses commands and prints; [`app`] wires listeners, refreshers, reload, shutdown.
//! - [`server`] accepts connections and serves HTTP on them; [`pipeline`] is the request path,
//!   one stage per file over one per-request context.
//! - [`state`] is what requests read: the [`Snapshot`] built from the config (routes, callers,
//!   shaping, listener TLS), swapped whole on reload.
//! - [`fleet`] makes the decisions replicas share (rate limits, upstream 429 cool-downs):
//!   in-process, or on Redis with `[shared]`.
//! - [`token`] gets, caches and refreshes each credential's IMS token, beside the request path.
//! - [`outbound`] is the one pooled HTTP client for upstreams and IMS; [`body`] wraps bodies
//!   (observing, limiting, keeping for a replay); [`fleet`] is what replicas share through
//!   Redis when `[shared]` is set (tokens, quota, cool-downs), behind a deadline and a breaker.
//! - [`config`] holds the serde types of `proxy.toml` and `ConfigError`, nothing else.
//! - [`base`] and [`adobe`] import nothing of ours; [`metrics`] and [`logfmt`] are leaves.
//! - [`sandbox`] is a local Adobe (IMS and four APIs) for the `sandbox` and `demo` commands and
//!   the tests; it knows only [`base`] and [`adobe`].
//!
//! Words with one meaning: a *caller* calls the proxy (`[[clients]]`); *outbound* is the
//! proxy's own HTTP client (`[client]`); an *upstream* is the Adobe API a route sends to.

pub mod adobe;
pub(crate) mod app;
pub(crate) mod base;
pub(crate) mod body;
pub mod cli;
pub mod config;
pub(crate) mod fleet;
pub(crate) mod logfmt;
pub mod metrics;
pub(crate) mod outbound;
pub(crate) mod pipeline;
pub mod sandbox;
pub(crate) mod server;
pub(crate) mod state;
pub(crate) mod token;

pub use app::{run, start, RunOptions, Running, StartError};
pub use base::secret::Secret;
pub use state::{Route, Shared, Snapshot};
pub use token::{Credential, CredentialState, CredentialStatus};

/// For `fuzz/` only: the request path's pure parts.
#[cfg(fuzzing)]
#[doc(hidden)]
pub use pipeline::fuzzing;

/// For `fuzz/` only: the lean HTTP/1.1 server's framing against hyper's, on the same bytes.
#[cfg(fuzzing)]
#[doc(hidden)]
pub use server::differential;
