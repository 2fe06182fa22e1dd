//! Each Adobe preset sends what that API requires, to the path it expects. An explicit
//! `upstream` replaces the preset's base URL, so the fake upstream stands in for Adobe.

use support::*;

/// One request through route `/p` with preset `api` (and `extra`) to a fake upstream's
/// `/base`, checked for what every preset sends; what the upstream received.
async fn one_request(api: &str, extra: &str) -> Recorded {
    let up = FakeUpstream::start().await;
    let route = Route::new("/p")
        .api(api)
        .upstream(format!("{}/base", up.url()))
        .credential("adobe")
        .extra(extra);
    let p = ProxyToml::new()
        .static_credential("adobe")
        .route(route)
        .start()
        .await;
    let got = get(&proxy_url(&p, "/p/some/path?a=1")).await;
    assert_eq!(got.status, 200);
    let r = up.only_request();
    assert_eq!(r.target, "/base/some/path?a=1");
    assert_eq!(r.headers["authorization"], format!("Bearer {STATIC_TOKEN}"));
    assert_eq!(r.headers["x-api-key"], STATIC_CLIENT_ID);
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
    assert_eq!(r.headers["x-gw-ims-org-id"], STATIC_ORG);
}

#[tokio::test]
async fn privacy_sends_the_org_id() {
    let r = one_request("privacy", "").await;
    assert_eq!(r.headers["x-gw-ims-org-id"], STATIC_ORG);
}

#[tokio::test]
async fn a_route_header_overrides_the_presets_header_of_the_same_name() {
    let r = one_request("campaign", r#"headers = { "Cache-Control" = "max-age=0" }"#).await;
    assert_eq!(r.headers.get_all("cache-control").iter().count(), 1);
    assert_eq!(r.headers["cache-control"], "max-age=0");
}

#[test]
fn presets_resolve_to_adobes_production_hosts() {
    let campaign = |prefix: &str| {
        Route::new(prefix)
            .api("campaign")
            .extra("tenant = \"acme\"")
    };
    let config = ProxyToml::new()
        .static_credential("cred")
        .route(campaign("/campaign"))
        .route(campaign("/campaign-stage").extra("stage = true"))
        .route(Route::new("/aam").api("audience-manager"))
        .route(Route::new("/cloudmanager").api("cloud-manager"))
        .route(Route::new("/privacy").api("privacy"))
        .parse();
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
