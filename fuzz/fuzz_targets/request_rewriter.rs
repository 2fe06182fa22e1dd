//! Any request target and headers through routing, dot-segment refusal, path joining, the
//! inbound checks, access control and header rewriting: never a panic, and a forwarded path
//! always starts with the route's base path.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn snapshot() -> &'static ims_proxy::Snapshot {
    static S: OnceLock<ims_proxy::Snapshot> = OnceLock::new();
    S.get_or_init(|| {
        let toml = r#"
[credentials.cred]
type = "static"
access_token = "t"
client_id = "c"
org_id = "O@AdobeOrg"

[[routes]]
prefix = "/api"
upstream = "https://example.com/base"
credential = "cred"
org_id_header = true

[[clients]]
name = "fuzz"
key = "fuzz-client-key-0123456789"
routes = ["/api"]
"#;
        let config = ims_proxy::config::Config::from_toml(toml).expect("fixed config");
        ims_proxy::Snapshot::build(&config, None).expect("fixed snapshot")
    })
}

fuzz_target!(|data: &[u8]| {
    // Layout: target \n header-name \0 header-value \n ... (anything malformed is skipped).
    let mut lines = data.split(|b| *b == b'\n');
    let Some(target) = lines.next() else { return };
    let Ok(uri) = http::Uri::try_from(target) else { return };
    let mut headers = HeaderMap::new();
    for line in lines {
        let mut kv = line.splitn(2, |b| *b == 0);
        let (Some(k), Some(v)) = (kv.next(), kv.next()) else { continue };
        if let (Ok(k), Ok(v)) = (HeaderName::from_bytes(k), HeaderValue::from_bytes(v)) {
            headers.append(k, v);
        }
    }
    let snap = snapshot();
    let mut req = http::Request::new(());
    *req.uri_mut() = uri.clone();
    *req.headers_mut() = headers.clone();
    let _ = ims_proxy::fuzzing::admit(snap, &req);
    let _ = snap.callers.authenticate(&mut headers);
    let Some((route, rest)) = snap.routes.find(uri.path()) else { return };
    if let Some(p) = route.upstream_path_and_query(rest, uri.query()) {
        assert!(p.starts_with(&route.upstream.base_path), "{p}");
    }
    ims_proxy::fuzzing::rewrite_request_headers(&mut headers, route);
    assert!(headers.get("x-proxy-key").is_none());
    let _ = ims_proxy::fuzzing::rewrite_location(&String::from_utf8_lossy(target), route);
});
