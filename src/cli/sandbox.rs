//! `ims-proxy sandbox`: serve the sandbox, print its credentials as `key: value` lines on
//! stdout and write them (with a ready `proxy.toml`) to a directory. The flags shared with
//! `demo` shorten token lifetimes and inject IMS failures, to rehearse refresh and outages.

use super::logging::out;
use crate::sandbox::identity::{write_private, Identity, IdentityError};
use crate::sandbox::ims::{FailWhen, Failure, Knobs};
use crate::sandbox::Sandbox;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Default, clap::Args)]
pub struct ImsBehaviour {
    /// Lifetime of the tokens IMS issues (Adobe's is 24 h), e.g. `30s` to watch refreshes.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub token_lifetime: Option<Duration>,
    /// Make IMS fail: an HTTP status (e.g. `503`), `hang` (never answer) or `garbage`
    /// (200 with an HTML body). Always, unless --fail-every or --fail-ratio says when.
    #[arg(long, value_parser = parse_failure)]
    pub fail: Option<Failure>,
    /// Fail only every other period of this length, starting healthy: `30s` is 30 s up,
    /// 30 s down, and so on.
    #[arg(long, requires = "fail", conflicts_with = "fail_ratio", value_parser = humantime::parse_duration)]
    pub fail_every: Option<Duration>,
    /// Fail only this fraction of IMS calls, at random (0 to 1).
    #[arg(long, requires = "fail", value_parser = parse_ratio)]
    pub fail_ratio: Option<f64>,
    /// Delay every IMS answer by this long, e.g. `2s`.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub ims_delay: Option<Duration>,
}

impl ImsBehaviour {
    pub fn knobs(&self) -> Knobs {
        let failure_when = match (self.fail_every, self.fail_ratio) {
            (Some(period), _) => Some(FailWhen::Alternating {
                period,
                since: std::time::Instant::now(),
            }),
            (None, Some(r)) => Some(FailWhen::Ratio(r)),
            (None, None) => None,
        };
        Knobs {
            failure: self.fail.clone(),
            failure_when,
            token_lifetime: self.token_lifetime,
            delay: self.ims_delay,
            ..Knobs::default()
        }
    }
}

fn parse_failure(s: &str) -> Result<Failure, String> {
    match s {
        "hang" => Ok(Failure::Hang),
        "garbage" => Ok(Failure::Garbage),
        n => match n.parse::<u16>() {
            Ok(code) if (400..=599).contains(&code) => Ok(Failure::Status(code)),
            _ => Err("expected an HTTP error status (400-599), `hang` or `garbage`".into()),
        },
    }
}

fn parse_ratio(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err("expected a number from 0 to 1".into()),
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct SandboxArgs {
    /// Address to serve IMS and the APIs on (plain HTTP: keep it on loopback).
    #[arg(long, default_value = "127.0.0.1:9443")]
    pub listen: SocketAddr,
    /// Where the credentials, the private key and a ready proxy.toml are written; reused on
    /// the next start, so the credentials stay the same. Default: <temp dir>/ims-proxy-sandbox.
    #[arg(long)]
    pub credentials_dir: Option<PathBuf>,
    /// Throttle each credential's API requests as Adobe's gateway does: over `N/s` (N at
    /// once), 429 with `Retry-After` and error_code 429050. Tokens granted per client id are at
    /// GET /_sandbox/stats.
    #[arg(long, value_name = "N/s", value_parser = parse_quota)]
    pub quota: Option<u32>,
    #[command(flatten)]
    pub ims: ImsBehaviour,
}

fn parse_quota(s: &str) -> Result<u32, String> {
    let n = s.strip_suffix("/s").unwrap_or(s);
    match n.trim().parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err("expected requests per second, e.g. `20/s`".into()),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error("the sandbox IMS refused its own client: {0}")]
    Register(String),
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error("the demo configuration is invalid: {0}")]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Proxy(#[from] crate::app::StartError),
    #[error("key generation was interrupted: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Runs `ims-proxy sandbox` until `shutdown` resolves.
pub async fn run(
    args: SandboxArgs,
    shutdown: impl Future<Output = ()>,
) -> Result<(), CommandError> {
    let dir = args
        .credentials_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("ims-proxy-sandbox"));
    let identity = {
        let dir = dir.clone();
        // RSA key generation takes a while; keep it off the runtime's workers.
        tokio::task::spawn_blocking(move || Identity::load_or_create(&dir)).await??
    };
    let mut sandbox = Sandbox::new(identity).map_err(CommandError::Register)?;
    if let Some(n) = args.quota {
        sandbox = sandbox.with_quota(n);
    }
    sandbox.ims().set_knobs(args.ims.knobs());
    let local = sandbox
        .start(args.listen)
        .await
        .map_err(|e| CommandError::Bind(args.listen, e))?;
    let url = local.url();
    let config_path = dir.join("proxy.toml");
    let toml = sandbox
        .identity()
        .proxy_toml(&url, "127.0.0.1:8080", "127.0.0.1:9090", &dir, true);
    write_private(&config_path, &toml)?;
    out("# ims-proxy sandbox: a local stand-in for Adobe IMS, Campaign, Audience Manager,\n");
    out("# Cloud Manager and Privacy Service. Plain HTTP: for loopback and tests only.\n");
    out(&sandbox.identity().describe(&url, &dir));
    out(&format!("proxy_config: {}\n", config_path.display()));
    if let Some(n) = args.quota {
        out(&format!("quota: {n}/s per credential\n"));
    }
    out(&format!("stats: {url}{}\n", crate::sandbox::STATS_PATH));
    out(&format!(
        "# try: ims-proxy run --config {}\n",
        config_path.display()
    ));
    tracing::info!(addr = %local.addr, "sandbox listening");
    shutdown.await;
    drop(local);
    Ok(())
}
