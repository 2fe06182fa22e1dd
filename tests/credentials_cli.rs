//! The `token` subcommand, `check` staying away from IMS, and secrets kept out of logs, run
//! through the real binary.

mod support;

use std::process::Stdio;
use std::time::Duration;
use support::ims::*;
use support::*;
use tokio::process::Command;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ims-proxy"));
    c.env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    c
}

fn config_file(ims: &Ims, toml: &str) -> String {
    ims.file("proxy.toml", toml).display().to_string()
}

async fn output(cmd: &mut Command) -> (i32, String, String) {
    let out = tokio::time::timeout(Duration::from_secs(30), cmd.output())
        .await
        .expect("finishes")
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_prints_a_fresh_token_alone_on_stdout() {
    let ims = Ims::start().await;
    let cfg = config_file(
        &ims,
        &format!(
            "{}{}",
            ims.jwt_credential("cred", ""),
            route("http://127.0.0.1:9", Some("campaign"))
        ),
    );
    let (code, stdout, stderr) = output(bin().args(["--config", &cfg, "token", "cred"])).await;
    assert_eq!(code, 0, "{stderr}");
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
    let cfg = config_file(
        &ims,
        &format!(
            "{cred}{}",
            route("http://127.0.0.1:9", Some("cloud-manager"))
        ),
    );
    let (code, stdout, stderr) = output(bin().args(["--config", &cfg, "token", "cred"])).await;
    assert_eq!(code, 1);
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
    let cfg = config_file(
        &ims,
        &format!(
            "{}{}",
            ims.oauth_credential("cred", ""),
            route("http://127.0.0.1:9", Some("cloud-manager"))
        ),
    );
    let (code, _, stderr) = output(bin().args(["--config", &cfg, "token", "nope"])).await;
    assert_eq!(code, 2);
    assert!(
        stderr.contains("credentials.nope: no such credential"),
        "{stderr}"
    );
    assert_eq!(ims.calls(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_validates_ims_credentials_without_calling_ims() {
    let ims = Ims::start().await;
    let cfg = config_file(
        &ims,
        &format!(
            "{}{}",
            ims.jwt_credential("cred", ""),
            route("http://127.0.0.1:9", Some("campaign"))
        ),
    );
    let (code, stdout, stderr) = output(bin().args(["--config", &cfg, "check"])).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("metascopes=ent_campaign_sdk"), "{stdout}");
    assert!(!stdout.contains(JWT_SECRET) && !stderr.contains(JWT_SECRET));
    assert_eq!(ims.calls(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_and_tokens_never_appear_in_trace_level_logs() {
    let ims = Ims::start().await;
    let (api, _) = token_checking_api(&ims.fake).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
{jwt}{oauth}
[[routes]]
prefix = "/jwt"
upstream = "{up}"
credential = "j"
api = "campaign"

[[routes]]
prefix = "/oauth"
upstream = "{up}"
credential = "o"
api = "cloud-manager"
"#,
        jwt = ims.jwt_credential("j", ""),
        oauth = ims.oauth_credential("o", ""),
        up = api.url(),
    );
    let cfg = config_file(&ims, &toml);
    let mut child = bin()
        .args(["--config", &cfg, "--log-format", "text"])
        .env("RUST_LOG", "trace")
        .spawn()
        .expect("spawn");
    let base = format!("http://127.0.0.1:{port}");
    let client = h1_client();
    let mut served = false;
    let end = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::time::Instant::now() < end {
        let req = http::Request::get(format!("{base}/oauth/x"))
            .body(Default::default())
            .unwrap();
        if let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(5), client.request(req)).await {
            if r.status() == 200 {
                served = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served, "the proxy answered");
    for path in ["/jwt/a", "/oauth/b"] {
        assert_eq!(get(&format!("{base}{path}")).await.status, 200);
    }
    // A revoked token: 401, forced refresh, replay.
    ims.fake.revoke_all();
    assert_eq!(get(&format!("{base}/jwt/c")).await.status, 200);
    child.start_kill().expect("kill");
    let out = child.wait_with_output().await.expect("output");
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
