//! What every command needs: the configuration, a runtime, the shutdown signal.

use super::logging::fatal;
use crate::config::Config;
use std::process::ExitCode;

/// Loads the configuration; a bad one is exit status 2, with one `error: key: reason` line.
/// A missing file is most often a first run: the line says where to start.
pub fn load(path: &std::path::Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        if std::fs::metadata(path).is_err_and(|m| m.kind() == std::io::ErrorKind::NotFound) {
            let looked = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
            fatal(format_args!(
                "{e} (looked for {}). To start: `ims-proxy demo` runs the proxy in front of a \
                 local stand-in for Adobe; `ims-proxy sandbox` runs the stand-in and writes a \
                 proxy.toml for it; or copy proxy.toml.example (every key, commented) to \
                 proxy.toml and fill it in. A file elsewhere: --config PATH, or \
                 IMS_PROXY_CONFIG=PATH for every command",
                looked.display()
            ));
        } else {
            fatal(format_args!("{e}"));
        }
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
    let builder = match workers()? {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    build(builder)
}

/// Thread-per-core, for `run`: `TOKIO_WORKER_THREADS` (or the core count) single-threaded
/// runtimes. The caller drives the first on its own thread; the others each get a thread here
/// that runs until the returned [`Workers`] is dropped.
pub fn runtimes() -> Result<(tokio::runtime::Runtime, Workers), ExitCode> {
    let n = match workers()? {
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_WORKER_THREADS)),
    };
    let main = build(tokio::runtime::Builder::new_current_thread())?;
    let mut workers = Workers::default();
    for i in 1..n {
        let rt = build(tokio::runtime::Builder::new_current_thread())?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        workers.handles.push(rt.handle().clone());
        let thread = std::thread::Builder::new()
            .name(format!("ims-proxy-{i}"))
            .spawn(move || {
                rt.block_on(async {
                    let _ = rx.await;
                })
            })
            .map_err(|e| {
                fatal(format_args!("cannot start the runtime: {e}"));
                ExitCode::FAILURE
            })?;
        workers.stops.push(tx);
        workers.threads.push(thread);
    }
    Ok((main, workers))
}

/// The further runtimes of [`runtimes`]; dropping this stops their threads and waits for them.
#[derive(Default)]
pub struct Workers {
    pub handles: Vec<tokio::runtime::Handle>,
    /// Dropping one ends its thread's `block_on`.
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stops.clear();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// `TOKIO_WORKER_THREADS`, when set.
fn workers() -> Result<Option<usize>, ExitCode> {
    match std::env::var_os("TOKIO_WORKER_THREADS") {
        None => Ok(None),
        Some(raw) => match worker_threads(&raw.to_string_lossy()) {
            Ok(n) => Ok(Some(n)),
            Err(reason) => {
                fatal(format_args!("TOKIO_WORKER_THREADS: {reason}"));
                Err(ExitCode::from(2))
            }
        },
    }
}

/// The one place runtimes are built.
fn build(mut builder: tokio::runtime::Builder) -> Result<tokio::runtime::Runtime, ExitCode> {
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
