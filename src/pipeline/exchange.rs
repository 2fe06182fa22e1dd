//! Stage 6, exchange: send the request upstream under the request timeout (for the response
//! head; bodies stream without a deadline), and when an IMS-managed token is rejected with 401,
//! send it once more with a new token if its body was small enough to keep.

use super::ctx::Ctx;
use super::prime::CallerBody;
use super::target::Target;
use crate::base::error::{cause_ref, error_chain, BoxError};
use crate::base::peer::peer_key;
use crate::body::{keep, BodyError, KeptBody, Paced, Progress};
use crate::outbound::{
    Affinity, Answer, CallerKey, CallerShare, OutboundError, RequestBody, UpstreamBusy,
};
use crate::state::{Snapshot, DEFAULT_COOL_DOWN};
use crate::token::Credential;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The upstream's fault (or the network's): no response head.
    #[error("upstream unreachable: {0}")]
    Unreachable(String),
    #[error("upstream did not answer within {0:?}")]
    Timeout(Duration),
    #[error("upstream stopped reading the request body for {0:?}")]
    SendStalled(Duration),
    /// The proxy's own circuit breaker: the upstream has as many connections as it may.
    #[error(transparent)]
    Busy(UpstreamBusy),
    /// The caller has as many requests in flight to the upstream as its share allows: its
    /// own traffic's doing, not the upstream's.
    #[error(transparent)]
    CallerShare(CallerShare),
    /// The exchange failed because the caller's body did: the caller's fault, not the upstream's.
    #[error(transparent)]
    CallerBody(BodyError),
    /// The upstream's response head frames its body in a way two parsers could read
    /// differently, or that the proxy could pass on only by re-framing it: refused before the
    /// caller sees a byte, so no caller gets a body that looks complete but is not.
    #[error("the upstream's response framing is refused: {0}")]
    BadFraming(&'static str),
    /// The proxy removes `Upgrade` from every request, so a 101 was never asked for.
    #[error("the upstream switched protocols (101) although no upgrade was asked for")]
    UnaskedUpgrade,
}

/// What a replay needs: the head as sent, and the body kept while it streamed.
struct Replay {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    kept: KeptBody,
}

pub async fn send(
    snap: &Snapshot,
    req: Request<CallerBody>,
    target: &Target<'_>,
    ctx: &mut Ctx,
) -> Result<Response<Paced<Incoming>>, ExchangeError> {
    let credential = &target.route.credential;
    let caller = match &ctx.caller {
        Some(name) => CallerKey::Client(name.clone()),
        None => CallerKey::Address(peer_key(ctx.conn.peer.ip())),
    };
    // Before the body is touched: a request refused here loses nothing.
    ctx.share = snap
        .outbound
        .share(req.uri(), caller)
        .await
        .map_err(ExchangeError::CallerShare)?;
    let (parts, body) = req.into_parts();
    let stale = parts.headers.get(http::header::AUTHORIZATION).cloned();
    let (body, replay) = match replay_limit(credential, &parts.headers) {
        Some(limit) => {
            let (tee, kept) = keep(body, limit);
            let replay = Replay {
                method: parts.method.clone(),
                uri: parts.uri.clone(),
                headers: parts.headers.clone(),
                kept,
            };
            (box_body(tee), Some(replay))
        }
        None => (box_body(body), None),
    };
    let resp = match once(snap, Request::from_parts(parts, body), ctx).await {
        Err(ExchangeError::Unreachable(detail)) => {
            return Err(match ctx.body_failure.get() {
                Some(b) => ExchangeError::CallerBody(b),
                None => ExchangeError::Unreachable(detail),
            })
        }
        other => other?,
    };
    let resp = match stale {
        Some(stale) if resp.status() == StatusCode::UNAUTHORIZED && credential.is_managed() => {
            replay_after_401(snap, resp, replay, stale, credential, ctx).await?
        }
        _ => resp,
    };
    if resp.status() == StatusCode::TOO_MANY_REQUESTS {
        cool_down_after_429(snap, resp.headers(), target, ctx);
    }
    Ok(resp)
}

/// The upstream throttled this credential: until its `Retry-After` has passed, the credential's
/// requests to that host are answered here, so callers stop prolonging the throttle. The 429
/// itself passes through untouched.
fn cool_down_after_429(snap: &Snapshot, headers: &HeaderMap, target: &Target<'_>, ctx: &mut Ctx) {
    let Some(cool_down) = &target.route.cool_down else {
        return;
    };
    let asked = headers
        .get(http::header::RETRY_AFTER)
        .and_then(|v| retry_after(v, SystemTime::now()));
    let length = asked.unwrap_or(DEFAULT_COOL_DOWN).min(cool_down.max);
    if length.is_zero() {
        return;
    }
    snap.fleet.start_cooldown(&cool_down.key, length);
    crate::metrics::cool_down_started(&target.route.credential.name, &cool_down.key.host);
    ctx.cool_down = Some("started");
    tracing::warn!(
        credential = %target.route.credential.name,
        host = %cool_down.key.host,
        seconds = length.as_secs_f64(),
        retry_after_given = asked.is_some(),
        "upstream answered 429: its requests are answered locally until the cool-down ends"
    );
}

/// `Retry-After` (RFC 9110 §10.2.3): whole seconds, or an HTTP date (a date already past is
/// zero). `None` when it is neither.
pub fn retry_after(value: &HeaderValue, now: SystemTime) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        // More digits than a u64 holds is still "a long time": the cap applies.
        return Some(Duration::from_secs(text.parse().unwrap_or(u64::MAX)));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The upstream rejected the token: send the request again with a new one, once, when its body
/// was kept; otherwise pass the 401 on and refresh the token for the next request.
async fn replay_after_401(
    snap: &Snapshot,
    resp: Response<Paced<Incoming>>,
    replay: Option<Replay>,
    stale: HeaderValue,
    credential: &Arc<Credential>,
    ctx: &mut Ctx,
) -> Result<Response<Paced<Incoming>>, ExchangeError> {
    let Some((r, body)) = replay.and_then(|r| {
        let body = r.kept.replayable()?;
        Some((r, body))
    }) else {
        refresh_in_background(credential, stale);
        return Ok(resp);
    };
    let Ok(fresh) = credential.refresh_after_401(&stale).await else {
        return Ok(resp);
    };
    tracing::info!(credential = %credential.name, "replaying once with a new token after an upstream 401");
    crate::metrics::upstream_401_replay(&credential.name);
    let mut headers = r.headers;
    headers.insert(http::header::AUTHORIZATION, fresh);
    let mut again = Request::new(box_body(Full::new(body)));
    *again.method_mut() = r.method;
    *again.uri_mut() = r.uri;
    *again.headers_mut() = headers;
    drop(resp);
    ctx.replayed = true;
    once(snap, again, ctx).await
}

/// Too large to replay: the 401 passes through, but the next request should not meet the
/// same stale token.
fn refresh_in_background(credential: &Arc<Credential>, stale: HeaderValue) {
    let credential = credential.clone();
    tokio::spawn(async move {
        let _ = credential.refresh_after_401(&stale).await;
    });
}

/// How much of the request body to keep for a replay after a 401, or `None` when the body is
/// known to be too large or the token cannot be refreshed anyway.
fn replay_limit(credential: &Credential, headers: &HeaderMap) -> Option<usize> {
    if !credential.is_managed() {
        return None;
    }
    let limit = usize::try_from(credential.replay_body_limit).unwrap_or(usize::MAX);
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    match declared {
        Some(n) if n > credential.replay_body_limit => None,
        _ => Some(limit),
    }
}

/// One upstream exchange. While the caller's body is being sent there is no deadline, only its
/// pace (an upload takes as long as it takes while bytes flow); the request timeout for the
/// response head starts once the body has been sent (Envoy's rule). The response body is paced
/// too. `upload` is the first attempt's body; a replay sends bytes already in hand.
async fn once(
    snap: &Snapshot,
    req: Request<RequestBody>,
    ctx: &mut Ctx,
) -> Result<Response<Paced<Incoming>>, ExchangeError> {
    let sent = Instant::now();
    let upload = ctx.upload.take();
    let result = head(snap, req, upload.as_deref(), ctx.affinity.as_ref()).await;
    ctx.upstream_time = Some(ctx.upstream_time.unwrap_or_default() + sent.elapsed());
    match result? {
        Err(e) => Err(
            match (cause_ref::<BodyError>(&e), cause_ref::<UpstreamBusy>(&e)) {
                (Some(b), _) => ExchangeError::CallerBody(b.clone()),
                (None, Some(busy)) => ExchangeError::Busy(busy.clone()),
                (None, None) => ExchangeError::Unreachable(error_chain(&e)),
            },
        ),
        Ok(answer) => {
            if let Err(e) = check_response(answer.response()) {
                // Its connection is closed rather than reused: the body may already have
                // been read whole, and what the upstream sends next cannot be trusted to
                // answer the next request (response-queue poisoning).
                answer.refuse();
                return Err(e);
            }
            let mut resp = answer.keep();
            // An HTTP/1.0 upstream's version must not leak to the caller: hyper frames the
            // response for the caller's own connection.
            *resp.version_mut() = http::Version::HTTP_11;
            Ok(resp.map(|body| Paced::unwatched(body, snap.body_idle_timeout)))
        }
    }
}

type Head<'a> = Result<Answer<'a>, OutboundError>;

/// Waits for the response head: unbounded but paced while `upload` is being sent, then within
/// the request timeout. `affinity`: the caller connection's own upstream connection.
async fn head<'a>(
    snap: &'a Snapshot,
    req: Request<RequestBody>,
    upload: Option<&Progress>,
    affinity: Option<&'a Arc<Affinity>>,
) -> Result<Head<'a>, ExchangeError> {
    let response = snap.outbound.request(req, affinity);
    tokio::pin!(response);
    if let Some(upload) = upload {
        tokio::select! {
            // An upstream may answer before it has read the whole body (a 4xx, say).
            r = &mut response => return Ok(r),
            _ = upload.sent() => {}
            _ = upload.reader_stalled(snap.body_idle_timeout) => {
                return Err(ExchangeError::SendStalled(snap.body_idle_timeout));
            }
        }
    }
    tokio::time::timeout(snap.request_timeout, response)
        .await
        .map_err(|_| ExchangeError::Timeout(snap.request_timeout))
}

/// RFC 9112 §6.3 lets a client read `Transfer-Encoding` over `Content-Length`, which is what
/// hyper does; but the proxy strips `Transfer-Encoding` (hop-by-hop) and would pass the length
/// on beside a body of another size. nginx answers 502 to both this and codings other than
/// `chunked` (hyper would hand their bytes over undecoded, as if identity); so does the proxy.
/// Two hash lookups on the common path.
fn check_response<B>(resp: &Response<B>) -> Result<(), ExchangeError> {
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        return Err(ExchangeError::UnaskedUpgrade);
    }
    let headers = resp.headers();
    let mut lengths = headers.get_all(http::header::CONTENT_LENGTH).iter();
    let length = lengths.next().is_some();
    if lengths.next().is_some() {
        return Err(ExchangeError::BadFraming(
            "more than one Content-Length header",
        ));
    }
    let mut codings = headers.get_all(http::header::TRANSFER_ENCODING).iter();
    match (codings.next(), codings.next()) {
        (None, _) => Ok(()),
        _ if length => Err(ExchangeError::BadFraming(
            "both Content-Length and Transfer-Encoding are present",
        )),
        (Some(v), None) if v.as_bytes().eq_ignore_ascii_case(b"chunked") => Ok(()),
        _ => Err(ExchangeError::BadFraming(
            "Transfer-Encoding other than exactly \"chunked\"",
        )),
    }
}

fn box_body<B>(body: B) -> RequestBody
where
    B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &'static str, now: SystemTime) -> Option<Duration> {
        retry_after(&HeaderValue::from_static(v), now)
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = httpdate::parse_http_date("Sun, 06 Dec 2026 16:00:00 GMT").unwrap();
        assert_eq!(parse("5", now), Some(Duration::from_secs(5)));
        assert_eq!(parse(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse("Sun, 06 Dec 2026 16:00:07 GMT", now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            parse("Sun, 06 Dec 2026 15:59:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(parse("-1", now), None);
        assert_eq!(parse("soon", now), None);
        assert_eq!(parse("", now), None);
    }
}
