//! Malformed and ambiguous requests: refused with 400 before anything reaches the upstream,
//! and where the framing is in doubt, the connection is closed.

use std::time::Duration;
use support::*;

const DEADLINE: Duration = Duration::from_secs(10);

/// Sends `raw` to a proxy of its own; what came back, and the upstream behind the proxy.
async fn exchange(raw: &[u8]) -> (RawReply, FakeUpstream) {
    let up = FakeUpstream::start().await;
    let p = static_proxy(Route::new("/api").upstream(up.url()))
        .start()
        .await;
    (raw_send(p.addr, raw, DEADLINE).await, up)
}

/// Sends `raw`, expects `status` and nothing forwarded; the reply's text.
async fn refused(raw: &[u8], status: u16) -> String {
    let (reply, up) = exchange(raw).await;
    assert_eq!(reply.status(), Some(status), "{}", reply.text);
    assert_eq!(up.count(), 0, "nothing may be forwarded");
    reply.text
}

/// Sends `raw`, expects a 400 and the connection closed by the proxy, and nothing upstream.
async fn refused_and_closed(raw: &[u8]) -> String {
    let (reply, up) = exchange(raw).await;
    assert_eq!(reply.status(), Some(400), "{}", reply.text);
    assert!(
        reply.closed,
        "the connection must be closed: {}",
        reply.text
    );
    assert_eq!(up.count(), 0, "nothing may be forwarded");
    assert_eq!(
        up.connections(),
        0,
        "the upstream must not even be contacted"
    );
    reply.text
}

#[tokio::test]
async fn content_length_and_transfer_encoding_together_are_refused() {
    let text = refused_and_closed(
        b"POST /api/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    )
    .await;
    assert!(
        text.contains("Content-Length and Transfer-Encoding"),
        "{text}"
    );
}

#[tokio::test]
async fn transfer_encoding_before_content_length_is_refused_too() {
    refused_and_closed(
        b"POST /api/x HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
    )
    .await;
}

#[tokio::test]
async fn duplicate_equal_content_lengths_are_refused() {
    let text = refused_and_closed(
        b"POST /api/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd",
    )
    .await;
    assert!(text.contains("more than one Content-Length"), "{text}");
}

#[tokio::test]
async fn duplicate_differing_content_lengths_are_refused() {
    refused_and_closed(
        b"POST /api/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
    )
    .await;
}

#[tokio::test]
async fn a_transfer_encoding_other_than_chunked_is_refused() {
    refused_and_closed(
        b"POST /api/x HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: gzip\r\n\r\n",
    )
    .await;
}

#[tokio::test]
async fn obs_fold_header_continuations_are_refused() {
    refused_and_closed(b"GET /api/x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Folded: a\r\n b\r\n\r\n")
        .await;
}

#[tokio::test]
async fn an_invalid_chunk_size_is_refused_before_anything_is_forwarded() {
    refused_and_closed(
        b"POST /api/x HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    )
    .await;
}

#[tokio::test]
async fn a_chunk_size_that_overflows_is_refused() {
    refused_and_closed(
        b"POST /api/x HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFF\r\nhello\r\n0\r\n\r\n",
    )
    .await;
}

#[tokio::test]
async fn a_carriage_return_inside_a_header_value_is_refused() {
    refused_and_closed(b"GET /api/x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Evil: a\rb\r\n\r\n").await;
}

#[tokio::test]
async fn a_line_feed_inside_a_header_value_is_refused() {
    refused_and_closed(b"GET /api/x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Evil: a\nb\r\n\r\n").await;
}

#[tokio::test]
async fn a_nul_inside_a_header_value_is_refused() {
    refused_and_closed(b"GET /api/x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Evil: a\0b\r\n\r\n").await;
}

#[tokio::test]
async fn raw_non_utf8_bytes_in_the_path_are_refused() {
    refused_and_closed(b"GET /api/\xff\xfe HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await;
}

#[tokio::test]
async fn a_path_that_percent_decodes_to_invalid_utf8_is_refused() {
    let text = refused(
        b"GET /api/a%FFb HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        400,
    )
    .await;
    assert!(text.contains("\"error_code\":\"bad_request\""), "{text}");
}

#[tokio::test]
async fn a_path_that_percent_decodes_to_a_control_character_is_refused() {
    refused(
        b"GET /api/a%0d%0aInjected:%201 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        400,
    )
    .await;
}

#[tokio::test]
async fn an_absurd_method_is_refused() {
    let method = "X".repeat(2000);
    let raw = format!("{method} /api/x HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    refused(raw.as_bytes(), 400).await;
}

#[tokio::test]
async fn an_unusual_method_is_refused() {
    let text = refused(
        b"PROPFIND /api/x HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        400,
    )
    .await;
    assert!(text.contains("PROPFIND"), "{text}");
}

#[tokio::test]
async fn trace_is_refused_so_credentials_are_never_echoed() {
    refused(
        b"TRACE /api/x HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        405,
    )
    .await;
}

#[tokio::test]
async fn a_well_framed_request_after_a_chunked_one_on_the_same_connection_is_served() {
    // The framing watcher must follow ordinary keep-alive traffic without false alarms.
    let raw = b"POST /api/one HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n\
POST /api/two HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\n\r\nabc\
GET /api/three HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    let (reply, up) = exchange(raw).await;
    assert_eq!(
        reply.text.matches("HTTP/1.1 200").count(),
        3,
        "{}",
        reply.text
    );
    let targets: Vec<String> = up.requests().into_iter().map(|r| r.target).collect();
    assert_eq!(targets, ["/one", "/two", "/three"]);
    let bodies: Vec<_> = up.requests().into_iter().map(|r| r.body).collect();
    assert_eq!(bodies[0], "hello");
    assert_eq!(bodies[1], "abc");
}

/// Sends `first` (a request the proxy serves) and then a request with both `Content-Length`
/// and `Transfer-Encoding` on the same connection: the second must still be refused.
async fn smuggling_after(first: &[u8]) {
    let mut raw = first.to_vec();
    raw.extend_from_slice(
        b"POST /api/two HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    let (reply, up) = exchange(&raw).await;
    assert_eq!(
        reply.text.matches("HTTP/1.1 200").count(),
        1,
        "{}",
        reply.text
    );
    assert!(reply.text.contains("HTTP/1.1 400"), "{}", reply.text);
    assert!(
        reply.closed,
        "the connection must be closed: {}",
        reply.text
    );
    let targets: Vec<String> = up.requests().into_iter().map(|r| r.target).collect();
    assert_eq!(targets, ["/one"], "only the first request may be forwarded");
}

#[tokio::test]
async fn a_chunk_size_of_seventeen_hex_digits_does_not_blind_the_framing_watcher() {
    smuggling_after(
        b"POST /api/one HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n\
00000000000000005\r\nhello\r\n0\r\n\r\n",
    )
    .await;
}

#[tokio::test]
async fn a_head_ending_in_lf_crlf_does_not_blind_the_framing_watcher() {
    smuggling_after(b"GET /api/one HTTP/1.1\r\nHost: 127.0.0.1\n\r\n").await;
}

#[tokio::test]
async fn an_http11_request_without_host_is_refused() {
    let text = refused(b"GET /api/x HTTP/1.1\r\nConnection: close\r\n\r\n", 400).await;
    assert!(text.contains("Host"), "{text}");
}

#[tokio::test]
async fn an_http11_request_with_two_hosts_is_refused() {
    let text = refused(
        b"GET /api/x HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: q\r\nConnection: close\r\n\r\n",
        400,
    )
    .await;
    assert!(text.contains("more than one Host"), "{text}");
}

#[tokio::test]
async fn an_authority_form_target_outside_connect_is_refused() {
    let text = refused(
        b"GET 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        400,
    )
    .await;
    assert!(text.contains("authority-form"), "{text}");
}

#[tokio::test]
async fn a_raw_nel_in_the_path_is_refused() {
    // U+0085 as raw UTF-8: valid UTF-8, accepted by hyper, refused percent-encoded since
    // it is a control character; raw it is refused for being non-ASCII.
    let text = refused(
        b"GET /api/a\xc2\x85b HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        400,
    )
    .await;
    assert!(text.contains("non-ASCII"), "{text}");
}

#[tokio::test]
async fn raw_non_ascii_bytes_in_the_query_are_refused() {
    refused(
        b"GET /api/x?q=caf\xc3\xa9 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        400,
    )
    .await;
}

#[tokio::test]
async fn a_tomcat_path_parameter_on_a_dot_segment_cannot_climb_above_the_base() {
    refused(
        b"GET /api/..;/x HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        400,
    )
    .await;
}

#[tokio::test]
async fn double_percent_encoded_dots_cannot_climb_above_the_base() {
    refused(
        b"GET /api/%252e%252e/x HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        400,
    )
    .await;
}

#[tokio::test]
async fn percent_encoded_fullwidth_dots_cannot_climb_above_the_base() {
    refused(
        b"GET /api/%EF%BC%8E%EF%BC%8E/x HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        400,
    )
    .await;
}

#[tokio::test]
async fn duplicate_content_lengths_over_h2_are_refused() {
    let up = FakeUpstream::start().await;
    let p = static_proxy(Route::new("/api").upstream(up.url()))
        .start()
        .await;
    let got = Req::post(proxy_url(&p, "/api/x"))
        .headers(&[("content-length", "4"), ("content-length", "4")])
        .body("abcd")
        .h2()
        .send()
        .await;
    assert_eq!(got.status, 400, "{}", got.text());
    assert_eq!(got.json()["error_code"], "bad_request");
    assert_eq!(up.count(), 0, "nothing may be forwarded");
}
