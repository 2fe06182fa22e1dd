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

pub struct AccessLog {
    ctx: Ctx,
    status: u16,
    /// Whose fault a failed request was ("caller", "upstream", "ims").
    fault: Option<&'static str>,
    bytes_out: u64,
}

impl AccessLog {
    pub fn new(ctx: Ctx, status: u16, fault: Option<&'static str>) -> Self {
        AccessLog {
            ctx,
            status,
            fault,
            bytes_out: 0,
        }
    }
}

impl Observer for AccessLog {
    #[inline]
    fn on_frame(&mut self, frame: &Frame<Bytes>) -> Result<(), BoxError> {
        if let Some(d) = frame.data_ref() {
            self.bytes_out += d.len() as u64;
        }
        Ok(())
    }

    fn on_end(&mut self, completed: bool) {
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
