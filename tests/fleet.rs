//! A fleet of proxies that behaves like one (`[shared]`): three `ims-proxy run` processes, one
//! real `redis-server` and the sandbox as IMS and upstream. What is shared (the IMS token),
//! what stays safe when Redis hangs or is wiped, and what Redis never sees in clear.

use std::time::{Duration, Instant};
use support::sandbox::{identity, start_sandbox, Local};
use support::*;

const PROFILE: &str = "/oauth/campaign/profileAndServices/profile";

/// The sandbox's proxy.toml with the OAuth credential only: one credential, one token.
fn oauth_toml(s: &Local) -> String {
    identity().proxy_toml(&s.url(), "127.0.0.1:0", "127.0.0.1:0", s.dir.path(), false)
}

/// GETs the profile through every replica in turn every `every` for `run`; every answer must
/// be 200. How many requests each replica served.
async fn traffic(fleet: &Fleet, run: Duration, every: Duration) -> Vec<usize> {
    let mut served = vec![0; fleet.addrs.len()];
    let end = Instant::now() + run;
    while Instant::now() < end {
        for (i, n) in served.iter_mut().enumerate() {
            let got = get(&fleet.url(i, PROFILE)).await;
            assert_eq!(got.status, 200, "replica {i}, request {n}: {:?}", got.body);
            *n += 1;
        }
        tokio::time::sleep(every).await;
    }
    served
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_fetch_one_token_per_lifetime_between_them() {
    let redis = RedisServer::start();
    let s = start_sandbox().await;
    let lifetime = Duration::from_secs(2);
    s.sandbox
        .ims()
        .update_knobs(|k| k.token_lifetime = Some(lifetime));
    let shared = SharedSetup::for_redis(&redis);
    let fleet = Fleet::start(&oauth_toml(&s), &shared, 3).await;
    let start = Instant::now();
    traffic(&fleet, lifetime * 3, Duration::from_millis(100)).await;
    let elapsed = start.elapsed();
    let issued = s.sandbox.ims().issued_tokens().len();
    // One process alone: its first token, then one each time 0.8 of a lifetime has passed.
    let alone = 1 + (elapsed.as_secs_f64() / (lifetime.as_secs_f64() * 0.8)).ceil() as usize;
    assert!(
        issued <= alone,
        "{issued} tokens granted to the fleet in {elapsed:?}; one process alone needs {alone}"
    );
}
