//! What an operator meets: configuration errors and `check`, the real binary's lifecycle
//! (reloads, signals, shutdown), the `health`, `demo` and `sandbox` subcommands, the status
//! page, metrics and man page as tools see them, safe defaults, and the architecture check.
//!
//! One test binary for the files that need no process of their own (see `tests/proxy/main.rs`
//! for what keeps a file out). Most of these run the real binary as a child process, so the
//! environment variables, signals and working directories they set are the child's.

mod architecture;
mod config_errors;
mod demo;
mod health_command;
mod lifecycle;
mod operator_config;
mod operator_tools;
mod safe_default;
mod status_page;
