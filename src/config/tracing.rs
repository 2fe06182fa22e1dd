//! `[tracing]`: span export over OTLP, off unless asked for. The collector's address and the
//! batch settings come from the standard `OTEL_*` environment variables, as every
//! OpenTelemetry SDK reads them; the SDK takes any number there (a delay of 0 spins a core, a
//! queue of 4,000,000,000 is allocated at start), so they are checked here, as the rest of
//! the configuration is.

use super::error::ConfigError;
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracingConfig {
    /// Export one span per request over OTLP/HTTP (protobuf) to
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT`
    /// (default `http://localhost:4318`). Read at start; a reload does not change it.
    #[serde(default)]
    pub otlp: bool,
}

/// The batch span processor's settings: `OTEL_BSP_SCHEDULE_DELAY`, `OTEL_BSP_MAX_QUEUE_SIZE`
/// and `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, within bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanBatch {
    /// How long spans wait before they are sent (unless a batch fills first).
    pub schedule_delay: Duration,
    /// Spans held while the collector is slow; past it new spans are dropped. The queue is
    /// allocated whole at start.
    pub max_queue_size: usize,
    pub max_export_batch_size: usize,
}

/// Shorter would wake the export thread so often it shows as load with no traffic.
const MIN_SCHEDULE_DELAY_MS: u64 = 10;
/// Longer would be a typo, not a tuning (and far enough would overflow a deadline).
const MAX_SCHEDULE_DELAY_MS: u64 = 3_600_000;
/// Each queued span takes a slot of some 350 bytes, allocated at start: this is ~23 MiB, 128
/// batches of the default size.
const MAX_QUEUE_SIZE: usize = 65_536;

impl Default for SpanBatch {
    /// The OpenTelemetry specification's defaults.
    fn default() -> Self {
        SpanBatch {
            schedule_delay: Duration::from_millis(5_000),
            max_queue_size: 2_048,
            max_export_batch_size: 512,
        }
    }
}

impl SpanBatch {
    /// Reads the settings through `var` (the process environment, in the proxy); an unset
    /// variable keeps the default, one that is not a whole number within bounds is an error
    /// naming it.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<SpanBatch, ConfigError> {
        let mut batch = SpanBatch::default();
        let number =
            |name: &str, lo: u64, hi: u64, what: &str| -> Result<Option<u64>, ConfigError> {
                let Some(raw) = var(name) else {
                    return Ok(None);
                };
                match raw.trim().parse::<u64>() {
                    Ok(n) if (lo..=hi).contains(&n) => Ok(Some(n)),
                    _ => Err(ConfigError::new(
                        name,
                        format!("{raw:?} is not {what} from {lo} to {hi}"),
                    )),
                }
            };
        if let Some(ms) = number(
            "OTEL_BSP_SCHEDULE_DELAY",
            MIN_SCHEDULE_DELAY_MS,
            MAX_SCHEDULE_DELAY_MS,
            "a delay in milliseconds",
        )? {
            batch.schedule_delay = Duration::from_millis(ms);
        }
        if let Some(n) = number(
            "OTEL_BSP_MAX_QUEUE_SIZE",
            1,
            MAX_QUEUE_SIZE as u64,
            "a number of spans",
        )? {
            batch.max_queue_size = n as usize;
        }
        let queue = batch.max_queue_size;
        match number(
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
            1,
            queue as u64,
            "a number of spans (at most OTEL_BSP_MAX_QUEUE_SIZE)",
        )? {
            Some(n) => batch.max_export_batch_size = n as usize,
            // The specification's default batch is larger than a small queue: the whole queue.
            None => batch.max_export_batch_size = batch.max_export_batch_size.min(queue),
        }
        // The exporter's endpoint is printed in its errors: a password there would be too.
        for name in [
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        ] {
            if var(name).is_some_and(|v| crate::base::secret::has_userinfo(v.trim())) {
                return Err(ConfigError::new(
                    name,
                    format!(
                        "{} (send the collector's credentials with \
                         OTEL_EXPORTER_OTLP_HEADERS instead)",
                        crate::base::secret::USERINFO_REFUSED
                    ),
                ));
            }
        }
        Ok(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(vars: &[(&str, &str)]) -> Result<SpanBatch, ConfigError> {
        SpanBatch::from_env(|k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn unset_variables_keep_the_specifications_defaults() {
        assert_eq!(batch(&[]), Ok(SpanBatch::default()));
    }

    #[test]
    fn values_within_bounds_are_taken_and_others_name_the_variable() {
        let b = batch(&[
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
        ])
        .unwrap();
        assert_eq!(b.schedule_delay, Duration::from_millis(100));
        assert_eq!((b.max_queue_size, b.max_export_batch_size), (100, 100));
        for (name, bad) in [
            ("OTEL_BSP_SCHEDULE_DELAY", "0"),
            ("OTEL_BSP_SCHEDULE_DELAY", "5s"),
            ("OTEL_BSP_SCHEDULE_DELAY", "18446744073709551615"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "0"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "4000000000"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "-1"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4096"),
        ] {
            assert_eq!(batch(&[(name, bad)]).unwrap_err().key, name, "{name}={bad}");
        }
    }
}
