//! Span export over OTLP/HTTP (protobuf), on when `[tracing] otlp = true`. The exporter and
//! batch processor are the OpenTelemetry SDK's; the HTTP client is the proxy's own outbound
//! (the current snapshot's: `client.ca_file`, the egress proxy, the per-upstream cap and the
//! descriptor budget apply to the collector as to any upstream), its requests run on the
//! proxy's runtime, because the SDK's processor exports from a thread of its own with no
//! runtime (its built-in clients are reqwest's, a second HTTP stack).

use crate::config::{ConfigError, SpanBatch};
use crate::state::Shared;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use opentelemetry_http::{HttpClient, HttpError};
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SpanProcessor};
use opentelemetry_sdk::Resource;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// What one export may take, connection included (OTLP's default timeout).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// A collector's answer is a small protobuf; anything larger is not one.
const MAX_RESPONSE: usize = 64 * 1024;

/// Builds the exporter (endpoint from `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or
/// `OTEL_EXPORTER_OTLP_ENDPOINT`) and starts recording spans. An endpoint that is not a URL is
/// the configuration's error.
pub fn start(runtime: tokio::runtime::Handle, shared: Arc<Shared>) -> Result<(), ConfigError> {
    let batch = SpanBatch::from_env(|k| std::env::var(k).ok())?;
    let client = OtlpClient { runtime, shared };
    let exporter = SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_http_client(client)
        .build()
        .map_err(|e| ConfigError::new("tracing.otlp", e.to_string()))?;
    // Batch settings (queue size, delay) from the standard OTEL_BSP_* variables, checked
    // (the SDK would take any number); a full queue drops spans rather than growing or
    // blocking a request.
    let batch = BatchConfigBuilder::default()
        .with_scheduled_delay(batch.schedule_delay)
        .with_max_queue_size(batch.max_queue_size)
        .with_max_export_batch_size(batch.max_export_batch_size)
        .build();
    let mut processor = BatchSpanProcessor::builder(exporter)
        .with_batch_config(batch)
        .build();
    processor.set_resource(&Resource::builder().with_service_name("ims-proxy").build());
    if !crate::pipeline::span::install(processor) {
        tracing::debug!("span export was started already; the first exporter stays");
    }
    Ok(())
}

/// Exports what is queued, within the processor's own timeout, without holding a worker.
pub async fn stop() {
    let _ = tokio::task::spawn_blocking(crate::pipeline::span::shutdown).await;
}

#[derive(Clone)]
struct OtlpClient {
    runtime: tokio::runtime::Handle,
    /// Whose snapshot's outbound sends each export: a reload's `[client]` applies at once.
    shared: Arc<Shared>,
}

impl std::fmt::Debug for OtlpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OtlpClient")
    }
}

impl HttpClient for OtlpClient {
    fn send_bytes<'a, 'b>(
        &'a self,
        request: Request<Bytes>,
    ) -> Pin<Box<dyn Future<Output = Result<Response<Bytes>, HttpError>> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        let outbound = self.shared.snapshot.load().outbound.clone();
        // Spawned onto the proxy's runtime: the caller is the processor's thread, which only
        // waits for the answer.
        let task = self.runtime.spawn(async move {
            let send = async {
                let (parts, body) = request.into_parts();
                let body = Full::new(body).map_err(|e| match e {}).boxed();
                let answer = outbound
                    .request(Request::from_parts(parts, body), None)
                    .await?;
                let (parts, body) = answer.keep().into_parts();
                let body = Limited::new(body, MAX_RESPONSE).collect().await?.to_bytes();
                Ok::<_, HttpError>(Response::from_parts(parts, body))
            };
            match tokio::time::timeout(EXPORT_TIMEOUT, send).await {
                Ok(r) => r,
                Err(_) => Err(HttpError::from("OTLP export timed out")),
            }
        });
        Box::pin(async move { task.await.map_err(HttpError::from)? })
    }
}
