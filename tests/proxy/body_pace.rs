//! Bodies in flight have no deadline, only a pace (`[client] body_idle_timeout`): an upload
//! takes as long as it takes while bytes flow, the response-head deadline (`request_timeout`)
//! starts once the body has been sent, and a body that stalls either way ends with an error.

use bytes::Bytes;
use futures_util::StreamExt as _;
use http::Request;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use std::time::{Duration, Instant};
use support::*;

const CHUNK: usize = 64 * 1024;

/// `n` chunks, one every `every`, then (with `stall`) nothing ever again.
fn trickle(n: usize, every: Duration, stall: bool) -> UpBody {
    let s = futures_util::stream::iter(0..n)
        .then(move |i| async move {
            if i > 0 {
                tokio::time::sleep(every).await;
            }
            Ok::<_, BoxError>(Frame::data(Bytes::from(vec![b'x'; CHUNK])))
        })
        .chain(futures_util::stream::once(async move {
            if stall {
                std::future::pending::<()>().await;
            }
            Ok::<_, BoxError>(Frame::data(Bytes::new()))
        }));
    BodyExt::boxed(StreamBody::new(s))
}

/// An upstream that reads the whole body and answers with its length.
async fn counting_upstream() -> FakeUpstream {
    FakeUpstream::with_handler(|req| async move {
        let body = req.into_body().collect().await;
        let n = body.map(|b| b.to_bytes().len()).unwrap_or(0);
        http::Response::new(full(n.to_string()))
    })
    .await
}

async fn put(p: &ims_proxy::Running, body: UpBody) -> http::Response<hyper::body::Incoming> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<UpBody>();
    let req = Request::put(proxy_url(p, "/api/upload"))
        .body(body)
        .expect("request");
    tokio::time::timeout(Duration::from_secs(30), client.request(req))
        .await
        .expect("an answer within 30 s")
        .expect("response")
}

#[tokio::test]
async fn an_upload_longer_than_the_request_timeout_completes_while_its_bytes_flow() {
    let up = counting_upstream().await;
    let p = static_proxy(Route::new("/api").upstream(up.url()))
        .client("request_timeout = \"300ms\"\nbody_idle_timeout = \"5s\"")
        .start()
        .await;
    let started = Instant::now();
    // Ten chunks 100 ms apart: about 0.9 s of upload, three times the request timeout.
    let resp = put(&p, trickle(10, Duration::from_millis(100), false)).await;
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(body, (10 * CHUNK).to_string());
}

#[tokio::test]
async fn a_caller_body_that_stalls_gets_408_and_no_complete_body_reaches_the_upstream() {
    let up = counting_upstream().await;
    let p = static_proxy(Route::new("/api").upstream(up.url()))
        .client("body_idle_timeout = \"300ms\"")
        .start()
        .await;
    let resp = put(&p, trickle(2, Duration::from_millis(10), true)).await;
    assert_eq!(resp.status(), 408);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(json["error_code"], "request_timeout");
    assert!(
        json["message"].as_str().unwrap_or("").contains("stalled"),
        "{json}"
    );
    // The upstream saw the request start and its body break off: it never answered 200.
    assert!(up.count() <= 1);
}

#[tokio::test]
async fn a_response_body_that_stalls_ends_the_callers_body_with_an_error() {
    let up = FakeUpstream::held_midway(b"first part ", b"never sent").await;
    let p = static_proxy(Route::new("/api").upstream(up.url()))
        .client("body_idle_timeout = \"300ms\"")
        .start()
        .await;
    for client in [h1_client(), h2c_client()] {
        let req = Request::get(proxy_url(&p, "/api/stream"))
            .body(http_body_util::Full::<Bytes>::default())
            .expect("request");
        let resp = client.request(req).await.expect("response head");
        assert_eq!(resp.status(), 200);
        let mut body = resp.into_body();
        let first = body.frame().await.expect("a frame").expect("data");
        assert_eq!(
            first.into_data().ok(),
            Some(Bytes::from_static(b"first part "))
        );
        let end = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match body.frame().await {
                    Some(Ok(_)) => continue,
                    other => return other.map(|r| r.map(drop)),
                }
            }
        })
        .await
        .expect("the body ends within 10 s");
        assert!(
            matches!(end, Some(Err(_))),
            "the stalled body must end with an error, not cleanly: {end:?}"
        );
    }
}

#[tokio::test]
async fn an_upstream_that_stops_reading_the_body_is_a_504() {
    // Accepts, reads nothing, answers nothing: the upload backs up into the kernel's buffers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let p = static_proxy(Route::new("/api").upstream(format!("http://{addr}")))
        .client("body_idle_timeout = \"500ms\"\nrequest_timeout = \"60s\"")
        .start()
        .await;
    // 256 MiB on offer, far more than loopback buffers hold.
    let s = futures_util::stream::iter(0..4096)
        .map(|_| Ok::<_, BoxError>(Frame::data(Bytes::from(vec![b'y'; CHUNK]))));
    let resp = put(&p, BodyExt::boxed(StreamBody::new(s))).await;
    assert_eq!(resp.status(), 504);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(json["error_code"], "upstream_timeout");
    held.abort();
}
