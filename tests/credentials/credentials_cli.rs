//! The `token` subcommand, `check` staying away from IMS, and secrets kept out of logs, run
//! through the real binary.

use std::process::Stdio;
use std::time::Duration;
use support::ims::*;
use support::*;

/// `ims-proxy --config FILE ARGS`, the file holding `credential` and route `/api` with the
/// `api` preset (to an upstream nothing listens on), in the fake IMS's directory.
async fn run(ims: &Ims, credential: String, api: &str, args: &[&str]) -> Output {
    let config = ProxyToml::new()
        .credential(credential)
        .route(Route::new("/api").upstream("http://127.0.0.1:9").api(api));
    let path = ims.file("proxy.toml", &config.toml());
    Cli::new().config_file(&path).args(args).output().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_prints_a_fresh_token_alone_on_stdout() {
    let ims = Ims::start().await;
    let out = run(
        &ims,
        ims.jwt_credential("cred", ""),
        "campaign",
        &["token", "cred"],
    )
    .await;
    let (code, stdout, stderr) = (out.code, &out.stdout, &out.stderr);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout.lines().count(), 1, "{stdout:?}");
    let info = ims
        .fake
        .validate_token(stdout.trim())
        .expect("an issued token");
    assert_eq!(info.client_id, JWT_CLIENT);
    assert!(
        stderr.contains("retired"),
        "JWT retirement warning: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_exits_non_zero_with_the_ims_error() {
    let ims = Ims::start().await;
    let cred = ims
        .oauth_credential("cred", "")
        .replace(OAUTH_SECRET, "wrong-secret");
    let out = run(&ims, cred, "cloud-manager", &["token", "cred"]).await;
    let (code, stdout, stderr) = (out.code, &out.stdout, &out.stderr);
    assert_eq!(code, Some(1));
    assert!(stdout.is_empty(), "{stdout:?}");
    assert!(
        stderr.contains("credentials.cred: IMS answered 401 invalid_client"),
        "{stderr}"
    );
    assert!(!stderr.contains("wrong-secret"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_for_an_unknown_credential_is_a_config_error() {
    let ims = Ims::start().await;
    let out = run(
        &ims,
        ims.oauth_credential("cred", ""),
        "cloud-manager",
        &["token", "nope"],
    )
    .await;
    let (code, stderr) = (out.code, &out.stderr);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("credentials.nope: no such credential"),
        "{stderr}"
    );
    assert_eq!(ims.calls(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_validates_ims_credentials_without_calling_ims() {
    let ims = Ims::start().await;
    let out = run(&ims, ims.jwt_credential("cred", ""), "campaign", &["check"]).await;
    let (code, stdout, stderr) = (out.code, &out.stdout, &out.stderr);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("metascopes=ent_campaign_sdk"), "{stdout}");
    assert!(!stdout.contains(JWT_SECRET) && !stderr.contains(JWT_SECRET));
    assert_eq!(ims.calls(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_and_tokens_never_appear_in_trace_level_logs() {
    let ims = Ims::start().await;
    let (api, _) = token_checking_api(&ims.fake).await;
    // The child binds this port itself (its text logs give no address to read back).
    let port = unused_addr().port();
    let config = ProxyToml::new()
        .section(&format!("[server]\nlisten = \"127.0.0.1:{port}\""))
        .credential(ims.jwt_credential("j", ""))
        .credential(ims.oauth_credential("o", ""))
        .route(
            Route::new("/jwt")
                .upstream(api.url())
                .credential("j")
                .api("campaign"),
        )
        .route(
            Route::new("/oauth")
                .upstream(api.url())
                .credential("o")
                .api("cloud-manager"),
        );
    let path = ims.file("proxy.toml", &config.toml());
    let child = tokio::process::Command::from(
        Cli::new()
            .config_file(&path)
            .args(["--log-format", "text"])
            .env("RUST_LOG", "trace")
            .command(),
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true)
    .spawn()
    .expect("spawn");
    let base = format!("http://127.0.0.1:{port}");
    let client = h1_client();
    // The child binds the port it was given: ask until it answers.
    let served = poll(Duration::from_secs(20), || async {
        let req = Req::get(format!("{base}/oauth/x")).build();
        let answer = tokio::time::timeout(Duration::from_secs(5), client.request(req)).await;
        matches!(answer, Ok(Ok(r)) if r.status() == 200).then_some(())
    })
    .await
    .is_some();
    assert!(served, "the proxy answered");
    for path in ["/jwt/a", "/oauth/b"] {
        assert_eq!(get(&format!("{base}{path}")).await.status, 200);
    }
    // A revoked token: 401, forced refresh, replay.
    ims.fake.revoke_all();
    assert_eq!(get(&format!("{base}/jwt/c")).await.status, 200);
    // SIGTERM, not SIGKILL: the log writer flushes on a graceful exit, and a killed process
    // loses what it had not written yet (the assertions below read all of it).
    let pid = child.id().expect("pid").to_string();
    let term = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(term.success());
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("the proxy exits on SIGTERM")
        .expect("output");
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(logs.contains("TRACE"), "trace logging was on");
    assert!(logs.contains("obtained an access token"));
    let tokens = ims.fake.issued_tokens();
    assert!(tokens.len() >= 3, "{tokens:?}");
    let key_line = keys().pkcs8.lines().nth(5).unwrap().to_string();
    let mut secrets = vec![JWT_SECRET.to_string(), OAUTH_SECRET.to_string(), key_line];
    secrets.extend(tokens);
    for s in &secrets {
        assert!(!logs.contains(s.as_str()), "a secret reached the logs");
        // Tokens are JWTs; no part of one may appear either (payloads, signatures).
        for part in s.split('.').filter(|p| p.len() > 20) {
            assert!(!logs.contains(part), "part of a token reached the logs");
        }
    }
}
