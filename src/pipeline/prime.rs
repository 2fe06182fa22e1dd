//! Stage 4, prime the body: arm the route's body limit, its pace and the byte count, and read the first
//! frame before anything is sent upstream, so a body broken from its first byte is refused
//! with nothing forwarded. Later breakage aborts the upstream request mid-body, which an
//! upstream must treat as an incomplete request.

use super::ctx::Ctx;
use super::rewrite::CallerTrailers;
use super::target::Target;
use crate::body::{first_frame, BodyError, ByteCount, Inbound, Limit, Observed, Paced, Primed};
use crate::config::LimitsConfig;
use http::Request;
use std::time::Duration;

/// The caller's body as it is forwarded: paced, limited, counted, its trailers dropped.
pub type CallerBody = Primed<Observed<Paced<Inbound>, (Limit, (ByteCount, CallerTrailers))>>;

pub async fn body(
    req: Request<Inbound>,
    target: &Target<'_>,
    limits: &LimitsConfig,
    body_idle_timeout: Duration,
    ctx: &mut Ctx,
) -> Result<Request<CallerBody>, BodyError> {
    let (parts, body) = req.into_parts();
    let (body, progress) = Paced::new(body, body_idle_timeout);
    ctx.upload = Some(progress);
    let limit = Limit::new(target.route.max_body_size, ctx.body_failure.clone());
    let count = ByteCount(ctx.bytes_in.clone());
    let body = Observed::new(body, (limit, (count, CallerTrailers)));
    let body = first_frame(body, limits.header_read_timeout, &ctx.body_failure).await?;
    Ok(Request::from_parts(parts, body))
}
