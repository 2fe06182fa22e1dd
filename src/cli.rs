//! The command line: `run` (the default), `check`, `token`, `sandbox`, `demo`.
//!
//! Signals while running: SIGTERM and SIGINT shut down gracefully, SIGHUP reloads the config.

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
    /// Run the proxy (the default). SIGHUP reloads the configuration.
    Run {
        /// Also reload when the config file, or a secret or CA file it names, changes.
        #[arg(long)]
        watch: bool,
    },
    /// Validate the configuration and print the resolved routes, secrets redacted.
    Check {
        /// Also fetch a token for every credential and connect to every route's upstream
        /// (through the egress proxy, if any); exit 1 if anything fails.
        #[arg(long)]
        online: bool,
    },
    /// Print a fresh access token for credential NAME on stdout (the token alone).
    Token {
        /// The credential, as in `[credentials.NAME]`.
        name: String,
    },
    /// Ask the running proxy's admin port (`admin.listen`) for /readyz, or /healthz with
    /// --live; exit 0 on 200, 1 otherwise: a health check for images without a shell or curl.
    Health {
        /// Check liveness (/healthz) rather than readiness (/readyz).
        #[arg(long)]
        live: bool,
    },
    /// Serve a local stand-in for Adobe IMS and the four APIs, for development and tests;
    /// print its credentials (`key: value` lines) and write them with a ready proxy.toml.
    Sandbox(crate::sandbox::command::SandboxArgs),
    /// Start the sandbox and the proxy together and print `curl` commands to try.
    Demo(crate::demo::DemoArgs),
}

/// Exit statuses: 0 fine, 1 runtime failure, 2 bad configuration.
pub fn main(cli: Cli) -> ExitCode {
    // Held until the end of main: dropping it flushes the log lines still queued.
    let _log_guard = init_logging(cli.log_format);
    match cli.command.unwrap_or(Command::Run { watch: false }) {
        Command::Run { watch } => run(&cli.config, watch),
        Command::Check { online } => check(&cli.config, online),
        Command::Token { name } => token(&cli.config, &name),
        Command::Health { live } => health(&cli.config, live),
        Command::Sandbox(args) => {
            serve_until_signal(crate::sandbox::command::run(args, shutdown_signal()))
        }
        Command::Demo(args) => serve_until_signal(crate::demo::run(args, shutdown_signal())),
    }
}

/// Runs `sandbox` or `demo` on a fresh runtime; their errors are runtime failures (exit 1).
fn serve_until_signal(
    f: impl std::future::Future<Output = Result<(), crate::sandbox::command::CommandError>>,
) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match rt.block_on(f) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn load(path: &std::path::Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

fn check(path: &std::path::Path, online: bool) -> ExitCode {
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
            if online && !rt.block_on(check_online(&s, config.client.request_timeout)) {
                return ExitCode::FAILURE;
            }
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

/// Fetches a token for every credential and opens a connection to every route's upstream,
/// printing one line for each; true if all of them work.
async fn check_online(s: &crate::snapshot::Snapshot, deadline: std::time::Duration) -> bool {
    use std::collections::BTreeMap;
    let mut failures = 0usize;
    let mut credential_ok = BTreeMap::new();
    for (name, cred) in &s.credentials {
        let result = match tokio::time::timeout(deadline, cred.fetch_fresh()).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err(format!("no answer within {deadline:?}")),
        };
        match result {
            Ok(()) => {
                let status = cred.status();
                let expiry = match status.expires_in_seconds {
                    Some(secs) => format!("token expires in {secs} s"),
                    None => "token does not expire".into(),
                };
                println!("credential {name}: ok ({}, {expiry})", cred.kind);
                credential_ok.insert(name.as_str(), true);
            }
            Err(e) => {
                println!("credential {name}: FAILED: {e}");
                credential_ok.insert(name.as_str(), false);
                failures += 1;
            }
        }
    }
    let mut routes: Vec<&crate::routes::Route> = s.routes.iter().collect();
    routes.sort_by(|a, b| a.prefix.cmp(&b.prefix));
    for r in routes {
        let prefix = if r.prefix.is_empty() { "/" } else { &r.prefix };
        let uri = http::Uri::builder()
            .scheme(r.upstream.scheme.clone())
            .authority(r.upstream.authority.clone())
            .path_and_query("/")
            .build();
        let reach = match uri {
            Err(e) => Err(e.to_string()),
            Ok(uri) => match tokio::time::timeout(deadline, s.client.probe(uri)).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(crate::error::error_chain(&*e)),
                Err(_) => Err(format!("no connection within {deadline:?}")),
            },
        };
        let cred = r.credential.name.as_str();
        let cred_ok = credential_ok.get(cred).copied().unwrap_or(false);
        match (&reach, cred_ok) {
            (Ok(()), true) => println!(
                "route {prefix} -> {}: ok (credential {cred}, upstream reachable)",
                r.upstream
            ),
            _ => {
                failures += 1;
                let mut why = Vec::new();
                if !cred_ok {
                    why.push(format!("credential {cred} failed"));
                }
                if let Err(e) = &reach {
                    why.push(format!("upstream unreachable: {e}"));
                }
                println!(
                    "route {prefix} -> {}: FAILED: {}",
                    r.upstream,
                    why.join("; ")
                );
            }
        }
    }
    if failures == 0 {
        println!("online check ok");
    } else {
        println!("online check FAILED: {failures} problem(s)");
    }
    failures == 0
}

fn run(path: &std::path::Path, watch: bool) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let options = crate::RunOptions {
        config_path: Some(path.to_path_buf()),
        watch,
    };
    match rt.block_on(crate::run(&config, options, shutdown_signal())) {
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

/// One worker thread (`TOKIO_WORKER_THREADS=1`, a sidecar pinned to a core) runs on Tokio's
/// single-threaded scheduler, which skips the work-stealing machinery it would not use.
fn health(path: &std::path::Path, live: bool) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let Some(listen) = config.admin.listen.as_deref() else {
        eprintln!("error: admin.listen: required for `health` (it asks the admin port)");
        return ExitCode::from(2);
    };
    let mut addr = match std::net::ToSocketAddrs::to_socket_addrs(listen)
        .ok()
        .and_then(|mut a| a.next())
    {
        Some(a) => a,
        None => {
            eprintln!("error: admin.listen: {listen:?} is not host:port");
            return ExitCode::from(2);
        }
    };
    // A wildcard listener is reached on loopback from inside the same host or container.
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let url = format!("http://{addr}{}", if live { "/healthz" } else { "/readyz" });
    let result = rt.block_on(async {
        use http_body_util::BodyExt;
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<http_body_util::Empty<bytes::Bytes>>();
        let uri: http::Uri = url.parse().map_err(|e| format!("{e}"))?;
        let resp = tokio::time::timeout(std::time::Duration::from_secs(5), client.get(uri))
            .await
            .map_err(|_| "no answer within 5 s".to_string())?
            .map_err(|e| crate::error::error_chain(&e))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        Ok::<_, String>((status, body))
    });
    match result {
        Ok((status, body)) => {
            println!(
                "{} {}",
                status.as_u16(),
                String::from_utf8_lossy(&body).trim()
            );
            if status == http::StatusCode::OK {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {url}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    let single = std::env::var("TOKIO_WORKER_THREADS").is_ok_and(|v| v.trim() == "1");
    let mut builder = if single {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    builder.enable_all().build().map_err(|e| {
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

/// Logs go to stderr through a writer thread, so a request never waits on a `write` syscall
/// for its access-log line; lines are batched by that thread and never dropped (a full queue
/// applies back-pressure instead).
fn init_logging(format: Option<LogFormat>) -> tracing_appender::non_blocking::WorkerGuard {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match format {
        Some(LogFormat::Json) => true,
        Some(LogFormat::Text) => false,
        None => !std::io::stderr().is_terminal(),
    };
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(!json && std::io::stderr().is_terminal())
        .with_writer(writer);
    if json {
        let _ = builder.event_format(crate::logfmt::JsonLines).try_init();
    } else {
        let _ = builder.try_init();
    }
    guard
}
