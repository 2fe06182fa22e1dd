//! What the caller gets when the upstream's response is framed ambiguously, in a coding the
//! proxy would have to re-frame, or cut short: never a body that looks complete but is not.
//! The upstream here writes exact bytes ([`RawUpstream`]).

use std::time::Duration;
use support::*;

async fn proxy_to(up: &RawUpstream) -> ims_proxy::Running {
    static_proxy(Route::new("/api").upstream(up.url()))
        .start()
        .await
}

/// A `GET /api/x` through a proxy to an upstream answering `reply`: the caller's response.
async fn refused_with_502(reply: &'static [u8]) -> (Got, RawUpstream) {
    let up = RawUpstream::replying(reply).then(End::Hold).start().await;
    let p = proxy_to(&up).await;
    let got = get(&proxy_url(&p, "/api/x")).await;
    assert_eq!(got.status, 502, "{}", got.text());
    assert_eq!(got.header("content-type"), Some("application/json"));
    assert!(
        up.received().starts_with("GET /x HTTP/1.1\r\n"),
        "the upstream was asked: {}",
        up.received()
    );
    (got, up)
}

const CL_AND_CHUNKED: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n\
14\r\n01234567890123456789\r\n0\r\n\r\n";

#[tokio::test]
async fn a_response_with_both_content_length_and_chunked_is_a_502_not_a_truncated_body() {
    let (got, _up) = refused_with_502(CL_AND_CHUNKED).await;
    assert_eq!(got.json()["error_code"], "upstream_bad_framing");
    assert!(!got.text().contains("01234"), "{}", got.text());
}

#[tokio::test]
async fn an_upstream_connection_that_sent_ambiguous_framing_is_not_used_again() {
    // The upstream answers once per connection and then only listens: a reused connection
    // would leave the second request without an answer.
    let up = RawUpstream::replying(CL_AND_CHUNKED)
        .then(End::Hold)
        .start()
        .await;
    let p = proxy_to(&up).await;
    let client = h1_client();
    for _ in 0..2 {
        let got = Req::get(proxy_url(&p, "/api/x")).send_on(&client).await;
        assert_eq!(got.status, 502, "{}", got.text());
    }
    assert_eq!(up.connections(), 2, "each answer came on a new connection");
}

#[tokio::test]
async fn a_response_with_two_equal_content_lengths_is_a_502() {
    let (got, _up) =
        refused_with_502(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello")
            .await;
    assert_eq!(got.json()["error_code"], "upstream_bad_framing");
}

#[tokio::test]
async fn a_response_in_gzip_then_chunked_transfer_coding_is_a_502_not_passed_on_as_identity() {
    let (got, _up) = refused_with_502(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\n\x1f\x8b\x08\x00\x00\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(got.json()["error_code"], "upstream_bad_framing");
}

#[tokio::test]
async fn a_response_in_gzip_transfer_coding_alone_is_a_502() {
    let (got, _up) =
        refused_with_502(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n\x1f\x8b\x08\x00\x00")
            .await;
    assert_eq!(got.json()["error_code"], "upstream_bad_framing");
}

#[tokio::test]
async fn an_upstream_101_the_caller_did_not_ask_for_is_a_502() {
    let (got, _up) = refused_with_502(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
    )
    .await;
    assert_eq!(got.json()["error_code"], "upstream_bad_response");
}

/// A `GET /api/x` (over h2 when `h2`) through a proxy to an upstream that answers `reply` and
/// then ends as `end` says: how the caller's body ended.
async fn body_end(reply: &'static [u8], end: End, h2: bool) -> BodyEnd {
    let up = RawUpstream::replying(reply).then(end).start().await;
    let p = proxy_to(&up).await;
    let req = Req::get(proxy_url(&p, "/api/x"));
    let resp = if h2 { req.h2() } else { req }.response().await;
    assert_eq!(resp.status(), 200);
    let end = read_body(resp).await;
    assert!(
        end.error.is_some(),
        "a body cut short must end with an error, got a clean end after {:?}",
        end.data
    );
    assert_eq!(end.data, "01234");
    end
}

const SHORT_LENGTH: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n01234";
const NO_LAST_CHUNK: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n01234\r\n";

#[tokio::test]
async fn an_upstream_reset_mid_body_ends_the_http1_callers_body_with_an_error() {
    body_end(SHORT_LENGTH, End::Reset, false).await;
}

#[tokio::test]
async fn an_upstream_reset_mid_body_ends_the_h2_callers_stream_with_an_error() {
    body_end(SHORT_LENGTH, End::Reset, true).await;
}

#[tokio::test]
async fn a_body_shorter_than_its_content_length_ends_the_http1_callers_body_with_an_error() {
    body_end(SHORT_LENGTH, End::Close, false).await;
}

#[tokio::test]
async fn a_body_shorter_than_its_content_length_ends_the_h2_callers_stream_with_an_error() {
    body_end(SHORT_LENGTH, End::Close, true).await;
}

#[tokio::test]
async fn a_chunked_body_without_its_last_chunk_ends_the_http1_callers_body_with_an_error() {
    body_end(NO_LAST_CHUNK, End::Close, false).await;
}

#[tokio::test]
async fn a_chunked_body_without_its_last_chunk_ends_the_h2_callers_stream_with_an_error() {
    body_end(NO_LAST_CHUNK, End::Close, true).await;
}

/// A request smuggled inside a body: the bytes of an HTTP request, to an upstream that reads
/// them as one ([`HastyUpstream`]).
const HIDDEN: &str = "GET /hidden HTTP/1.1\r\nHost: upstream\r\n\r\n";

/// Caller A sends `POST /api/upload` whose body is [`HIDDEN`], in two parts: the upstream
/// answers after the head (A reads that answer) while the rest of the body is still coming.
/// Returns once the upstream has read the whole body (as a request of its own).
async fn upload_answered_early(p: &ims_proxy::Running, up: &HastyUpstream) -> RawConn {
    let mut a = RawConn::connect(p.addr).await;
    let (first, rest) = HIDDEN.split_at(8);
    let head = format!(
        "POST /api/upload HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n{first}",
        p.addr,
        HIDDEN.len()
    );
    assert!(a.write(head.as_bytes()).await);
    let answer = hasty_answer("/upload");
    let answered = a
        .read_until(Duration::from_secs(30), |r| {
            String::from_utf8_lossy(r).contains(&answer)
        })
        .await;
    assert!(answered, "A's early answer: {}", a.text());
    assert!(a.write(rest.as_bytes()).await);
    let read = eventually(Duration::from_secs(30), || {
        up.targets().iter().any(|t| t == "/hidden")
    })
    .await;
    assert!(read, "the upstream read the body: {:?}", up.targets());
    a
}

/// One upstream connection allowed, so that the next request would have to reuse A's if the
/// proxy kept it (on either outbound path).
async fn proxy_to_hasty(up: &HastyUpstream) -> ims_proxy::Running {
    static_proxy(Route::new("/api").upstream(up.url()))
        .client("max_connections_per_upstream = 1\nconnect_timeout = \"30s\"")
        .start()
        .await
}

#[tokio::test]
async fn an_answer_owed_for_a_body_the_upstream_answered_early_never_reaches_another_caller() {
    let up = HastyUpstream::start().await;
    let p = proxy_to_hasty(&up).await;
    let _a = upload_answered_early(&p, &up).await;

    let b = get(&proxy_url(&p, "/api/b")).await;
    assert_eq!(b.status, 200, "{}", b.text());
    assert_eq!(
        b.text(),
        hasty_answer("/b"),
        "caller B got another's answer"
    );
    assert_eq!(up.targets(), ["/upload", "/hidden", "/b"]);
    assert_eq!(
        up.conns(),
        [1, 1, 2],
        "B's request went on a connection of its own"
    );
}

#[tokio::test]
async fn an_answer_owed_for_a_body_the_upstream_answered_early_never_reaches_the_callers_next_request(
) {
    let up = HastyUpstream::start().await;
    let p = proxy_to_hasty(&up).await;
    let mut a = upload_answered_early(&p, &up).await;

    let already = a.received().len();
    let next = format!("GET /api/next HTTP/1.1\r\nHost: {}\r\n\r\n", p.addr);
    assert!(a.write(next.as_bytes()).await);
    let next = hasty_answer("/next");
    let hidden = hasty_answer("/hidden");
    a.read_until(Duration::from_secs(30), |r| {
        let t = String::from_utf8_lossy(&r[already..]).into_owned();
        t.contains(&next) || t.contains(&hidden)
    })
    .await;
    let got = String::from_utf8_lossy(&a.received()[already..]).into_owned();
    assert!(got.contains(&next), "A's next request got: {got}");
    assert!(!got.contains(&hidden), "{got}");
}

/// On one runtime thread: the pool is per thread, so on several a request may take another
/// thread's connection without anything having been closed.
#[tokio::test]
async fn uploads_the_upstream_answered_after_reading_them_whole_leave_their_connection_for_the_next(
) {
    let up = FakeUpstream::start().await;
    let p = static_proxy(Route::new("/api").upstream(up.url()))
        .start()
        .await;
    let mut caller = H1Conn::open(p.addr).await;
    for size in [1, 64 * 1024, 1024 * 1024] {
        let got = caller
            .send(Req::post(proxy_url(&p, "/api/upload")).body(vec![b'x'; size]))
            .await;
        assert_eq!(got.status, 200, "{}", got.text());
    }
    assert_eq!(
        caller.send(Req::get(proxy_url(&p, "/api/x"))).await.status,
        200
    );
    let sizes: Vec<usize> = up.requests().iter().map(|r| r.body.len()).collect();
    assert_eq!(sizes, [1, 64 * 1024, 1024 * 1024, 0]);
    assert_eq!(
        up.conns(),
        [1, 1, 1, 1],
        "one upstream connection throughout"
    );
}
