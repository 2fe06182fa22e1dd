//! Bodies stream both ways: large bodies pass intact without being buffered, and a response's
//! first bytes reach the client before the upstream has finished sending.

use bytes::Bytes;
use futures_util::StreamExt as _;
use http::Request;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use sha2::{Digest, Sha256};
use std::time::Duration;
use support::*;

const CHUNK: usize = 256 * 1024;
const CHUNKS: usize = 800; // 200 MiB

async fn proxy_to(up: &FakeUpstream) -> ims_proxy::Running {
    static_proxy(Route::new("/api").upstream(up.url()))
        .start()
        .await
}

fn chunk(i: usize) -> Bytes {
    Bytes::from(vec![(i % 251) as u8; CHUNK])
}

fn expected_hash() -> String {
    let mut h = Sha256::new();
    for i in 0..CHUNKS {
        h.update(chunk(i));
    }
    hex(h.finalize().as_slice())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn generated_body() -> UpBody {
    let s = futures_util::stream::iter(0..CHUNKS).map(|i| Ok::<_, BoxError>(Frame::data(chunk(i))));
    BodyExt::boxed(StreamBody::new(s))
}

#[tokio::test]
async fn a_200_mib_upload_reaches_the_upstream_intact() {
    let up = FakeUpstream::with_handler(|req| async move {
        let mut body = req.into_body();
        let mut h = Sha256::new();
        let mut n = 0usize;
        while let Some(frame) = body.frame().await {
            if let Ok(d) = frame.expect("frame").into_data() {
                n += d.len();
                h.update(&d);
            }
        }
        http::Response::new(full(format!("{n} {}", hex(h.finalize().as_slice()))))
    })
    .await;
    let p = proxy_to(&up).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<UpBody>();
    let req = Request::put(proxy_url(&p, "/api/upload"))
        .body(generated_body())
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(120), client.request(req))
        .await
        .expect("in time")
        .expect("response");
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        String::from_utf8_lossy(&body),
        format!("{} {}", CHUNK * CHUNKS, expected_hash())
    );
}

#[tokio::test]
async fn a_200_mib_download_reaches_the_client_intact() {
    let up =
        FakeUpstream::with_handler(|_req| async move { http::Response::new(generated_body()) })
            .await;
    let p = proxy_to(&up).await;
    let resp = Req::get(proxy_url(&p, "/api/download")).response().await;
    let mut body = resp.into_body();
    let mut h = Sha256::new();
    let mut n = 0usize;
    while let Some(frame) = tokio::time::timeout(Duration::from_secs(60), body.frame())
        .await
        .expect("frames keep coming")
    {
        if let Ok(d) = frame.expect("frame").into_data() {
            n += d.len();
            h.update(&d);
        }
    }
    assert_eq!(n, CHUNK * CHUNKS);
    assert_eq!(hex(h.finalize().as_slice()), expected_hash());
}

#[tokio::test]
async fn the_first_chunk_reaches_the_client_before_the_upstream_sends_the_last() {
    let up = FakeUpstream::held_midway(b"first;", b"last").await;
    let p = proxy_to(&up).await;
    let resp = Req::get(proxy_url(&p, "/api/events")).response().await;
    let mut body = resp.into_body();
    let first = tokio::time::timeout(Duration::from_secs(10), body.frame())
        .await
        .expect("the first chunk arrives while the upstream still holds the last")
        .expect("a frame")
        .expect("ok frame");
    assert_eq!(first.into_data().unwrap(), Bytes::from_static(b"first;"));
    up.release();
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(rest, Bytes::from_static(b"last"));
}
