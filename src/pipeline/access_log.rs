//! The access log line and the request metrics, emitted once, when the response body has been
//! sent (or abandoned): only then are the bytes and the total duration known. The record rides
//! in the response body as an [`Observer`], so it also holds what must live exactly as long as
//! the response: the route's concurrency permit.

use super::ctx::{hex32, Ctx, IpText};
use crate::base::error::BoxError;
use crate::body::Observer;
use bytes::Bytes;
use http_body::Frame;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

pub struct AccessLog {
    ctx: Ctx,
    status: u16,
    /// Whose fault a failed request was ("caller", "upstream", "ims").
    fault: Option<&'static str>,
    bytes_out: u64,
    /// An upstream 401, 403 or 429 on its way to the caller, its body's start kept for
    /// Adobe's error code. Boxed: most responses have none.
    refusal: Option<Box<Refusal>>,
}

/// What is known of an upstream refusal until its body has passed.
struct Refusal {
    at: SystemTime,
    head: Vec<u8>,
}

/// Adobe's error bodies are a line of JSON; a body longer than this is no error body.
const REFUSAL_HEAD: usize = 4096;

impl AccessLog {
    pub fn new(ctx: Ctx, status: u16, fault: Option<&'static str>) -> Self {
        AccessLog {
            ctx,
            status,
            fault,
            bytes_out: 0,
            refusal: None,
        }
    }

    /// The response is the upstream's own 401, 403 or 429: read Adobe's error code from its
    /// body as it passes, and record it for the status page and metrics when it ends.
    pub fn watching_refusal(mut self) -> Self {
        self.refusal = Some(Box::new(Refusal {
            at: SystemTime::now(),
            head: Vec::new(),
        }));
        self
    }

    fn record_refusal(&mut self) {
        let Some(refusal) = self.refusal.take() else {
            return;
        };
        let (Some(stats), Some(route)) = (&self.ctx.route_stats, self.ctx.route.as_deref()) else {
            return;
        };
        let code = crate::adobe::error_code(&refusal.head);
        crate::metrics::upstream_refusal(route, self.status);
        if self.status == 401 && self.ctx.replayed {
            if let Some(c) = &self.ctx.credential {
                c.rejected_by_upstream(route, code.clone(), refusal.at);
            }
        }
        stats.record_refusal(self.status, code, refusal.at);
    }
}

impl Observer for AccessLog {
    #[inline]
    fn on_frame(&mut self, frame: &Frame<Bytes>) -> Result<(), BoxError> {
        if let Some(d) = frame.data_ref() {
            self.bytes_out += d.len() as u64;
            if let Some(r) = self.refusal.as_mut() {
                let room = REFUSAL_HEAD.saturating_sub(r.head.len());
                r.head.extend_from_slice(&d[..d.len().min(room)]);
            }
        }
        Ok(())
    }

    fn on_end(&mut self, completed: bool) {
        self.record_refusal();
        let ctx = &self.ctx;
        let duration = ctx.started.elapsed();
        let bytes_in = ctx.bytes_in.load(Ordering::Relaxed);
        let route = ctx.route.as_deref().unwrap_or("-");
        let trace_id = hex32(ctx.trace.trace_id);
        // OpenTelemetry's semantic-convention names where one exists; durations in whole
        // microseconds (the proxy's own overhead is µs-scale, Adobe's answers ms-scale).
        tracing::info!(
            target: "ims_proxy::access",
            request_id = ctx.request_id.to_str().unwrap_or(""),
            trace_id = std::str::from_utf8(&trace_id).unwrap_or(""),
            listener = ctx.conn.listener,
            caller = ctx.caller.as_deref().unwrap_or("-"),
            "client.address" = IpText::new(ctx.conn.peer.ip()).as_str(),
            "http.request.method" = ctx.method.as_str(),
            "url.path" = ctx.path.as_str(),
            route,
            credential = ctx.credential.as_ref().map_or("-", |c| c.name.as_str()),
            "http.response.status_code" = self.status,
            fault = self.fault.unwrap_or("-"),
            bytes_in,
            bytes_out = self.bytes_out,
            duration_us = micros(duration),
            upstream_us = ctx.upstream_time.map(micros),
            completed,
            cool_down = ctx.cool_down,
            "request"
        );
        super::span::record(ctx, route, self.status, self.fault);
        let record = crate::metrics::RequestRecord {
            route,
            method: &ctx.method,
            status: self.status,
            duration,
            upstream: ctx.upstream_time,
            bytes_in,
            bytes_out: self.bytes_out,
        };
        match &ctx.route_stats {
            Some(stats) => stats.record_metrics(&record),
            None => crate::metrics::request(&record),
        }
    }
}

fn micros(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
