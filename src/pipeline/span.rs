//! One OpenTelemetry span per request, when span export is on (`[tracing] otlp = true`). The
//! span is made whole when the access log is written (start and end known, status known) and
//! handed to the batch processor, which queues it without blocking (a full queue drops it) and
//! exports from its own thread. The ids are the ones the upstream was told ([`super::trace`]),
//! so the proxy's span is the upstream's parent.

use super::ctx::Ctx;
use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{BatchSpanProcessor, SpanData, SpanProcessor};
use std::sync::OnceLock;
use std::time::{Instant, SystemTime};

/// Process-wide: set once at start, by `run`, when export is on.
static EXPORT: OnceLock<Export> = OnceLock::new();

struct Export {
    processor: BatchSpanProcessor,
    scope: InstrumentationScope,
}

/// Starts exporting: every sampled request from now on records a span into `processor`.
/// `false` when a processor was installed already (the first one stays).
pub fn install(processor: BatchSpanProcessor) -> bool {
    let scope = InstrumentationScope::builder("ims-proxy")
        .with_version(env!("CARGO_PKG_VERSION"))
        .build();
    EXPORT.set(Export { processor, scope }).is_ok()
}

/// Whether spans are recorded (and so whether a new trace is sampled).
#[inline]
pub fn recording() -> bool {
    EXPORT.get().is_some()
}

/// Exports what is queued and stops the processor's thread (waits for it, up to its timeout:
/// run it off the async workers).
pub fn shutdown() {
    if let Some(e) = EXPORT.get() {
        let _ = e.processor.shutdown();
    }
}

/// The request's span, when it has one, into the export queue.
pub fn record(ctx: &Ctx, route: &str, status: u16, fault: Option<&'static str>) {
    let (Some(export), Some(span_id)) = (EXPORT.get(), ctx.trace.span_id) else {
        return;
    };
    let end = SystemTime::now();
    let start = end
        .checked_sub(Instant::now().saturating_duration_since(ctx.started))
        .unwrap_or(end);
    let method = ctx.method.as_str().to_string();
    let mut attributes = vec![
        KeyValue::new("http.request.method", method.clone()),
        KeyValue::new("url.path", ctx.path.clone()),
        KeyValue::new("http.response.status_code", i64::from(status)),
        KeyValue::new("http.route", route.to_string()),
        KeyValue::new("client.address", ctx.conn.peer.ip().to_string()),
    ];
    if let Some(c) = &ctx.credential {
        attributes.push(KeyValue::new("ims_proxy.credential", c.name.clone()));
    }
    if let Some(f) = fault {
        attributes.push(KeyValue::new("error.type", f));
    }
    // A server span is an error for 5xx only: a 4xx is the caller's to own.
    let status = if status >= 500 {
        Status::error(fault.unwrap_or("upstream"))
    } else {
        Status::Unset
    };
    let parent = ctx.trace.caller.map(|c| c.parent_id);
    export.processor.on_end(SpanData {
        span_context: SpanContext::new(
            TraceId::from(ctx.trace.trace_id),
            SpanId::from(span_id),
            TraceFlags::SAMPLED,
            false,
            Default::default(),
        ),
        parent_span_id: parent.map_or(SpanId::INVALID, SpanId::from),
        parent_span_is_remote: parent.is_some(),
        span_kind: SpanKind::Server,
        name: format!("{method} {route}").into(),
        start_time: start,
        end_time: end,
        attributes,
        dropped_attributes_count: 0,
        events: Default::default(),
        links: Default::default(),
        status,
        instrumentation_scope: export.scope.clone(),
    });
}
