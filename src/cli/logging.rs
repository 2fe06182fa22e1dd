//! Log lines on stderr: text on a terminal, JSON lines otherwise.

use clap::ValueEnum;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether `--log-format json` was given: fatal errors are JSON lines then.
static JSON_ERRORS: AtomicBool = AtomicBool::new(false);

/// The one line a command prints on stderr before it exits non-zero: `error: <message>`, or
/// under `--log-format json` a JSON line of the log's shape with level `ERROR`. (Only when
/// JSON is asked for: a pipe on stderr makes the logs JSON by default, but a person at a
/// terminal or CI log then still reads a plain `error:` line.) A closed stderr is ignored.
pub fn fatal(message: impl std::fmt::Display) {
    let message = message.to_string();
    let line = if JSON_ERRORS.load(Ordering::Relaxed) {
        crate::logfmt::plain_line("ERROR", &message, "ims_proxy")
    } else {
        format!("error: {message}\n")
    };
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// Writes `text` to stdout. A closed stdout (`ims-proxy check | head -1`) is not an error:
/// the rest is dropped quietly, as every Unix tool does, and the exit status stays the
/// command's own.
pub fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

/// Logs go to stderr through a writer thread, so a request never waits on a `write` syscall
/// for its access-log line; lines are never dropped (a full queue applies back-pressure
/// instead). The thread batches: it writes into a 64 KiB buffer and flushes it when full or
/// when the queue is empty, so a busy proxy makes one `write` per many lines and an idle one
/// shows each line at once.
pub fn init(format: Option<LogFormat>) -> tracing_appender::non_blocking::WorkerGuard {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    JSON_ERRORS.store(matches!(format, Some(LogFormat::Json)), Ordering::Relaxed);
    let json = match format {
        Some(LogFormat::Json) => true,
        Some(LogFormat::Text) => false,
        None => !std::io::stderr().is_terminal(),
    };
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        ));
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
