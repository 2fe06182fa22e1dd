//! `ims-proxy ca path|show`: where the forward listener's local CA certificate is, and its PEM,
//! for the client's trust settings (`NODE_EXTRA_CA_CERTS=$(ims-proxy ca path)`). The CA is
//! generated here if the proxy has not made it yet. Never the key.

use super::logging::{fatal, out};
use super::setup::load;
use crate::state::LocalCa;
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, clap::Subcommand)]
pub enum CaCommand {
    /// Print the path of the CA certificate (PEM).
    Path,
    /// Print the CA certificate (PEM).
    Show,
}

pub fn ca(path: &std::path::Path, what: CaCommand) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let Some(forward) = config.forward.as_ref() else {
        fatal("forward: the forward listener is off, so there is no local CA (add [forward])");
        return ExitCode::from(2);
    };
    let ca = match LocalCa::load_or_create(&forward.ca_dir) {
        Ok(ca) => ca,
        Err(e) => {
            fatal(e);
            return ExitCode::from(2);
        }
    };
    match what {
        CaCommand::Path => out(&format!("{}\n", ca.cert_path().display())),
        CaCommand::Show => out(ca.cert_pem()),
    }
    ExitCode::SUCCESS
}
