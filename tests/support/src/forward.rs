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
    let mut s = TcpStream::connect(proxy)
        .await
        .expect("connect to the forward listener");
    let head = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n{extra}\r\n");
    s.write_all(head.as_bytes()).await.expect("write CONNECT");
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    // Byte by byte up to the end of the head, so nothing of the tunnel is read here.
    while !got.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(DEADLINE, s.read(&mut byte))
            .await
            .expect("CONNECT answered within 30 s")
            .expect("read");
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
    (
        status,
        format!("{text}{}", String::from_utf8_lossy(&body)),
        s,
    )
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
