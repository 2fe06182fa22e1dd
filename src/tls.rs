//! TLS on the listener (`[server.tls]`), optionally mutual: with `client_ca_file`, a client
//! without a certificate signed by that CA cannot complete the handshake, so it never reaches
//! HTTP at all. The acceptor is built into the snapshot, so a config reload that builds a new
//! snapshot also picks up renewed certificate and key files; connections already open keep the
//! certificate they were accepted with.

use crate::config::ConfigError;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The server certificate chain (PEM), leaf first.
    pub cert_file: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// CA bundle (PEM) for client certificates; when set, every client must present one.
    pub client_ca_file: Option<PathBuf>,
}

/// What the listener needs: the acceptor, and whether it demands client certificates.
#[derive(Clone)]
pub struct Listener {
    pub acceptor: tokio_rustls::TlsAcceptor,
    pub mutual: bool,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("tls::Listener")
            .field("mutual", &self.mutual)
            .finish()
    }
}

impl Listener {
    pub fn build(cfg: &TlsConfig) -> Result<Listener, ConfigError> {
        let certs = read_certs("server.tls.cert_file", &cfg.cert_file)?;
        crate::secret_file::warn_if_exposed("server.tls.key_file", &cfg.key_file);
        let key = read_key("server.tls.key_file", &cfg.key_file)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| ConfigError::new("server.tls", e.to_string()))?;
        let builder = match &cfg.client_ca_file {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let key = "server.tls.client_ca_file";
                let mut roots = rustls::RootCertStore::empty();
                for c in read_certs(key, path)? {
                    roots
                        .add(c)
                        .map_err(|e| ConfigError::new(key, format!("{}: {e}", path.display())))?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .map_err(|e| ConfigError::new(key, format!("{}: {e}", path.display())))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_single_cert(certs, key).map_err(|e| {
            ConfigError::new(
                "server.tls.key_file",
                format!(
                    "{} does not match {}: {e}",
                    cfg.key_file.display(),
                    cfg.cert_file.display()
                ),
            )
        })?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Listener {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            mutual: cfg.client_ca_file.is_some(),
        })
    }
}

fn read_certs(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let pem = std::fs::read(path)
        .map_err(|e| ConfigError::new(key, format!("cannot read {}: {e}", path.display())))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| ConfigError::new(key, format!("{} is not PEM: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(ConfigError::new(
            key,
            format!("{} holds no certificate", path.display()),
        ));
    }
    Ok(certs)
}

/// The error names the file, never anything read from it.
fn read_key(key: &str, path: &Path) -> Result<PrivateKeyDer<'static>, ConfigError> {
    let pem = std::fs::read(path)
        .map_err(|e| ConfigError::new(key, format!("cannot read {}: {e}", path.display())))?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .ok()
        .flatten()
        .ok_or_else(|| {
            ConfigError::new(key, format!("{} holds no PEM private key", path.display()))
        })
}
