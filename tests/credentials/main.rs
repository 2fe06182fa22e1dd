//! Credentials end to end: the token cache, each IMS credential type, the `token`
//! subcommand, the sandbox (the local fake Adobe), and the forward listener with Adobe's own
//! SDKs.
//!
//! One test binary for the files that need no process of their own (see `tests/proxy/main.rs`
//! for what keeps a file out). The SDKs and the CLI run as child processes, so their
//! environment and signals are theirs.

mod credentials_cache;
mod credentials_cli;
mod credentials_flows;
mod forward_proxy;
mod sandbox;
mod sdk;
