//! `completions` and `man`: generated from the clap definitions, so they list exactly the
//! commands and flags this binary has.

use super::logging::{fatal, out};
use std::process::ExitCode;

/// `cmd` is the whole command line's definition (`Cli::command()`).
pub fn completions(shell: clap_complete::Shell, mut cmd: clap::Command) -> ExitCode {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "ims-proxy", &mut script);
    out(&String::from_utf8_lossy(&script));
    ExitCode::SUCCESS
}

pub fn man(cmd: clap::Command) -> ExitCode {
    let mut page = Vec::new();
    match clap_mangen::Man::new(cmd).render(&mut page) {
        Ok(()) => {
            out(&String::from_utf8_lossy(&page));
            ExitCode::SUCCESS
        }
        Err(e) => {
            fatal(format_args!("man page: {e}"));
            ExitCode::FAILURE
        }
    }
}
