//! `[tracing]`: span export over OTLP, off unless asked for. The collector's address and the
//! batch settings come from the standard `OTEL_*` environment variables, as every
//! OpenTelemetry SDK reads them.

use serde::Deserialize;

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracingConfig {
    /// Export one span per request over OTLP/HTTP (protobuf) to
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT`
    /// (default `http://localhost:4318`). Read at start; a reload does not change it.
    #[serde(default)]
    pub otlp: bool,
}
