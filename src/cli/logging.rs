//! Log lines on stderr: text on a terminal, JSON lines otherwise.

use clap::ValueEnum;

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
