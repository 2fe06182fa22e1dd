//! ims-proxy: an authenticating reverse proxy for Adobe's server-to-server APIs.
//!
//! A request travels: [`server`] (listener, h1 + h2) → [`proxy`] (refusals, routing via
//! [`routes`], rewriting via [`forward`], the token from [`token`]) → [`upstream`] (pooled
//! rustls client) → Adobe. [`config`] reads `proxy.toml`; [`snapshot`] turns it into the
//! immutable state requests read; [`adobe`] holds the four APIs' facts; [`error`] maps the
//! proxy's own failures to HTTP, once. Hardening lives beside the request path: [`clients`]
//! (who may call), [`tls`] (listener TLS and mTLS), [`limits`] (sizes, timeouts, connection
//! counts), [`inbound`] and [`framing`] (malformed or ambiguous requests), [`secret_file`].

pub mod clients;
pub mod adobe;
pub mod cli;
pub mod config;
pub mod error;
pub mod forward;
pub mod framing;
pub mod inbound;
pub mod limits;
pub mod proxy;
pub mod routes;
pub mod secret;
pub mod secret_file;
pub mod server;
pub mod snapshot;
pub mod tls;
pub mod token;
pub mod upstream;

use std::future::Future;
use std::net::SocketAddr;

/// A proxy started in this process: where it listens, and how to stop it.
pub struct Running {
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops accepting, lets requests in flight finish, and waits for that.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// Builds the snapshot, binds the listener and serves in the background. Errors are the
/// config's (exit 2) or the bind's.
pub async fn start(config: &config::Config) -> Result<Running, StartError> {
    let snapshot = snapshot::Snapshot::build(config)?;
    let state = proxy::State::new(snapshot);
    let server = server::Server::bind(state)
        .await
        .map_err(|e| StartError::Bind(config.server.listen.clone(), e))?;
    let addr = server
        .local_addr()
        .map_err(|e| StartError::Bind(config.server.listen.clone(), e))?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(async {
        let _ = rx.await;
    }));
    Ok(Running {
        addr,
        shutdown: Some(tx),
        task,
    })
}

/// Runs the proxy until `shutdown` resolves.
pub async fn run(
    config: &config::Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    let running = start(config).await?;
    tracing::info!(addr = %running.addr, "listening");
    shutdown.await;
    tracing::info!("shutting down");
    running.stop().await;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("server.listen: cannot listen on {0}: {1}")]
    Bind(String, std::io::Error),
}
