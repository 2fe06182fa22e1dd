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
    ca_key: KeyPair,
    ca_params: CertificateParams,
}

/// A certificate and key in PEM, for a listener (`server.tls`) or a client (mTLS).
pub struct Identity {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Identity {
    /// Writes the pair into `dir` as `<name>.crt` / `<name>.key` (key mode 0600).
    pub fn write(&self, dir: &std::path::Path, name: &str) -> (String, String) {
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, &self.cert_pem).expect("write cert");
        std::fs::write(&key, &self.key_pem).expect("write key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        (cert.display().to_string(), key.display().to_string())
    }
}

impl Default for TestPki {
    fn default() -> Self {
        TestPki::new()
    }
}

impl TestPki {
    /// A fresh CA and a server certificate it signed.
    pub fn new() -> TestPki {
        let ca_key = KeyPair::generate().expect("ca key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "ims-proxy test CA");
        let ca = ca_params.clone().self_signed(&ca_key).expect("ca cert");

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
            ca_key,
            ca_params,
        }
    }

    fn issue(&self, names: Vec<String>, cn: &str) -> Identity {
        let ca = self
            .ca_params
            .clone()
            .self_signed(&self.ca_key)
            .expect("ca cert");
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(names).expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        let cert = params.signed_by(&key, &ca, &self.ca_key).expect("cert");
        Identity {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// A server certificate for 127.0.0.1 and localhost, signed by this CA, named `cn`.
    pub fn server_identity(&self, cn: &str) -> Identity {
        self.issue(vec!["localhost".into(), "127.0.0.1".into()], cn)
    }

    /// A client certificate signed by this CA.
    pub fn client_identity(&self, cn: &str) -> Identity {
        self.issue(vec![format!("{cn}.clients.test")], cn)
    }

    /// A rustls client config trusting this CA, presenting `identity` when given.
    pub fn client_config(&self, identity: Option<&Identity>) -> rustls::ClientConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pemfile::certs(&mut self.ca_pem.as_bytes()) {
            roots.add(c.expect("ca pem")).expect("ca root");
        }
        let b = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots);
        let mut cfg = match identity {
            None => b.with_no_client_auth(),
            Some(id) => {
                let certs: Vec<_> = rustls_pemfile::certs(&mut id.cert_pem.as_bytes())
                    .collect::<Result<_, _>>()
                    .expect("cert pem");
                let key = rustls_pemfile::private_key(&mut id.key_pem.as_bytes())
                    .expect("key pem")
                    .expect("a key");
                b.with_client_auth_cert(certs, key).expect("client auth")
            }
        };
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        cfg
    }

    /// The leaf certificate (DER) a TLS listener at `addr`, trusted by this CA, presents to a
    /// new connection for `localhost`.
    pub async fn presented_cert(&self, addr: std::net::SocketAddr) -> Vec<u8> {
        let connector = tokio_rustls::TlsConnector::from(Arc::new(self.client_config(None)));
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let tls = connector.connect(name, tcp).await.expect("handshake");
        let (_, conn) = tls.get_ref();
        conn.peer_certificates().expect("certs")[0].to_vec()
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

/// An HTTPS server on 127.0.0.1 presenting `identity` (HTTP/1.1), answering every request
/// `200 served by <cn>`; it stops when the sender is dropped.
pub async fn serve_identity(
    identity: &Identity,
) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let certs: Vec<CertificateDer<'static>> =
        rustls_pemfile::certs(&mut identity.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .expect("cert pem");
    let key = rustls_pemfile::private_key(&mut identity.key_pem.as_bytes())
        .expect("key pem")
        .expect("a key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server cert");
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    crate::listen(move |tcp| {
        let acceptor = acceptor.clone();
        async move {
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                return;
            };
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match tls.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let body = b"served";
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = tls.write_all(reply.as_bytes()).await;
            let _ = tls.write_all(body).await;
            let _ = tls.shutdown().await;
        }
    })
    .await
}
