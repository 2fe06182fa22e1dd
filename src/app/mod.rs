//! Wiring: build the snapshot, bind the listeners, start the refreshers, reload on SIGHUP or
//! file change, and shut down gracefully.

mod memory;
mod otlp;
mod reload;

use crate::config::{Config, ConfigError};
use crate::server::{Admin, ForwardServer, Server};
use crate::state::{Shared, Snapshot};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A proxy started in this process: where it listens, and how to stop it.
pub struct Running {
    pub addr: SocketAddr,
    /// The admin listener's address, when `[admin] listen` is set.
    pub admin_addr: Option<SocketAddr>,
    /// The forward listener's address, when `[forward]` is set.
    pub forward_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    draining: Arc<AtomicBool>,
    /// One per proxy-port listener (one per runtime in thread-per-core).
    listeners: Vec<Background>,
    admin: Option<Background>,
    forward: Option<Background>,
}

/// A listener serving in the background, and how to stop it.
type Background = (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
);

impl Running {
    /// The shared state requests read; a reload swaps its snapshot.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Stops accepting, lets requests in flight finish, and waits for that. The admin
    /// listener stays up meanwhile, with `/readyz` answering 503.
    pub async fn stop(mut self) {
        self.draining.store(true, Ordering::Relaxed);
        let listeners = std::mem::take(&mut self.listeners);
        let mut tasks = Vec::with_capacity(listeners.len());
        for (tx, task) in listeners {
            let _ = tx.send(());
            tasks.push(task);
        }
        if let Some((tx, task)) = self.forward.take() {
            let _ = tx.send(());
            let _ = task.await;
        }
        for task in tasks {
            let _ = task.await;
        }
        if let Some((tx, task)) = self.admin.take() {
            let _ = tx.send(());
            let _ = task.await;
        }
    }
}

/// Builds the snapshot, binds the listeners, then starts the token refreshers and serves in
/// the background: a port that cannot be bound costs no IMS call. Errors are the config's
/// (exit 2) or the bind's.
pub async fn start(config: &Config) -> Result<Running, StartError> {
    start_on(config, &[]).await
}

/// As [`start`]; with `workers`, the proxy port gets one `SO_REUSEPORT` listener on this
/// runtime and one on each of those (thread-per-core: each serves the connections it
/// accepts). The admin and forward listeners, refreshers and reload stay on this runtime.
pub async fn start_on(
    config: &Config,
    workers: &[tokio::runtime::Handle],
) -> Result<Running, StartError> {
    let snapshot = Snapshot::build(config, None)?;
    let admin_listen = snapshot.admin_listen;
    let forward_listen = snapshot.forward.as_ref().map(|f| f.listen);
    let shared = Shared::new(snapshot);
    let bind_err = |e| StartError::Bind(config.server.listen.clone(), e);
    let servers = if workers.is_empty() {
        vec![(None, Server::bind(shared.clone()).await.map_err(bind_err)?)]
    } else {
        let here = tokio::runtime::Handle::current();
        let bound = Server::bind_reuseport(shared.clone(), workers.len() + 1).map_err(bind_err)?;
        let mut servers = Vec::with_capacity(bound.len());
        for (b, handle) in bound.into_iter().zip(std::iter::once(&here).chain(workers)) {
            let _entered = handle.enter();
            servers.push((Some(handle.clone()), b.register().map_err(bind_err)?));
        }
        servers
    };
    let addr = servers[0].1.local_addr().map_err(bind_err)?;
    let draining = Arc::new(AtomicBool::new(false));
    let (admin, admin_addr) = match admin_listen {
        None => (None, None),
        Some(listen) => {
            let bind_err = |e| StartError::AdminBind(listen.to_string(), e);
            let admin = Admin::bind(listen, shared.clone(), draining.clone())
                .await
                .map_err(bind_err)?;
            let admin_addr = admin.local_addr().map_err(bind_err)?;
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(admin.serve(async {
                let _ = rx.await;
            }));
            (Some((tx, task)), Some(admin_addr))
        }
    };
    let (forward, forward_addr) = match forward_listen {
        None => (None, None),
        Some(listen) => {
            let bind_err = |e| StartError::ForwardBind(listen.to_string(), e);
            let forward = ForwardServer::bind(listen, shared.clone())
                .await
                .map_err(bind_err)?;
            let forward_addr = forward.local_addr().map_err(bind_err)?;
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(forward.serve(async {
                let _ = rx.await;
            }));
            (Some((tx, task)), Some(forward_addr))
        }
    };
    // After the admin listener installed the recorder, so that the zeros are recorded there.
    crate::metrics::build_info(
        crate::base::build::VERSION,
        crate::base::build::GIT_SHA,
        crate::base::build::BUILD_DATE,
    );
    shared.snapshot.load().declare_metrics();
    // Every listener is bound: now the first tokens may be fetched.
    shared.snapshot.load().start_refreshers();
    let listeners = servers
        .into_iter()
        .map(|(handle, server)| {
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let serve = server.serve(async {
                let _ = rx.await;
            });
            let task = match handle {
                Some(h) => h.spawn(serve),
                None => tokio::spawn(serve),
            };
            (tx, task)
        })
        .collect();
    Ok(Running {
        addr,
        admin_addr,
        forward_addr,
        shared,
        draining,
        listeners,
        admin,
        forward,
    })
}

/// What `run` does beyond serving.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The file the configuration came from, re-read on SIGHUP.
    pub config_path: Option<PathBuf>,
    /// Also reload when that file (or a file it names) changes.
    pub watch: bool,
    /// Further runtimes (current-thread, each on its own thread) that get a proxy-port
    /// listener of their own: see [`start_on`]. Empty: one listener, on this runtime.
    pub workers: Vec<tokio::runtime::Handle>,
}

/// Runs the proxy until `shutdown` resolves.
pub async fn run(
    config: &Config,
    options: RunOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    let running = start_on(config, &options.workers).await?;
    if config.tracing.otlp {
        otlp::start(tokio::runtime::Handle::current(), running.shared().clone())?;
    }
    // Reload is wired before the ports are announced: whoever reads them may send SIGHUP or
    // change a watched file at once, and neither may be lost.
    let mut background = vec![memory::spawn_trimmer()];
    if let Some(path) = options.config_path {
        let reloader = reload::Reloader::new(path, running.shared().clone());
        #[cfg(unix)]
        match reloader.spawn_sighup() {
            Ok(t) => background.push(t),
            Err(e) => tracing::warn!(error = %e, "cannot listen for SIGHUP; reload is off"),
        }
        if options.watch {
            background.push(reloader.spawn_watch(config));
        }
    }
    // Tests and supervisors find the ports from these lines, so they name them plainly.
    tracing::info!(addr = %running.addr, "listening");
    if let Some(a) = running.admin_addr {
        tracing::info!(addr = %a, "admin listening");
    }
    if let Some(a) = running.forward_addr {
        tracing::info!(addr = %a, "forward listening");
    }
    shutdown.await;
    // Not ready from the moment shutdown is announced, so no probe sees "ready" after it.
    running.draining.store(true, Ordering::Relaxed);
    tracing::info!("shutting down");
    for t in &background {
        t.abort();
    }
    running.stop().await;
    if config.tracing.otlp {
        otlp::stop().await;
    }
    tracing::info!("stopped");
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("server.listen {0}: {why}", why = BindFailure(.1))]
    Bind(String, std::io::Error),
    #[error("admin.listen {0}: {why}", why = BindFailure(.1))]
    AdminBind(String, std::io::Error),
    #[error("forward.listen {0}: {why}", why = BindFailure(.1))]
    ForwardBind(String, std::io::Error),
}

/// Why a listen address could not be bound, in the operator's terms.
struct BindFailure<'a>(&'a std::io::Error);

impl std::fmt::Display for BindFailure<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.kind() {
            // The likeliest holder is a copy started by mistake, or an old one after an upgrade.
            std::io::ErrorKind::AddrInUse => {
                f.write_str("address already in use (another ims-proxy?)")
            }
            _ => write!(f, "cannot listen: {}", self.0),
        }
    }
}
