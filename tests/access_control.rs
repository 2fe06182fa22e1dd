//! `[[clients]]`: who may use the proxy, and for which routes.
//!
//! A test binary of its own: it installs the process-wide log capture
//! (`support::logs::capture_trace`), which would log every other test's proxy at trace level.

use support::*;

const ALL_KEY: &str = "all-routes-key-0123456789abcdef";
const PRIVACY_KEY: &str = "privacy-only-key-0123456789abcd";

async fn guarded(up: &FakeUpstream) -> ims_proxy::Running {
    let clients = format!(
        r#"
[[clients]]
name = "batch-job"
key = "{ALL_KEY}"

[[clients]]
name = "gdpr-tool"
key_sha256 = "{}"
routes = ["/privacy"]
"#,
        sha256_hex(PRIVACY_KEY)
    );
    ProxyToml::new()
        .static_credential("cred")
        .route(Route::new("/campaign").upstream(format!("{}/c", up.url())))
        .route(Route::new("/privacy").upstream(format!("{}/p", up.url())))
        .append(&clients)
        .start()
        .await
}

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn get_with(p: &ims_proxy::Running, path: &str, header: Option<(&str, &str)>) -> Got {
    let headers: Vec<_> = header.into_iter().collect();
    Req::get(proxy_url(p, path)).headers(&headers).send().await
}

#[tokio::test]
async fn a_request_without_a_key_gets_401_and_nothing_is_forwarded() {
    let up = FakeUpstream::start().await;
    let p = guarded(&up).await;
    let got = get_with(&p, "/campaign/x", None).await;
    assert_eq!(got.status, 401);
    assert_eq!(got.json()["error_code"], "unauthorized");
    assert_eq!(
        got.header("www-authenticate"),
        Some("Bearer realm=\"ims-proxy\"")
    );
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn an_unknown_key_gets_401_and_nothing_is_forwarded() {
    let up = FakeUpstream::start().await;
    let p = guarded(&up).await;
    let got = get_with(
        &p,
        "/campaign/x",
        Some(("x-proxy-key", "not-a-key-anyone-was-given")),
    )
    .await;
    assert_eq!(got.status, 401);
    assert!(!String::from_utf8_lossy(&got.body).contains("not-a-key-anyone-was-given"));
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn an_unauthenticated_caller_cannot_tell_which_routes_exist() {
    let up = FakeUpstream::start().await;
    let p = guarded(&up).await;
    assert_eq!(get_with(&p, "/no-such-route", None).await.status, 401);
    assert_eq!(get_with(&p, "/campaign", None).await.status, 401);
}

#[tokio::test]
async fn a_known_key_in_x_proxy_key_is_forwarded_without_the_key() {
    let up = FakeUpstream::start().await;
    let p = guarded(&up).await;
    let got = get_with(&p, "/campaign/x", Some(("x-proxy-key", ALL_KEY))).await;
    assert_eq!(got.status, 200);
    let r = up.only_request();
    assert_eq!(r.target, "/c/x");
    assert!(r.headers.get("x-proxy-key").is_none());
    assert_eq!(r.headers["authorization"], format!("Bearer {STATIC_TOKEN}"));
}

#[tokio::test]
async fn a_known_key_sent_as_a_bearer_token_is_replaced_by_the_ims_token() {
    let up = FakeUpstream::start().await;
    let p = guarded(&up).await;
    let bearer = format!("Bearer {ALL_KEY}");
    let got = get_with(&p, "/campaign/x", Some(("authorization", &bearer))).await;
    assert_eq!(got.status, 200);
    let r = up.only_request();
    assert_eq!(r.headers["authorization"], format!("Bearer {STATIC_TOKEN}"));
    let all: Vec<_> = r
        .headers
        .iter()
        .map(|(_, v)| v.as_bytes().to_vec())
        .collect();
    assert!(!all
        .iter()
        .any(|v| v.windows(ALL_KEY.len()).any(|w| w == ALL_KEY.as_bytes())));
}

#[tokio::test]
async fn a_key_given_as_its_sha256_authenticates() {
    let up = FakeUpstream::start().await;
    let p = guarded(&up).await;
    let got = get_with(&p, "/privacy/jobs", Some(("x-proxy-key", PRIVACY_KEY))).await;
    assert_eq!(got.status, 200);
    assert_eq!(up.only_request().target, "/p/jobs");
}

#[tokio::test]
async fn a_client_on_a_route_it_may_not_use_gets_403_and_nothing_is_forwarded() {
    let up = FakeUpstream::start().await;
    let p = guarded(&up).await;
    let got = get_with(&p, "/campaign/x", Some(("x-proxy-key", PRIVACY_KEY))).await;
    assert_eq!(got.status, 403);
    assert_eq!(got.json()["error_code"], "forbidden");
    assert!(got.json()["message"]
        .as_str()
        .unwrap_or("")
        .contains("gdpr-tool"));
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn http2_requests_need_a_key_too() {
    let up = FakeUpstream::start().await;
    let p = guarded(&up).await;
    let url = proxy_url(&p, "/campaign/x");
    assert_eq!(Req::get(&url).h2().send().await.status, 401);
    let got = Req::get(&url)
        .header("x-proxy-key", ALL_KEY)
        .h2()
        .send()
        .await;
    assert_eq!(got.status, 200);
    assert_eq!(up.count(), 1);
}

#[tokio::test]
async fn the_access_log_names_the_caller() {
    let logs = logs::capture_trace();
    let up = FakeUpstream::start().await;
    let p = guarded(&up).await;
    // Other tests in this binary log too: find this request's line by its id.
    let id = "access-log-names-the-caller";
    Req::get(proxy_url(&p, "/privacy/x"))
        .headers(&[("x-proxy-key", PRIVACY_KEY), ("x-request-id", id)])
        .send()
        .await;
    let text = logs.text();
    let line = text
        .lines()
        .find(|l| l.contains("\"target\":\"ims_proxy::access\"") && l.contains(id))
        .unwrap_or_else(|| panic!("no access log line in {text}"));
    assert!(line.contains("\"caller\":\"gdpr-tool\""), "{line}");
}

#[test]
fn a_client_restricted_to_an_unknown_route_is_a_config_error() {
    let err = static_proxy(Route::new("/privacy").upstream("http://127.0.0.1:1"))
        .append("[[clients]]\nname = \"a\"\nkey = \"0123456789abcdef0123\"\nroutes = [\"/privcy\"]")
        .build_error();
    assert_eq!(err.key, "clients[0].routes[0]");
}

#[test]
fn a_short_client_key_is_a_config_error() {
    let err = ProxyToml::new()
        .append("[[clients]]\nname = \"a\"\nkey = \"short\"")
        .build_error();
    assert_eq!(err.key, "clients[0].key");
    assert!(!err.to_string().contains("short"), "{err}");
}
