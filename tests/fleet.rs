//! A fleet of proxies that behaves like one (`[shared]`): three `ims-proxy run` processes, one
//! real `redis-server` and the sandbox as IMS and upstream. What is shared (the IMS token),
//! what stays safe when Redis hangs or is wiped, and what Redis never sees in clear.
//!
//! A test binary of its own: these tests count what a fleet did through Redis with a 50 ms
//! `[shared] timeout` (one IMS grant, one quota), which holds only while little else runs
//! beside them. Under two busy loops they fail alone too (3 of 13 in 1 run of 4); beside
//! another binary's tests (Adobe's SDKs in Node and Python, the forward listener's children)
//! that came sooner, so they keep to themselves.

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
    eprintln!("{issued} tokens granted to 3 replicas in {elapsed:?} (one process alone: {alone})");
    assert!(
        issued <= alone,
        "{issued} tokens granted to the fleet in {elapsed:?}; one process alone needs {alone}"
    );
}

/// Sends `every` apart through every replica until `stop` says so; each answer's status and
/// how long it took, tagged with the replica.
async fn load_until(
    fleet: &Fleet,
    every: Duration,
    stop: impl Fn() -> bool,
) -> Vec<(usize, u16, Duration)> {
    let mut seen = Vec::new();
    while !stop() {
        for i in 0..fleet.addrs.len() {
            let t = Instant::now();
            let got = get(&fleet.url(i, PROFILE)).await;
            seen.push((i, got.status.as_u16(), t.elapsed()));
        }
        tokio::time::sleep(every).await;
    }
    seen
}

const UNREACHABLE: &str =
    "shared store unreachable: tokens and limits are local until it answers again";
const REACHABLE: &str =
    "shared store reachable: tokens, quota and cool-downs are shared by the fleet";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_fails_no_request_and_costs_each_replica_at_most_its_own_refreshes() {
    let redis = RedisServer::start();
    let s = start_sandbox().await;
    let lifetime = Duration::from_millis(1500);
    s.sandbox
        .ims()
        .update_knobs(|k| k.token_lifetime = Some(lifetime));
    let shared = SharedSetup::for_redis(&redis);
    // A quota far above the load: every request asks Redis for a decision.
    let toml = with_quota(&oauth_toml(&s), "{ per_second = 1000, burst = 1000 }");
    let fleet = Fleet::start(&toml, &shared, 3).await;
    traffic(
        &fleet,
        Duration::from_millis(300),
        Duration::from_millis(50),
    )
    .await;
    let before = s.sandbox.ims().issued_tokens().len();

    redis.pause();
    let hung = Duration::from_secs(3);
    let paused_at = Instant::now();
    let seen = load_until(&fleet, Duration::from_millis(20), || {
        paused_at.elapsed() >= hung
    })
    .await;
    let during = s.sandbox.ims().issued_tokens().len() - before;
    redis.resume();

    let slowest = seen.iter().map(|(_, _, d)| *d).max().unwrap_or_default();
    eprintln!(
        "Redis hung {hung:?}: {} requests, {} non-2xx, slowest {slowest:?}, {during} tokens granted",
        seen.len(),
        seen.iter().filter(|(_, st, _)| *st != 200).count()
    );
    let failed: Vec<_> = seen.iter().filter(|(_, st, _)| *st != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of {} failed: {failed:?}",
        failed.len(),
        seen.len()
    );
    // Every request finished while Redis was still hung: none waited on it.
    assert!(slowest < hung, "a request took {slowest:?} with Redis hung");
    // Each replica refreshes its own token on time, no more: one per 0.8 of a lifetime.
    let refreshes = (hung.as_secs_f64() / (lifetime.as_secs_f64() * 0.8)).ceil() as usize + 1;
    assert!(
        during <= 3 * refreshes,
        "{during} tokens granted in {hung:?} with Redis hung; at most {refreshes} per replica"
    );
    for p in &fleet.proxies {
        p.wait_event(UNREACHABLE, Duration::from_secs(5)).await;
        p.wait_event(REACHABLE, Duration::from_secs(10)).await;
        assert_eq!(
            p.events_with(UNREACHABLE).len(),
            1,
            "one log line per outage: {}",
            p.stderr()
        );
    }
    // Shared again: the fleet's grants fall back to one per refresh.
    let after = s.sandbox.ims().issued_tokens().len();
    let start = Instant::now();
    traffic(&fleet, lifetime * 2, Duration::from_millis(50)).await;
    let shared_again = s.sandbox.ims().issued_tokens().len() - after;
    let alone =
        1 + (start.elapsed().as_secs_f64() / (lifetime.as_secs_f64() * 0.8)).ceil() as usize;
    assert!(
        shared_again <= alone,
        "{shared_again} tokens granted after Redis came back; one process alone needs {alone}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_holds_no_token_secret_or_client_id_in_clear() {
    let redis = RedisServer::start();
    let s = start_sandbox().await;
    let shared = SharedSetup::for_redis(&redis);
    // With a quota slow enough that its key outlives the traffic (it expires once its TAT
    // has passed), so that it is scanned too.
    let toml = with_quota(&oauth_toml(&s), "{ per_second = 1, burst = 1000 }");
    let fleet = Fleet::start(&toml, &shared, 2).await;
    traffic(
        &fleet,
        Duration::from_millis(200),
        Duration::from_millis(50),
    )
    .await;
    let keys = redis.keys();
    assert!(keys.iter().any(|k| k.ends_with(":quota")), "{keys:?}");
    assert!(keys.iter().any(|k| k.contains(":token:")), "{keys:?}");
    let id = identity();
    let mut needles: Vec<String> = vec![
        id.client_id.clone(),
        id.client_secret.expose().to_string(),
        id.org_id.clone(),
        id.technical_account_id.clone(),
    ];
    needles.extend(s.sandbox.ims().issued_tokens());
    for key in &keys {
        assert!(
            key.starts_with("ims-proxy:test:{"),
            "key outside the prefix: {key}"
        );
        let value = redis.raw_value(key);
        for n in &needles {
            assert!(!key.contains(n.as_str()), "{key} contains a secret or id");
            let clear = value.windows(n.len()).any(|w| w == n.as_bytes());
            assert!(!clear, "{key}'s value holds a secret, token or id in clear");
            // Nor a recognisable part of one (a token's JWT header or payload).
            let part = &n[..n.len().min(24)];
            let partial = value.windows(part.len()).any(|w| w == part.as_bytes());
            assert!(
                !partial,
                "{key}'s value holds part of a secret, token or id"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_with_another_seal_key_says_so_and_fetches_a_token_it_can_use() {
    let redis = RedisServer::start();
    let s = start_sandbox().await;
    let shared = SharedSetup::for_redis(&redis);
    let first = Fleet::start(&oauth_toml(&s), &shared, 1).await;
    traffic(
        &first,
        Duration::from_millis(100),
        Duration::from_millis(50),
    )
    .await;
    assert_eq!(s.sandbox.ims().issued_tokens().len(), 1);

    let other = shared.with_new_seal_key();
    let second = Fleet::start(&oauth_toml(&s), &other, 1).await;
    traffic(
        &second,
        Duration::from_millis(100),
        Duration::from_millis(50),
    )
    .await;
    let line = second.proxies[0]
        .wait_event(
            "the fleet's shared token cannot be used; fetching a fresh one from IMS \
             (check that every replica has the same [shared] seal_key_file)",
            Duration::from_secs(5),
        )
        .await;
    assert!(
        line["error"].as_str().unwrap_or("").contains("seal key"),
        "{line}"
    );
    assert_eq!(s.sandbox.ims().issued_tokens().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_seen_by_every_replica_makes_one_new_token_for_the_fleet() {
    let redis = RedisServer::start();
    let s = start_sandbox().await;
    let shared = SharedSetup::for_redis(&redis);
    let fleet = Fleet::start(&oauth_toml(&s), &shared, 3).await;
    traffic(
        &fleet,
        Duration::from_millis(100),
        Duration::from_millis(50),
    )
    .await;
    assert_eq!(s.sandbox.ims().issued_tokens().len(), 1);
    // An admin rotates the secret: IMS forgets every token it issued.
    s.sandbox.ims().revoke_all();
    let before = s.sandbox.ims().calls();
    let served = traffic(
        &fleet,
        Duration::from_millis(300),
        Duration::from_millis(50),
    )
    .await;
    assert!(served.iter().all(|n| *n > 0));
    let grants = s.sandbox.ims().calls() - before;
    assert_eq!(grants, 1, "tokens fetched after the 401s: {grants}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flushed_redis_costs_nothing_and_is_filled_again_at_the_next_refresh() {
    let redis = RedisServer::start();
    let s = start_sandbox().await;
    let lifetime = Duration::from_millis(1500);
    s.sandbox
        .ims()
        .update_knobs(|k| k.token_lifetime = Some(lifetime));
    let shared = SharedSetup::for_redis(&redis);
    let fleet = Fleet::start(&oauth_toml(&s), &shared, 2).await;
    traffic(
        &fleet,
        Duration::from_millis(200),
        Duration::from_millis(50),
    )
    .await;
    redis.flushall();
    assert!(redis.keys().is_empty());
    traffic(&fleet, lifetime, Duration::from_millis(50)).await;
    assert!(
        redis.keys().iter().any(|k| k.contains(":token:")),
        "no token stored again: {:?}",
        redis.keys()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_an_acl_user_confined_to_the_prefix_are_enough() {
    let redis = RedisServer::builder()
        .tls()
        .acl_user("ims-proxy", "a-long-redis-password", "ims-proxy:test:*")
        .start();
    let s = start_sandbox().await;
    let shared = SharedSetup::for_redis(&redis);
    assert!(
        shared.url.starts_with("rediss://ims-proxy@"),
        "{}",
        shared.url
    );
    let fleet = Fleet::start(&oauth_toml(&s), &shared, 2).await;
    traffic(
        &fleet,
        Duration::from_millis(200),
        Duration::from_millis(50),
    )
    .await;
    assert_eq!(s.sandbox.ims().issued_tokens().len(), 1);
    assert!(redis.keys().iter().any(|k| k.contains(":token:")));
    for p in &fleet.proxies {
        assert!(p.events_with(UNREACHABLE).is_empty(), "{}", p.stderr());
        assert!(!p.stderr().contains("a-long-redis-password"));
    }
}

/// `toml` with `quota = QUOTA` on its first credential.
fn with_quota(toml: &str, quota: &str) -> String {
    let at = toml.find("[credentials.").expect("a credential");
    let end = at + toml[at..].find('\n').expect("a line") + 1;
    format!("{}quota = {quota}\n{}", &toml[..end], &toml[end..])
}

/// A static credential whose routes (`/q`, `/r`) refuse at once rather than queue.
fn static_fleet_toml(up: &FakeUpstream, cred_extra: &str) -> String {
    ProxyToml::new()
        .credential(format!(
            "{}{cred_extra}\n",
            config::static_credential("cred")
        ))
        .route(Route::new("/q").upstream(up.url()).extra("queue_size = 0"))
        .route(Route::new("/r").upstream(up.url()).extra("queue_size = 0"))
        .toml()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_quota_holds_for_the_fleet_not_per_replica() {
    let redis = RedisServer::start();
    let up = FakeUpstream::start().await;
    let toml = static_fleet_toml(&up, "quota = { per_second = 20, burst = 5 }");
    let fleet = Fleet::start(&toml, &SharedSetup::for_redis(&redis), 3).await;
    // 100/s offered, a third through each replica, over both routes of the credential.
    let run = Duration::from_secs(3);
    let start = Instant::now();
    let mut callers = Vec::new();
    for i in 0..3 {
        let base = fleet.url(i, "");
        callers.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_millis(30));
            let mut n = 0u32;
            while start.elapsed() < run {
                tick.tick().await;
                let path = if n % 2 == 0 { "/q/x" } else { "/r/x" };
                n += 1;
                answers.push(get(&format!("{base}{path}")).await);
            }
            answers
        }));
    }
    let mut answers = Vec::new();
    for c in callers {
        answers.extend(c.await.expect("caller"));
    }
    let elapsed = start.elapsed().as_secs_f64();
    let passed = up.count();
    let ok = answers.iter().filter(|g| g.status == 200).count();
    assert_eq!(ok, passed, "every 200 came from the upstream");
    for g in answers.iter().filter(|g| g.status != 200) {
        assert_eq!(g.status, 429, "{:?}", g.body);
        assert_eq!(g.json()["error_code"], "quota_exceeded", "{:?}", g.body);
        let retry: u64 = g
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .expect("Retry-After in seconds");
        assert!(retry >= 1, "Retry-After: {retry}");
    }
    // GCRA on Redis's clock: at most the burst plus the rate over the run; and, offered five
    // times the rate, not much less than the rate.
    let most = 5.0 + 20.0 * elapsed;
    let least = 0.9 * 20.0 * elapsed;
    eprintln!(
        "{} offered, {passed} reached the upstream in {elapsed:.2} s ({:.1}/s)",
        answers.len(),
        passed as f64 / elapsed
    );
    assert!(
        (passed as f64) <= most * 1.1 && (passed as f64) >= least,
        "{passed} reached the upstream in {elapsed:.2} s; the quota allows {most:.0}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_429_seen_by_one_replica_holds_back_the_others_until_retry_after() {
    let redis = RedisServer::start();
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let first = seen.clone();
    let up = FakeUpstream::responding(move |_| {
        if first.fetch_add(1, std::sync::atomic::Ordering::SeqCst) > 0 {
            return http::Response::new(full("ok"));
        }
        adobe_429(&[("retry-after", "3")])
    })
    .await;
    // No quota: the others' requests never ask Redis for a decision; they learn it by polling.
    let toml = static_fleet_toml(&up, "");
    let fleet = Fleet::start(&toml, &SharedSetup::for_redis(&redis), 3).await;
    let throttled = get(&fleet.url(0, "/q/1")).await;
    let at = Instant::now();
    assert_eq!(throttled.status, 429);
    assert_eq!(
        throttled.json()["error_code"],
        "429050",
        "passed through untouched"
    );
    // Within a second every replica knows (they read the fleet's cool-downs every 250 ms).
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let mut held = 0;
    while at.elapsed() < Duration::from_millis(2500) {
        for i in 1..3 {
            let got = get(&fleet.url(i, "/r/2")).await;
            assert_eq!(
                got.status,
                429,
                "replica {i} at {:?}: {:?}",
                at.elapsed(),
                got.body
            );
            assert_eq!(got.json()["error_code"], "upstream_throttled");
            let left: u64 = got
                .header("retry-after")
                .and_then(|v| v.parse().ok())
                .expect("Retry-After");
            assert!((1..=3).contains(&left), "Retry-After {left}");
            held += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(held > 0);
    assert_eq!(
        up.count(),
        1,
        "a replica sent to the upstream during the cool-down"
    );
    // It ends by itself, everywhere.
    for i in 1..3 {
        let resumed = poll(Duration::from_secs(10), || async {
            (get(&fleet.url(i, "/r/3")).await.status == 200).then_some(Instant::now())
        })
        .await
        .expect("requests never resumed");
        assert!(resumed.duration_since(at) >= Duration::from_millis(2900));
    }
}

/// `ims-proxy check [--online]` on `toml` with `shared`'s table.
async fn check(toml: &str, shared: &str, online: bool) -> Output {
    let mut cli = Cli::new().config(&format!("{toml}{shared}")).arg("check");
    if online {
        cli = cli.arg("--online");
    }
    cli.output().await
}

#[tokio::test]
async fn a_shared_table_without_a_seal_key_or_with_a_password_in_its_url_is_refused() {
    let up = FakeUpstream::start().await;
    let toml = static_fleet_toml(&up, "");
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("seal.key");
    std::fs::write(&key, [7u8; 32]).expect("write");
    let key = format!("seal_key_file = {:?}\n", key.display().to_string());
    let cases = [
        (
            "\n[shared]\nurl = \"redis://127.0.0.1:6379/0\"\n".to_string(),
            "shared.seal_key_file: required with [shared]",
        ),
        (
            format!("\n[shared]\nurl = \"redis://user:hunter2@127.0.0.1:6379/0\"\n{key}"),
            "shared.url: has a password in it",
        ),
        (
            format!("\n[shared]\nurl = \"http://127.0.0.1:6379\"\n{key}"),
            "shared.url: scheme \"http\"",
        ),
        (
            format!("\n[shared]\nurl = \"redis://127.0.0.1:6379/0\"\nreplicas = 0\n{key}"),
            "shared.replicas: must be at least 1",
        ),
        (
            format!("\n[shared]\nurl = \"redis://127.0.0.1:6379/0\"\ntimeout = \"0s\"\n{key}"),
            "shared.timeout: must be more than 0",
        ),
    ];
    for (shared, expected) in cases {
        let out = check(&toml, &shared, false).await;
        assert_eq!(out.code, Some(2), "{shared}: {}", out.stderr);
        assert!(out.stderr.contains(expected), "{shared}: {}", out.stderr);
        assert!(!out.stderr.contains("hunter2"), "{}", out.stderr);
    }
    // A seal key that is not 32 bytes names the key and says how to make one.
    let short = dir.path().join("short.key");
    std::fs::write(&short, "too short").expect("write");
    let shared = format!(
        "\n[shared]\nurl = \"redis://127.0.0.1:6379/0\"\nseal_key_file = {:?}\n",
        short.display().to_string()
    );
    let out = check(&toml, &shared, false).await;
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("shared.seal_key_file") && out.stderr.contains("32 random bytes"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_online_reaches_redis_and_says_what_failed() {
    let redis = RedisServer::builder()
        .tls()
        .acl_user("ims-proxy", "the-right-password", "ims-proxy:test:*")
        .start();
    let up = FakeUpstream::start().await;
    let toml = static_fleet_toml(&up, "");
    let shared = SharedSetup::for_redis(&redis);
    let ok = check(&toml, &shared.toml(), true).await;
    assert_eq!(ok.code, Some(0), "{}\n{}", ok.stdout, ok.stderr);
    assert!(
        ok.stdout.contains(&format!(
            "shared rediss://ims-proxy@127.0.0.1:{}/0: ok",
            redis.port()
        )),
        "{}",
        ok.stdout
    );
    // The password from the environment instead of a file.
    let from_env = SharedSetup {
        password_file: None,
        ..SharedSetup::for_redis(&redis)
    };
    let env = Cli::new()
        .config(&format!("{toml}{}", from_env.toml()))
        .args(["check", "--online"])
        .envs(&[("IMS_PROXY_SHARED__PASSWORD", "the-right-password")])
        .output()
        .await;
    assert_eq!(env.code, Some(0), "{}\n{}", env.stdout, env.stderr);
    // A wrong password: the line says authentication, and never the password.
    std::fs::write(
        shared.password_file.as_ref().expect("password file"),
        "the-wrong-password",
    )
    .expect("write");
    let bad = check(&toml, &shared.toml(), true).await;
    assert_eq!(bad.code, Some(1), "{}", bad.stdout);
    assert!(
        bad.stdout
            .contains("FAILED: the shared store: authentication"),
        "{}",
        bad.stdout
    );
    assert!(
        !bad.stdout.contains("the-wrong-password") && !bad.stderr.contains("the-wrong-password")
    );
    // A user confined to another prefix: the write under ours is refused.
    let other = SharedSetup {
        key_prefix: "another-fleet".into(),
        ..SharedSetup::for_redis(&redis)
    };
    let denied = check(&toml, &other.toml(), true).await;
    assert_eq!(denied.code, Some(1), "{}", denied.stdout);
    assert!(
        denied
            .stdout
            .contains("a write and delete of another-fleet:probe refused"),
        "{}",
        denied.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_gone_a_replica_stays_ready_and_says_so_on_readyz_and_in_metrics() {
    let mut redis = RedisServer::start();
    let up = FakeUpstream::start().await;
    let toml = ProxyToml::new()
        .admin()
        .credential(format!(
            "{}quota = {{ per_second = 100, burst = 100 }}\n",
            config::static_credential("cred")
        ))
        .route(Route::new("/q").upstream(up.url()))
        .toml();
    let fleet = Fleet::start(&toml, &SharedSetup::for_redis(&redis), 1).await;
    let admin = fleet.proxies[0].admin_addr().await;
    assert_eq!(get(&fleet.url(0, "/q/1")).await.status, 200);
    let ready = get(&format!("http://{admin}/readyz")).await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["shared"]["state"], "up", "{:?}", ready.body);
    redis.kill();
    // Requests go on, decided locally; readiness stays, with the detail.
    for i in 0..5 {
        assert_eq!(get(&fleet.url(0, &format!("/q/{i}"))).await.status, 200);
    }
    let ready = get(&format!("http://{admin}/readyz")).await;
    assert_eq!(ready.status, 200, "{:?}", ready.body);
    assert_eq!(ready.json()["shared"]["state"], "down", "{:?}", ready.body);
    let text = get(&format!("http://{admin}/metrics")).await;
    let text = String::from_utf8_lossy(&text.body).to_string();
    assert_eq!(metric_value(&text, "ims_proxy_shared_up", &[]), Some(0.0));
    assert!(
        metric_value(
            &text,
            "ims_proxy_shared_fallbacks_total",
            &[("kind", "quota")]
        ) >= Some(1.0)
    );
    let page = get(&format!("http://{admin}/")).await;
    assert!(
        String::from_utf8_lossy(&page.body)
            .contains("id=\"shared\" class=\"state state-not_ready\">down</span>"),
        "{:?}",
        page.body
    );
    // Back on the same port: it rejoins by itself.
    redis.restart();
    let up_again = poll(Duration::from_secs(10), || async {
        let r = get(&format!("http://{admin}/readyz")).await;
        (r.json()["shared"]["state"] == "up").then_some(())
    })
    .await;
    assert!(up_again.is_some(), "never rejoined");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_routes_rate_limit_holds_for_the_fleet_not_per_replica() {
    let redis = RedisServer::start();
    let up = FakeUpstream::start().await;
    let toml = static_proxy(
        Route::new("/q")
            .upstream(up.url())
            .extra("rate_limit = { per_second = 2, burst = 2 }\nqueue_size = 0"),
    )
    .toml();
    let fleet = Fleet::start(&toml, &SharedSetup::for_redis(&redis), 3).await;
    let start = Instant::now();
    let mut refused = 0;
    for n in 0..30 {
        let got = get(&fleet.url(n % 3, "/q/x")).await;
        if got.status == 429 {
            assert_eq!(got.json()["error_code"], "rate_limited");
            refused += 1;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let passed = up.count();
    assert_eq!(passed + refused, 30);
    let most = 2.0 + 2.0 * elapsed;
    assert!(
        passed as f64 <= most + 1.0,
        "{passed} of 30 reached the upstream in {elapsed:.2} s; the route allows {most:.1}"
    );
}
