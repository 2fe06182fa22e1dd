//! `ims-proxy token NAME`: a fresh token on stdout, for scripts.

use super::logging::{fatal, out};
use super::setup::{load, runtime};
use crate::state::Snapshot;
use std::process::ExitCode;

/// Asks IMS for a new token (never a cached one) so scripts get the full lifetime.
pub fn token(path: &std::path::Path, name: &str) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async {
        let snapshot = match Snapshot::build(&config, None) {
            Ok(s) => s,
            Err(e) => {
                fatal(format_args!("{e}"));
                return ExitCode::from(2);
            }
        };
        let Some(credential) = snapshot.credentials.get(name) else {
            let known: Vec<&str> = snapshot.credentials.keys().map(String::as_str).collect();
            fatal(format_args!(
                "credentials.{name}: no such credential (known: {})",
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            ));
            return ExitCode::from(2);
        };
        credential.warn_if_retired();
        match credential.fetch().await {
            Ok(token) => {
                out(&format!("{}\n", token.expose()));
                ExitCode::SUCCESS
            }
            Err(e) => {
                fatal(format_args!("credentials.{name}: {e}"));
                ExitCode::FAILURE
            }
        }
    })
}
