//! TLS on the listener (`[server.tls]`), optionally mutual: with `client_ca_file`, a client
//! without a certificate signed by that CA cannot complete the handshake, so it never reaches
//! HTTP at all. The acceptor is built into the snapshot, so a config reload that builds a new
//! snapshot also picks up renewed certificate and key files; connections already open keep the
//! certificate they were accepted with.

use crate::base::pem::{read_certs, read_private_key};
use crate::base::secret::warn_if_exposed;
use crate::config::{ConfigError, TlsConfig};
use std::sync::Arc;

/// What the listener needs: the acceptor, and whether it demands client certificates.
#[derive(Clone)]
pub struct ListenerTls {
    pub acceptor: tokio_rustls::TlsAcceptor,
    pub mutual: bool,
}

impl std::fmt::Debug for ListenerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerTls")
            .field("mutual", &self.mutual)
            .finish()
    }
}

impl ListenerTls {
    pub fn build(cfg: &TlsConfig) -> Result<ListenerTls, ConfigError> {
        let certs =
            read_certs(&cfg.cert_file).map_err(|r| ConfigError::new("server.tls.cert_file", r))?;
        warn_if_exposed("server.tls.key_file", &cfg.key_file);
        let key = read_private_key(&cfg.key_file)
            .map_err(|r| ConfigError::new("server.tls.key_file", r))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| ConfigError::new("server.tls", e.to_string()))?;
        let builder = match &cfg.client_ca_file {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let key = "server.tls.client_ca_file";
                let mut roots = rustls::RootCertStore::empty();
                for c in read_certs(path).map_err(|r| ConfigError::new(key, r))? {
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
        Ok(ListenerTls {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            mutual: cfg.client_ca_file.is_some(),
        })
    }
}
