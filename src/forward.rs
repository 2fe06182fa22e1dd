//! Request and response rewriting between client and upstream: hop-by-hop headers, the
//! client's own credentials, `X-Forwarded-*`, and `Location` headers that point back into
//! the upstream.

use crate::routes::Route;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
pub const X_GW_IMS_ORG_ID: HeaderName = HeaderName::from_static("x-gw-ims-org-id");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// RFC 9110 §7.6.1 hop-by-hop headers, plus the proxy-authentication pair.
static HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
];

/// What a client may not choose for itself: the proxy supplies the identity.
static CLIENT_CREDENTIALS: [HeaderName; 5] = [
    header::AUTHORIZATION,
    X_API_KEY,
    X_GW_IMS_ORG_ID,
    header::PROXY_AUTHORIZATION,
    header::COOKIE,
];

/// Removes hop-by-hop headers, including every header the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(header::CONNECTION) {
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
    for h in &HOP_BY_HOP {
        headers.remove(h);
    }
}

/// Who and what the client was, for the `X-Forwarded-*` headers.
pub struct ClientInfo<'a> {
    pub ip: std::net::IpAddr,
    pub proto: &'static str,
    pub host: Option<&'a HeaderValue>,
}

/// Rewrites a client's request headers into the upstream's, in place.
pub fn rewrite_request_headers(
    headers: &mut HeaderMap,
    route: &Route,
    bearer: HeaderValue,
    client: &ClientInfo<'_>,
) {
    let forwarded_host = client.host.cloned();
    strip_hop_by_hop(headers);
    for h in &CLIENT_CREDENTIALS {
        headers.remove(h);
    }
    // The client's Host named the proxy; the outbound client sets the upstream's.
    headers.remove(header::HOST);
    // hyper answers `Expect: 100-continue` on the inbound side already.
    headers.remove(header::EXPECT);

    let xff = append_forwarded_for(headers, client.ip);
    headers.insert(X_FORWARDED_FOR, xff);
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(client.proto));
    if let Some(h) = forwarded_host {
        headers.insert(X_FORWARDED_HOST, h);
    }

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
    let mut prior: Vec<&str> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    let ip = ip.to_string();
    prior.push(&ip);
    HeaderValue::from_str(&prior.join(", ")).unwrap_or_else(|_| {
        HeaderValue::from_str(&ip).unwrap_or(HeaderValue::from_static("unknown"))
    })
}

/// Rewrites an upstream response's headers in place: hop-by-hop removed, `Location` kept on
/// the proxy when it points into this route's upstream.
pub fn rewrite_response_headers(headers: &mut HeaderMap, route: &Route) {
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

/// The client's `x-request-id` when it is a sane token, or a new random one.
pub fn request_id(headers: &HeaderMap) -> HeaderValue {
    if let Some(v) = headers.get(&X_REQUEST_ID) {
        let b = v.as_bytes();
        if !b.is_empty() && b.len() <= 128 && b.iter().all(|c| c.is_ascii_graphic()) {
            return v.clone();
        }
    }
    let n: u128 = rand::random();
    let s = format!("{n:032x}");
    HeaderValue::from_str(&s).unwrap_or(HeaderValue::from_static("unknown"))
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
