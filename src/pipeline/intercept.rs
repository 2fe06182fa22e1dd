//! Requests that came through the forward listener's `CONNECT` tunnels: what the listener
//! learned at `CONNECT` (the host, the caller), and the IMS token endpoint it answers itself.

use super::ctx::Ctx;
use crate::base::headers::X_PROXY_KEY;
use crate::body::{first_frame, BodyError, ByteCount, Inbound, Limit, Observed, Paced};
use crate::state::{Caller, Snapshot};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};

/// IMS's token requests are a few hundred bytes; this is generous.
const MAX_IMS_BODY: u64 = 64 * 1024;

/// Put in a request's extensions by the forward listener.
#[derive(Debug, Clone)]
pub struct Intercepted {
    /// The host the tunnel was opened to, as the client named it.
    pub host: String,
    /// Who authenticated at `CONNECT` (`Proxy-Authorization`), when callers are configured.
    pub caller: Option<Caller>,
    /// The host is a credential's IMS: the proxy answers it itself.
    pub ims: bool,
}

/// The caller authenticated at `CONNECT`. A key sent again inside the tunnel is removed, as on
/// the reverse listener, so it is never forwarded.
pub fn caller(i: &Intercepted, headers: &mut http::HeaderMap) -> Option<Caller> {
    headers.remove(X_PROXY_KEY);
    i.caller.clone()
}

/// The IMS host a request is for, when the proxy answers it itself: an intercepted IMS host, or
/// `[ims_endpoint] prefix` on the reverse listener ("": the credentials' own IMS).
pub fn ims_host<B>(snap: &Snapshot, req: &Request<B>, i: Option<&Intercepted>) -> Option<String> {
    match i {
        Some(i) => i.ims.then(|| i.host.clone()),
        None => {
            let prefix = snap.ims_prefix.as_deref()?;
            let rest = req.uri().path().strip_prefix(prefix)?;
            rest.starts_with('/').then(String::new)
        }
    }
}

/// Answers an IMS request locally (never forwarded), for the credentials using that IMS host.
pub async fn ims(
    snap: &Snapshot,
    host: &str,
    req: Request<Inbound>,
    ctx: &Ctx,
) -> Result<Response<Full<Bytes>>, BodyError> {
    let (parts, body) = req.into_parts();
    // Under `[ims_endpoint] prefix`, the path IMS would see is what follows the prefix.
    let path = match (&snap.ims_prefix, host.is_empty()) {
        (Some(p), true) => parts.uri.path().strip_prefix(p.as_str()).unwrap_or("/"),
        _ => parts.uri.path(),
    };
    // Read here, not forwarded: under the same pace, first-byte deadline and failure record
    // as a forwarded body, and a cap of its own.
    let body = Paced::unwatched(body, snap.body_idle_timeout);
    let limit = Limit::new(Some(MAX_IMS_BODY), ctx.body_failure.clone());
    let body = Observed::new(body, (limit, ByteCount(ctx.bytes_in.clone())));
    let body = first_frame(body, snap.limits.header_read_timeout, &ctx.body_failure)
        .await?
        .collect()
        .await
        .map_err(|e| {
            ctx.body_failure
                .get()
                .unwrap_or_else(|| BodyError::Broken(e.to_string()))
        })?
        .to_bytes();
    // The credentials whose IMS this is first; then the rest, for SDKs that log in to Adobe's
    // own IMS host while the credentials point elsewhere (the sandbox, a stage IMS).
    let (mut credentials, others): (Vec<_>, Vec<_>) = snap
        .credentials
        .values()
        .cloned()
        .partition(|c| c.ims_host().is_some_and(|h| h.eq_ignore_ascii_case(host)));
    credentials.extend(others);
    Ok(crate::token::stub::answer(
        &credentials,
        &parts.method,
        path,
        parts.uri.query(),
        &parts.headers,
        &body,
    )
    .await)
}
