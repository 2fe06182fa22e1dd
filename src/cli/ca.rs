//! `ims-proxy ca path|show|bundle|rotate`: where the forward listener's local CA certificate
//! is, and its PEM, for the client's trust settings (`NODE_EXTRA_CA_CERTS=$(ims-proxy ca
//! path)`); the machine's roots and the CA in one file (`REQUESTS_CA_BUNDLE=$(ims-proxy ca
//! bundle)`); and a new CA in its place. The CA is generated here if the proxy has not made it yet. Never the
//! key.

use super::logging::{fatal, out};
use super::setup::{load, runtime};
use crate::state::{LocalCa, Snapshot};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, clap::Subcommand)]
pub enum CaCommand {
    /// Print the path of the CA certificate (PEM).
    Path,
    /// Print the CA certificate (PEM).
    Show,
    /// Replace the CA with a new one (new key, a year long, name constraints for Adobe's
    /// domains and the hosts the configuration intercepts) and print its path. The old key is
    /// deleted: clients must trust the new certificate, and a running proxy takes it on
    /// SIGHUP.
    Rotate,
    /// Write `bundle.pem` beside the CA certificate (the machine's trusted roots, from
    /// SSL_CERT_FILE or the system's bundle, then the local CA) and print its path: for
    /// `REQUESTS_CA_BUNDLE`, `SSL_CERT_FILE`, `CURL_CA_BUNDLE`, which replace a client's
    /// roots rather than add to them.
    Bundle,
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
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    // The configuration decides which hosts the CA must vouch for: the snapshot that `run`
    // would build makes (or checks) it.
    let ca: Result<Arc<LocalCa>, _> = rt.block_on(async {
        if let CaCommand::Rotate = what {
            // The old pair goes aside, so that the snapshot makes a new one; it comes back if
            // the configuration is refused.
            let aside = set_aside(&forward.ca_dir)?;
            let built = Snapshot::build(&config, None);
            match &built {
                Ok(_) => aside.forget(),
                Err(_) => aside.restore(),
            }
            built.map(|s| s.forward.map(|f| f.ca))
        } else {
            Snapshot::build(&config, None).map(|s| s.forward.map(|f| f.ca))
        }
        .and_then(|ca| {
            ca.ok_or_else(|| crate::config::ConfigError::new("forward", "no forward listener"))
        })
    });
    let ca = match ca {
        Ok(ca) => ca,
        Err(e) => {
            fatal(format_args!("{e}"));
            return ExitCode::from(2);
        }
    };
    match what {
        CaCommand::Path => out(&format!("{}\n", ca.cert_path().display())),
        CaCommand::Show => out(ca.cert_pem()),
        CaCommand::Bundle => match ca.write_bundle() {
            Ok(b) => {
                tracing::info!(
                    roots = b.roots,
                    source = %b.source.display(),
                    "bundled the machine's roots and the local CA"
                );
                out(&format!("{}\n", b.path.display()));
            }
            Err(e) => {
                fatal(format_args!("{e}"));
                return ExitCode::FAILURE;
            }
        },
        CaCommand::Rotate => out(&format!(
            "{}\nnew local CA: {}\nclients must trust the new certificate; send SIGHUP to a \
             running proxy\n",
            ca.cert_path().display(),
            ca.describe()
        )),
    }
    ExitCode::SUCCESS
}

/// `ca.key` and `ca.pem` renamed out of the way during a rotation.
struct Aside {
    moved: Vec<(std::path::PathBuf, std::path::PathBuf)>,
}

fn set_aside(dir: &std::path::Path) -> Result<Aside, crate::config::ConfigError> {
    let mut aside = Aside { moved: Vec::new() };
    for name in ["ca.key", "ca.pem"] {
        let from = dir.join(name);
        let to = dir.join(format!("{name}.rotating"));
        match std::fs::rename(&from, &to) {
            Ok(()) => aside.moved.push((from, to)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                aside.restore();
                return Err(crate::config::ConfigError::new(
                    "forward.ca_dir",
                    format!("cannot move {} aside: {e}", from.display()),
                ));
            }
        }
    }
    Ok(aside)
}

impl Aside {
    fn restore(&self) {
        for (from, to) in &self.moved {
            let _ = std::fs::remove_file(from);
            let _ = std::fs::rename(to, from);
        }
    }

    /// The rotation stands: the old key is deleted.
    fn forget(&self) {
        for (_, to) in &self.moved {
            let _ = std::fs::remove_file(to);
        }
    }
}
