//! Stages 5 and 7, rewrite: the request as the upstream gets it (the credential's token and
//! identity headers in, the caller's credentials and hop-by-hop headers out, `X-Forwarded-*`)
//! and the response as the caller gets it (hop-by-hop headers out, `Location` kept on the
//! proxy, request ids). Trailers are headers too: the caller's are dropped
//! ([`CallerTrailers`]), the upstream's lose their hop-by-hop names ([`UpstreamTrailers`]).

use super::ctx::{Ctx, IpText};
use super::target::Target;
use crate::base::headers::{
    CALLER_CREDENTIALS, HOP_BY_HOP, X_API_KEY, X_FORWARDED_FOR, X_FORWARDED_HOST,
    X_FORWARDED_PROTO, X_GW_IMS_ORG_ID, X_REQUEST_ID, X_UPSTREAM_REQUEST_ID,
};
use crate::body::Observer;
use crate::state::Route;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, Version};

/// No token to send: IMS's fault (or its configuration's), never the caller's.
#[derive(Debug, thiserror::Error)]
#[error("no access token for credential {credential:?}: {reason}")]
pub struct TokenUnavailable {
    pub credential: String,
    pub reason: String,
}

/// The request as the upstream gets it.
pub async fn request<B>(
    req: Request<B>,
    target: &Target<'_>,
    ctx: &Ctx,
) -> Result<Request<B>, TokenUnavailable> {
    let route = target.route;
    let bearer = route
        .credential
        .current()
        .await
        .map_err(|e| TokenUnavailable {
            credential: route.credential.name.clone(),
            reason: e.to_string(),
        })?;
    let (mut parts, body) = req.into_parts();
    let host = parts.headers.get(header::HOST).cloned().or_else(|| {
        parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    let forwarded = Forwarded {
        ip: ctx.conn.peer.ip(),
        proto: ctx.conn.proto,
        host: host.as_ref(),
    };
    rewrite_request_headers(&mut parts.headers, route, bearer, &forwarded);
    parts.headers.insert(X_REQUEST_ID, ctx.request_id.clone());
    ctx.trace.apply(&mut parts.headers);
    parts.uri = target.uri.clone();
    // The outbound connection decides h1 or h2 (ALPN); the caller's version does not carry over.
    parts.version = Version::HTTP_11;
    Ok(Request::from_parts(parts, body))
}

/// The response as the caller gets it.
pub fn response<B>(mut resp: Response<B>, target: &Target<'_>, ctx: &Ctx) -> Response<B> {
    rewrite_response_headers(resp.headers_mut(), target.route);
    if let Some(theirs) = resp.headers().get(X_REQUEST_ID) {
        if theirs != ctx.request_id {
            let theirs = theirs.clone();
            resp.headers_mut().insert(X_UPSTREAM_REQUEST_ID, theirs);
        }
    }
    resp.headers_mut()
        .insert(X_REQUEST_ID, ctx.request_id.clone());
    resp
}

/// The caller's request trailers are dropped, as nginx does. Stripping them like the head
/// would need a second list kept in step with the first, for no API that uses them: Adobe's
/// take none, and dropping cannot miss a name (every credential header was smuggled in
/// trailers once, on h1 and h2 alike).
pub struct CallerTrailers;

impl Observer for CallerTrailers {
    #[inline]
    fn on_trailers(&mut self, _: HeaderMap) -> Option<HeaderMap> {
        None
    }
}

/// The upstream's response trailers reach the caller without hop-by-hop names (h2 would refuse
/// the stream over them; h1 must not pass them on).
pub struct UpstreamTrailers;

impl Observer for UpstreamTrailers {
    fn on_trailers(&mut self, mut trailers: HeaderMap) -> Option<HeaderMap> {
        strip_hop_by_hop(&mut trailers);
        Some(trailers)
    }
}

/// Removes every header whose name `strip` says, in one pass over the names (a removal per
/// listed name cost a hash and a probe each, some twenty per request); allocates only when one
/// is found.
fn strip_where(headers: &mut HeaderMap, strip: impl Fn(&HeaderName) -> bool) {
    if !headers.keys().any(&strip) {
        return;
    }
    let names: Vec<HeaderName> = headers.keys().filter(|n| strip(n)).cloned().collect();
    for n in names {
        headers.remove(n);
    }
}

/// Removes the headers the caller's (or upstream's) `Connection` header names: hop-by-hop
/// too, whatever they are called.
fn strip_connection_named(headers: &mut HeaderMap) {
    if !headers.contains_key(header::CONNECTION) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
}

/// Removes hop-by-hop headers, including every header the `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    strip_connection_named(headers);
    strip_where(headers, |n| HOP_BY_HOP.contains(n));
}

/// Whether a caller's request header never reaches the upstream (beside `Host` and those its
/// `Connection` names):
/// - hop-by-hop headers;
/// - the caller's credentials: the proxy supplies the identity;
/// - `Forwarded` (RFC 7239): the proxy speaks `X-Forwarded-*` only, and a caller's would tell
///   the upstream a second, caller-chosen story of for/host/proto;
/// - `Trailer`: request trailers are dropped ([`CallerTrailers`]), nothing is left to announce;
/// - `Expect`: hyper answers `Expect: 100-continue` on the inbound side already;
/// - any name with an underscore, as nginx does by default (`underscores_in_headers off`):
///   some gateways read `_` as `-`, so `x_api_key` would be a second `x-api-key` that no list
///   names. Adobe's APIs use no such header.
fn stripped_from_requests(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name)
        || CALLER_CREDENTIALS.contains(name)
        || name == header::FORWARDED
        || name == header::TRAILER
        || name == header::EXPECT
        || name.as_str().as_bytes().contains(&b'_')
}

/// Who and what the caller's connection was, for the `X-Forwarded-*` headers.
pub struct Forwarded<'a> {
    pub ip: std::net::IpAddr,
    pub proto: &'static str,
    pub host: Option<&'a HeaderValue>,
}

/// Rewrites a client's request headers into the upstream's, in place.
pub(super) fn rewrite_request_headers(
    headers: &mut HeaderMap,
    route: &Route,
    bearer: HeaderValue,
    forwarded: &Forwarded<'_>,
) {
    let forwarded_host = forwarded.host.cloned();
    strip_connection_named(headers);
    // The client's Host named the proxy; the outbound client sets the upstream's.
    headers.remove(header::HOST);
    strip_where(headers, stripped_from_requests);

    let xff = append_forwarded_for(headers, forwarded.ip);
    headers.insert(X_FORWARDED_FOR, xff);
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(forwarded.proto));
    if let Some(h) = forwarded_host {
        headers.insert(X_FORWARDED_HOST, h);
    }

    identity_headers(headers, route, bearer);
}

/// The route's static headers, then the credential's token and identity: what every request
/// to the route's upstream carries, `check --online`'s probe included.
pub(super) fn identity_headers(headers: &mut HeaderMap, route: &Route, bearer: HeaderValue) {
    for (name, value) in &route.headers {
        headers.insert(name.clone(), value.clone());
    }
    headers.insert(header::AUTHORIZATION, bearer);
    headers.insert(X_API_KEY, route.credential.api_key.clone());
    if route.send_org_id {
        if let Some(org) = &route.credential.org_id {
            headers.insert(X_GW_IMS_ORG_ID, org.clone());
        }
    }
}

fn append_forwarded_for(headers: &HeaderMap, ip: std::net::IpAddr) -> HeaderValue {
    let ip = IpText::new(ip);
    let mut prior = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .peekable();
    // The common case, no proxy before this one: the address alone, one allocation.
    if prior.peek().is_none() {
        return HeaderValue::from_str(ip.as_str()).unwrap_or(HeaderValue::from_static("unknown"));
    }
    let mut list: Vec<&str> = prior.collect();
    list.push(ip.as_str());
    HeaderValue::from_str(&list.join(", ")).unwrap_or_else(|_| {
        HeaderValue::from_str(ip.as_str()).unwrap_or(HeaderValue::from_static("unknown"))
    })
}

/// Rewrites an upstream response's headers in place: hop-by-hop removed, `Location` kept on
/// the proxy when it points into this route's upstream.
fn rewrite_response_headers(headers: &mut HeaderMap, route: &Route) {
    strip_hop_by_hop(headers);
    if let Some(loc) = headers.get(header::LOCATION) {
        if let Some(new) = loc.to_str().ok().and_then(|l| rewrite_location(l, route)) {
            if let Ok(v) = HeaderValue::from_str(&new) {
                headers.insert(header::LOCATION, v);
            }
        }
    }
}

/// Maps a `Location` into the upstream (absolute, or root-relative under the base path) to the
/// same place under the proxy's prefix. Anything else is left alone.
pub fn rewrite_location(location: &str, route: &Route) -> Option<String> {
    let up = &route.upstream;
    let path = if location.starts_with('/') && !location.starts_with("//") {
        location
    } else {
        let rest = location
            .strip_prefix(up.scheme.as_str())?
            .strip_prefix("://")?;
        let rest = strip_prefix_ignore_case(rest, up.authority.as_str())?;
        if rest.is_empty() {
            "/"
        } else if rest.starts_with(['/', '?']) {
            rest
        } else {
            return None;
        }
    };
    let under = path.strip_prefix(up.base_path.as_str())?;
    if !(under.is_empty() || under.starts_with(['/', '?', '#'])) {
        return None;
    }
    let mut out = String::with_capacity(route.prefix.len() + under.len() + 1);
    out.push_str(&route.prefix);
    if out.is_empty() && !under.starts_with('/') {
        out.push('/');
    }
    out.push_str(under);
    Some(out)
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    (s.len() >= prefix.len()
        && s.is_char_boundary(prefix.len())
        && s[..prefix.len()].eq_ignore_ascii_case(prefix))
    .then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_hop_by_hop_headers_and_those_connection_names() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, X-Secret-Hop"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert("x-kept", HeaderValue::from_static("yes"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }
}
