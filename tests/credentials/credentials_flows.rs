//! Each IMS credential type end to end through real sockets (client → ims-proxy → fake API,
//! with the fake IMS behind it), and the ways a credential can be wrong.
//!
//! What both types do alike is one body run for each row of a table ([`OAUTH`], [`JWT`]):
//! the tests `oauth::...` and `jwt::...` below.

use std::sync::atomic::Ordering;
use support::ims::*;
use support::*;

/// One credential type, as the table-driven tests run it.
struct Flow {
    /// `[credentials.NAME]` for the fake IMS's client of this type, with extra keys.
    credential: fn(&Ims, &str, &str) -> String,
    /// A preset whose scopes the client is allowed, and a path under its route.
    preset: &'static str,
    path: &'static str,
    client_id: &'static str,
    /// The scopes (OAuth) or metascopes (JWT) the preset asks for.
    scopes: &'static [&'static str],
    /// `x-gw-ims-org-id` as the API receives it (Campaign takes none).
    org_header: Option<&'static str>,
    /// The credential with a wrong proof of identity, and that proof (never echoed).
    wrong_proof: fn(&Ims) -> (String, String),
    /// What the error says of the wrong proof.
    wrong_proof_says: &'static [&'static str],
    /// A route preset and credential keys that ask for a scope the client is not allowed.
    unallowed_scope: (Option<&'static str>, &'static str),
    /// What the error says of it.
    unallowed_scope_says: &'static [&'static str],
}

const OAUTH: Flow = Flow {
    credential: |ims, name, extra| ims.oauth_credential(name, extra),
    preset: "cloud-manager",
    path: "/api/programs",
    client_id: OAUTH_CLIENT,
    scopes: CM_SCOPES,
    org_header: Some(ORG),
    wrong_proof: |ims| {
        let cred = ims
            .oauth_credential("cred", "")
            .replace(OAUTH_SECRET, "not-the-secret");
        (cred, "not-the-secret".into())
    },
    wrong_proof_says: &["401 invalid_client", "invalid client_secret parameter"],
    unallowed_scope: (None, r#"scopes = ["openid", "campaign_sdk"]"#),
    unallowed_scope_says: &["invalid_scope", "campaign_sdk"],
};

const JWT: Flow = Flow {
    credential: |ims, name, extra| ims.jwt_credential(name, extra),
    preset: "campaign",
    path: "/api/profileAndServices/profile",
    client_id: JWT_CLIENT,
    scopes: &["ent_campaign_sdk"],
    org_header: None,
    wrong_proof: |ims| {
        let key = ims.file("other.pem", &other_keys().pkcs8);
        let cred = ims.jwt_credential_with_key("cred", &key, "");
        let key_line = other_keys().pkcs8.lines().nth(5).expect("a key line");
        (cred, key_line.into())
    },
    wrong_proof_says: &["invalid_token", "Could not match JWT signature"],
    // Privacy's preset asks for ent_gdpr_sdk, which this client is not bound to.
    unallowed_scope: (Some("privacy"), ""),
    unallowed_scope_says: &["400 invalid_scope", "not a subset"],
};

/// Each named body as a test for each flow: `oauth::NAME` and `jwt::NAME`.
macro_rules! for_each_flow {
    ($($test:ident),* $(,)?) => {
        mod oauth {
            $(#[tokio::test]
            async fn $test() {
                super::$test(&super::OAUTH).await
            })*
        }
        mod jwt {
            $(#[tokio::test]
            async fn $test() {
                super::$test(&super::JWT).await
            })*
        }
    };
}

for_each_flow!(
    credentials_get_a_token_and_the_api_receives_it_with_the_identity_headers,
    a_wrong_proof_of_identity_gives_503_carrying_the_ims_error,
    a_scope_the_client_is_not_allowed_gives_503_with_invalid_scope_naming_the_credential,
);

/// Route `/api` to `api` (with `preset`) for `credential`.
fn config(credential: String, api: &str, preset: Option<&str>) -> ProxyToml {
    let mut route = Route::new("/api").upstream(api);
    if let Some(p) = preset {
        route = route.api(p);
    }
    ProxyToml::new()
        .client("request_timeout = \"5s\"")
        .credential(credential)
        .route(route)
}

async fn proxy(credential: String, api: &FakeUpstream, preset: Option<&str>) -> ims_proxy::Running {
    config(credential, &api.url(), preset).start().await
}

/// The error message of a 503 `token_unavailable` that names the credential `cred`.
fn token_unavailable(got: &Got) -> String {
    assert_eq!(got.status, 503, "{:?}", got.body);
    let j = got.json();
    assert_eq!(j["error_code"], "token_unavailable");
    let msg = j["message"].as_str().expect("a message").to_string();
    assert!(msg.contains("\"cred\""), "names the credential: {msg}");
    msg
}

async fn credentials_get_a_token_and_the_api_receives_it_with_the_identity_headers(flow: &Flow) {
    let ims = Ims::start().await;
    let (api, rejected) = token_checking_api(&ims.fake).await;
    let p = proxy((flow.credential)(&ims, "cred", ""), &api, Some(flow.preset)).await;
    let got = get(&proxy_url(&p, flow.path)).await;
    assert_eq!(got.status, 200, "{:?}", got.body);
    let r = api.only_request();
    let auth = r.headers["authorization"].to_str().unwrap();
    let info = ims.fake.validate_token(auth).expect("a token IMS issued");
    assert_eq!(info.client_id, flow.client_id);
    assert_eq!(info.scopes, flow.scopes, "the preset's scopes");
    assert_eq!(r.headers["x-api-key"], flow.client_id);
    assert_eq!(
        r.headers
            .get("x-gw-ims-org-id")
            .map(|v| v.to_str().unwrap()),
        flow.org_header,
        "the org id, where the API takes one"
    );
    assert_eq!(rejected.load(Ordering::SeqCst), 0);
    assert_eq!(ims.calls(), 1);
}

async fn a_wrong_proof_of_identity_gives_503_carrying_the_ims_error(flow: &Flow) {
    let ims = Ims::start().await;
    let (api, _) = token_checking_api(&ims.fake).await;
    let (cred, wrong) = (flow.wrong_proof)(&ims);
    let p = proxy(cred, &api, Some(flow.preset)).await;
    let msg = token_unavailable(&get(&proxy_url(&p, "/api/x")).await);
    for says in flow.wrong_proof_says {
        assert!(msg.contains(says), "{says:?} in {msg}");
    }
    assert!(!msg.contains(&wrong), "{msg}");
    assert_eq!(api.count(), 0);
}

async fn a_scope_the_client_is_not_allowed_gives_503_with_invalid_scope_naming_the_credential(
    flow: &Flow,
) {
    let ims = Ims::start().await;
    let (api, _) = token_checking_api(&ims.fake).await;
    let (preset, extra) = flow.unallowed_scope;
    let p = proxy((flow.credential)(&ims, "cred", extra), &api, preset).await;
    let msg = token_unavailable(&get(&proxy_url(&p, "/api/x")).await);
    for says in flow.unallowed_scope_says {
        assert!(msg.contains(says), "{says:?} in {msg}");
    }
    assert_eq!(api.count(), 0);
}

/// The JWT credential with the key file `name`, written with `pem` unless `None`.
fn jwt_with_key_file(ims: &Ims, name: &str, pem: Option<&str>) -> String {
    let key = match pem {
        Some(pem) => ims.file(name, pem),
        None => ims.dir.path().join(name),
    };
    ims.jwt_credential_with_key("cred", &key, "")
}

#[tokio::test]
async fn a_pkcs1_private_key_works_as_well_as_pkcs8() {
    let ims = Ims::start().await;
    let (api, _) = token_checking_api(&ims.fake).await;
    let cred = jwt_with_key_file(&ims, "pkcs1.pem", Some(&keys().pkcs1));
    assert!(cred.contains("pkcs1.pem"));
    let p = proxy(cred, &api, Some("campaign")).await;
    assert_eq!(get(&proxy_url(&p, "/api/x")).await.status, 200);
}

#[tokio::test]
async fn a_string_expires_in_and_explicit_metascopes_are_understood() {
    let ims = Ims::start().await;
    ims.fake.update_knobs(|k| k.expires_in_as_string = true);
    let (api, _) = token_checking_api(&ims.fake).await;
    let cred = ims.jwt_credential("cred", r#"metascopes = ["ent_campaign_sdk"]"#);
    let p = proxy(cred, &api, None).await;
    assert_eq!(get(&proxy_url(&p, "/api/x")).await.status, 200);
}

/// The error building a snapshot for `credential` on a route with `preset` gives.
fn build_error(credential: String, preset: Option<&str>) -> String {
    config(credential, "http://127.0.0.1:9", preset)
        .build_error()
        .to_string()
}

#[tokio::test]
async fn an_unreadable_private_key_file_is_a_config_error_naming_the_path() {
    let ims = Ims::start().await;
    let err = build_error(
        jwt_with_key_file(&ims, "missing.pem", None),
        Some("campaign"),
    );
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
    let err = build_error(
        jwt_with_key_file(&ims, "ec.pem", Some(&ec)),
        Some("campaign"),
    );
    assert!(
        err.starts_with("credentials.cred.private_key_file: "),
        "{err}"
    );
    assert!(err.contains("ec.pem is not a PEM RSA private key"), "{err}");
    let err = build_error(
        jwt_with_key_file(&ims, "junk.pem", Some("not a key at all")),
        Some("campaign"),
    );
    assert!(
        err.contains("junk.pem is not a PEM RSA private key"),
        "{err}"
    );
}

#[tokio::test]
async fn a_jwt_credential_without_metascopes_or_preset_is_a_config_error() {
    let ims = Ims::start().await;
    let err = build_error(ims.jwt_credential("cred", ""), None);
    assert!(
        err.starts_with("credentials.cred.metascopes: required"),
        "{err}"
    );
}

#[tokio::test]
async fn ims_unreachable_at_start_up_still_starts_and_answers_503_with_the_transport_error() {
    let ims = Ims::start().await;
    let (api, _) = token_checking_api(&ims.fake).await;
    let dead = unused_addr();
    let cred = ims
        .oauth_credential("cred", "")
        .replace(&ims.url(), &format!("http://{dead}"));
    let p = proxy(cred, &api, Some("cloud-manager")).await;
    let msg = token_unavailable(&get(&proxy_url(&p, "/api/x")).await);
    assert!(msg.contains("IMS unreachable"), "{msg}");
}

#[tokio::test]
async fn ims_answering_garbage_gives_503_without_echoing_the_body() {
    let ims = Ims::start().await;
    ims.fake
        .update_knobs(|k| k.failure = Some(ims_proxy::sandbox::ims::Failure::Garbage));
    let (api, _) = token_checking_api(&ims.fake).await;
    let p = proxy(
        ims.oauth_credential("cred", ""),
        &api,
        Some("cloud-manager"),
    )
    .await;
    let msg = token_unavailable(&get(&proxy_url(&p, "/api/x")).await);
    assert!(
        msg.contains("unreadable body") && !msg.contains("Gateway says hi"),
        "{msg}"
    );
}
