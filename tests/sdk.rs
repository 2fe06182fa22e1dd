//! Adobe's own SDKs, unmodified, through the forward listener against the sandbox, with dummy
//! credentials: `@adobe/aio-lib-campaign-standard` (npm) and `aepp`'s Privacy Service module
//! (PyPI), pinned in tests/sdk and installed by tests/sdk/install.sh (install scripts off).
//! The sandbox accepts only tokens its IMS issued and the real client id and org, so an SDK
//! call that succeeds proves the dummies never reached it.

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;
use support::forward::{send_via, trusting};
use support::sandbox::{identity, start_sandbox, Local};
use support::*;

const DEADLINE: Duration = Duration::from_secs(120);

fn sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk")
}

/// Installs the SDKs once per test binary (fast when `.ci/run` already has).
fn installed() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = std::process::Command::new("bash")
            .arg(sdk_dir().join("install.sh"))
            .output()
            .expect("run tests/sdk/install.sh");
        assert!(
            out.status.success(),
            "tests/sdk/install.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        sdk_dir()
    })
}

struct Setup {
    sandbox: Local,
    proxy: ims_proxy::Running,
    ca: PathBuf,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let sandbox = start_sandbox().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_dir = dir.path().join("ca");
    // The sandbox's own config with a [forward] section added, as the README says.
    let toml = format!(
        "{}\n[forward]\nlisten = \"127.0.0.1:0\"\nca_dir = \"{}\"\n",
        sandbox.proxy_toml(),
        ca_dir.display()
    );
    let proxy = start_proxy(&toml).await;
    Setup {
        sandbox,
        proxy,
        ca: ca_dir.join("ca.pem"),
        _dir: dir,
    }
}

impl Setup {
    fn https_proxy(&self) -> String {
        format!(
            "http://{}",
            self.proxy.forward_addr.expect("forward listener")
        )
    }
}

/// Runs an SDK script; its one JSON line.
async fn run(program: &Path, script: &Path, env: &[(&str, String)]) -> serde_json::Value {
    let mut cmd = tokio::process::Command::new(program);
    cmd.arg(script)
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(DEADLINE, cmd.output())
        .await
        .expect("the SDK script finishes within 2 minutes")
        .expect("run the SDK script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{}: {stderr}\n{stdout}",
        script.display()
    );
    let line = stdout.lines().last().unwrap_or_default();
    let json: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(json["ok"], true, "{json}");
    json
}

#[tokio::test]
async fn the_campaign_sdk_lists_creates_and_reads_profiles_with_dummy_credentials() {
    let dir = installed();
    let s = setup().await;
    let json = run(
        Path::new("node"),
        &dir.join("node/campaign.mjs"),
        &[
            ("CAMPAIGN_TENANT", identity().campaign_tenant.clone()),
            ("DUMMY_API_KEY", "dummy-api-key".into()),
            ("DUMMY_TOKEN", "dummy-token".into()),
            ("HTTPS_PROXY", s.https_proxy()),
            ("NODE_EXTRA_CA_CERTS", s.ca.display().to_string()),
        ],
    )
    .await;
    assert!(json["listed"].as_u64().is_some(), "{json}");
    assert_eq!(json["byPKey"]["email"], json["created"]["email"], "{json}");
    assert!(!json.to_string().contains("dummy"), "{json}");
}

#[tokio::test]
async fn aepp_logs_in_then_creates_and_reads_a_privacy_job_with_dummy_credentials() {
    let dir = installed();
    let s = setup().await;
    let python = dir.join("python/.venv/bin/python");
    let json = run(
        &python,
        &dir.join("python/privacy.py"),
        &[
            ("DUMMY_ORG_ID", "DUMMYORG@AdobeOrg".into()),
            ("DUMMY_CLIENT_ID", "dummy-client-id".into()),
            ("DUMMY_SECRET", "dummy-secret".into()),
            ("COMPANY_ORG_ID", identity().org_id.clone()),
            ("HTTPS_PROXY", s.https_proxy()),
            ("REQUESTS_CA_BUNDLE", s.ca.display().to_string()),
        ],
    )
    .await;
    assert_eq!(
        json["tokenParts"], 3,
        "the placeholder is JWT-shaped: {json}"
    );
    assert!(json["created"]["jobId"].as_str().is_some(), "{json}");
}

#[tokio::test]
async fn the_placeholder_token_sent_straight_to_the_sandbox_is_rejected() {
    let s = setup().await;
    let form = "grant_type=client_credentials&client_id=dummy&client_secret=dummy&scope=openid";
    let req = Request::post("/ims/token/v3")
        .header("host", "ims-na1.adobelogin.com")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(form)))
        .expect("request");
    let got = send_via(
        s.proxy.forward_addr.expect("forward"),
        "ims-na1.adobelogin.com",
        trusting(&s.ca),
        "",
        req,
    )
    .await
    .expect("answered by the forward listener");
    let placeholder = got.json()["access_token"]
        .as_str()
        .expect("a token")
        .to_string();
    let direct = Req::get(format!(
        "{}/{}/campaign/profileAndServices/profile",
        s.sandbox.url(),
        identity().campaign_tenant
    ))
    .header("authorization", &format!("Bearer {placeholder}"))
    .header("x-api-key", &identity().client_id)
    .send()
    .await;
    assert_eq!(direct.status, 401, "{}", direct.text());
}
