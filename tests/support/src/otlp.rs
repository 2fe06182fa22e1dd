//! A small OTLP/HTTP collector on 127.0.0.1: takes `POST /v1/traces` (protobuf), answers 200,
//! and decodes every span it was sent.

use crate::tls::TestPki;
use crate::upstream::{full, FakeUpstream};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use prost::Message as _;
use std::collections::BTreeMap;

pub struct OtlpReceiver {
    up: FakeUpstream,
}

/// One exported span, ids as lowercase hex (as `traceparent` writes them).
#[derive(Clone, Debug)]
pub struct ReceivedSpan {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub name: String,
    /// OTLP's `SpanKind` number: 2 is `SERVER`.
    pub kind: i32,
    /// OTLP's status code: 0 unset, 1 ok, 2 error.
    pub status_code: i32,
    /// String and integer attributes, as strings.
    pub attributes: BTreeMap<String, String>,
    /// The resource's `service.name`.
    pub service_name: String,
}

/// A collector's answer to an export: 200 with an empty `ExportTraceServiceResponse`.
fn accepted() -> http::Response<crate::upstream::UpBody> {
    http::Response::builder()
        .header("content-type", "application/x-protobuf")
        .body(full(ExportTraceServiceRequest::default().encode_to_vec()))
        .expect("response")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn any(v: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        Some(Any::StringValue(s)) => s.clone(),
        Some(Any::IntValue(i)) => i.to_string(),
        Some(Any::BoolValue(b)) => b.to_string(),
        Some(Any::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

impl OtlpReceiver {
    pub async fn start() -> OtlpReceiver {
        let up = FakeUpstream::responding(|_| accepted()).await;
        OtlpReceiver { up }
    }

    /// A collector on HTTPS with `pki`'s server certificate: trusted only through
    /// `client.ca_file`.
    pub async fn start_tls(pki: &TestPki) -> OtlpReceiver {
        let up = FakeUpstream::responding_tls(pki, |_| accepted()).await;
        OtlpReceiver { up }
    }

    /// Its address, `127.0.0.1:PORT`.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.up.addr
    }

    /// For `OTEL_EXPORTER_OTLP_ENDPOINT` (the exporter appends `/v1/traces`).
    pub fn endpoint(&self) -> String {
        self.up.url()
    }

    /// Every export request's path, in order.
    pub fn paths(&self) -> Vec<String> {
        self.up.requests().into_iter().map(|r| r.target).collect()
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        let mut out = Vec::new();
        for rec in self.up.requests() {
            let Ok(req) = ExportTraceServiceRequest::decode(rec.body) else {
                continue;
            };
            for rs in req.resource_spans {
                let service_name = rs
                    .resource
                    .iter()
                    .flat_map(|r| &r.attributes)
                    .find(|kv| kv.key == "service.name")
                    .map(|kv| any(kv.value.as_ref()))
                    .unwrap_or_default();
                for span in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
                    out.push(ReceivedSpan {
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        name: span.name,
                        kind: span.kind,
                        status_code: span.status.map_or(0, |s| s.code),
                        attributes: span
                            .attributes
                            .iter()
                            .map(|kv| (kv.key.clone(), any(kv.value.as_ref())))
                            .collect(),
                        service_name: service_name.clone(),
                    });
                }
            }
        }
        out
    }
}
