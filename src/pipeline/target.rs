//! Stage 3, target: which route serves the request, whether the caller may use it, whether it
//! fits the route's size and shaping limits, and the upstream URI it goes to. Every refusal
//! here is the caller's (or, for shaping, the caller's traffic's) doing.

use super::ctx::Ctx;
use super::intercept::Intercepted;
use crate::state::{AccessError, Caller, Refused, RefusedBy, Route, Snapshot};
use bytes::Bytes;
use http::uri::{PathAndQuery, Uri};
use http::{HeaderMap, Request, Version};
use std::time::Duration;

/// Where the request goes.
pub struct Target<'s> {
    pub route: &'s Route,
    pub uri: Uri,
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// A reverse proxy receives origin-form targets; an absolute-form one is a client using
    /// us as a forward proxy, which would make this an open proxy.
    #[error("absolute-form request targets are refused: ims-proxy is not a forward proxy")]
    AbsoluteForm,
    #[error("no route matches {0}")]
    NoRoute(String),
    #[error(transparent)]
    Forbidden(#[from] AccessError),
    /// The declared `Content-Length` is over the route's limit: refused before a byte is read.
    #[error("request body exceeds this route's limit of {limit} bytes")]
    DeclaredTooLarge { limit: u64 },
    #[error("route {route} is over its configured rate or concurrency limit; retry after {} s", retry_after.as_secs())]
    RateLimited {
        route: String,
        retry_after: Duration,
    },
    /// The credential's `quota`, shared by all its routes.
    #[error("credential {credential} is over its quota; retry after {} s", retry_after.as_secs())]
    QuotaExceeded {
        credential: String,
        retry_after: Duration,
    },
    /// The upstream answered 429 to this credential: nothing goes to it until its
    /// `Retry-After` has passed.
    #[error("{host} throttled credential {credential} (429); nothing is sent to it for {} s more", retry_after.as_secs())]
    CoolingDown {
        credential: String,
        host: String,
        retry_after: Duration,
    },
    #[error("dot-segments may not climb above the route's base path")]
    ClimbsAboveBase,
    #[error("request target: {0}")]
    Unusable(String),
}

impl TargetError {
    /// What the answer's `Retry-After` says, for the refusals that have one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            TargetError::RateLimited { retry_after, .. }
            | TargetError::QuotaExceeded { retry_after, .. }
            | TargetError::CoolingDown { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

pub async fn resolve<'s, B>(
    snap: &'s Snapshot,
    req: &Request<B>,
    caller: Option<Caller>,
    intercepted: Option<&Intercepted>,
    ctx: &mut Ctx,
) -> Result<Target<'s>, TargetError> {
    if req.version() < Version::HTTP_2 && req.uri().scheme().is_some() {
        return Err(TargetError::AbsoluteForm);
    }
    let path = req.uri().path();
    // Through the forward listener the request names Adobe's URL: matched by the routes'
    // public URLs instead of their prefixes.
    let found = match intercepted {
        Some(i) => snap.routes.find_public(&i.host, path),
        None => snap.routes.find(path),
    };
    let (route, rest) = found.ok_or_else(|| match intercepted {
        Some(i) => TargetError::NoRoute(format!("https://{}{path}", i.host)),
        None => TargetError::NoRoute(path.to_string()),
    })?;
    ctx.route = Some(route.shared_label.clone());
    ctx.credential = Some(route.credential.clone());
    ctx.route_stats = Some(route.stats.clone());
    if let Some(who) = caller {
        ctx.caller = Some(who.name.clone());
        snap.callers.authorize(&who, &route.prefix)?;
    }
    check_declared_length(req.headers(), route.max_body_size)?;
    let cool_down = route.cool_down.as_ref().map(|c| &c.key);
    match snap.shaping.get(&route.prefix) {
        Some(limiter) => {
            let permit = limiter
                .acquire(&snap.fleet, cool_down)
                .await
                .map_err(|r| refused(route, r, ctx))?;
            ctx.permit = Some(permit);
        }
        None => {
            if let Some(remaining) = cool_down.and_then(|k| snap.fleet.cooldown(k)) {
                return Err(refused(
                    route,
                    Refused::new(RefusedBy::CoolDown, remaining),
                    ctx,
                ));
            }
        }
    }
    let path_and_query = route
        .upstream_path_and_query(rest, req.uri().query())
        .ok_or(TargetError::ClimbsAboveBase)?;
    let path_and_query = PathAndQuery::from_maybe_shared(Bytes::from(path_and_query))
        .map_err(|e| TargetError::Unusable(e.to_string()))?;
    let uri = Uri::builder()
        .scheme(route.upstream.scheme.clone())
        .authority(route.upstream.authority.clone())
        .path_and_query(path_and_query)
        .build()
        .map_err(|e| TargetError::Unusable(e.to_string()))?;
    Ok(Target { route, uri })
}

fn refused(route: &Route, r: Refused, ctx: &mut Ctx) -> TargetError {
    let credential = &route.credential.name;
    match r.by {
        RefusedBy::Route => TargetError::RateLimited {
            route: route.label().to_string(),
            retry_after: r.retry_after,
        },
        RefusedBy::Quota => {
            crate::metrics::quota_limited(credential);
            TargetError::QuotaExceeded {
                credential: credential.clone(),
                retry_after: r.retry_after,
            }
        }
        RefusedBy::CoolDown => {
            crate::metrics::cool_down_refused(credential);
            ctx.cool_down = Some("local");
            TargetError::CoolingDown {
                credential: credential.clone(),
                host: route.upstream.authority.host().to_string(),
                retry_after: r.retry_after,
            }
        }
    }
}

/// Refuses a request whose `Content-Length` already exceeds `limit`.
fn check_declared_length(headers: &HeaderMap, limit: Option<u64>) -> Result<(), TargetError> {
    let Some(limit) = limit else { return Ok(()) };
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match declared {
        Some(n) if n > limit => Err(TargetError::DeclaredTooLarge { limit }),
        _ => Ok(()),
    }
}
