//! The request path's pure parts, for the fuzz targets in `fuzz/` (built with `--cfg fuzzing`):
//! admission, then the request and `Location` rewriting for a route.

use super::{admit, rewrite};
use crate::state::{Route, Snapshot};
use http::{HeaderMap, HeaderValue, Request};

/// Whether the admit stage lets `req` through.
pub fn admit(snap: &Snapshot, req: &Request<()>) -> bool {
    admit::check(&snap.limits, req).is_ok()
}

/// The request headers as `route`'s upstream would get them, from a loopback caller.
pub fn rewrite_request_headers(headers: &mut HeaderMap, route: &Route) {
    let host = headers.get(http::header::HOST).cloned();
    let forwarded = rewrite::Forwarded {
        ip: std::net::IpAddr::from([127, 0, 0, 1]),
        proto: "http",
        host: host.as_ref(),
    };
    let bearer = HeaderValue::from_static("Bearer t");
    rewrite::rewrite_request_headers(headers, route, bearer, &forwarded);
}

pub fn rewrite_location(location: &str, route: &Route) -> Option<String> {
    rewrite::rewrite_location(location, route)
}
