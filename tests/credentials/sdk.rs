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

// ---- the README's trust lines: the bundle, NO_PROXY, and Node's fetch -------------------

const ADOBE: &str = "https://mc.adobe.io/acme/campaign/profileAndServices/profile";

/// Runs `program` with `args` and `env` (no proxy variables but these); stdout's last line
/// as JSON.
async fn json_of(program: &Path, args: &[&str], env: &[(&str, String)]) -> serde_json::Value {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args).stdin(Stdio::null()).kill_on_drop(true);
    for v in support::cli::PROXY_VARS {
        cmd.env_remove(v);
    }
    for v in [
        "SSL_CERT_FILE",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "NODE_EXTRA_CA_CERTS",
    ] {
        cmd.env_remove(v);
    }
    cmd.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    let out = tokio::time::timeout(DEADLINE, cmd.output())
        .await
        .expect("finishes within 2 minutes")
        .expect("run it");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}\n{stdout}");
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"))
}

#[tokio::test]
async fn python_requests_with_the_bundle_and_no_proxy_reaches_adobe_through_the_proxy_and_other_hosts(
) {
    let dir = installed();
    let up = FakeUpstream::start().await;
    let p = forward::campaign_child(&up);
    let proxy = format!("http://{}", p.forward_addr().await);
    let pki = support::tls::TestPki::new();
    let other = FakeUpstream::start_tls_h1(&pki).await;
    let other_url = format!("https://localhost:{}/other", other.addr.port());
    let (bundle, _) = support::forward::ca_bundle(&p.config, Some(&pki.ca_path()));
    let script = "import json, sys, requests\n\
        out = {}\n\
        for name, url in (('adobe', sys.argv[1]), ('other', sys.argv[2])):\n\
        \x20   try:\n\
        \x20       out[name] = requests.get(url, timeout=30).status_code\n\
        \x20   except requests.exceptions.RequestException as e:\n\
        \x20       out[name] = type(e).__name__\n\
        print(json.dumps(out))\n";
    let python = dir.join("python/.venv/bin/python");
    let run = |ca: String, no_proxy: &str| {
        let env = vec![
            ("HTTPS_PROXY", proxy.clone()),
            ("NO_PROXY", no_proxy.to_string()),
            ("REQUESTS_CA_BUNDLE", ca),
        ];
        let python = python.clone();
        let args = ["-c", script, ADOBE, other_url.as_str()].map(String::from);
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            json_of(&python, &args, &env).await
        }
    };
    let bundled = run(bundle.display().to_string(), "localhost,127.0.0.1").await;
    assert_eq!(bundled, serde_json::json!({"adobe": 200, "other": 200}));
    assert_eq!((up.count(), other.count()), (1, 1));
    // The proxy's CA alone (the README's former line): Adobe works, the other host fails.
    let ca_only = p.dir.path().join("ca/ca.pem").display().to_string();
    let alone = run(ca_only, "localhost,127.0.0.1").await;
    assert_eq!(
        alone,
        serde_json::json!({"adobe": 200, "other": "SSLError"})
    );
    // Without NO_PROXY, the other host is sent to the forward listener, which refuses it.
    let unlisted = run(bundle.display().to_string(), "").await;
    assert_eq!(unlisted["adobe"], 200);
    assert_eq!(unlisted["other"], "ProxyError");
    assert_eq!((up.count(), other.count()), (3, 1));
}

#[tokio::test]
async fn nodes_fetch_and_plain_node_fetch_ignore_https_proxy_and_https_proxy_agent_uses_it() {
    let dir = installed();
    // A recording proxy as HTTPS_PROXY, and an HTTPS host on this machine to fetch.
    let corp = ConnectProxy::start().await;
    let pki = support::tls::TestPki::new();
    let host = FakeUpstream::start_tls_h1(&pki).await;
    let url = format!("https://localhost:{}/x", host.addr.port());
    // CommonJS from the SDK harness's node_modules (node-fetch 2, https-proxy-agent 7, both
    // there as the Campaign SDK's own dependencies).
    let script = "const nodeFetch = require('node-fetch');\n\
        const { HttpsProxyAgent } = require('https-proxy-agent');\n\
        const url = process.argv[1];\n\
        const attempt = p => p.then(r => r.status, e => e.message);\n\
        (async () => {\n\
          const out = {\n\
            builtin: await attempt(fetch(url)),\n\
            nodeFetch: await attempt(nodeFetch(url)),\n\
            agent: await attempt(nodeFetch(url, { agent: new HttpsProxyAgent(process.env.HTTPS_PROXY) })),\n\
          };\n\
          console.log(JSON.stringify(out));\n\
        })();\n";
    let env = vec![
        ("HTTPS_PROXY", corp.url()),
        ("NODE_EXTRA_CA_CERTS", pki.ca_path()),
        (
            "NODE_PATH",
            dir.join("node/node_modules").display().to_string(),
        ),
    ];
    let json = json_of(Path::new("node"), &["-e", script, &url], &env).await;
    assert_eq!(
        json,
        serde_json::json!({"builtin": 200, "nodeFetch": 200, "agent": 200})
    );
    // All three reached the host; only the agent's request went through the proxy.
    assert_eq!(host.count(), 3);
    let seen = corp.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].method, "CONNECT");
    assert_eq!(seen[0].target, format!("localhost:{}", host.addr.port()));
}
