//! The benchmark's upstream: answers 200 with a small JSON body when the Bearer token and
//! x-api-key it expects arrived (401 otherwise, so a broken proxy shows up as non-2xx), and
//! offers `/sink` (consume a body, report its size) and `/source?bytes=N` (stream N bytes)
//! for the streaming measurements.
//!
//! usage: bench-upstream ADDR EXPECTED_TOKEN EXPECTED_API_KEY   (EXPECTED_TOKEN `-`: any
//! bearer token, for credentials whose tokens IMS issues during the run)
//!
//! With `BENCH_TLS_CERT=FILE` it serves HTTPS instead with a self-signed certificate for
//! `localhost` and 127.0.0.1, written to FILE for the proxies to trust. TLS sessions are
//! resumable (tickets and a session cache), as Adobe's are, so a proxy that reuses sessions gets
//! the short handshake. By ALPN it offers HTTP/1.1 only, unless `BENCH_TLS_ALPN=h2`: then h2
//! and HTTP/1.1, as Adobe's API hosts do (a client that offers no ALPN, as nginx, gets HTTP/1.1).
//! h2 settings are hyper's defaults (200 concurrent streams per connection).
//!
//! `/version` answers the HTTP version the request arrived in (`HTTP/2.0`, `HTTP/1.1`), and
//! `/versions` how many requests arrived in each so far (`{"http1":N,"h2":M}`), so the harness
//! can say which protocol each proxy spoke to the upstream during each point.

use bytes::Bytes;
use futures_util::stream;
use http::{Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

type Body = BoxBody<Bytes, std::io::Error>;

const CHUNK: usize = 64 * 1024;

fn full(b: &'static [u8]) -> Body {
    Full::new(Bytes::from_static(b))
        .map_err(|e| match e {})
        .boxed()
}

fn full_owned(s: String) -> Body {
    Full::new(Bytes::from(s)).map_err(|e| match e {}).boxed()
}

/// Requests that arrived over HTTP/1.x and over h2, for `/versions`.
static HTTP1: AtomicU64 = AtomicU64::new(0);
static H2: AtomicU64 = AtomicU64::new(0);

async fn handle(req: Request<Incoming>, expect: Arc<(String, String)>) -> Response<Body> {
    let counter = if req.version() == http::Version::HTTP_2 {
        &H2
    } else {
        &HTTP1
    };
    counter.fetch_add(1, Ordering::Relaxed);
    let auth_ok = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            if expect.0 == "Bearer -" {
                v.len() > 7 && v.starts_with("Bearer ")
            } else {
                v == expect.0
            }
        });
    let key_ok = req
        .headers()
        .get("x-api-key")
        .is_some_and(|v| v.as_bytes() == expect.1.as_bytes());
    if !auth_ok || !key_ok {
        return Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header("content-type", "application/json")
            .body(full(
                br#"{"error_code":"401013","message":"Oauth token is not valid"}"#,
            ))
            .unwrap_or_default();
    }
    // The proxies forward /campaign/... unchanged, so match on the last segment.
    match req.uri().path().rsplit('/').next().unwrap_or("") {
        "sink" => {
            let mut body = req.into_body();
            let mut n: u64 = 0;
            while let Some(Ok(f)) = body.frame().await {
                if let Some(d) = f.data_ref() {
                    n += d.len() as u64;
                }
            }
            Response::new(full_owned(format!("{{\"bytes\":{n}}}")))
        }
        "versions" => Response::new(full_owned(format!(
            "{{\"http1\":{},\"h2\":{}}}",
            HTTP1.load(Ordering::Relaxed),
            H2.load(Ordering::Relaxed)
        ))),
        "version" => Response::new(full_owned(format!("{:?}", req.version()))),
        "source" => {
            let total: u64 = req
                .uri()
                .query()
                .and_then(|q| q.strip_prefix("bytes="))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let chunk = Bytes::from(vec![b'x'; CHUNK]);
            let s = stream::unfold(total, move |left| {
                let chunk = chunk.clone();
                async move {
                    if left == 0 {
                        return None;
                    }
                    let n = left.min(CHUNK as u64) as usize;
                    Some((
                        Ok::<_, std::io::Error>(Frame::data(chunk.slice(..n))),
                        left - n as u64,
                    ))
                }
            });
            Response::builder()
                .header("content-length", total.to_string())
                .body(BodyExt::boxed(StreamBody::new(s)))
                .unwrap_or_default()
        }
        _ => Response::builder()
            .header("content-type", "application/json")
            .body(full(
                br#"{"content":[{"PKey":"@abc","email":"a@example.com"}],"count":{"value":1}}"#,
            ))
            .unwrap_or_default(),
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: bench-upstream ADDR EXPECTED_TOKEN_PREFIX EXPECTED_API_KEY");
        std::process::exit(2);
    }
    let expect = Arc::new((format!("Bearer {}", args[2]), args[3].clone()));
    let h2 = match std::env::var("BENCH_TLS_ALPN").as_deref() {
        Ok("h2") => true,
        Ok("http/1.1") | Err(_) => false,
        Ok(other) => {
            eprintln!("BENCH_TLS_ALPN={other:?}: expected h2 or http/1.1");
            std::process::exit(2);
        }
    };
    let tls = std::env::var_os("BENCH_TLS_CERT")
        .map(|path| tls_acceptor(std::path::Path::new(&path), h2));
    let listener = tokio::net::TcpListener::bind(&args[1]).await.expect("bind");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let expect = expect.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let expect = expect.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(req, expect).await) }
            });
            let http = auto::Builder::new(TokioExecutor::new());
            match tls {
                None => {
                    let _ = http.serve_connection(TokioIo::new(stream), svc).await;
                }
                Some(acceptor) => {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let _ = http.serve_connection(TokioIo::new(stream), svc).await;
                }
            }
        });
    }
}

fn tls_acceptor(cert_out: &std::path::Path, h2: bool) -> tokio_rustls::TlsAcceptor {
    let key = rcgen::KeyPair::generate().expect("key");
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("params");
    let cert = params.self_signed(&key).expect("self-signed");
    std::fs::write(cert_out, cert.pem()).expect("write the certificate");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .expect("certificate");
    config.alpn_protocols = if h2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(4096);
    config.ticketer = rustls::crypto::ring::Ticketer::new().expect("ticketer");
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}
