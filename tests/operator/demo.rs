//! The `sandbox` and `demo` subcommands through the real binary: what they print, what they
//! write, and that what they print works.

use ims_proxy::config::Config;
use std::time::Duration;
use support::sandbox::*;
use support::*;

const STARTUP: Duration = Duration::from_secs(20);

#[tokio::test]
async fn the_sandbox_command_prints_its_credentials_and_writes_a_working_proxy_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let creds = dir.path().join("creds");
    let creds_arg = creds.display().to_string();
    let sandbox = spawn(&[
        "sandbox",
        "--listen",
        "127.0.0.1:0",
        "--credentials-dir",
        &creds_arg,
    ]);
    let out = sandbox.stdout_until("proxy_config: ", STARTUP).await;
    for key in [
        "client_id",
        "client_secret",
        "org_id",
        "technical_account_id",
        "ims_url",
    ] {
        assert!(!value(&out, key).is_empty(), "{key}");
    }
    assert!(value(&out, "org_id").ends_with("@AdobeOrg"));
    assert!(value(&out, "technical_account_id").ends_with("@techacct.adobe.com"));
    let key = std::path::PathBuf::from(value(&out, "private_key_file"));
    assert!(key.starts_with(&creds));
    let pem = std::fs::read_to_string(&key).expect("private key written");
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the private key is the owner's alone");
    }

    let mut config = Config::load(std::path::Path::new(value(&out, "proxy_config"))).expect("load");
    config.server.listen = "127.0.0.1:0".into();
    // The written config has an admin listener (on 9090, here moved to a free port).
    assert_eq!(config.admin.listen.as_deref(), Some("127.0.0.1:9090"));
    config.admin.listen = Some("127.0.0.1:0".into());
    let p = ims_proxy::start(&config)
        .await
        .expect("proxy from the written config");
    assert!(p.admin_addr.is_some());
    let got = get(&proxy_url(&p, "/jwt/campaign/profileAndServices/profile")).await;
    assert_eq!(got.status, 200, "{:?}", got.body);
    assert!(got.json()["content"][0]["email"].is_string());
    assert!(
        !sandbox.stderr.text().contains(value(&out, "client_secret")),
        "logs never carry the secret"
    );
}

#[tokio::test]
async fn the_sandbox_keeps_its_credentials_across_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display().to_string();
    let first = spawn(&[
        "sandbox",
        "--listen",
        "127.0.0.1:0",
        "--credentials-dir",
        &d,
    ]);
    let client = value(
        &first.stdout_until("proxy_config: ", STARTUP).await,
        "client_id",
    )
    .to_string();
    drop(first);
    let second = spawn(&[
        "sandbox",
        "--listen",
        "127.0.0.1:0",
        "--credentials-dir",
        &d,
    ]);
    let out = second.stdout_until("proxy_config: ", STARTUP).await;
    assert_eq!(value(&out, "client_id"), client);
}

#[tokio::test]
async fn a_failure_schedule_without_a_failure_is_a_usage_error() {
    let mut bad = spawn(&["sandbox", "--listen", "127.0.0.1:0", "--fail-ratio", "0.5"]);
    assert_eq!(bad.wait_exit(STARTUP).await.code(), Some(2));
    let mut bad = spawn(&["sandbox", "--listen", "127.0.0.1:0", "--fail", "200"]);
    assert_eq!(bad.wait_exit(STARTUP).await.code(), Some(2));
}

/// The URL in a printed curl command (its last word, unquoted).
fn url_of(line: &str) -> String {
    line.split_whitespace()
        .last()
        .expect("a word")
        .trim_matches('\'')
        .to_string()
}

#[tokio::test]
async fn the_demo_prints_curl_commands_and_the_campaign_one_returns_profiles_only_a_token_gets() {
    let demo = spawn(&["demo"]);
    // The last command printed is the one against the sandbox itself.
    let out = demo.stdout_until("curl -s -H 'x-api-key: ", STARTUP).await;
    let curls: Vec<&String> = out.iter().filter(|l| l.starts_with("curl ")).collect();
    assert!(curls.len() >= 8, "{out:?}");
    for path in [
        "/oauth/campaign/",
        "/oauth/aam/v1/",
        "/oauth/cloudmanager/api/",
        "/oauth/privacy/jobs",
    ] {
        assert!(curls.iter().any(|c| c.contains(path)), "no curl for {path}");
    }
    // JWT is retired: the demo shows OAuth Server-to-Server only.
    assert!(!curls.iter().any(|c| c.contains("/jwt/")), "{curls:?}");
    let campaign = curls
        .iter()
        .find(|c| c.contains("/oauth/campaign/profileAndServices/profile"))
        .expect("a Campaign curl");
    let got = get(&url_of(campaign)).await;
    assert_eq!(got.status, 200, "{:?}", got.body);
    let profiles = got.json();
    assert!(profiles["content"][0]["PKey"].is_string(), "{profiles}");

    // The same resource straight from the sandbox, without the proxy's token.
    let direct = curls.last().expect("the direct curl");
    let api_key = direct
        .split("x-api-key: ")
        .nth(1)
        .and_then(|r| r.split('\'').next())
        .expect("api key");
    let refused = Req::get(url_of(direct))
        .header("x-api-key", api_key)
        .send()
        .await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.json()["error_code"], "401013");
}

#[tokio::test]
async fn the_demo_routes_nothing_through_the_retired_jwt_credential() {
    let demo = spawn(&["demo"]);
    let out = demo.stdout_until("curl -s -H 'x-api-key: ", STARTUP).await;
    let campaign = out
        .iter()
        .find(|l| l.contains("/oauth/campaign/profileAndServices/profile"))
        .expect("a Campaign curl");
    let jwt = url_of(campaign).replace("/oauth/", "/jwt/");
    let got = get(&jwt).await;
    assert_eq!(got.status, 404, "{:?}", got.body);
    assert_eq!(got.json()["error_code"], "no_route");
    let ready = out
        .iter()
        .find(|l| l.starts_with("curl ") && l.ends_with("/readyz"))
        .expect("a /readyz curl");
    let credentials = get(&url_of(ready)).await.json()["credentials"].clone();
    assert!(credentials.get("jwt").is_none(), "{credentials}");
}

#[tokio::test]
async fn the_sandboxs_config_written_to_a_relative_directory_works_from_any_other() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = Cli::new()
        .json_logs("info")
        .args([
            "sandbox",
            "--listen",
            "127.0.0.1:0",
            "--credentials-dir",
            "./creds",
        ])
        .command();
    cmd.current_dir(dir.path());
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.stdout(std::process::Stdio::piped()).kill_on_drop(true);
    let mut child = cmd.spawn().expect("spawn sandbox");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let config = tokio::time::timeout(STARTUP, async {
        while let Ok(Some(l)) = lines.next_line().await {
            if let Some(p) = l.strip_prefix("proxy_config: ") {
                return p.to_string();
            }
        }
        panic!("no proxy_config line");
    })
    .await
    .expect("the sandbox starts");
    // From elsewhere, naming the file by a path relative to there.
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let config = std::path::Path::new(&config);
    let config = if config.is_relative() {
        dir.path().join(config)
    } else {
        config.to_path_buf()
    };
    let out = Cli::new()
        .args(["check", "--config"])
        .arg(&config)
        .command()
        .current_dir(elsewhere.path())
        .output()
        .expect("check");
    let out = Output::from(out);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains("admin: 127.0.0.1:9090"),
        "{}",
        out.stdout
    );
}

#[tokio::test]
async fn the_demo_prints_admin_commands_that_answer() {
    let demo = spawn(&["demo"]);
    let out = demo.stdout_until("curl -s -H 'x-api-key: ", STARTUP).await;
    let ready = out
        .iter()
        .find(|l| l.starts_with("curl ") && l.ends_with("/readyz"))
        .unwrap_or_else(|| panic!("no /readyz curl in {out:?}"));
    let got = get(&url_of(ready)).await;
    assert!(got.status == 200 || got.status == 503, "{}", got.status);
    assert!(
        got.json()["credentials"]["oauth"].is_object(),
        "{:?}",
        got.body
    );
    let metrics = out
        .iter()
        .find(|l| l.starts_with("curl ") && l.ends_with("/metrics"))
        .expect("a /metrics curl");
    assert_eq!(get(&url_of(metrics)).await.status, 200);
    let page = out
        .iter()
        .find(|l| l.starts_with("curl ") && l.ends_with('/'))
        .expect("a status page curl");
    let got = get(&url_of(page)).await;
    assert_eq!(got.status, 200);
    assert!(got.text().contains("/oauth/campaign"), "{}", got.text());
}

#[tokio::test]
async fn the_sandbox_quota_and_the_proxys_cool_down_rehearse_adobes_throttle_offline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let creds_arg = dir.path().join("creds").display().to_string();
    let sandbox = spawn(&[
        "sandbox",
        "--listen",
        "127.0.0.1:0",
        "--credentials-dir",
        &creds_arg,
        "--quota",
        "1/s",
    ]);
    let out = sandbox.stdout_until("stats: ", STARTUP).await;
    assert_eq!(value(&out, "quota"), "1/s per credential");
    let mut config = Config::load(std::path::Path::new(value(&out, "proxy_config"))).expect("load");
    config.server.listen = "127.0.0.1:0".into();
    config.admin.listen = None;
    let p = ims_proxy::start(&config).await.expect("proxy");
    let path = "/oauth/campaign/profileAndServices/profile";
    // Sent one after the other: the second within the sandbox's second meets its 429.
    let throttled = poll(STARTUP, || async {
        let got = get(&proxy_url(&p, path)).await;
        (got.status == 429).then_some((got, std::time::Instant::now()))
    })
    .await
    .expect("the sandbox never throttled");
    let (adobe, at) = throttled;
    assert_eq!(
        adobe.json()["error_code"],
        "429050",
        "Adobe's 429 passes through"
    );
    assert_eq!(adobe.header("retry-after"), Some("1"));
    let local = get(&proxy_url(&p, path)).await;
    let in_time = at.elapsed() < Duration::from_millis(900);
    let stats = get(value(&out, "stats")).await.json();
    let client_id = value(&out, "client_id");
    if in_time {
        assert_eq!(local.status, 429);
        assert_eq!(local.json()["error_code"], "upstream_throttled");
        // The proxy's one throttled request reached the sandbox; its local answer did not.
        assert_eq!(stats["throttled"][client_id], 1);
    }
    let grants = stats["grants"][client_id].as_u64().unwrap_or(0);
    assert!(
        (1..=2).contains(&grants),
        "{grants} tokens for the proxy's two credentials"
    );
}
