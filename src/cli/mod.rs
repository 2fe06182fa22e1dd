//! The command line: `run` (the default), `check`, `token`, `health`, `ca`, `sandbox`, `demo`,
//! `completions`, `man`: parsing arguments, printing, exit statuses. What the commands do
//! lives below `cli`.
//!
//! Signals while running: SIGTERM and SIGINT shut down gracefully, SIGHUP reloads the config.

mod ca;
mod check;
mod demo;
mod docs;
mod health;
mod logging;
mod sandbox;
mod setup;
mod token;

pub use logging::LogFormat;

use clap::{Args, CommandFactory, Parser, Subcommand};
use logging::fatal;
use setup::{load, runtime, runtimes, shutdown_signal};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "ims-proxy",
    version = crate::base::build::LONG_VERSION,
    about = "Authenticating reverse proxy for Adobe's server-to-server APIs"
)]
pub struct Cli {
    /// Configuration file (TOML; default $IMS_PROXY_CONFIG, else proxy.toml); IMS_PROXY_*
    /// environment variables override it. Also accepted after `run`, `check`, `token` and
    /// `health`.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Log format on stderr: text on a terminal, JSON otherwise, unless given.
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy (the default). SIGHUP reloads the configuration.
    Run {
        #[command(flatten)]
        config: ConfigArg,
        /// Also reload when the config file, or a secret or CA file it names, changes.
        #[arg(long)]
        watch: bool,
    },
    /// Validate the configuration and print the resolved routes, secrets redacted.
    Check {
        #[command(flatten)]
        config: ConfigArg,
        /// Also fetch a token for every credential and send each route's probe, one
        /// authenticated read (`probe`, or the preset's), printing the upstream's status and
        /// Adobe's error_code; exit 1 on a 401, a 403 or anything else failing.
        #[arg(long)]
        online: bool,
    },
    /// Print a fresh access token for credential NAME on stdout (the token alone).
    Token {
        #[command(flatten)]
        config: ConfigArg,
        /// The credential, as in `[credentials.NAME]`.
        name: String,
    },
    /// Ask the running proxy's admin port (`admin.listen`) for /readyz, or /healthz with
    /// --live; exit 0 on 200, 1 otherwise: a health check for images without a shell or curl.
    Health {
        #[command(flatten)]
        config: ConfigArg,
        /// Check liveness (/healthz) rather than readiness (/readyz).
        #[arg(long)]
        live: bool,
    },
    /// The forward listener's local CA: `path` prints where its certificate is, `show` prints
    /// it, `bundle` writes it after the machine's roots, for the trust settings of the tools
    /// behind `HTTPS_PROXY`; `rotate` replaces it.
    Ca {
        /// Configuration file (TOML; default $IMS_PROXY_CONFIG, else proxy.toml), before or
        /// after `path`/`show`/`rotate`/`bundle`.
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        what: ca::CaCommand,
    },
    /// Serve a local stand-in for Adobe IMS and the four APIs, for development and tests;
    /// print its credentials (`key: value` lines) and write them with a ready proxy.toml.
    Sandbox(sandbox::SandboxArgs),
    /// Start the sandbox and the proxy together and print `curl` commands to try.
    Demo(demo::DemoArgs),
    /// Print a shell completion script on stdout, e.g.
    /// `ims-proxy completions bash > /etc/bash_completion.d/ims-proxy`.
    Completions {
        /// The shell the script is for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on stdout, e.g. `ims-proxy man | man -l -`.
    Man,
}

/// `--config` for the commands that read a configuration (`sandbox` and `demo` write their
/// own, so they take none).
#[derive(Debug, Clone, Default, Args)]
pub struct ConfigArg {
    /// Configuration file (TOML; default $IMS_PROXY_CONFIG, else proxy.toml); IMS_PROXY_*
    /// environment variables override it. Relative paths in it are relative to its directory.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

/// Exit statuses: 0 fine, 1 runtime failure, 2 bad configuration.
pub fn main(cli: Cli) -> ExitCode {
    // Held until the end of main: dropping it flushes the log lines still queued.
    let _log_guard = logging::init(cli.log_format);
    let top = cli.config;
    // `$(ims-proxy ca path)` in an app's own directory finds the config through the variable.
    let from_env = std::env::var_os("IMS_PROXY_CONFIG")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let path = |c: ConfigArg| {
        c.config
            .or_else(|| top.clone())
            .or_else(|| from_env.clone())
            .unwrap_or_else(|| PathBuf::from("proxy.toml"))
    };
    let command = cli.command.unwrap_or(Command::Run {
        config: ConfigArg::default(),
        watch: false,
    });
    if let (Command::Sandbox(_) | Command::Demo(_), Some(_)) = (&command, &top) {
        fatal("--config: `sandbox` and `demo` write their own proxy.toml and read none");
        return ExitCode::from(2);
    }
    if let (Command::Completions { .. } | Command::Man, Some(_)) = (&command, &top) {
        fatal("--config: `completions` and `man` read no configuration");
        return ExitCode::from(2);
    }
    match command {
        Command::Run { config, watch } => run(&path(config), watch),
        Command::Check { config, online } => check::check(&path(config), online),
        Command::Token { config, name } => token::token(&path(config), &name),
        Command::Health { config, live } => health::health(&path(config), live),
        Command::Ca { config, what } => ca::ca(&path(ConfigArg { config }), what),
        Command::Sandbox(args) => serve_until_signal(sandbox::run(args, shutdown_signal())),
        Command::Demo(args) => serve_until_signal(demo::run(args, shutdown_signal())),
        Command::Completions { shell } => docs::completions(shell, Cli::command()),
        Command::Man => docs::man(Cli::command()),
    }
}

/// Runs `sandbox` or `demo` on a fresh runtime; their errors are runtime failures (exit 1).
fn serve_until_signal(
    f: impl std::future::Future<Output = Result<(), sandbox::CommandError>>,
) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match rt.block_on(f) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            fatal(format_args!("{e}"));
            ExitCode::FAILURE
        }
    }
}

fn run(path: &std::path::Path, watch: bool) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    // Thread-per-core: each runtime accepts on its own listener and serves what it accepts.
    let (rt, workers) = match runtimes() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let options = crate::app::RunOptions {
        config_path: Some(path.to_path_buf()),
        watch,
        workers: workers.handles.clone(),
    };
    let outcome = rt.block_on(crate::app::run(&config, options, shutdown_signal()));
    drop(workers);
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(crate::app::StartError::Config(e)) => {
            fatal(format_args!("{e}"));
            ExitCode::from(2)
        }
        Err(e) => {
            fatal(format_args!("{e}"));
            ExitCode::FAILURE
        }
    }
}
