//! Each Adobe preset sends what that API requires, to the path it expects. An explicit
//! `upstream` replaces the preset's base URL, so the fake upstream stands in for Adobe.

mod support;

use support::*;

fn preset_config(api: &str, up: &FakeUpstream, extra: &str) -> String {
    format!(
        r#"
[credentials.adobe]
type = "static"
access_token = "tok-xyz"
client_id = "api-key-1"
org_id = "ORG1@AdobeOrg"

[[routes]]
prefix = "/p"
api = "{api}"
upstream = "{}/base"
credential = "adobe"
{extra}
"#,
        up.url()
    )
}

async fn one_request(api: &str, extra: &str) -> Recorded {
    let up = FakeUpstream::start().await;
    let p = start_proxy(&preset_config(api, &up, extra)).await;
    let got = get(&proxy_url(&p, "/p/some/path?a=1")).await;
    assert_eq!(got.status, 200);
    let r = up.only_request();
    assert_eq!(r.target, "/base/some/path?a=1");
    assert_eq!(r.headers["authorization"], "Bearer tok-xyz");
    assert_eq!(r.headers["x-api-key"], "api-key-1");
    r
}

#[tokio::test]
async fn campaign_sends_cache_control_and_no_org_id() {
    let r = one_request("campaign", "").await;
    assert_eq!(r.headers["cache-control"], "no-cache");
    assert!(r.headers.get("x-gw-ims-org-id").is_none());
}

#[tokio::test]
async fn audience_manager_sends_no_org_id() {
    let r = one_request("audience-manager", "").await;
    assert!(r.headers.get("x-gw-ims-org-id").is_none());
    assert!(r.headers.get("cache-control").is_none());
}

#[tokio::test]
async fn cloud_manager_sends_the_org_id() {
    let r = one_request("cloud-manager", "").await;
    assert_eq!(r.headers["x-gw-ims-org-id"], "ORG1@AdobeOrg");
}

#[tokio::test]
async fn privacy_sends_the_org_id() {
    let r = one_request("privacy", "").await;
    assert_eq!(r.headers["x-gw-ims-org-id"], "ORG1@AdobeOrg");
}

#[tokio::test]
async fn a_route_header_overrides_the_presets_header_of_the_same_name() {
    let r = one_request("campaign", r#"headers = { "Cache-Control" = "max-age=0" }"#).await;
    assert_eq!(r.headers.get_all("cache-control").iter().count(), 1);
    assert_eq!(r.headers["cache-control"], "max-age=0");
}

#[test]
fn presets_resolve_to_adobes_production_hosts() {
    let toml = r#"
[credentials.c]
type = "static"
access_token = "t"
client_id = "id"
org_id = "O@AdobeOrg"

[[routes]]
prefix = "/campaign"
api = "campaign"
tenant = "acme"
credential = "c"

[[routes]]
prefix = "/campaign-stage"
api = "campaign"
tenant = "acme"
stage = true
credential = "c"

[[routes]]
prefix = "/aam"
api = "audience-manager"
credential = "c"

[[routes]]
prefix = "/cloudmanager"
api = "cloud-manager"
credential = "c"

[[routes]]
prefix = "/privacy"
api = "privacy"
credential = "c"
"#;
    let config = ims_proxy::config::Config::from_toml(toml).unwrap();
    let s = ims_proxy::Snapshot::build(&config, None).unwrap();
    let d = s.describe();
    for line in [
        "route /campaign -> https://mc.adobe.io/acme/campaign ",
        "route /campaign-stage -> https://mc.adobe.io/acme-mkt-stage/campaign ",
        "route /aam -> https://aam.adobe.io ",
        "route /cloudmanager -> https://cloudmanager.adobe.io ",
        "route /privacy -> https://platform.adobe.io/data/core/privacy ",
    ] {
        assert!(d.contains(line), "missing {line:?} in\n{d}");
    }
}
