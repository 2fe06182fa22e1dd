//! Each IMS credential type end to end through real sockets (client → ims-proxy → fake API,
//! with the fake IMS behind it), and the ways a credential can be wrong.

use ims_proxy::config::Config;
use ims_proxy::snapshot::Snapshot;
use support::ims::*;
use support::*;

/// `[[routes]]` for `/api` to `upstream` with credential `cred` and an optional preset.
fn route(upstream: &str, api: Option<&str>) -> String {
    let route = Route::new("/api").upstream(upstream);
    match api {
        Some(a) => route.api(a).toml(),
        None => route.toml(),
    }
}

const CLIENT: &str = "\n[client]\nrequest_timeout = \"5s\"\n";

#[tokio::test]
async fn oauth_credentials_get_a_token_and_the_api_receives_it_with_the_identity_headers() {
    let ims = Ims::start().await;
    let (api, rejected) = token_checking_api(&ims.fake).await;
    let p = start_proxy(&format!(
        "{CLIENT}{}{}",
        ims.oauth_credential("cred", ""),
        route(&api.url(), Some("cloud-manager"))
    ))
    .await;
    let got = get(&proxy_url(&p, "/api/programs")).await;
    assert_eq!(got.status, 200, "{:?}", got.body);
    let r = api.only_request();
    let auth = r.headers["authorization"].to_str().unwrap();
    let info = ims.fake.validate_token(auth).expect("a token IMS issued");
    assert_eq!(info.client_id, OAUTH_CLIENT);
    assert_eq!(info.scopes, CM_SCOPES, "the preset's scopes, comma-joined");
    assert_eq!(r.headers["x-api-key"], OAUTH_CLIENT);
    assert_eq!(r.headers["x-gw-ims-org-id"], ORG);
    assert_eq!(rejected.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(ims.calls(), 1);
}

#[tokio::test]
async fn jwt_credentials_exchange_a_signed_jwt_and_the_api_receives_the_token() {
    let ims = Ims::start().await;
    let (api, _) = token_checking_api(&ims.fake).await;
    let p = start_proxy(&format!(
        "{CLIENT}{}{}",
        ims.jwt_credential("cred", ""),
        route(&api.url(), Some("campaign"))
    ))
    .await;
    let got = get(&proxy_url(&p, "/api/profileAndServices/profile")).await;
    assert_eq!(got.status, 200, "{:?}", got.body);
    let r = api.only_request();
    let info = ims
        .fake
        .validate_token(r.headers["authorization"].to_str().unwrap())
        .expect("a token IMS issued");
    assert_eq!(info.client_id, JWT_CLIENT);
    assert_eq!(info.scopes, ["ent_campaign_sdk"], "the preset's metascope");
    assert_eq!(r.headers["x-api-key"], JWT_CLIENT);
    assert!(
        r.headers.get("x-gw-ims-org-id").is_none(),
        "Campaign takes no org id"
    );
}

#[tokio::test]
async fn a_pkcs1_private_key_works_as_well_as_pkcs8() {
    let ims = Ims::start().await;
    let (api, _) = token_checking_api(&ims.fake).await;
    let key = ims.file("pkcs1.pem", &keys().pkcs1);
    let cfg = ims.jwt_credential("cred", "").replace(
        &format!("{}", ims.dir.path().join("key.pem").display()),
        &key.display().to_string(),
    );
    assert!(cfg.contains("pkcs1.pem"));
    let p = start_proxy(&format!(
        "{CLIENT}{cfg}{}",
        route(&api.url(), Some("campaign"))
    ))
    .await;
    assert_eq!(get(&proxy_url(&p, "/api/x")).await.status, 200);
}

#[tokio::test]
async fn a_string_expires_in_and_explicit_metascopes_are_understood() {
    let ims = Ims::start().await;
    ims.fake.update_knobs(|k| k.expires_in_as_string = true);
    let (api, _) = token_checking_api(&ims.fake).await;
    let p = start_proxy(&format!(
        "{CLIENT}{}{}",
        ims.jwt_credential("cred", r#"metascopes = ["ent_campaign_sdk"]"#),
        route(&api.url(), None)
    ))
    .await;
    assert_eq!(get(&proxy_url(&p, "/api/x")).await.status, 200);
}

#[tokio::test]
async fn a_wrong_client_secret_gives_503_carrying_ims_invalid_client() {
    let ims = Ims::start().await;
    let (api, _) = token_checking_api(&ims.fake).await;
    let cred = ims
        .oauth_credential("cred", "")
        .replace(OAUTH_SECRET, "not-the-secret");
    let p = start_proxy(&format!(
        "{CLIENT}{cred}{}",
        route(&api.url(), Some("cloud-manager"))
    ))
    .await;
    let got = get(&proxy_url(&p, "/api/x")).await;
    assert_eq!(got.status, 503);
    let j = got.json();
    assert_eq!(j["error_code"], "token_unavailable");
    let msg = j["message"].as_str().unwrap();
    assert!(msg.contains("\"cred\""), "names the credential: {msg}");
    assert!(msg.contains("401 invalid_client"), "{msg}");
    assert!(msg.contains("invalid client_secret parameter"), "{msg}");
    assert!(!msg.contains("not-the-secret"), "{msg}");
    assert_eq!(api.count(), 0);
}

#[tokio::test]
async fn a_key_other_than_the_registered_one_gives_503_with_the_signature_error() {
    let ims = Ims::start().await;
    let (api, _) = token_checking_api(&ims.fake).await;
    let key = ims.file("other.pem", &other_keys().pkcs8);
    let cfg = ims.jwt_credential("cred", "").replace(
        &format!("{}", ims.dir.path().join("key.pem").display()),
        &key.display().to_string(),
    );
    let p = start_proxy(&format!(
        "{CLIENT}{cfg}{}",
        route(&api.url(), Some("campaign"))
    ))
    .await;
    let got = get(&proxy_url(&p, "/api/x")).await;
    assert_eq!(got.status, 503);
    let msg = got.json()["message"].as_str().unwrap().to_string();
    assert!(msg.contains("invalid_token"), "{msg}");
    assert!(msg.contains("Could not match JWT signature"), "{msg}");
}

#[tokio::test]
async fn a_metascope_not_bound_to_the_client_gives_invalid_scope_naming_the_credential() {
    let ims = Ims::start().await;
    let (api, _) = token_checking_api(&ims.fake).await;
    let p = start_proxy(&format!(
        "{CLIENT}{}{}",
        ims.jwt_credential("cred", ""),
        // Privacy's preset asks for ent_gdpr_sdk, which this client is not bound to.
        route(&api.url(), Some("privacy"))
    ))
    .await;
    let got = get(&proxy_url(&p, "/api/jobs")).await;
    assert_eq!(got.status, 503);
    let msg = got.json()["message"].as_str().unwrap().to_string();
    assert!(
        msg.contains("\"cred\"") && msg.contains("400 invalid_scope"),
        "{msg}"
    );
    assert!(msg.contains("not a subset"), "{msg}");
}

#[tokio::test]
async fn an_oauth_scope_the_client_lacks_gives_invalid_scope() {
    let ims = Ims::start().await;
    let (api, _) = token_checking_api(&ims.fake).await;
    let p = start_proxy(&format!(
        "{CLIENT}{}{}",
        ims.oauth_credential("cred", r#"scopes = ["openid", "campaign_sdk"]"#),
        route(&api.url(), None)
    ))
    .await;
    let got = get(&proxy_url(&p, "/api/x")).await;
    assert_eq!(got.status, 503);
    let msg = got.json()["message"].as_str().unwrap().to_string();
    assert!(
        msg.contains("invalid_scope") && msg.contains("campaign_sdk"),
        "{msg}"
    );
}

fn build_error(toml: &str) -> String {
    let config = Config::from_toml(toml).expect("parses");
    Snapshot::build(&config)
        .expect_err("config error")
        .to_string()
}

#[tokio::test]
async fn an_unreadable_private_key_file_is_a_config_error_naming_the_path() {
    let ims = Ims::start().await;
    let cfg = ims
        .jwt_credential("cred", "")
        .replace("key.pem", "missing.pem");
    let err = build_error(&format!(
        "{cfg}{}",
        route("http://127.0.0.1:9", Some("campaign"))
    ));
    assert!(
        err.starts_with("credentials.cred.private_key_file: cannot read"),
        "{err}"
    );
    assert!(err.contains("missing.pem"), "{err}");
}

#[tokio::test]
async fn a_non_rsa_private_key_is_a_config_error_naming_the_path() {
    let ims = Ims::start().await;
    let ec = rcgen::KeyPair::generate().expect("ec key").serialize_pem();
    ims.file("ec.pem", &ec);
    let cfg = ims.jwt_credential("cred", "").replace("key.pem", "ec.pem");
    let err = build_error(&format!(
        "{cfg}{}",
        route("http://127.0.0.1:9", Some("campaign"))
    ));
    assert!(
        err.starts_with("credentials.cred.private_key_file: "),
        "{err}"
    );
    assert!(err.contains("ec.pem is not a PEM RSA private key"), "{err}");
    ims.file("junk.pem", "not a key at all");
    let cfg = ims
        .jwt_credential("cred", "")
        .replace("key.pem", "junk.pem");
    let err = build_error(&format!(
        "{cfg}{}",
        route("http://127.0.0.1:9", Some("campaign"))
    ));
    assert!(
        err.contains("junk.pem is not a PEM RSA private key"),
        "{err}"
    );
}

#[tokio::test]
async fn a_jwt_credential_without_metascopes_or_preset_is_a_config_error() {
    let ims = Ims::start().await;
    let err = build_error(&format!(
        "{}{}",
        ims.jwt_credential("cred", ""),
        route("http://127.0.0.1:9", None)
    ));
    assert!(
        err.starts_with("credentials.cred.metascopes: required"),
        "{err}"
    );
}

#[tokio::test]
async fn ims_unreachable_at_start_up_still_starts_and_answers_503_with_the_transport_error() {
    let ims = Ims::start().await;
    let (api, _) = token_checking_api(&ims.fake).await;
    // A port that was free a moment ago: nothing listens there.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let cred = ims
        .oauth_credential("cred", "")
        .replace(&ims.url(), &format!("http://{dead}"));
    let p = start_proxy(&format!(
        "{CLIENT}{cred}{}",
        route(&api.url(), Some("cloud-manager"))
    ))
    .await;
    let got = get(&proxy_url(&p, "/api/x")).await;
    assert_eq!(got.status, 503);
    let msg = got.json()["message"].as_str().unwrap().to_string();
    assert!(msg.contains("IMS unreachable"), "{msg}");
}

#[tokio::test]
async fn ims_answering_garbage_gives_503_without_echoing_the_body() {
    let ims = Ims::start().await;
    ims.fake
        .update_knobs(|k| k.failure = Some(ims_proxy::sandbox::ims::Failure::Garbage));
    let (api, _) = token_checking_api(&ims.fake).await;
    let p = start_proxy(&format!(
        "{CLIENT}{}{}",
        ims.oauth_credential("cred", ""),
        route(&api.url(), Some("cloud-manager"))
    ))
    .await;
    let got = get(&proxy_url(&p, "/api/x")).await;
    assert_eq!(got.status, 503);
    let msg = got.json()["message"].as_str().unwrap().to_string();
    assert!(
        msg.contains("unreadable body") && !msg.contains("Gateway says hi"),
        "{msg}"
    );
}
