//! Live reload: SIGHUP, and with `--watch` a change to the config file or to a file it
//! names (secrets, certificates, CAs, client keys), re-read the configuration. A valid one is built into a new snapshot
//! and swapped in whole; requests in flight finish on the snapshot they started with. An
//! invalid one is refused with one log line and `ims_proxy_config_reloads_total{result="error"}`,
//! and the old configuration keeps serving.

use crate::config::{Config, ConfigError};
use crate::state::{Shared, Snapshot};
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How often `--watch` looks at the files. Contents are compared, not modification times:
/// Kubernetes swaps secret files by symlink, and mtimes can be too coarse to see two writes.
const WATCH_INTERVAL: Duration = Duration::from_millis(250);

pub struct Reloader {
    path: PathBuf,
    shared: Arc<Shared>,
    /// Reloads from SIGHUP and from the watcher must not interleave.
    lock: tokio::sync::Mutex<()>,
}

impl Reloader {
    pub fn new(path: PathBuf, shared: Arc<Shared>) -> Arc<Reloader> {
        Arc::new(Reloader {
            path,
            shared,
            lock: tokio::sync::Mutex::new(()),
        })
    }

    /// Re-reads the configuration and swaps it in, or leaves the current one in place.
    pub async fn reload(&self, cause: &str) -> Result<Config, ConfigError> {
        let _guard = self.lock.lock().await;
        let result = self.try_reload();
        match &result {
            Ok(_) => {
                crate::metrics::reload(true);
                tracing::info!(cause, config = %self.path.display(), "configuration reloaded");
            }
            Err(e) => {
                crate::metrics::reload(false);
                tracing::error!(
                    cause,
                    config = %self.path.display(),
                    error = %e,
                    "configuration reload refused; the previous configuration keeps serving"
                );
            }
        }
        result
    }

    fn try_reload(&self) -> Result<Config, ConfigError> {
        let config = Config::load(&self.path)?;
        let current = self.shared.snapshot.load_full();
        // What the new snapshot keeps of the current one (tokens, pool, limiters, listen
        // addresses) is decided in `Snapshot::build`.
        let next = Snapshot::build(&config, Some(&current))?;
        next.start_refreshers();
        next.declare_metrics();
        self.shared.snapshot.store(Arc::new(next));
        Ok(config)
    }

    /// Reloads on every SIGHUP until the process ends.
    #[cfg(unix)]
    pub fn spawn_sighup(self: &Arc<Self>) -> std::io::Result<tokio::task::JoinHandle<()>> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = signal(SignalKind::hangup())?;
        let this = self.clone();
        Ok(tokio::spawn(async move {
            while hup.recv().await.is_some() {
                let _ = this.reload("SIGHUP").await;
            }
        }))
    }

    /// Reloads when the config file, or a file it names, changes. `config` is the
    /// configuration currently serving, for the list of files it names.
    pub fn spawn_watch(self: &Arc<Self>, config: &Config) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        let mut files = watched_files(&self.path, config);
        // Taken now, before the ports are announced: a file changed right after must differ
        // from it.
        let mut applied = fingerprint(&files);
        tokio::spawn(async move {
            let mut pending: Option<u64> = None;
            loop {
                tokio::time::sleep(WATCH_INTERVAL).await;
                let now = fingerprint_off_thread(&files).await;
                if now == applied {
                    pending = None;
                    continue;
                }
                // Wait for one quiet interval: an editor that truncates, then writes, would
                // otherwise produce a refused reload of a half-written file.
                if pending != Some(now) {
                    pending = Some(now);
                    continue;
                }
                pending = None;
                // Refused or not, this content has been seen: do not retry it every tick. It is
                // the content read before the reload: a file changed while the reload ran (a
                // secret rotated just after the config) differs from it and reloads again.
                applied = now;
                if let Ok(config) = this.reload("file change").await {
                    let named = watched_files(&this.path, &config);
                    if named != files {
                        files = named;
                        applied = fingerprint_off_thread(&files).await;
                    }
                }
            }
        })
    }
}

/// The config file and every file it depends on (`Config::paths`, the list `check` prints): a
/// rotated secret or a renewed certificate means a reload too.
fn watched_files(path: &Path, config: &Config) -> Vec<PathBuf> {
    let mut files = vec![path.to_path_buf()];
    files.extend(config.paths().into_iter().map(|(_, p)| p));
    files
}

/// [`fingerprint`] on the blocking pool: the watcher reads files every tick.
async fn fingerprint_off_thread(files: &[PathBuf]) -> u64 {
    let owned = files.to_vec();
    // An error only when the runtime is shutting down (or a read panicked): the next tick, if
    // any, looks again.
    tokio::task::spawn_blocking(move || fingerprint(&owned))
        .await
        .unwrap_or_default()
}

fn fingerprint(files: &[PathBuf]) -> u64 {
    let mut h = DefaultHasher::new();
    for f in files {
        hash_path(f, &mut h);
        // A directory (`forward.ca_dir`) is the files directly in it, by name.
        if let Ok(entries) = std::fs::read_dir(f) {
            let mut names: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            names.sort();
            for n in names {
                if std::fs::metadata(&n).is_ok_and(|m| m.is_file()) {
                    hash_path(&n, &mut h);
                }
            }
        }
    }
    h.finish()
}

fn hash_path(f: &Path, h: &mut DefaultHasher) {
    f.hash(h);
    // A file that is missing mid-rotation hashes differently from any content.
    match std::fs::read(f) {
        Ok(bytes) => bytes.hash(h),
        Err(e) => e.kind().to_string().hash(h),
    }
}
