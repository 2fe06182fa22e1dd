//! The command line: `run` (the default), `check`, `token`.

use crate::config::Config;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "ims-proxy",
    version,
    about = "Authenticating reverse proxy for Adobe's server-to-server APIs"
)]
pub struct Cli {
    /// Configuration file (TOML); IMS_PROXY_* environment variables override it.
    #[arg(long, short, global = true, default_value = "proxy.toml")]
    pub config: PathBuf,
    /// Log format on stderr: text on a terminal, JSON otherwise, unless given.
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy (the default).
    Run,
    /// Validate the configuration and print the resolved routes, secrets redacted.
    Check,
    /// Print a fresh access token for credential NAME on stdout (the token alone).
    Token {
        /// The credential, as in `[credentials.NAME]`.
        name: String,
    },
}

/// Exit statuses: 0 fine, 1 runtime failure, 2 bad configuration.
pub fn main(cli: Cli) -> ExitCode {
    init_logging(cli.log_format);
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => run(&cli.config),
        Command::Check => check(&cli.config),
        Command::Token { name } => token(&cli.config, &name),
    }
}

fn load(path: &std::path::Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

fn check(path: &std::path::Path) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    // Building the snapshot validates everything `run` would, without listening.
    match rt.block_on(async { crate::snapshot::Snapshot::build(&config) }) {
        Ok(s) => {
            print!("{}", s.describe());
            println!("config ok");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Asks IMS for a new token (never a cached one) so scripts get the full lifetime.
fn token(path: &std::path::Path, name: &str) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async {
        let snapshot = match crate::snapshot::Snapshot::build(&config) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
        let Some(credential) = snapshot.credentials.get(name) else {
            let known: Vec<&str> = snapshot.credentials.keys().map(String::as_str).collect();
            eprintln!(
                "error: credentials.{name}: no such credential (known: {})",
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            );
            return ExitCode::from(2);
        };
        credential.warn_if_retired();
        match credential.fetch_token().await {
            Ok(token) => {
                println!("{}", token.expose());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: credentials.{name}: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

fn run(path: &std::path::Path) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match rt.block_on(crate::run(&config, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(crate::StartError::Config(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: cannot start the runtime: {e}");
            ExitCode::FAILURE
        })
}

async fn shutdown_signal() {
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

fn init_logging(format: Option<LogFormat>) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match format {
        Some(LogFormat::Json) => true,
        Some(LogFormat::Text) => false,
        None => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        let _ = builder.json().flatten_event(true).try_init();
    } else {
        let _ = builder.try_init();
    }
}
