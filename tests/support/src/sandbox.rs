//! The library's sandbox (IMS and the four APIs on one port) set up for tests, and the
//! `sandbox`/`demo` subcommands as child processes whose stdout is read line by line.

use crate::child::Spawned;
use crate::cli::Cli;
use crate::client::{Got, Req};
use bytes::Bytes;
use ims_proxy::sandbox::identity::Identity;
use ims_proxy::sandbox::{LocalSandbox, Sandbox};
use std::sync::OnceLock;

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
    start_sandbox_with(|s| s).await
}

/// [`start_sandbox`], the sandbox set up by `configure` first (`|s| s.with_quota(2)`).
pub async fn start_sandbox_with(configure: impl FnOnce(Sandbox) -> Sandbox) -> Local {
    let dir = tempfile::tempdir().expect("tempdir");
    identity().write(dir.path()).expect("write identity");
    let sandbox = configure(Sandbox::new(identity().clone()).expect("sandbox"));
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
        identity().proxy_toml(
            &self.url(),
            "127.0.0.1:0",
            "127.0.0.1:0",
            self.dir.path(),
            true,
        )
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
        Req::new(method, format!("{}{path}", self.url()))
            .headers(headers)
            .body(body)
            .send()
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

/// `ims-proxy ARGS` (`sandbox ...`, `demo`) with JSON logs, its output read line by line.
pub fn spawn(args: &[&str]) -> Spawned {
    Cli::new().json_logs("info").args(args).spawn()
}

/// The value of the first `key: value` line.
pub fn value<'a>(lines: &'a [String], key: &str) -> &'a str {
    let prefix = format!("{key}: ");
    lines
        .iter()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {key:?} line in {lines:?}"))
}

/// `fields` as `multipart/form-data`, written the way the `form-data` npm package behind
/// `@adobe/aio-lib-ims` and `@adobe/jwt-auth` writes it: `(content type, body)`.
pub fn multipart_form(fields: &[(&str, &str)]) -> (String, String) {
    let boundary = format!("--------------------------{:024}", rand::random::<u64>());
    let mut body = String::new();
    for (name, value) in fields {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// A JWT for the sandbox's `/ims/exchange/jwt`, as a Service Account client signs it: RS256
/// with the shared identity's key, `aud` and the metascope claims on `ims_url`, 5 minutes.
pub fn sandbox_jwt(ims_url: &str, metascopes: &[&str]) -> String {
    let id = identity();
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 300;
    let mut claims = serde_json::json!({
        "exp": exp,
        "iss": id.org_id,
        "sub": id.technical_account_id,
        "aud": format!("{ims_url}/c/{}", id.client_id),
    });
    for m in metascopes {
        claims[format!("{ims_url}/s/{m}")] = true.into();
    }
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(id.private_key_pem.expose().as_bytes())
        .expect("the identity's key");
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &key,
    )
    .expect("sign")
}
