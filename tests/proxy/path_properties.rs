//! Property: whatever path a client sends, the upstream path the proxy builds either is refused
//! or stays under the route's base path, however the upstream might decode and normalise it.

use ims_proxy::config::Config;
use ims_proxy::Snapshot;
use proptest::prelude::*;

fn snapshot() -> Snapshot {
    let toml = r#"
[credentials.cred]
type = "static"
access_token = "t"
client_id = "c"

[[routes]]
prefix = "/api"
upstream = "http://127.0.0.1:1/base/dir"
credential = "cred"
"#;
    Snapshot::build(&Config::from_toml(toml).expect("config"), None).expect("snapshot")
}

/// What an upstream that percent-decodes, treats `\` as `/` and resolves dot-segments (RFC 3986
/// §5.2.4) would make of `path`: its segments.
fn resolved_segments(path: &str) -> Vec<Vec<u8>> {
    let decoded: Vec<u8> = percent_encoding::percent_decode_str(path).collect();
    let mut out: Vec<Vec<u8>> = Vec::new();
    for seg in decoded.split(|b| *b == b'/' || *b == b'\\') {
        match seg {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            s => out.push(s.to_vec()),
        }
    }
    out
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("..".to_string()),
        Just(".".to_string()),
        Just("".to_string()),
        Just("%2e%2e".to_string()),
        Just("%2E.".to_string()),
        Just(".%2e".to_string()),
        Just("..%2f..".to_string()),
        Just("%2F".to_string()),
        Just("..\\..".to_string()),
        Just("%5c..".to_string()),
        "[a-z0-9]{1,6}",
        "[a-zA-Z0-9._~%-]{1,8}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn the_upstream_path_never_leaves_the_base(segs in prop::collection::vec(segment(), 0..12)) {
        let snap = snapshot();
        let path = format!("/api/{}", segs.join("/"));
        let (route, rest) = snap.routes.find(&path).expect("the /api route matches");
        if let Some(up) = route.upstream_path_and_query(rest, None) {
            let base = resolved_segments("/base/dir");
            let got = resolved_segments(&up);
            prop_assert!(got.starts_with(&base), "{path} -> {up} escapes the base");
            prop_assert!(up.starts_with("/base/dir"), "{path} -> {up}");
        }
    }

    #[test]
    fn paths_without_dot_segments_are_always_forwarded_byte_for_byte(
        segs in prop::collection::vec("[a-zA-Z0-9_~-]{0,8}", 0..8),
        query in prop::option::of("[a-z0-9=&]{0,12}"),
    ) {
        let snap = snapshot();
        let path = format!("/api/{}", segs.join("/"));
        let (route, rest) = snap.routes.find(&path).expect("match");
        let up = route.upstream_path_and_query(rest, query.as_deref());
        let expected = match &query {
            Some(q) => format!("/base/dir{rest}?{q}"),
            None => format!("/base/dir{rest}"),
        };
        prop_assert_eq!(up, Some(expected));
    }
}
