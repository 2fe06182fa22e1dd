//! The sandbox's one integration, as Developer Console would show it: client id and secret,
//! org, technical account, a Campaign tenant and an RSA key pair. Usable with both credential
//! types, like a JWT credential migrated to OAuth (same client id, ADOBE.md §3). Kept in a
//! directory so that restarts keep the same credentials and a user's app config stays valid.

use super::ims::ClientRegistration;
use crate::adobe::Api;
use crate::base::secret::Secret;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Scopes the sandbox's OAuth credential may ask for: Cloud Manager's documented set plus
/// the Campaign scopes third-party code uses (ADOBE.md §3).
pub const SCOPES: &[&str] = &[
    "openid",
    "AdobeID",
    "read_organizations",
    "additional_info.projectedProductContext",
    "additional_info.roles",
    "read_pc.dma_aem_ams",
    "campaign_sdk",
    "campaign_config_server_general",
    "deliverability_service_general",
];

pub const APIS: [Api; 4] = [
    Api::Campaign,
    Api::AudienceManager,
    Api::CloudManager,
    Api::Privacy,
];

const FILE: &str = "sandbox.json";
const PRIVATE_KEY: &str = "private.key";
const PUBLIC_KEY: &str = "public.key";

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot generate an RSA key pair: {0}")]
    KeyGen(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> IdentityError + '_ {
    move |source| IdentityError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What `sandbox.json` holds beside the key files.
#[derive(Serialize, Deserialize)]
struct Stored {
    client_id: String,
    client_secret: String,
    org_id: String,
    technical_account_id: String,
    campaign_tenant: String,
}

#[derive(Debug, Clone)]
pub struct Identity {
    pub client_id: String,
    pub client_secret: Secret,
    pub org_id: String,
    pub technical_account_id: String,
    /// The Campaign tenant id in `/{tenant}/campaign/...` (not the IMS org).
    pub campaign_tenant: String,
    pub private_key_pem: Secret,
    pub public_key_pem: String,
}

fn hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

impl Identity {
    /// Fresh ids in Adobe's formats and a new 2048-bit key pair.
    pub fn generate() -> Result<Identity, IdentityError> {
        let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048)
            .map_err(|e| IdentityError::KeyGen(e.to_string()))?;
        let private = key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| IdentityError::KeyGen(e.to_string()))?;
        let public = key
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| IdentityError::KeyGen(e.to_string()))?;
        let org = hex(12).to_uppercase();
        Ok(Identity {
            client_id: hex(16),
            client_secret: Secret::new(format!("p8e-{}", hex(16))),
            org_id: format!("{org}@AdobeOrg"),
            technical_account_id: format!("{}@techacct.adobe.com", hex(12).to_uppercase()),
            campaign_tenant: "sandbox".into(),
            private_key_pem: Secret::new(private.to_string()),
            public_key_pem: public,
        })
    }

    /// The identity kept in `dir`, or a new one written there.
    pub fn load_or_create(dir: &Path) -> Result<Identity, IdentityError> {
        if dir.join(FILE).exists() {
            return Identity::load(dir);
        }
        let id = Identity::generate()?;
        id.write(dir)?;
        Ok(id)
    }

    pub fn load(dir: &Path) -> Result<Identity, IdentityError> {
        let path = dir.join(FILE);
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        let s: Stored = serde_json::from_str(&text).map_err(|e| IdentityError::Invalid {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let key_path = dir.join(PRIVATE_KEY);
        let pem = std::fs::read_to_string(&key_path).map_err(io(&key_path))?;
        let invalid = |reason: String| IdentityError::Invalid {
            path: key_path.clone(),
            reason,
        };
        let key = rsa::RsaPrivateKey::from_pkcs8_pem(&pem)
            .map_err(|e| invalid(format!("not a PKCS#8 PEM RSA private key: {e}")))?;
        let public = key
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| invalid(e.to_string()))?;
        Ok(Identity {
            client_id: s.client_id,
            client_secret: Secret::new(s.client_secret),
            org_id: s.org_id,
            technical_account_id: s.technical_account_id,
            campaign_tenant: s.campaign_tenant,
            private_key_pem: Secret::new(pem),
            public_key_pem: public,
        })
    }

    /// Writes `sandbox.json`, `private.key` (both 0600: they hold secrets) and `public.key`.
    pub fn write(&self, dir: &Path) -> Result<(), IdentityError> {
        create_private_dir(dir)?;
        let stored = Stored {
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.expose().to_string(),
            org_id: self.org_id.clone(),
            technical_account_id: self.technical_account_id.clone(),
            campaign_tenant: self.campaign_tenant.clone(),
        };
        let json = serde_json::to_string_pretty(&stored).map_err(|e| IdentityError::Invalid {
            path: dir.join(FILE),
            reason: e.to_string(),
        })?;
        write_private(&dir.join(FILE), &json)?;
        write_private(&self.private_key_path(dir), self.private_key_pem.expose())?;
        let public = dir.join(PUBLIC_KEY);
        std::fs::write(&public, &self.public_key_pem).map_err(io(&public))
    }

    pub fn private_key_path(&self, dir: &Path) -> PathBuf {
        dir.join(PRIVATE_KEY)
    }

    /// The client IMS knows: bound to all four APIs' metascopes and [`SCOPES`].
    pub fn registration(&self) -> ClientRegistration {
        ClientRegistration {
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            org_id: self.org_id.clone(),
            technical_account_id: self.technical_account_id.clone(),
            public_key_pem: Some(self.public_key_pem.clone()),
            metascopes: APIS.iter().map(|a| a.metascope().to_string()).collect(),
            scopes: SCOPES.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// `key: value` lines for stdout, secrets included: handing them out is the point.
    pub fn describe(&self, sandbox_url: &str, dir: &Path) -> String {
        let metascopes: Vec<&str> = APIS.iter().map(|a| a.metascope()).collect();
        let lines = [
            ("ims_url", sandbox_url.to_string()),
            ("client_id", self.client_id.clone()),
            ("client_secret", self.client_secret.expose().to_string()),
            ("org_id", self.org_id.clone()),
            ("technical_account_id", self.technical_account_id.clone()),
            (
                "private_key_file",
                self.private_key_path(dir).display().to_string(),
            ),
            ("metascopes", metascopes.join(",")),
            ("scopes", SCOPES.join(",")),
            ("campaign_tenant", self.campaign_tenant.clone()),
            (
                "campaign_url",
                format!("{sandbox_url}/{}/campaign", self.campaign_tenant),
            ),
            ("audience_manager_url", sandbox_url.to_string()),
            ("cloud_manager_url", sandbox_url.to_string()),
            ("privacy_url", format!("{sandbox_url}/data/core/privacy")),
            ("credentials_dir", dir.display().to_string()),
        ];
        lines.iter().map(|(k, v)| format!("{k}: {v}\n")).collect()
    }

    /// A `proxy.toml` for ims-proxy in front of the sandbox: an `oauth` credential routing the
    /// four APIs under `/oauth/...` and, with `legacy_jwt`, a `jwt` one under `/jwt/...` (the
    /// retired Service Account type, for orgs that still rehearse it).
    /// `admin` is the admin listener's address (`/`, `/healthz`, `/readyz`, `/metrics`).
    pub fn proxy_toml(
        &self,
        sandbox_url: &str,
        listen: &str,
        admin: &str,
        dir: &Path,
        legacy_jwt: bool,
    ) -> String {
        let mut out = format!(
            "# ims-proxy in front of the local Adobe sandbox (`ims-proxy sandbox`), plain HTTP on\n\
             # loopback. Point `ims_url` and each `upstream` at Adobe to go live.\n\n\
             [server]\nlisten = {}\n\n\
             # /healthz, /readyz and /metrics; `ims-proxy health --config THIS_FILE` asks it.\n\
             [admin]\nlisten = {}\n",
            toml_str(listen),
            toml_str(admin)
        );
        // Absolute, so the file works from any working directory and however it is read.
        let key = self.private_key_path(dir);
        let key = std::path::absolute(&key).unwrap_or(key);
        let common = format!(
            "client_id = {}\nclient_secret = {}\norg_id = {}\nims_url = {}\n",
            toml_str(&self.client_id),
            toml_str(self.client_secret.expose()),
            toml_str(&self.org_id),
            toml_str(sandbox_url),
        );
        let scopes: Vec<String> = SCOPES.iter().map(|s| toml_str(s)).collect();
        out.push_str(&format!(
            "\n[credentials.oauth]\ntype = \"oauth\"\n{common}scopes = [{}]\n",
            scopes.join(", ")
        ));
        let mut credentials = vec!["oauth"];
        if legacy_jwt {
            out.push_str(&format!(
                "\n[credentials.jwt]\ntype = \"jwt\"\n{common}technical_account_id = {}\nprivate_key_file = {}\n",
                toml_str(&self.technical_account_id),
                toml_str(&key.display().to_string()),
            ));
            credentials.push("jwt");
        }
        for cred in credentials {
            if cred == "jwt" {
                out.push_str(
                    "\n# The same APIs with the legacy credential. Adobe's hosts can lead to one route\n\
                     # only, so with a [forward] section SDKs reach the oauth routes above.\n",
                );
            }
            for (api, prefix, upstream) in self.upstreams(sandbox_url) {
                out.push_str(&format!(
                    "\n[[routes]]\nprefix = \"/{cred}/{prefix}\"\napi = \"{}\"\nupstream = {}\ncredential = \"{cred}\"\n",
                    api.name(),
                    toml_str(&upstream),
                ));
                if cred == "jwt" {
                    out.push_str("intercept = false\n");
                } else if api == Api::Campaign {
                    // What the forward listener intercepts for this route: the tenant is in
                    // `upstream`, which the proxy does not parse.
                    out.push_str(&format!(
                        "public_url = {}\n",
                        toml_str(&format!(
                            "https://mc.adobe.io/{}/campaign",
                            self.campaign_tenant
                        ))
                    ));
                }
            }
        }
        out
    }

    /// (preset, route prefix, sandbox base URL) for each API.
    pub fn upstreams(&self, sandbox_url: &str) -> [(Api, &'static str, String); 4] {
        [
            (
                Api::Campaign,
                "campaign",
                format!("{sandbox_url}/{}/campaign", self.campaign_tenant),
            ),
            (Api::AudienceManager, "aam", sandbox_url.to_string()),
            (Api::CloudManager, "cloudmanager", sandbox_url.to_string()),
            (
                Api::Privacy,
                "privacy",
                format!("{sandbox_url}/data/core/privacy"),
            ),
        ]
    }
}

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn create_private_dir(dir: &Path) -> Result<(), IdentityError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        if !dir.exists() {
            return std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io(dir));
        }
    }
    std::fs::create_dir_all(dir).map_err(io(dir))
}

/// Writes `content` readable by the owner only, also when the file existed before.
pub fn write_private(path: &Path, content: &str) -> Result<(), IdentityError> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        opts.mode(0o600);
        let mut f = opts.open(path).map_err(io(path))?;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io(path))?;
        f.write_all(content.as_bytes()).map_err(io(path))
    }
    #[cfg(not(unix))]
    {
        let mut f = opts.open(path).map_err(io(path))?;
        f.write_all(content.as_bytes()).map_err(io(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_strings_escape_quotes_and_backslashes() {
        assert_eq!(toml_str(r#"C:\a"b"#), r#""C:\\a\"b""#);
    }
}
