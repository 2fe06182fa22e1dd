//! The forward listener's local CA: generated on first start into `[forward] ca_dir` (the key
//! readable by the proxy alone), and the leaf certificates it issues, one per intercepted host,
//! short-lived and cached. Clients trust it explicitly (`NODE_EXTRA_CA_CERTS`,
//! `REQUESTS_CA_BUNDLE`, ...); nothing else does, so a leaf is worthless outside this proxy.

use crate::base::secret::warn_if_exposed;
use crate::config::ConfigError;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Leaves live a day and are reissued an hour before that.
const LEAF_LIFETIME: Duration = Duration::from_secs(24 * 3600);
const LEAF_RENEW: Duration = Duration::from_secs(23 * 3600);
const CA_NAME: &str = "ims-proxy local CA";

pub struct LocalCa {
    cert_path: PathBuf,
    cert_pem: String,
    /// The CA as rcgen signs with it; rebuilt from the stored key and the fixed name, which is
    /// what a leaf's issuer and authority key identifier are made of.
    issuer: rcgen::Certificate,
    key: KeyPair,
    ca_der: CertificateDer<'static>,
    leaves: Mutex<HashMap<String, (Arc<CertifiedKey>, Instant)>>,
}

impl std::fmt::Debug for LocalCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCa")
            .field("cert", &self.cert_path)
            .finish_non_exhaustive()
    }
}

impl LocalCa {
    /// Loads the CA from `dir`, generating it when `dir` holds none.
    pub fn load_or_create(dir: &Path) -> Result<LocalCa, ConfigError> {
        let err = |r: String| ConfigError::new("forward.ca_dir", r);
        let cert_path = dir.join("ca.pem");
        let key_path = dir.join("ca.key");
        let created = !key_path.exists();
        if !created {
            // The directory too: a CA key others can list and replace is a CA others control.
            warn_if_exposed("forward.ca_dir", dir);
        }
        let key = if !created {
            warn_if_exposed("forward.ca_dir", &key_path);
            let pem = std::fs::read_to_string(&key_path)
                .map_err(|e| err(format!("cannot read {}: {e}", key_path.display())))?;
            KeyPair::from_pem(&pem).map_err(|e| {
                err(format!(
                    "{} is not a PEM private key: {e}",
                    key_path.display()
                ))
            })?
        } else {
            let key = KeyPair::generate().map_err(|e| err(format!("cannot make a key: {e}")))?;
            create_private_dir(dir)
                .map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
            write_private(&key_path, &key.serialize_pem())
                .map_err(|e| err(format!("cannot write {}: {e}", key_path.display())))?;
            key
        };
        let issuer = ca_params()
            .self_signed(&key)
            .map_err(|e| err(format!("cannot make the CA certificate: {e}")))?;
        let cert_pem = match std::fs::read_to_string(&cert_path) {
            Ok(pem) if !created => pem,
            _ => {
                let pem = issuer.pem();
                std::fs::write(&cert_path, &pem)
                    .map_err(|e| err(format!("cannot write {}: {e}", cert_path.display())))?;
                pem
            }
        };
        let ca_der = crate::base::pem::read_certs(&cert_path)
            .map_err(err)?
            .into_iter()
            .next()
            .ok_or_else(|| err(format!("{} holds no certificate", cert_path.display())))?;
        Ok(LocalCa {
            cert_path,
            cert_pem,
            issuer,
            key,
            ca_der,
            leaves: Mutex::new(HashMap::new()),
        })
    }

    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The certificate (and key) to present for `host`, issued on first use.
    pub fn leaf(&self, host: &str) -> Result<Arc<CertifiedKey>, String> {
        let host = host.to_ascii_lowercase();
        let mut leaves = self.leaves.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((leaf, issued)) = leaves.get(&host) {
            if issued.elapsed() < LEAF_RENEW {
                return Ok(leaf.clone());
            }
        }
        let leaf = Arc::new(self.issue(&host)?);
        leaves.insert(host, (leaf.clone(), Instant::now()));
        Ok(leaf)
    }

    fn issue(&self, host: &str) -> Result<CertifiedKey, String> {
        let mut params =
            CertificateParams::new(vec![host.to_string()]).map_err(|e| format!("{host}: {e}"))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, host);
        params.distinguished_name = dn;
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + LEAF_LIFETIME;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let cert = params
            .signed_by(&key, &self.issuer, &self.key)
            .map_err(|e| e.to_string())?;
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signing =
            rustls::crypto::ring::sign::any_supported_type(&der).map_err(|e| e.to_string())?;
        Ok(CertifiedKey::new(
            vec![cert.der().clone(), self.ca_der.clone()],
            signing,
        ))
    }
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_NAME);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(3650);
    params
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(text.as_bytes())
}
