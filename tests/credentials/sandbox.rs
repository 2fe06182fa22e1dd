//! The sandbox refuses what Adobe would refuse, answers each API's shapes, and works as the
//! IMS and upstream behind ims-proxy, for both credential types.

use ims_proxy::sandbox::ims::{FailWhen, Failure};
use ims_proxy::sandbox::Sandbox;
use std::time::{Duration, Instant};
use support::sandbox::*;
use support::*;

const CAMPAIGN: &str = "/sandbox/campaign/profileAndServices/profile";

fn error_code(got: &Got) -> String {
    got.json()["error_code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn campaign_refuses_a_request_without_a_token_with_adobes_401013() {
    let s = start_sandbox().await;
    let id = identity();
    let got = s
        .call("GET", CAMPAIGN, &[("x-api-key", &id.client_id)], "")
        .await;
    assert_eq!(got.status, 401);
    assert_eq!(
        got.json(),
        serde_json::json!({"error_code": "401013", "message": "Oauth token is not valid"})
    );
}

#[tokio::test]
async fn a_token_another_ims_issued_is_refused() {
    let s = start_sandbox().await;
    let other = start_sandbox().await;
    let foreign = other.oauth_token().await;
    let mut b = String::new();
    let got = s.call("GET", CAMPAIGN, &auth(&foreign, &mut b), "").await;
    assert_eq!(got.status, 401);
    assert_eq!(error_code(&got), "401013");
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let s = start_sandbox().await;
    s.sandbox
        .ims()
        .update_knobs(|k| k.token_lifetime = Some(Duration::from_secs(1)));
    let token = s.oauth_token().await;
    assert!(s.sandbox.ims().validate_token(&token).is_some());
    let mut b = String::new();
    let headers = auth(&token, &mut b);
    let got = poll(Duration::from_secs(10), || async {
        let got = s.call("GET", CAMPAIGN, &headers, "").await;
        (got.status != 200).then_some(got)
    })
    .await
    .expect("the token is refused once it has expired");
    assert_eq!(got.status, 401, "{:?}", got.body);
    assert_eq!(error_code(&got), "401013");
}

#[tokio::test]
async fn a_missing_api_key_is_refused_with_403000_and_a_foreign_one_with_403003() {
    let s = start_sandbox().await;
    let token = s.oauth_token().await;
    let bearer = format!("Bearer {token}");
    let got = s
        .call("GET", "/v1/segments", &[("authorization", &bearer)], "")
        .await;
    assert_eq!(
        (got.status.as_u16(), error_code(&got)),
        (403, "403000".into())
    );
    let got = s
        .call(
            "GET",
            "/v1/segments",
            &[
                ("authorization", &bearer),
                ("x-api-key", "someone-elses-client"),
            ],
            "",
        )
        .await;
    assert_eq!(
        (got.status.as_u16(), error_code(&got)),
        (403, "403003".into())
    );
    assert_eq!(got.json()["message"], "Api Key is invalid");
}

#[tokio::test]
async fn cloud_manager_and_privacy_refuse_a_missing_or_foreign_org_header() {
    let s = start_sandbox().await;
    let token = s.oauth_token().await;
    let bearer = format!("Bearer {token}");
    let id = identity();
    for path in ["/api/programs", "/data/core/privacy/jobs?regulation=gdpr"] {
        let no_org = [
            ("authorization", bearer.as_str()),
            ("x-api-key", &id.client_id),
        ];
        let got = s.call("GET", path, &no_org, "").await;
        assert_eq!(got.status, 400, "{path}: {:?}", got.body);
        assert!(got.json()["message"]
            .as_str()
            .unwrap()
            .contains("x-gw-ims-org-id"));
        let mut foreign = no_org.to_vec();
        foreign.push(("x-gw-ims-org-id", "SOMEONE@AdobeOrg"));
        let got = s.call("GET", path, &foreign, "").await;
        assert_eq!(got.status, 403, "{path}: {:?}", got.body);
        let mut b = String::new();
        let got = s.call("GET", path, &auth(&token, &mut b), "").await;
        assert_eq!(got.status, 200, "{path}: {:?}", got.body);
    }
}

#[tokio::test]
async fn campaign_and_audience_manager_need_no_org_header() {
    let s = start_sandbox().await;
    let token = s.oauth_token().await;
    let bearer = format!("Bearer {token}");
    let headers = [
        ("authorization", bearer.as_str()),
        ("x-api-key", identity().client_id.as_str()),
    ];
    for path in [CAMPAIGN, "/v1/segments", "/v1/traits"] {
        let got = s.call("GET", path, &headers, "").await;
        assert_eq!(got.status, 200, "{path}: {:?}", got.body);
    }
    let traits = s.call("GET", "/v1/traits", &headers, "").await.json();
    let sid = traits[0]["sid"].as_u64().expect("a trait sid");
    let one = s
        .call("GET", &format!("/v1/traits/{sid}"), &headers, "")
        .await;
    assert_eq!(one.json()["sid"], sid);
}

#[tokio::test]
async fn a_campaign_tenant_other_than_the_sandboxs_is_refused_with_403023() {
    let s = start_sandbox().await;
    let token = s.oauth_token().await;
    let mut b = String::new();
    let headers = auth(&token, &mut b);
    let got = s
        .call(
            "GET",
            "/acme/campaign/profileAndServices/profile",
            &headers,
            "",
        )
        .await;
    assert_eq!(
        (got.status.as_u16(), error_code(&got)),
        (403, "403023".into())
    );
    let stage = "/sandbox-mkt-stage/campaign/profileAndServices/profile";
    assert_eq!(s.call("GET", stage, &headers, "").await.status, 200);
}

#[tokio::test]
async fn a_path_no_api_serves_gets_the_gateways_404() {
    let s = start_sandbox().await;
    let got = s.call("GET", "/nothing/here", &[], "").await;
    assert_eq!(
        (got.status.as_u16(), error_code(&got)),
        (404, "404003".into())
    );
}

#[tokio::test]
async fn every_api_answers_through_the_proxy_with_either_credential_type() {
    let s = start_sandbox().await;
    let p = start_proxy(&s.proxy_toml()).await;
    for cred in ["oauth", "jwt"] {
        for (path, check) in [
            ("campaign/profileAndServices/profile", "/content/0/email"),
            ("aam/v1/segments", "/0/sid"),
            ("aam/v1/traits", "/0/traitType"),
            ("cloudmanager/api/programs", "/_embedded/programs/0/id"),
            ("privacy/jobs?regulation=gdpr", "/totalRecords"),
        ] {
            let got = get(&proxy_url(&p, &format!("/{cred}/{path}"))).await;
            assert_eq!(got.status, 200, "{cred} {path}: {:?}", got.body);
            assert!(
                got.json().pointer(check).is_some(),
                "{cred} {path}: no {check} in {:?}",
                got.body
            );
        }
    }
}

#[tokio::test]
async fn a_jwt_token_reaches_only_the_apis_whose_metascope_it_carries() {
    let s = start_sandbox().await;
    let toml = s.proxy_toml().replace(
        "[credentials.jwt]\n",
        "[credentials.jwt]\nmetascopes = [\"ent_campaign_sdk\"]\n",
    );
    let p = start_proxy(&toml).await;
    let ok = get(&proxy_url(&p, "/jwt/campaign/profileAndServices/profile")).await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    let refused = get(&proxy_url(&p, "/jwt/cloudmanager/api/programs")).await;
    assert_eq!(refused.status, 403, "{:?}", refused.body);
    assert_eq!(error_code(&refused), "403023");
}

/// An href from a HAL body, made relative to the proxy route it came through.
fn href(v: &serde_json::Value, rel: &str) -> String {
    let h = v["_links"][rel]["href"]
        .as_str()
        .unwrap_or_else(|| panic!("no {rel} link in {v}"));
    assert!(h.starts_with("/api/"), "root-relative href: {h}");
    format!("/oauth/cloudmanager{h}")
}

#[tokio::test]
async fn cloud_manager_hal_links_lead_from_programs_to_pipelines_to_executions() {
    const REL: &str = "http://ns.adobe.com/adobecloud/rel";
    let s = start_sandbox().await;
    let p = start_proxy(&s.proxy_toml()).await;
    let programs = get(&proxy_url(&p, "/oauth/cloudmanager/api/programs")).await;
    assert_eq!(
        programs.header("content-type"),
        Some("application/hal+json")
    );
    let program_ref = &programs.json()["_embedded"]["programs"][0];
    let program = get(&proxy_url(&p, &href(program_ref, "self"))).await.json();
    let pipelines = get(&proxy_url(&p, &href(&program, &format!("{REL}/pipelines"))))
        .await
        .json();
    let pipeline = &pipelines["_embedded"]["pipelines"][0];
    assert_eq!(pipeline["status"], "IDLE");

    let start = |path: &str| Req::put(proxy_url(&p, path)).send();
    let execution_href = href(pipeline, &format!("{REL}/execution"));
    let started = start(&execution_href).await;
    assert_eq!(started.status, 201, "{:?}", started.body);
    let started = started.json();
    assert_eq!(started["status"], "RUNNING");
    let again = start(&execution_href).await;
    assert_eq!(again.status, 412, "a running pipeline cannot start again");
    assert_eq!(
        again.header("content-type"),
        Some("application/problem+json")
    );

    let executions = get(&proxy_url(
        &p,
        &href(pipeline, &format!("{REL}/executions")),
    ))
    .await
    .json();
    assert_eq!(
        executions["_embedded"]["executions"][0]["id"],
        started["id"]
    );
    let template = href(pipeline, &format!("{REL}/execution/id"));
    let one = template.replace("{executionId}", started["id"].as_str().expect("id"));
    let got = get(&proxy_url(&p, &one)).await;
    assert_eq!(got.status, 200, "{:?}", got.body);
    assert!(got.json()["_embedded"]["stepStates"].is_array());
}

#[tokio::test]
async fn privacy_jobs_are_created_then_listed_and_fetched_by_id() {
    let s = start_sandbox().await;
    let p = start_proxy(&s.proxy_toml()).await;
    let body = serde_json::json!({
        "companyContexts": [{"namespace": "imsOrgID", "value": identity().org_id}],
        "users": [{"key": "ada", "action": ["access"],
                   "userIDs": [{"namespace": "email", "value": "ada@example.com", "type": "standard"}]}],
        "regulation": "gdpr",
    });
    let created = Req::post(proxy_url(&p, "/oauth/privacy/jobs"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    let job_id = created.json()["jobs"][0]["jobId"]
        .as_str()
        .expect("jobId")
        .to_string();
    let list = get(&proxy_url(&p, "/jwt/privacy/jobs?regulation=gdpr"))
        .await
        .json();
    assert_eq!(list["totalRecords"], 1);
    assert_eq!(list["jobs"][0]["jobId"], job_id.as_str());
    let one = get(&proxy_url(&p, &format!("/oauth/privacy/jobs/{job_id}"))).await;
    assert_eq!(one.json()["userKey"], "ada");
    let ccpa = get(&proxy_url(&p, "/oauth/privacy/jobs?regulation=ccpa"))
        .await
        .json();
    assert_eq!(ccpa["totalRecords"], 0);
}

#[tokio::test]
async fn short_token_lifetimes_are_refreshed_through_the_proxy() {
    let s = start_sandbox().await;
    s.sandbox
        .ims()
        .update_knobs(|k| k.token_lifetime = Some(Duration::from_secs(1)));
    let p = start_proxy(&s.proxy_toml()).await;
    // Well past the first token's expiry: every request must still carry a valid token.
    let start = Instant::now();
    let mut requests = 0;
    while start.elapsed() < Duration::from_millis(2500) {
        let got = get(&proxy_url(&p, "/oauth/campaign/profileAndServices/profile")).await;
        assert_eq!(got.status, 200, "request {requests}: {:?}", got.body);
        requests += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let issued = s.sandbox.ims().issued_tokens().len();
    assert!(
        issued >= 4,
        "two credentials refreshing: {issued} tokens issued"
    );
}

#[tokio::test]
async fn an_ims_told_to_fail_every_other_period_alternates_between_up_and_down() {
    let s = start_sandbox().await;
    s.sandbox.ims().update_knobs(|k| {
        k.failure = Some(Failure::Status(503));
        k.failure_when = Some(FailWhen::Alternating {
            period: Duration::from_millis(300),
            since: Instant::now(),
        });
    });
    let (mut up, mut down) = (0, 0);
    let end = Instant::now() + Duration::from_secs(10);
    while (up < 2 || down < 2) && Instant::now() < end {
        let got = s.call("POST", "/ims/token/v3", &[], "").await;
        match got.status.as_u16() {
            503 => down += 1,
            // Healthy: an empty form is IMS's own 400.
            400 => up += 1,
            other => panic!("unexpected {other}"),
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    assert!(up >= 2 && down >= 2, "up {up}, down {down}");
}

#[tokio::test]
async fn a_sandbox_can_be_built_from_a_written_identity() {
    let s = start_sandbox().await;
    let loaded = ims_proxy::sandbox::identity::Identity::load(s.dir.path()).expect("load");
    assert_eq!(loaded.client_id, identity().client_id);
    assert_eq!(loaded.public_key_pem, identity().public_key_pem);
    Sandbox::new(loaded).expect("the loaded key registers");
}

// What Adobe's SDKs send (tests/sdk/README.md), straight to the sandbox.

#[tokio::test]
async fn ims_token_endpoints_take_multipart_bodies_as_adobes_node_libraries_send_them() {
    let s = start_sandbox().await;
    let id = identity();
    // aio-lib-ims (OAuth Server-to-Server): /ims/token/v2, multipart, with org_id.
    let (ct, body) = multipart_form(&[
        ("grant_type", "client_credentials"),
        ("client_id", &id.client_id),
        ("client_secret", id.client_secret.expose()),
        ("org_id", &id.org_id),
        ("scope", "openid,AdobeID"),
    ]);
    let got = s
        .call("POST", "/ims/token/v2", &[("content-type", &ct)], body)
        .await;
    assert_eq!(got.status, 200, "{:?}", got.body);
    assert_eq!(got.json()["expires_in"], 86_399, "seconds for OAuth");
    let token = got.json()["access_token"].as_str().unwrap().to_string();
    let mut b = String::new();
    let campaign = s.call("GET", CAMPAIGN, &auth(&token, &mut b), "").await;
    assert_eq!(campaign.status, 200, "{:?}", campaign.body);

    // jwt-auth and aio-lib-ims-jwt: /ims/exchange/jwt/ (trailing slash), multipart.
    let jwt = sandbox_jwt(&s.url(), &["ent_campaign_sdk"]);
    let (ct, body) = multipart_form(&[
        ("client_id", &id.client_id),
        ("client_secret", id.client_secret.expose()),
        ("jwt_token", &jwt),
    ]);
    let got = s
        .call("POST", "/ims/exchange/jwt/", &[("content-type", &ct)], body)
        .await;
    assert_eq!(got.status, 200, "{:?}", got.body);
    assert_eq!(got.json()["expires_in"], 86_399_000, "milliseconds for JWT");
    let token = got.json()["access_token"].as_str().unwrap().to_string();
    assert!(s.sandbox.ims().validate_token(&token).is_some());
}

#[tokio::test]
async fn multipart_bodies_are_checked_as_strictly_as_urlencoded_ones() {
    let s = start_sandbox().await;
    let id = identity();
    let (ct, body) = multipart_form(&[
        ("grant_type", "client_credentials"),
        ("client_id", &id.client_id),
        ("client_secret", "not-the-secret"),
        ("scope", "openid,AdobeID"),
    ]);
    let got = s
        .call("POST", "/ims/token/v3", &[("content-type", &ct)], body)
        .await;
    assert_eq!(got.status, 401, "{:?}", got.body);
    assert_eq!(got.json()["error"], "invalid_client");

    let (ct, body) = multipart_form(&[("client_id", &id.client_id)]);
    let cut = body[..body.len() - 10].to_string();
    for (ct, body) in [
        (ct.as_str(), cut),
        ("multipart/form-data", body.clone()),
        ("multipart/form-data; boundary=other", body),
    ] {
        let got = s
            .call("POST", "/ims/token/v3", &[("content-type", ct)], body)
            .await;
        assert_eq!(got.status, 400, "{ct}: {:?}", got.body);
        assert_eq!(got.json()["error"], "invalid_request", "{ct}");
    }
    assert!(s.sandbox.ims().issued_tokens().is_empty());
}

#[tokio::test]
async fn ims_takes_token_parameters_from_the_query_string_too() {
    let s = start_sandbox().await;
    let id = identity();
    let all = serde_urlencoded::to_string([
        ("client_id", id.client_id.as_str()),
        ("client_secret", id.client_secret.expose()),
        ("grant_type", "client_credentials"),
        ("scope", "openid,AdobeID"),
    ])
    .unwrap();
    let got = s
        .call("POST", &format!("/ims/token/v2?{all}"), &[], "")
        .await;
    assert_eq!(got.status, 200, "{:?}", got.body);

    // aio-lib-java: client_id in the query, the rest in a urlencoded body.
    let rest = serde_urlencoded::to_string([
        ("client_secret", id.client_secret.expose()),
        ("grant_type", "client_credentials"),
        ("scope", "openid"),
    ])
    .unwrap();
    let ct = [("content-type", "application/x-www-form-urlencoded")];
    let path = format!("/ims/token/v3?client_id={}", id.client_id);
    let got = s.call("POST", &path, &ct, rest).await;
    assert_eq!(got.status, 200, "{:?}", got.body);

    let wrong = format!("/ims/token/v3?{all}").replace(id.client_secret.expose(), "nope");
    let got = s.call("POST", &wrong, &[], "").await;
    assert_eq!(got.status, 401, "{:?}", got.body);
}

#[tokio::test]
async fn campaign_profile_keys_may_be_percent_encoded_as_the_sdk_sends_them() {
    let s = start_sandbox().await;
    let token = s.oauth_token().await;
    let mut b = String::new();
    let headers = auth(&token, &mut b);
    // aio-lib-campaign-standard creates at `.../profile/` with its JSON as text/plain.
    let mut create = headers.to_vec();
    create.push(("content-type", "text/plain;charset=UTF-8"));
    let created = s
        .call(
            "POST",
            &format!("{CAMPAIGN}/"),
            &create,
            r#"{"firstName":"Sdk","email":"sdk@example.com"}"#,
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let pkey = created.json()["PKey"].as_str().unwrap().to_string();
    assert!(pkey.starts_with('@'), "{pkey}");

    let escaped = pkey.replacen('@', "%40", 1);
    for key in [escaped.as_str(), pkey.as_str()] {
        let got = s
            .call("GET", &format!("{CAMPAIGN}/{key}"), &headers, "")
            .await;
        assert_eq!(got.status, 200, "{key}: {:?}", got.body);
        assert_eq!(got.json()["email"], "sdk@example.com");
        assert_eq!(got.json()["PKey"], pkey.as_str());
    }
    // Escapes spelling another key, or no UTF-8: Campaign's 404.
    for key in ["%40nope", "%ff%fe", "%2540nope"] {
        let got = s
            .call("GET", &format!("{CAMPAIGN}/{key}"), &headers, "")
            .await;
        assert_eq!(got.status, 404, "{key}: {:?}", got.body);
    }
    // Still the gateway first: no token, no profile.
    let key = [("x-api-key", identity().client_id.as_str())];
    let got = s
        .call("GET", &format!("{CAMPAIGN}/{escaped}"), &key, "")
        .await;
    assert_eq!(
        (got.status.as_u16(), error_code(&got)),
        (401, "401013".into())
    );
    // The SDK lists at `.../profile/?_lineCount=10`.
    let list = s
        .call("GET", &format!("{CAMPAIGN}/?_lineCount=10"), &headers, "")
        .await;
    assert_eq!(list.status, 200, "{:?}", list.body);
    assert!(list.json()["content"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["PKey"] == pkey.as_str()));
}

#[tokio::test]
async fn privacy_takes_aepps_requests_trailing_slash_and_sandbox_header_included() {
    let s = start_sandbox().await;
    let token = s.oauth_token().await;
    let mut b = String::new();
    let mut headers = auth(&token, &mut b).to_vec();
    headers.extend([
        ("accept", "application/json"),
        ("content-type", "application/json"),
        ("x-sandbox-name", "prod"),
    ]);
    let job = serde_json::json!({
        "companyContexts": [{"namespace": "imsOrgID", "value": identity().org_id}],
        "users": [{"key": "sdk", "action": ["access"],
                   "userIDs": [{"namespace": "email", "value": "sdk@example.com", "type": "standard"}]}],
        "include": ["Analytics"], "expandIds": false, "priority": "normal", "regulation": "gdpr",
    });
    // Python's json.dumps spacing, as aepp sends it.
    let body = serde_json::to_string_pretty(&job).unwrap();
    let created = s
        .call("POST", "/data/core/privacy/jobs/", &headers, body)
        .await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    let job_id = created.json()["jobs"][0]["jobId"]
        .as_str()
        .unwrap()
        .to_string();
    let one = s
        .call(
            "GET",
            &format!("/data/core/privacy/jobs/{job_id}"),
            &headers,
            "",
        )
        .await;
    assert_eq!(one.status, 200, "{:?}", one.body);
    assert_eq!(one.json()["status"], "processing");
    let list = s
        .call(
            "GET",
            "/data/core/privacy/jobs?size=50&regulation=gdpr",
            &headers,
            "",
        )
        .await;
    assert_eq!(list.json()["totalRecords"], 1, "{:?}", list.body);
}

#[tokio::test]
async fn a_second_route_on_api_lets_a_raw_tool_follow_cloud_managers_root_relative_links() {
    let s = start_sandbox().await;
    // What the README tells a raw HTTP tool to add: Cloud Manager's links start with /api/.
    let toml = format!(
        "{}\n[[routes]]\nprefix = \"/api\"\napi = \"cloud-manager\"\nupstream = \"{}/api\"\ncredential = \"oauth\"\n",
        s.proxy_toml(),
        s.url()
    );
    let p = start_proxy(&toml).await;
    let programs = get(&proxy_url(&p, "/oauth/cloudmanager/api/programs"))
        .await
        .json();
    let link = programs["_embedded"]["programs"][0]["_links"]["self"]["href"]
        .as_str()
        .expect("a self link")
        .to_string();
    assert!(link.starts_with("/api/"), "{link}");
    // Followed exactly as written, against the proxy's origin.
    let program = get(&proxy_url(&p, &link)).await;
    assert_eq!(program.status, 200, "{}", program.text());
    assert_eq!(program.json()["_links"]["self"]["href"], link);
}

#[tokio::test]
async fn with_a_quota_each_credential_over_it_gets_adobes_429_with_retry_after() {
    let s = start_sandbox_with(|s| s.with_quota(1)).await;
    let token = s.oauth_token().await;
    let mut bearer = String::new();
    let headers = auth(&token, &mut bearer);
    let first = s.call("GET", CAMPAIGN, &headers, "").await;
    assert_eq!(first.status, 200);
    let second = s.call("GET", CAMPAIGN, &headers, "").await;
    assert_eq!(second.status, 429);
    assert_eq!(second.header("retry-after"), Some("1"));
    assert_eq!(second.header("content-type"), Some("application/json"));
    assert_eq!(
        second.json(),
        serde_json::json!({"error_code": "429050", "message": "Too many requests"})
    );
    // Another credential has a quota of its own.
    let other = s
        .call("GET", CAMPAIGN, &[("x-api-key", "someone-else")], "")
        .await;
    assert_eq!(other.status, 401);
}

#[tokio::test]
async fn the_sandbox_counts_token_grants_per_client_id() {
    let s = start_sandbox_with(|s| s.with_quota(1)).await;
    s.oauth_token().await;
    s.oauth_token().await;
    let mut bearer = String::new();
    let token = s.oauth_token().await;
    let headers = auth(&token, &mut bearer);
    s.call("GET", CAMPAIGN, &headers, "").await;
    s.call("GET", CAMPAIGN, &headers, "").await;
    let stats = s.call("GET", "/_sandbox/stats", &[], "").await.json();
    let id = &identity().client_id;
    assert_eq!(stats["grants"][id], 3);
    assert_eq!(stats["throttled"][id], 1);
    assert_eq!(s.sandbox.ims().grants().get(id), Some(&3));
}

/// `ims-proxy check --online` on the sandbox's written config (OAuth routes), with `edit`
/// applied to it.
async fn check_online(s: &Local, edit: impl Fn(String) -> String) -> support::cli::Output {
    let toml = identity().proxy_toml(&s.url(), "127.0.0.1:0", "127.0.0.1:0", s.dir.path(), false);
    Cli::new()
        .args(["check", "--online"])
        .config(&edit(toml))
        .output()
        .await
}

/// The line `check --online` printed for `prefix` (after the resolved routes).
fn online_line<'a>(out: &'a str, prefix: &str) -> &'a str {
    out.lines()
        .rfind(|l| l.starts_with(&format!("route {prefix} -> ")))
        .unwrap_or_else(|| panic!("no line for {prefix}:\n{out}"))
}

#[tokio::test]
async fn check_online_sends_each_presets_probe_and_exits_0_when_adobe_accepts_them_all() {
    let s = start_sandbox().await;
    let out = check_online(&s, |t| t).await;
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    for (prefix, probe) in [
        (
            "/oauth/campaign",
            "GET /profileAndServices/profile?_lineCount=1 answered 200",
        ),
        (
            "/oauth/aam",
            "GET /v1/segments/?page=0&pageSize=1 answered 200",
        ),
        ("/oauth/cloudmanager", "GET /api/programs answered 200"),
        (
            "/oauth/privacy",
            "GET /jobs?regulation=gdpr&size=1 answered 200",
        ),
    ] {
        let line = online_line(&out.stdout, prefix);
        assert!(line.contains(": ok (credential oauth, "), "{line}");
        assert!(line.contains(probe), "{line}");
    }
    assert!(
        out.stdout.trim_end().ends_with("online check ok"),
        "{}",
        out.stdout
    );
}

#[tokio::test]
async fn check_online_with_a_wrong_org_id_exits_1_with_adobes_403_and_its_error_code() {
    let s = start_sandbox().await;
    let org = identity().org_id.clone();
    let out = check_online(&s, |t| {
        t.replace(
            &format!("org_id = \"{org}\""),
            "org_id = \"0000000000000000DEADBEEF@AdobeOrg\"",
        )
    })
    .await;
    assert_eq!(out.code, Some(1), "{}\n{}", out.stdout, out.stderr);
    // IMS does not check the org on an OAuth token: the credential itself passes.
    assert!(
        out.stdout.contains("credential oauth: ok"),
        "{}",
        out.stdout
    );
    for prefix in ["/oauth/privacy", "/oauth/cloudmanager"] {
        let line = online_line(&out.stdout, prefix);
        assert!(line.contains(": FAILED: GET "), "{line}");
        assert!(
            line.contains("answered 403 error_code 403025 \"Profile is not valid\""),
            "{line}"
        );
        assert!(line.contains("org_id"), "{line}");
    }
    // Campaign and Audience Manager send no org: they still work.
    for prefix in ["/oauth/campaign", "/oauth/aam"] {
        assert!(
            online_line(&out.stdout, prefix).contains(": ok ("),
            "{}",
            out.stdout
        );
    }
    assert!(
        out.stdout.contains("online check FAILED: 2 problem(s)"),
        "{}",
        out.stdout
    );
}

#[tokio::test]
async fn check_online_sends_a_custom_routes_own_probe() {
    let s = start_sandbox().await;
    let out = check_online(&s, |t| {
        format!(
            "{t}\n[[routes]]\nprefix = \"/raw\"\nupstream = \"{}\"\ncredential = \"oauth\"\n\
             probe = \"GET /v1/traits/\"\n",
            s.url()
        )
    })
    .await;
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    let line = online_line(&out.stdout, "/raw");
    assert!(line.contains("GET /v1/traits/ answered 200"), "{line}");
}

#[tokio::test]
async fn check_online_with_a_token_adobe_refuses_exits_1_with_its_401_and_error_code() {
    let s = start_sandbox().await;
    let toml = format!(
        "[credentials.stale]\ntype = \"static\"\naccess_token = \"a-token-no-ims-issued\"\n\
         client_id = \"{}\"\n\n[[routes]]\nprefix = \"/campaign\"\napi = \"campaign\"\n\
         upstream = \"{}/{}/campaign\"\ncredential = \"stale\"\n",
        identity().client_id,
        s.url(),
        identity().campaign_tenant
    );
    let out = Cli::new()
        .args(["check", "--online"])
        .config(&toml)
        .output()
        .await;
    assert_eq!(out.code, Some(1), "{}\n{}", out.stdout, out.stderr);
    let line = online_line(&out.stdout, "/campaign");
    assert!(
        line.contains("answered 401 error_code 401013 \"Oauth token is not valid\""),
        "{line}"
    );
    assert!(line.contains("Adobe refused the token"), "{line}");
}
