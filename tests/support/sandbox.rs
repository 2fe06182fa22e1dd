//! The library's sandbox (IMS and the four APIs on one port) set up for tests, and the
//! `sandbox`/`demo` subcommands as child processes whose stdout is read line by line.

use super::client::{h1_client, send, Got};
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use ims_proxy::sandbox::identity::Identity;
use ims_proxy::sandbox::{LocalSandbox, Sandbox};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// One identity per test binary: RSA key generation is slow.
pub fn identity() -> &'static Identity {
    static ID: OnceLock<Identity> = OnceLock::new();
    ID.get_or_init(|| Identity::generate().expect("generate identity"))
}

pub struct Local {
    pub sandbox: Sandbox,
    pub local: LocalSandbox,
    pub dir: tempfile::TempDir,
}

/// A sandbox on 127.0.0.1:0 with the shared identity written to a fresh directory.
pub async fn start_sandbox() -> Local {
    let dir = tempfile::tempdir().expect("tempdir");
    identity().write(dir.path()).expect("write identity");
    let sandbox = Sandbox::new(identity().clone()).expect("sandbox");
    let local = sandbox
        .start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("start sandbox");
    Local {
        sandbox,
        local,
        dir,
    }
}

impl Local {
    pub fn url(&self) -> String {
        self.local.url()
    }

    /// The generated proxy.toml: `/oauth/...` and `/jwt/...` routes for the four APIs.
    pub fn proxy_toml(&self) -> String {
        identity().proxy_toml(&self.url(), "127.0.0.1:0", self.dir.path())
    }

    /// A token from the sandbox's IMS by OAuth client credentials.
    pub async fn oauth_token(&self) -> String {
        let id = identity();
        let form = serde_urlencoded::to_string([
            ("client_id", id.client_id.as_str()),
            ("client_secret", id.client_secret.expose()),
            ("grant_type", "client_credentials"),
            ("scope", "openid,AdobeID"),
        ])
        .expect("form");
        let got = self
            .call(
                "POST",
                "/ims/token/v3",
                &[("content-type", "application/x-www-form-urlencoded")],
                form,
            )
            .await;
        assert_eq!(got.status, 200, "{:?}", got.body);
        got.json()["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    /// `method path` straight to the sandbox with exactly `headers`.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Got {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url()));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        send(
            &h1_client(),
            req.body(Full::new(body.into())).expect("request"),
        )
        .await
    }
}

/// The auth headers a well-behaved client sends: bearer, x-api-key and the org.
pub fn auth<'a>(token: &'a str, bearer: &'a mut String) -> [(&'a str, &'a str); 3] {
    *bearer = format!("Bearer {token}");
    let id = identity();
    [
        ("authorization", bearer.as_str()),
        ("x-api-key", id.client_id.as_str()),
        ("x-gw-ims-org-id", id.org_id.as_str()),
    ]
}

/// A subcommand of the real binary with stdout and stderr collected line by line.
pub struct Spawned {
    child: Child,
    pub stdout: Arc<Mutex<Vec<String>>>,
    pub stderr: Arc<Mutex<Vec<String>>>,
}

pub fn spawn(args: &[&str]) -> Spawned {
    let mut cmd = Command::new(super::child::BIN);
    for v in super::child::PROXY_VARS {
        cmd.env_remove(v);
    }
    let mut child = cmd
        .env("RUST_LOG", "info")
        .args(["--log-format", "json"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ims-proxy");
    let collect = |r: Box<dyn std::io::Read + Send>| {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(r).lines().map_while(Result::ok) {
                sink.lock().expect("lines").push(line);
            }
        });
        lines
    };
    let stdout = collect(Box::new(child.stdout.take().expect("stdout")));
    let stderr = collect(Box::new(child.stderr.take().expect("stderr")));
    Spawned {
        child,
        stdout,
        stderr,
    }
}

impl Spawned {
    /// Stdout so far, once a line starting with `prefix` has appeared (within `deadline`).
    pub async fn stdout_until(&self, prefix: &str, deadline: Duration) -> Vec<String> {
        let end = tokio::time::Instant::now() + deadline;
        loop {
            let lines = self.stdout.lock().expect("lines").clone();
            if lines.iter().any(|l| l.starts_with(prefix)) {
                return lines;
            }
            assert!(
                tokio::time::Instant::now() < end,
                "no {prefix:?} line within {deadline:?}; stdout: {lines:?}; stderr: {:?}",
                self.stderr.lock().expect("lines")
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().expect("lines").join("\n")
    }

    /// Waits for the process to exit on its own.
    pub async fn exit_status(&mut self, deadline: Duration) -> std::process::ExitStatus {
        let end = tokio::time::Instant::now() + deadline;
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                return s;
            }
            assert!(
                tokio::time::Instant::now() < end,
                "still running after {deadline:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of the first `key: value` line.
pub fn value<'a>(lines: &'a [String], key: &str) -> &'a str {
    let prefix = format!("{key}: ");
    lines
        .iter()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {key:?} line in {lines:?}"))
}
