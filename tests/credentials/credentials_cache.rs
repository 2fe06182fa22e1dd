//! The token cache: single flight, refresh before expiry, IMS outages, reuse across snapshot
//! rebuilds, and the forced refresh and replay after an upstream 401.

use ims_proxy::config::Config;
use ims_proxy::sandbox::ims::Failure;
use ims_proxy::Snapshot;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use support::ims::*;
use support::*;

/// The OAuth credential (with `extra`) on route `/api` (Cloud Manager) to `upstream`.
fn oauth_config(ims: &Ims, upstream: String, extra: &str) -> ProxyToml {
    ProxyToml::new()
        .client("request_timeout = \"5s\"")
        .credential(ims.oauth_credential("cred", extra))
        .route(Route::new("/api").upstream(upstream).api("cloud-manager"))
}

async fn oauth_proxy(ims: &Ims, api: &FakeUpstream, extra: &str) -> ims_proxy::Running {
    oauth_config(ims, api.url(), extra).start().await
}

#[tokio::test]
async fn hundreds_of_concurrent_requests_on_a_cold_cache_make_one_ims_call() {
    let ims = Ims::start().await;
    ims.fake
        .update_knobs(|k| k.delay = Some(Duration::from_millis(400)));
    let (api, _) = token_checking_api(&ims.fake).await;
    let p = oauth_proxy(&ims, &api, "").await;
    let client = h2c_client();
    let url = proxy_url(&p, "/api/x");
    let tasks: Vec<_> = (0..300)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move { Req::get(url).send_on(&client).await.status })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(ims.calls(), 1);
    assert_eq!(api.count(), 300);
}

#[tokio::test]
async fn short_lived_tokens_are_refreshed_before_expiry_under_continuous_load() {
    let ims = Ims::start().await;
    ims.fake
        .update_knobs(|k| k.token_lifetime = Some(Duration::from_secs(2)));
    let (api, rejected) = token_checking_api(&ims.fake).await;
    let p = oauth_proxy(&ims, &api, "refresh_at = 0.5").await;
    let url = proxy_url(&p, "/api/x");
    let end = tokio::time::Instant::now() + Duration::from_millis(4500);
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let client = h1_client();
                let mut statuses = Vec::new();
                while tokio::time::Instant::now() < end {
                    let got = Req::get(&url).send_on(&client).await;
                    statuses.push(got.status.as_u16());
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                statuses
            })
        })
        .collect();
    let mut total = 0;
    for w in workers {
        let statuses = w.await.unwrap();
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
        total += statuses.len();
    }
    assert!(total > 20, "the load was continuous ({total} requests)");
    assert_eq!(
        rejected.load(Ordering::SeqCst),
        0,
        "no token reached the API expired"
    );
    assert!(
        ims.calls() >= 3,
        "refreshed in the background: {} calls",
        ims.calls()
    );
}

#[tokio::test]
async fn a_token_whose_own_claims_expire_sooner_is_refreshed_by_them() {
    let ims = Ims::start().await;
    // The response says 24 h; the token's created_at/expires_in claims say 2 s.
    ims.fake
        .update_knobs(|k| k.claims_lifetime = Some(Duration::from_secs(2)));
    let (api, _) = token_checking_api(&ims.fake).await;
    let p = oauth_proxy(&ims, &api, "").await;
    assert_eq!(get(&proxy_url(&p, "/api/x")).await.status, 200);
    assert!(eventually(Duration::from_secs(10), || ims.calls() >= 2).await);
    assert_eq!(get(&proxy_url(&p, "/api/x")).await.status, 200);
}

#[tokio::test]
async fn requests_keep_succeeding_during_an_ims_outage_while_the_token_is_valid() {
    let ims = Ims::start().await;
    ims.fake
        .update_knobs(|k| k.token_lifetime = Some(Duration::from_secs(6)));
    let (api, _) = token_checking_api(&ims.fake).await;
    let p = oauth_proxy(&ims, &api, "refresh_at = 0.1").await;
    assert_eq!(get(&proxy_url(&p, "/api/x")).await.status, 200);
    ims.fake
        .update_knobs(|k| k.failure = Some(Failure::Status(503)));
    assert!(
        eventually(Duration::from_secs(4), || ims.calls() >= 2).await,
        "the refresher tried and failed"
    );
    for _ in 0..5 {
        assert_eq!(get(&proxy_url(&p, "/api/x")).await.status, 200);
    }
}

#[tokio::test]
async fn after_the_token_expires_during_an_outage_requests_get_503_with_the_ims_error() {
    let ims = Ims::start().await;
    ims.fake
        .update_knobs(|k| k.token_lifetime = Some(Duration::from_secs(1)));
    let (api, _) = token_checking_api(&ims.fake).await;
    let p = oauth_proxy(&ims, &api, "").await;
    assert_eq!(get(&proxy_url(&p, "/api/x")).await.status, 200);
    ims.fake
        .update_knobs(|k| k.failure = Some(Failure::Status(500)));
    let url = proxy_url(&p, "/api/x");
    let got = poll(Duration::from_secs(10), || async {
        let got = get(&url).await;
        (got.status != 200).then_some(got)
    })
    .await
    .expect("requests fail once the token has expired");
    assert_eq!(got.status, 503);
    let j = got.json();
    assert_eq!(j["error_code"], "token_unavailable");
    let msg = j["message"].as_str().unwrap();
    assert!(
        msg.contains("500 server_error") && msg.contains("simulated"),
        "{msg}"
    );
}

fn config(ims: &Ims, extra: &str) -> Config {
    oauth_config(ims, "http://127.0.0.1:9".into(), extra).parse()
}

#[tokio::test]
async fn a_rebuilt_snapshot_keeps_an_unchanged_credential_and_its_token() {
    let ims = Ims::start().await;
    let first = Snapshot::build(&config(&ims, ""), None).unwrap();
    assert_eq!(ims.calls(), 0, "building a snapshot calls no IMS");
    first.start_refreshers();
    first.credentials["cred"].current().await.expect("token");
    let calls = ims.calls();
    let second = Snapshot::build(&config(&ims, ""), Some(&first)).unwrap();
    assert!(Arc::ptr_eq(
        &first.credentials["cred"],
        &second.credentials["cred"]
    ));
    second.credentials["cred"].current().await.expect("token");
    assert_eq!(ims.calls(), calls, "no IMS call for the kept credential");
    let third = Snapshot::build(&config(&ims, "refresh_at = 0.5"), Some(&second)).unwrap();
    assert!(!Arc::ptr_eq(
        &second.credentials["cred"],
        &third.credentials["cred"]
    ));
}

#[tokio::test]
async fn a_dropped_credential_stops_refreshing() {
    let ims = Ims::start().await;
    ims.fake
        .update_knobs(|k| k.token_lifetime = Some(Duration::from_secs(1)));
    let snapshot = Snapshot::build(&config(&ims, "refresh_at = 0.2"), None).unwrap();
    snapshot.start_refreshers();
    assert!(eventually(Duration::from_secs(10), || ims.calls() >= 3).await);
    drop(snapshot);
    let at_drop = ims.calls();
    // Refreshing would make about five calls in this time; one may have been in flight.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(
        ims.calls() <= at_drop + 1,
        "{} > {at_drop} + 1",
        ims.calls()
    );
}

#[tokio::test]
async fn an_upstream_401_refreshes_the_token_and_replays_a_small_body_once() {
    let ims = Ims::start().await;
    let (api, rejected) = token_checking_api(&ims.fake).await;
    let p = oauth_proxy(&ims, &api, "").await;
    assert_eq!(get(&proxy_url(&p, "/api/x")).await.status, 200);
    ims.fake.revoke_all();
    let got = Req::post(proxy_url(&p, "/api/jobs"))
        .body("small body")
        .send()
        .await;
    assert_eq!(got.status, 200, "{:?}", got.body);
    assert_eq!(rejected.load(Ordering::SeqCst), 1);
    let r = api.requests();
    assert_eq!(r.len(), 3);
    assert_eq!(r[1].body, "small body");
    assert_eq!(r[2].body, "small body");
    assert_ne!(r[1].headers["authorization"], r[2].headers["authorization"]);
    assert_eq!(ims.calls(), 2);
}

#[tokio::test]
async fn a_401_for_a_body_over_the_replay_limit_passes_through() {
    let ims = Ims::start().await;
    let (api, _) = token_checking_api(&ims.fake).await;
    let p = oauth_proxy(&ims, &api, "replay_body_limit = 1024").await;
    assert_eq!(get(&proxy_url(&p, "/api/x")).await.status, 200);
    ims.fake.revoke_all();
    let big = vec![b'x'; 4096];
    let got = Req::post(proxy_url(&p, "/api/jobs"))
        .body(big.clone())
        .send()
        .await;
    assert_eq!(got.status, 401);
    assert_eq!(got.json()["error_code"], "401013", "the API's own 401");
    assert_eq!(api.count(), 2, "not replayed");
    assert_eq!(api.requests()[1].body.len(), big.len(), "streamed whole");
    // The stale token was still replaced, so the next request succeeds.
    assert!(eventually(Duration::from_secs(5), || ims.calls() == 2).await);
    assert_eq!(get(&proxy_url(&p, "/api/x")).await.status, 200);
}

#[tokio::test]
async fn a_stream_of_401s_forces_at_most_one_refresh() {
    let ims = Ims::start().await;
    let api = FakeUpstream::responding(|_| {
        http::Response::builder()
            .status(401)
            .body(full("no"))
            .unwrap()
    })
    .await;
    let p = oauth_proxy(&ims, &api, "").await;
    for _ in 0..10 {
        assert_eq!(get(&proxy_url(&p, "/api/x")).await.status, 401);
    }
    assert_eq!(api.count(), 11, "only the first request was replayed");
    assert_eq!(ims.calls(), 2, "start-up fetch plus one forced refresh");
}
