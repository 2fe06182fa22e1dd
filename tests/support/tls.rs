//! A throwaway CA and a server certificate for 127.0.0.1 and localhost, made with rcgen.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::io::Write;
use std::sync::Arc;

pub struct TestPki {
    pub ca_pem: String,
    pub cert_chain: Vec<CertificateDer<'static>>,
    pub key_der: Vec<u8>,
    /// The CA written to a file, for `client.ca_file`.
    pub ca_file: tempfile::NamedTempFile,
}

impl TestPki {
    pub fn new() -> TestPki {
        let ca_key = KeyPair::generate().expect("ca key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "ims-proxy test CA");
        let ca = ca_params.self_signed(&ca_key).expect("ca cert");

        let leaf_key = KeyPair::generate().expect("leaf key");
        let leaf_params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("leaf params");
        let leaf = leaf_params
            .signed_by(&leaf_key, &ca, &ca_key)
            .expect("leaf cert");

        let mut ca_file = tempfile::NamedTempFile::new().expect("tempfile");
        ca_file.write_all(ca.pem().as_bytes()).expect("write ca");
        TestPki {
            ca_pem: ca.pem(),
            cert_chain: vec![leaf.der().clone(), ca.der().clone()],
            key_der: leaf_key.serialize_der(),
            ca_file,
        }
    }

    pub fn ca_path(&self) -> String {
        self.ca_file.path().display().to_string()
    }

    /// A rustls server config offering h2 and http/1.1 by ALPN.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(self.cert_chain.clone(), key)
            .expect("server cert");
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(cfg)
    }
}
