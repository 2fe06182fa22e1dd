//! Service Account (JWT) credentials, retired by Adobe but still in use: a short-lived JWT
//! signed RS256 with the credential's private key is exchanged at `/ims/exchange/jwt`.

use crate::base::secret::Secret;
use crate::config::ConfigError;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Adobe's own libraries give the JWT five minutes; IMS only needs it for the exchange.
const JWT_LIFETIME: Duration = Duration::from_secs(300);

/// The private key, parsed once. `EncodingKey` has no `Debug`, which is as it should be.
#[derive(Clone)]
pub struct SigningKey(EncodingKey);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey([redacted])")
    }
}

impl SigningKey {
    /// Reads a PEM RSA private key (PKCS#8 or PKCS#1). `key` is the config key for errors,
    /// which name the file and never show its content.
    pub fn load(key: &str, path: &Path) -> Result<(SigningKey, Secret), ConfigError> {
        let pem = std::fs::read(path)
            .map_err(|e| ConfigError::new(key, format!("cannot read {}: {e}", path.display())))?;
        let not_rsa = |why: String| {
            ConfigError::new(
                key,
                format!(
                    "{} is not a PEM RSA private key (PKCS#8 or PKCS#1): {why}",
                    path.display()
                ),
            )
        };
        let encoding = EncodingKey::from_rsa_pem(&pem).map_err(|e| not_rsa(e.to_string()))?;
        // jsonwebtoken only parses the key when signing; sign once now so a bad key is a
        // config error at start-up rather than a failed exchange later.
        jsonwebtoken::encode(
            &Header::new(Algorithm::RS256),
            &serde_json::json!({"probe": true}),
            &encoding,
        )
        .map_err(|e| not_rsa(e.to_string()))?;
        let text = String::from_utf8_lossy(&pem).into_owned();
        Ok((SigningKey(encoding), Secret::new(text)))
    }
}

/// Everything the exchange needs.
#[derive(Debug, Clone)]
pub struct JwtSource {
    pub ims_url: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub org_id: String,
    pub technical_account_id: String,
    pub metascopes: Vec<String>,
    pub key: SigningKey,
}

impl JwtSource {
    pub fn endpoint(&self) -> String {
        format!("{}/ims/exchange/jwt", self.ims_url)
    }

    /// The signed JWT: integer `exp`, `iss` the org, `sub` the technical account, `aud` and
    /// metascope claims on the configured IMS host (IMS checks both).
    pub fn signed_jwt(&self, now: SystemTime) -> Result<Secret, String> {
        let exp = now
            .checked_add(JWT_LIFETIME)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .ok_or("the system clock is before 1970")?
            .as_secs();
        let mut claims = serde_json::Map::new();
        claims.insert("exp".into(), exp.into());
        claims.insert("iss".into(), self.org_id.clone().into());
        claims.insert("sub".into(), self.technical_account_id.clone().into());
        claims.insert(
            "aud".into(),
            format!("{}/c/{}", self.ims_url, self.client_id).into(),
        );
        for m in &self.metascopes {
            claims.insert(format!("{}/s/{m}", self.ims_url), true.into());
        }
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &self.key.0)
            .map(Secret::new)
            .map_err(|e| format!("cannot sign the JWT: {e}"))
    }

    /// The form body for `/ims/exchange/jwt`.
    pub fn form(&self, now: SystemTime) -> Result<Secret, String> {
        let jwt = self.signed_jwt(now)?;
        serde_urlencoded::to_string([
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose()),
            ("jwt_token", jwt.expose()),
        ])
        .map(Secret::new)
        .map_err(|e| format!("cannot encode the form: {e}"))
    }
}
