//! Header names the proxy sets, strips or reads, named once.

use http::header::{self, HeaderName};

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The upstream's own request id, when it differs from the one the caller is given.
pub const X_UPSTREAM_REQUEST_ID: HeaderName = HeaderName::from_static("x-upstream-request-id");
pub const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
pub const X_GW_IMS_ORG_ID: HeaderName = HeaderName::from_static("x-gw-ims-org-id");
/// Where a caller presents its `[[clients]]` key.
pub const X_PROXY_KEY: HeaderName = HeaderName::from_static("x-proxy-key");
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// W3C Trace Context.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// RFC 9110 §7.6.1 hop-by-hop headers, plus the proxy-authentication pair.
pub static HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
];

/// What a caller may not choose for itself: the proxy supplies the identity.
pub static CALLER_CREDENTIALS: [HeaderName; 5] = [
    header::AUTHORIZATION,
    X_API_KEY,
    X_GW_IMS_ORG_ID,
    header::PROXY_AUTHORIZATION,
    header::COOKIE,
];

/// Headers a route may not set: the proxy sets or strips them. Derived from the lists above
/// (every hop-by-hop header, every caller credential) plus the framing and addressing the
/// proxy computes itself, so that a header added to either list is reserved with it.
pub fn reserved(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name)
        || CALLER_CREDENTIALS.contains(name)
        || [header::HOST, header::CONTENT_LENGTH].contains(name)
}
