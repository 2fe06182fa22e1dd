//! A client of the forward listener, as an SDK behind `HTTPS_PROXY` is: `CONNECT host:443`,
//! TLS inside the tunnel trusting (or not) the proxy's local CA, then HTTP/1.1.

use crate::client::Got;
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const DEADLINE: Duration = Duration::from_secs(30);

/// Opens `CONNECT authority` with `extra` header lines; the status line's code and the stream.
pub async fn connect(proxy: SocketAddr, authority: &str, extra: &str) -> (u16, String, TcpStream) {
    connect_within(proxy, authority, extra, DEADLINE)
        .await
        .expect("CONNECT answered within 30 s")
}

/// [`connect`], or `None` when the CONNECT's answer does not come within `deadline`.
pub async fn connect_within(
    proxy: SocketAddr,
    authority: &str,
    extra: &str,
    deadline: Duration,
) -> Option<(u16, String, TcpStream)> {
    let mut s = TcpStream::connect(proxy)
        .await
        .expect("connect to the forward listener");
    let head = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n{extra}\r\n");
    s.write_all(head.as_bytes()).await.expect("write CONNECT");
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    // Byte by byte up to the end of the head, so nothing of the tunnel is read here.
    while !got.ends_with(b"\r\n\r\n") {
        let n = match tokio::time::timeout(deadline, s.read(&mut byte)).await {
            Ok(Ok(n)) => n,
            Ok(Err(_)) => 0,
            Err(_) => return None,
        };
        if n == 0 {
            break;
        }
        got.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    // A refusal carries a JSON body with a Content-Length: read it too.
    let len = text
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    if len > 0 && status != 200 {
        let _ = tokio::time::timeout(DEADLINE, s.read_exact(&mut body)).await;
    }
    Some((
        status,
        format!("{text}{}", String::from_utf8_lossy(&body)),
        s,
    ))
}

/// TLS client config trusting exactly the CA in `ca_pem`.
pub fn trusting(ca_pem: &Path) -> Arc<rustls::ClientConfig> {
    let pem = std::fs::read(ca_pem).expect("read the CA");
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(c.expect("CA PEM")).expect("add CA");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// A TLS stream to `https://host` through the forward listener at `proxy` (`CONNECT`, then
/// the handshake trusting `tls`), for requests no well-behaved client sends; `Err` when the
/// tunnel or the handshake fails.
pub async fn tunnel(
    proxy: SocketAddr,
    host: &str,
    tls: Arc<rustls::ClientConfig>,
    extra: &str,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    let (status, head, tcp) = connect(proxy, &format!("{host}:443"), extra).await;
    if status != 200 {
        return Err(format!("CONNECT answered {status}: {head}"));
    }
    let name =
        rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
    tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))
}

/// `req` (origin-form) to `https://host` through the forward listener at `proxy`, trusting
/// `tls`; `Err` when the tunnel or the TLS handshake fails.
pub async fn send_via(
    proxy: SocketAddr,
    host: &str,
    tls: Arc<rustls::ClientConfig>,
    extra: &str,
    req: Request<Full<Bytes>>,
) -> Result<Got, String> {
    let tls = tunnel(proxy, host, tls, extra).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let resp = tokio::time::timeout(DEADLINE, sender.send_request(req))
        .await
        .map_err(|_| "no answer within 30 s".to_string())?
        .map_err(|e| e.to_string())?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Got {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

/// A certificate for `host` signed with the forward listener's CA key in `ca_dir`, as whoever
/// stole `ca.key` could make one: the issuer is rebuilt from the key and the CA's name.
pub fn forged_identity(ca_dir: &Path, host: &str) -> crate::tls::Identity {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let pem = std::fs::read_to_string(ca_dir.join("ca.key")).expect("read ca.key");
    let ca_key = KeyPair::from_pem(&pem).expect("ca.key");
    let mut ca_params = CertificateParams::default();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "ims-proxy local CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let issuer = ca_params.self_signed(&ca_key).expect("issuer");
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(vec![host.to_string()]).expect("params");
    params.distinguished_name.push(DnType::CommonName, host);
    let cert = params.signed_by(&key, &issuer, &ca_key).expect("leaf");
    crate::tls::Identity {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// Which of the machine's TLS clients accept `host`'s certificate from the server at `addr`
/// when told to trust `ca_pem` alone: curl and Python (OpenSSL), Node (its own OpenSSL). Each
/// entry is the client and `Ok` or its error.
pub async fn system_clients_verify(
    ca_pem: &Path,
    host: &str,
    addr: SocketAddr,
) -> Vec<(&'static str, Result<(), String>)> {
    let ca = ca_pem.display().to_string();
    let port = addr.port().to_string();
    let url = format!("https://{host}:{port}/");
    let resolve = format!("{host}:{port}:{}", addr.ip());
    let python = "import socket, ssl, sys\n\
        ctx = ssl.create_default_context(cafile=sys.argv[1])\n\
        with socket.create_connection(('127.0.0.1', int(sys.argv[3]))) as s:\n\
        \x20   with ctx.wrap_socket(s, server_hostname=sys.argv[2]):\n\
        \x20       pass\n";
    let node = "const tls = require('tls'), fs = require('fs');\n\
        const [ca, host, port] = process.argv.slice(1);\n\
        const s = tls.connect({ host: '127.0.0.1', port: +port, servername: host, \
        ca: fs.readFileSync(ca) }, () => { s.end(); process.exit(0); });\n\
        s.on('error', e => { console.error(e.message); process.exit(1); });\n";
    let runs: [(&'static str, &str, Vec<&str>); 3] = [
        (
            "curl",
            "curl",
            vec![
                "-sS",
                "--max-time",
                "30",
                "--cacert",
                &ca,
                "--resolve",
                &resolve,
                &url,
            ],
        ),
        ("python", "python3", vec!["-c", python, &ca, host, &port]),
        ("node", "node", vec!["-e", node, &ca, host, &port]),
    ];
    let mut out = Vec::new();
    for (name, program, args) in runs {
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(&args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        for v in crate::cli::PROXY_VARS {
            cmd.env_remove(v);
        }
        let got = tokio::time::timeout(DEADLINE, cmd.output())
            .await
            .unwrap_or_else(|_| panic!("{name} finishes within 30 s"))
            .unwrap_or_else(|e| panic!("run {program}: {e}"));
        let result = if got.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&got.stderr).trim().to_string())
        };
        out.push((name, result));
    }
    out
}

/// `ims-proxy ca bundle` for the config at `config`, with `SSL_CERT_FILE` set to `roots` when
/// given: the bundle's path, and the certificates (DER) in it.
pub fn ca_bundle(config: &Path, roots: Option<&str>) -> (std::path::PathBuf, Vec<Vec<u8>>) {
    let mut cli = crate::Cli::new().args(["ca", "bundle"]).config_file(config);
    if let Some(r) = roots {
        cli = cli.env("SSL_CERT_FILE", r);
    }
    let out = cli.run();
    assert_eq!(out.code, Some(0), "ca bundle: {}", out.stderr);
    let path = std::path::PathBuf::from(out.stdout.trim());
    (path.clone(), pem_certs(&path))
}

/// The certificates (DER) in a PEM file.
pub fn pem_certs(path: &Path) -> Vec<Vec<u8>> {
    let pem = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    rustls_pemfile::certs(&mut pem.as_slice())
        .map(|c| c.expect("PEM certificate").to_vec())
        .collect()
}

/// The forward listener (the real binary) for Campaign's `acme` tenant in front of `up`: the
/// setup of the tests that use the CA bundle from outside the proxy.
pub fn campaign_child(up: &crate::FakeUpstream) -> crate::ChildProxy {
    let route = crate::Route::new("/campaign")
        .api("campaign")
        .extra("tenant = \"acme\"")
        .upstream(up.url());
    let toml = crate::static_proxy(route)
        .section("[server]\nlisten = \"127.0.0.1:0\"")
        .section("[forward]\nlisten = \"127.0.0.1:0\"\nca_dir = \"ca\"")
        .toml();
    crate::ChildProxy::spawn(&toml, &[])
}
