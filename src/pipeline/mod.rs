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
mod respond;
mod rewrite;
mod target;

pub use admit::Ambiguous;
pub use ctx::ConnMeta;
pub use intercept::Intercepted;
pub use respond::{error_response, ResponseBody};

use crate::state::Shared;
use ctx::Ctx;
use http::{Request, Response};
use http_body_util::Either;
use hyper::body::Incoming;

pub async fn handle(
    shared: &Shared,
    mut req: Request<Incoming>,
    conn: ConnMeta,
) -> Response<ResponseBody> {
    let snap = shared.snapshot.load_full();
    let mut ctx = Ctx::new(&req, conn);
    let intercepted = req.extensions_mut().remove::<Intercepted>(); // came through a CONNECT tunnel
    let result = async {
        admit::check(&snap.limits, &req)?; // framing, method, head size, path
        let caller = match &intercepted {
            Some(i) => intercept::caller(i, req.headers_mut()), // authenticated at CONNECT
            None => snap.callers.authenticate(req.headers_mut())?, // before routing: a stranger learns nothing
        };
        if let Some(host) = intercept::ims_host(&snap, &req, intercepted.as_ref()) {
            return Ok(intercept::ims(&snap, &host, req).await?.map(Either::Right));
            // IMS, answered here
        }
        let target = target::resolve(&snap, &req, caller, intercepted.as_ref(), &mut ctx).await?; // route, authorization, size, shaping
        let req = prime::body(req, &target, &snap.limits, snap.body_idle_timeout, &mut ctx).await?; // limit, pace, first frame
        let req = rewrite::request(req, &target, &ctx).await?; // token, identity headers, strip
        let resp = exchange::send(&snap, req, &target, &mut ctx).await?; // timeout, one 401 replay
        Ok::<_, respond::ProxyError>(rewrite::response(resp, &target, &ctx).map(Either::Left))
        // Location, ids
    }
    .await;
    respond::finish(result, ctx)
}
