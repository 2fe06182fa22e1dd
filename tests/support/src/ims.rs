//! The library's fake IMS ([`ims_proxy::sandbox::ims`]) set up for tests: RSA key pairs
//! (generated once per test binary, since RSA key generation is slow), registered clients,
//! config snippets, and a fake Adobe API that only accepts tokens the fake IMS issued.

use crate::upstream::{full, FakeUpstream};
use ims_proxy::sandbox::ims::{ClientRegistration, FakeIms, LocalIms};
use ims_proxy::Secret;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

pub const JWT_CLIENT: &str = "jwt-client-id";
pub const JWT_SECRET: &str = "p8e-jwt-SECRET-value-1";
pub const OAUTH_CLIENT: &str = "oauth-client-id";
pub const OAUTH_SECRET: &str = "p8e-oauth-SECRET-value-2";
pub const ORG: &str = "ORG1@AdobeOrg";
pub const TECH: &str = "TECH1@techacct.adobe.com";
pub const CM_SCOPES: &[&str] = &[
    "openid",
    "AdobeID",
    "read_organizations",
    "additional_info.projectedProductContext",
    "read_pc.dma_aem_ams",
];

pub struct RsaKeys {
    pub pkcs8: String,
    pub pkcs1: String,
    pub public: String,
}

fn generate() -> RsaKeys {
    let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("rsa keygen");
    RsaKeys {
        pkcs8: key.to_pkcs8_pem(LineEnding::LF).expect("pkcs8").to_string(),
        pkcs1: key.to_pkcs1_pem(LineEnding::LF).expect("pkcs1").to_string(),
        public: key
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("public"),
    }
}

/// The key pair registered with the fake IMS.
pub fn keys() -> &'static RsaKeys {
    static K: OnceLock<RsaKeys> = OnceLock::new();
    K.get_or_init(generate)
}

/// A key pair IMS has never heard of.
pub fn other_keys() -> &'static RsaKeys {
    static K: OnceLock<RsaKeys> = OnceLock::new();
    K.get_or_init(generate)
}

pub struct Ims {
    pub fake: FakeIms,
    pub local: LocalIms,
    pub dir: tempfile::TempDir,
}

impl Ims {
    /// A fake IMS on 127.0.0.1:0 with a JWT client bound to the Campaign metascope and an
    /// OAuth client allowed Cloud Manager's scopes.
    pub async fn start() -> Ims {
        let fake = FakeIms::new();
        fake.register(ClientRegistration {
            client_id: JWT_CLIENT.into(),
            client_secret: Secret::new(JWT_SECRET),
            org_id: ORG.into(),
            technical_account_id: TECH.into(),
            public_key_pem: Some(keys().public.clone()),
            metascopes: vec!["ent_campaign_sdk".into()],
            scopes: vec![],
        })
        .expect("register jwt client");
        fake.register(ClientRegistration {
            client_id: OAUTH_CLIENT.into(),
            client_secret: Secret::new(OAUTH_SECRET),
            org_id: ORG.into(),
            technical_account_id: TECH.into(),
            public_key_pem: None,
            metascopes: vec![],
            scopes: CM_SCOPES.iter().map(|s| s.to_string()).collect(),
        })
        .expect("register oauth client");
        let local = fake
            .start("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("start fake IMS");
        Ims {
            fake,
            local,
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn url(&self) -> String {
        self.local.url()
    }

    pub fn calls(&self) -> usize {
        self.fake.calls()
    }

    /// Writes `content` to a file in this test's directory.
    pub fn file(&self, name: &str, content: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, content).expect("write file");
        p
    }

    /// `[credentials.NAME]` for the JWT client, with the registered key (PKCS#8).
    pub fn jwt_credential(&self, name: &str, extra: &str) -> String {
        let key = self.file("key.pem", &keys().pkcs8);
        self.jwt_credential_with_key(name, &key, extra)
    }

    /// `[credentials.NAME]` for the JWT client, with `private_key_file = key` (which need not
    /// exist, or hold the registered key).
    pub fn jwt_credential_with_key(&self, name: &str, key: &Path, extra: &str) -> String {
        format!(
            r#"
[credentials.{name}]
type = "jwt"
client_id = "{JWT_CLIENT}"
client_secret = "{JWT_SECRET}"
org_id = "{ORG}"
technical_account_id = "{TECH}"
private_key_file = "{}"
ims_url = "{}"
{extra}
"#,
            key.display(),
            self.url()
        )
    }

    /// `[credentials.NAME]` for the OAuth client.
    pub fn oauth_credential(&self, name: &str, extra: &str) -> String {
        format!(
            r#"
[credentials.{name}]
type = "oauth"
client_id = "{OAUTH_CLIENT}"
client_secret = "{OAUTH_SECRET}"
org_id = "{ORG}"
ims_url = "{}"
{extra}
"#,
            self.url()
        )
    }
}

/// A fake Adobe API: 200 for a token the fake IMS issued and that is still valid, otherwise
/// Campaign's 401. The counter counts the 401s it answered.
pub async fn token_checking_api(ims: &FakeIms) -> (FakeUpstream, Arc<AtomicUsize>) {
    let rejected = Arc::new(AtomicUsize::new(0));
    let (ims, r) = (ims.clone(), rejected.clone());
    let up = FakeUpstream::responding(move |rec| {
        let valid = rec
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| ims.validate_token(v))
            .is_some();
        let (status, body) = if valid {
            (200, r#"{"ok":true}"#)
        } else {
            r.fetch_add(1, Ordering::SeqCst);
            (
                401,
                r#"{"error_code":"401013","message":"Oauth token is not valid"}"#,
            )
        };
        http::Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(full(body))
            .expect("response")
    })
    .await;
    (up, rejected)
}
