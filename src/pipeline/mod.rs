//! The request path: named stages over one per-request [`Ctx`], in order. Each stage has its
//! own file and its own error type, and the type says whose fault a refusal is; [`respond`]
//! turns any of them into the answer, once.

mod access_log;
mod admit;
mod ctx;
mod exchange;
#[cfg(fuzzing)]
pub mod fuzzing;
mod intercept;
mod prime;
pub mod probe;
mod respond;
mod rewrite;
pub mod span;
mod target;
mod trace;

pub use admit::{Ambiguous, Oversized};
pub use ctx::ConnMeta;
pub use intercept::Intercepted;
pub use respond::{error_response, site_refusal, ResponseBody};

use crate::body::Inbound;
use crate::outbound::Affinity;
use crate::state::Shared;
use ctx::Ctx;
use http::{Request, Response};
use http_body_util::Either;
use std::sync::Arc;

/// One request, from the listener to the answer: the stages in order over one [`Ctx`].
/// `affinity`: the caller connection's upstream connection slot, for HTTP/1.1 callers.
pub async fn handle(
    shared: &Shared,
    mut req: Request<Inbound>,
    conn: ConnMeta,
    affinity: Option<Arc<Affinity>>,
) -> Response<ResponseBody> {
    let snap = shared.snapshot.load_full();
    let mut ctx = Ctx::new(&req, conn, affinity, span::recording());
    let intercepted = req.extensions_mut().remove::<Intercepted>();
    let result = async {
        // Framing, method, head size, path.
        admit::check(&snap.limits, &req)?;
        // A web page's request (DNS rebinding, another site's form or fetch): refused before
        // anything looks at who sent it. In a tunnel the `CONNECT` host decided where it goes.
        snap.sites
            .check(req.uri(), req.headers(), intercepted.is_none())?;
        // Before routing, so that a stranger learns nothing; through a tunnel, known at CONNECT.
        let caller = match &intercepted {
            Some(i) => intercept::caller(i, req.headers_mut()),
            None => snap.callers.authenticate(req.headers_mut())?,
        };
        // IMS's token endpoints (an intercepted IMS host, or `[ims_endpoint]`): answered here.
        if let Some(host) = intercept::ims_host(&snap, &req, intercepted.as_ref()) {
            return Ok(intercept::ims(&snap, &host, req, &ctx)
                .await?
                .map(Either::Right));
        }
        // Route (by prefix, or by public URL through a tunnel), authorization, size, shaping.
        let target = target::resolve(&snap, &req, caller, intercepted.as_ref(), &mut ctx).await?;
        // Body limit and pace armed, first frame read before anything is sent.
        let req = prime::body(req, &target, &snap.limits, snap.body_idle_timeout, &mut ctx).await?;
        // The credential's token and identity headers in; the caller's credentials out.
        let req = rewrite::request(req, &target, &ctx).await?;
        // Upstream under the response-head deadline; one replay after a 401.
        let resp = exchange::send(&snap, req, &target, &mut ctx).await?;
        // Hop-by-hop headers out, `Location` kept on the proxy, request ids.
        Ok::<_, respond::ProxyError>(rewrite::response(resp, &target, &ctx).map(Either::Left))
    }
    .await;
    respond::finish(result, ctx)
}
