//! What every command needs: the configuration, a runtime, the shutdown signal.

use super::logging::fatal;
use crate::config::Config;
use std::process::ExitCode;

/// Loads the configuration; a bad one is exit status 2, with one `error: key: reason` line.
pub fn load(path: &std::path::Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        fatal(format_args!("{e}"));
        ExitCode::from(2)
    })
}

/// More would be a typo, not a tuning: each worker is an OS thread.
const MAX_WORKER_THREADS: usize = 256;

/// The runtime, sized by `TOKIO_WORKER_THREADS` when it is set. Tokio would panic on a bad
/// value (and take any number), so it is read here: garbage is exit status 2 with one line.
/// One worker thread (a sidecar pinned to a core) runs on Tokio's single-threaded scheduler,
/// which skips the work-stealing machinery it would not use.
pub fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    let workers = match std::env::var_os("TOKIO_WORKER_THREADS") {
        None => None,
        Some(raw) => match worker_threads(&raw.to_string_lossy()) {
            Ok(n) => Some(n),
            Err(reason) => {
                fatal(format_args!("TOKIO_WORKER_THREADS: {reason}"));
                return Err(ExitCode::from(2));
            }
        },
    };
    let mut builder = match workers {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    builder.enable_all().build().map_err(|e| {
        fatal(format_args!("cannot start the runtime: {e}"));
        ExitCode::FAILURE
    })
}

fn worker_threads(raw: &str) -> Result<usize, String> {
    match raw.parse::<usize>() {
        Ok(n) if (1..=MAX_WORKER_THREADS).contains(&n) => Ok(n),
        _ => Err(format!(
            "{raw:?} is not a number of worker threads from 1 to {MAX_WORKER_THREADS}"
        )),
    }
}

/// SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_threads_are_a_plain_number_within_bounds() {
        assert_eq!(worker_threads("2"), Ok(2));
        for bad in ["", "abc", "0", "-1", " 2", "20000"] {
            assert!(worker_threads(bad).is_err(), "{bad:?}");
        }
    }
}
