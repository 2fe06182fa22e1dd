//! The forward listener (`[forward]`): `CONNECT` to an Adobe host a route serves is intercepted
//! with the local CA and goes down the same path as a reverse request; IMS's token endpoints are
//! answered locally; `passthrough` hosts are tunnelled blind; everything else is refused.

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::forward::{connect, connect_within, send_via, trusting};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Setup {
    up: FakeUpstream,
    proxy: ims_proxy::Running,
    ca: PathBuf,
    _dir: tempfile::TempDir,
}

impl Setup {
    async fn new(forward_extra: &str, extra: &str) -> Setup {
        let up = FakeUpstream::start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let ca_dir = dir.path().join("ca");
        let route = Route::new("/campaign")
            .api("campaign")
            .extra("tenant = \"acme\"")
            .upstream(up.url());
        let proxy = static_proxy(route)
            .section(&format!(
                "[forward]\nlisten = \"127.0.0.1:0\"\nca_dir = \"{}\"\n{forward_extra}",
                ca_dir.display()
            ))
            .append(extra)
            .start()
            .await;
        Setup {
            up,
            proxy,
            ca: ca_dir.join("ca.pem"),
            _dir: dir,
        }
    }

    fn forward(&self) -> std::net::SocketAddr {
        self.proxy.forward_addr.expect("the forward listener is on")
    }

    async fn send(&self, host: &str, req: Request<Full<Bytes>>) -> Result<Got, String> {
        send_via(self.forward(), host, trusting(&self.ca), "", req).await
    }
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .header("host", "mc.adobe.io")
        .header("authorization", "Bearer dummy-token-from-the-sdk")
        .header("x-api-key", "dummy-api-key")
        .body(Full::default())
        .expect("request")
}

#[tokio::test]
async fn a_request_to_adobes_host_reaches_the_route_upstream_with_the_proxys_identity_only() {
    let s = Setup::new("", "").await;
    let got = s
        .send(
            "mc.adobe.io",
            get("/acme/campaign/profileAndServices/profile"),
        )
        .await
        .expect("through the tunnel");
    assert_eq!(got.status, 200, "{}", got.text());
    let seen = s.up.only_request();
    assert_eq!(seen.target, "/profileAndServices/profile");
    let header = |n: &str| seen.headers.get(n).and_then(|v| v.to_str().ok());
    assert_eq!(
        header("authorization"),
        Some(format!("Bearer {STATIC_TOKEN}").as_str())
    );
    assert_eq!(header("x-api-key"), Some(STATIC_CLIENT_ID));
    assert!(
        !format!("{:?}", seen.headers).contains("dummy"),
        "{:?}",
        seen.headers
    );
}

#[tokio::test]
async fn an_intercepted_path_no_route_serves_is_a_404_and_nothing_is_forwarded() {
    let s = Setup::new("", "").await;
    let got = s
        .send(
            "mc.adobe.io",
            get("/other-tenant/campaign/profileAndServices/profile"),
        )
        .await
        .expect("through the tunnel");
    assert_eq!(got.status, 404);
    assert_eq!(got.json()["error_code"], "no_route");
    assert_eq!(s.up.count(), 0);
}

#[tokio::test]
async fn a_connect_to_a_host_no_route_serves_is_refused_and_nothing_is_connected() {
    let s = Setup::new("", "").await;
    let (status, text, _) = connect(s.forward(), "example.com:443", "").await;
    assert_eq!(status, 403, "{text}");
    assert!(
        text.contains("\"error_code\":\"forward_refused\""),
        "{text}"
    );
    // Not even a route's host on another port.
    let (status, _, _) = connect(s.forward(), "mc.adobe.io:8443", "").await;
    assert_eq!(status, 403);
    assert_eq!(s.up.count(), 0);
}

#[tokio::test]
async fn a_plain_http_request_to_the_forward_listener_is_refused() {
    let s = Setup::new("", "").await;
    let reply = raw_send(
        s.forward(),
        b"GET http://mc.adobe.io/acme/campaign/x HTTP/1.1\r\nHost: mc.adobe.io\r\n\r\n",
        std::time::Duration::from_secs(10),
    )
    .await;
    assert_eq!(reply.status(), Some(403), "{}", reply.text);
    assert_eq!(s.up.count(), 0);
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_local_ca_fails_the_handshake() {
    let s = Setup::new("", "").await;
    let other = support::tls::TestPki::new();
    let err = send_via(
        s.forward(),
        "mc.adobe.io",
        std::sync::Arc::new(other.client_config(None)),
        "",
        get("/acme/campaign/x"),
    )
    .await
    .expect_err("an untrusted certificate");
    assert!(err.starts_with("TLS"), "{err}");
    assert_eq!(s.up.count(), 0);
}

#[tokio::test]
async fn the_local_ca_key_is_readable_by_the_proxy_alone() {
    use std::os::unix::fs::PermissionsExt;
    let s = Setup::new("", "").await;
    let key = s.ca.with_file_name("ca.key");
    let mode = std::fs::metadata(&key)
        .expect("ca.key")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let pem = std::fs::read_to_string(&s.ca).expect("ca.pem");
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
}

#[tokio::test]
async fn passthrough_hosts_are_tunnelled_byte_for_byte() {
    let port = echo_upstream().await;
    let s = Setup::new(&format!("passthrough = [\"127.0.0.1:{port}\"]"), "").await;
    let (status, text, mut tunnel) = connect(s.forward(), &format!("127.0.0.1:{port}"), "").await;
    assert_eq!(status, 200, "{text}");
    let bytes: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    tunnel.write_all(&bytes).await.expect("write");
    let mut back = vec![0u8; bytes.len()];
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tunnel.read_exact(&mut back),
    )
    .await
    .expect("echoed in time")
    .expect("read");
    assert_eq!(back, bytes);
}

/// An upstream that sends back every byte it gets.
async fn echo_upstream() -> u16 {
    let echo = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = echo.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = echo.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    port
}

/// An upstream that accepts and then never sends a byte, holding each connection open.
async fn silent_upstream() -> u16 {
    silent_upstream_counting().await.0
}

/// [`silent_upstream`], and how many connections it has accepted.
async fn silent_upstream_counting() -> (u16, Arc<AtomicUsize>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = l.local_addr().expect("addr").port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(s);
        }
    });
    (port, accepted)
}

#[tokio::test]
async fn a_passthrough_tunnel_silent_both_ways_for_the_body_idle_timeout_is_closed() {
    let port = silent_upstream().await;
    let s = Setup::new(
        &format!("passthrough = [\"127.0.0.1:{port}\"]"),
        "[client]\nbody_idle_timeout = \"300ms\"\n",
    )
    .await;
    let (status, text, mut tunnel) = connect(s.forward(), &format!("127.0.0.1:{port}"), "").await;
    assert_eq!(status, 200, "{text}");
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), tunnel.read(&mut buf))
        .await
        .expect("the proxy closes a silent tunnel well within 10 s");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}

#[tokio::test]
async fn a_passthrough_tunnel_that_keeps_moving_bytes_outlives_the_body_idle_timeout() {
    let port = echo_upstream().await;
    let s = Setup::new(
        &format!("passthrough = [\"127.0.0.1:{port}\"]"),
        "[client]\nbody_idle_timeout = \"400ms\"\n",
    )
    .await;
    let (status, text, mut tunnel) = connect(s.forward(), &format!("127.0.0.1:{port}"), "").await;
    assert_eq!(status, 200, "{text}");
    // Ten bytes 100 ms apart: a second in all, 2.5 times the idle limit, never idle for it.
    for i in 0..10u8 {
        tunnel.write_all(&[i]).await.expect("write");
        let mut b = [0u8; 1];
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            tunnel.read_exact(&mut b),
        )
        .await
        .expect("echoed in time")
        .expect("the tunnel is still open");
        assert_eq!(b[0], i);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

fn token_request(path: &str, content_type: &str, body: &str) -> Request<Full<Bytes>> {
    Request::post(path)
        .header("host", "ims-na1.adobelogin.com")
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("request")
}

#[tokio::test]
async fn ims_token_requests_are_answered_locally_in_adobes_units() {
    let s = Setup::new("", "").await;
    let form = "application/x-www-form-urlencoded";
    let v3 = s
        .send(
            "ims-na1.adobelogin.com",
            token_request(
                "/ims/token/v3",
                form,
                "grant_type=client_credentials&client_id=dummy&client_secret=dummy&scope=openid",
            ),
        )
        .await
        .expect("answered");
    assert_eq!(v3.status, 200, "{}", v3.text());
    let json = v3.json();
    assert_eq!(json["token_type"], "bearer");
    assert_eq!(json["expires_in"], 86_400, "seconds from token/v3");
    assert_eq!(
        json["access_token"]
            .as_str()
            .unwrap_or("")
            .split('.')
            .count(),
        3
    );
    let jwt = s
        .send(
            "ims-na1.adobelogin.com",
            token_request(
                "/ims/exchange/jwt/",
                form,
                "client_id=dummy&client_secret=x&jwt_token=y",
            ),
        )
        .await
        .expect("answered");
    assert_eq!(
        jwt.json()["expires_in"],
        86_400_000u64,
        "milliseconds from exchange/jwt"
    );
    let multipart = "--b0undary\r\nContent-Disposition: form-data; name=\"client_id\"\r\n\r\ndummy\r\n--b0undary--\r\n";
    let v2 = s
        .send(
            "ims-na1.adobelogin.com",
            token_request(
                "/ims/token/v2",
                "multipart/form-data; boundary=b0undary",
                multipart,
            ),
        )
        .await
        .expect("answered");
    assert_eq!(v2.status, 200, "{}", v2.text());
    assert_eq!(s.up.count(), 0, "never forwarded");
}

#[tokio::test]
async fn with_callers_configured_a_connect_needs_a_key_in_proxy_authorization() {
    let key = "forward-caller-key-0123456789";
    let s = Setup::new(
        "",
        &format!("[[clients]]\nname = \"sdk\"\nkey = \"{key}\"\n"),
    )
    .await;
    let (status, _, _) = connect(s.forward(), "mc.adobe.io:443", "").await;
    assert_eq!(status, 407);
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("sdk:{key}"));
    let got = send_via(
        s.forward(),
        "mc.adobe.io",
        trusting(&s.ca),
        &format!("Proxy-Authorization: Basic {basic}\r\n"),
        get("/acme/campaign/x"),
    )
    .await
    .expect("through the tunnel");
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(s.up.count(), 1);
}

#[test]
fn two_routes_with_one_public_url_are_a_config_error_when_the_forward_listener_is_on() {
    let route = |prefix: &str| {
        Route::new(prefix)
            .api("privacy")
            .upstream("http://127.0.0.1:1")
    };
    let err = static_proxy(route("/a"))
        .route(route("/b"))
        .section("[forward]\nlisten = \"127.0.0.1:0\"\nca_dir = \"/nonexistent/never-created\"")
        .build_error();
    assert_eq!(err.key, "routes[1].public_url");
    assert!(err.reason.contains("same public URL"), "{err}");
    assert!(err.reason.contains("intercept = false"), "{err}");
}

fn forward_section(ca_dir: &str) -> String {
    format!("[forward]\nlisten = \"127.0.0.1:0\"\nca_dir = \"{ca_dir}\"")
}

#[test]
fn a_campaign_route_with_an_upstream_and_no_tenant_is_refused_when_the_forward_listener_is_on() {
    let route = Route::new("/campaign")
        .api("campaign")
        .upstream("http://127.0.0.1:1/acme/campaign");
    let without_forward = Cli::new()
        .arg("check")
        .config(&static_proxy(route.clone()).toml())
        .run();
    assert_eq!(without_forward.code, Some(0), "{}", without_forward.stderr);
    let out = Cli::new()
        .arg("check")
        .config(&static_proxy(route).section(&forward_section("ca")).toml())
        .run();
    assert_eq!(out.code, Some(2), "{}", out.stdout);
    let line = out.error_line();
    assert!(line.contains("routes[0].tenant"), "{line}");
    assert!(line.contains("403 forward_refused"), "{line}");
    assert!(line.contains("intercept = false"), "{line}");
}

#[test]
fn intercept_false_keeps_a_second_route_for_the_same_api_off_the_forward_listener() {
    let route = |prefix: &str| {
        Route::new(prefix)
            .api("privacy")
            .upstream("http://127.0.0.1:1")
    };
    let out = Cli::new()
        .arg("check")
        .config(
            &static_proxy(route("/a"))
                .route(route("/b").extra("intercept = false"))
                .section(&forward_section("ca"))
                .toml(),
        )
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains(
            "forward intercepts platform.adobe.io:443: https://platform.adobe.io/data/core/privacy -> route /a\n"
        ),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("forward ignores route /b: intercept = false (reverse listener only)"),
        "{}",
        out.stdout
    );
}

#[test]
fn with_the_forward_listener_on_check_prints_every_host_it_intercepts_answers_and_tunnels() {
    let toml = static_proxy(
        Route::new("/campaign")
            .api("campaign")
            .extra("tenant = \"acme\"")
            .upstream("http://127.0.0.1:1/acme/campaign"),
    )
    .route(
        Route::new("/aam")
            .api("audience-manager")
            .upstream("http://127.0.0.1:1"),
    )
    .route(Route::new("/own").upstream("http://127.0.0.1:1"))
    .section(&format!(
        "{}\npassthrough = [\"*.blob.core.windows.net\"]",
        forward_section("ca")
    ))
    .toml();
    let out = Cli::new().arg("check").config(&toml).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    for line in [
        "forward intercepts mc.adobe.io:443: https://mc.adobe.io/acme/campaign -> route /campaign",
        "forward intercepts aam.adobe.io:443: https://aam.adobe.io -> route /aam",
        "forward intercepts api.demdex.com:443: https://api.demdex.com -> route /aam",
        "forward intercepts ims-na1.adobelogin.com:443: IMS token endpoint, answered by the proxy",
        "forward intercepts ims-na1-stg1.adobelogin.com:443: IMS token endpoint, answered by the proxy",
        "forward tunnels *.blob.core.windows.net: passthrough, not intercepted",
        "forward ignores route /own: no public URL (reverse listener only)",
        "forward refuses every other host: 403 forward_refused",
    ] {
        assert!(out.stdout.contains(line), "{line:?} missing:\n{}", out.stdout);
    }
}

#[tokio::test]
async fn the_audience_manager_preset_is_intercepted_on_api_demdex_com_as_on_aam_adobe_io() {
    let up = FakeUpstream::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_dir = dir.path().join("ca");
    let proxy = static_proxy(
        Route::new("/aam")
            .api("audience-manager")
            .upstream(up.url()),
    )
    .section(&forward_section(&ca_dir.display().to_string()))
    .start()
    .await;
    let forward = proxy.forward_addr.expect("the forward listener is on");
    for host in ["aam.adobe.io", "api.demdex.com"] {
        let req = Request::get("/v1/segments/")
            .header("host", host)
            .header("authorization", "Bearer dummy-token-from-the-sdk")
            .body(Full::default())
            .expect("request");
        let got = send_via(forward, host, trusting(&ca_dir.join("ca.pem")), "", req)
            .await
            .unwrap_or_else(|e| panic!("{host}: {e}"));
        assert_eq!(got.status, 200, "{host}: {}", got.text());
    }
    let seen = up.requests();
    assert_eq!(seen.len(), 2);
    for r in seen {
        assert_eq!(r.target, "/v1/segments/");
        assert_eq!(
            r.headers.get("authorization").and_then(|v| v.to_str().ok()),
            Some(format!("Bearer {STATIC_TOKEN}").as_str())
        );
    }
}

#[tokio::test]
async fn the_407_tells_sdk_users_to_put_their_key_in_the_proxy_url() {
    let s = Setup::new(
        "",
        "[[clients]]\nname = \"sdk\"\nkey = \"k-0123456789abcdef\"\n",
    )
    .await;
    let (status, text, _) = connect(s.forward(), "mc.adobe.io:443", "").await;
    assert_eq!(status, 407, "{text}");
    assert!(
        text.contains("HTTPS_PROXY=http://NAME:KEY@HOST:PORT"),
        "{text}"
    );
    assert!(text.contains("never reach this check"), "{text}");
    let (status, text, _) = connect(
        s.forward(),
        "mc.adobe.io:443",
        "Proxy-Authorization: Bearer wrong-key\r\n",
    )
    .await;
    assert_eq!(status, 407, "{text}");
    assert!(text.contains("not recognised"), "{text}");
    assert!(
        text.contains("HTTPS_PROXY=http://NAME:KEY@HOST:PORT"),
        "{text}"
    );
    assert_eq!(s.up.count(), 0);
}

// ---- the local CA: name constraints, lifetime, rotation ----------------------------------

#[tokio::test]
async fn a_leaked_ca_key_cannot_impersonate_another_site_to_curl_python_or_node() {
    let s = Setup::new("", "").await;
    let ca_dir = s.ca.parent().expect("ca dir").to_path_buf();
    // Whoever holds ca.key signs a certificate for a host of their choosing.
    let mut verdicts = Vec::new();
    for host in ["mc.adobe.io", "example.com", "bank.example"] {
        let forged = support::forward::forged_identity(&ca_dir, host);
        let (addr, _stop) = support::tls::serve_identity(&forged).await;
        for (client, result) in support::forward::system_clients_verify(&s.ca, host, addr).await {
            verdicts.push((host, client, result.is_ok()));
        }
    }
    let accepted: Vec<_> = verdicts
        .iter()
        .filter(|v| v.2)
        .map(|v| (v.0, v.1))
        .collect();
    // An Adobe host is within the CA's name constraints: the forgery is well-formed, and
    // accepted there (which is what the forward listener itself relies on).
    assert_eq!(
        accepted,
        [
            ("mc.adobe.io", "curl"),
            ("mc.adobe.io", "python"),
            ("mc.adobe.io", "node")
        ],
        "{verdicts:?}"
    );
}

#[tokio::test]
async fn curl_through_the_forward_listener_accepts_the_constrained_ca() {
    let s = Setup::new("", "").await;
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "30", "--proxy"])
        .arg(format!("http://{}", s.forward()))
        .arg("--cacert")
        .arg(&s.ca)
        .arg("https://mc.adobe.io/acme/campaign/profileAndServices/profile")
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .kill_on_drop(true)
        .output()
        .await
        .expect("run curl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(s.up.only_request().target, "/profileAndServices/profile");
}

/// A config with the forward listener (CA in `ca/` beside it) and a Privacy route, plus
/// `extra` routes.
fn forward_config(extra: &str) -> String {
    static_proxy(
        Route::new("/a")
            .api("privacy")
            .upstream("http://127.0.0.1:1"),
    )
    .section("[forward]\nlisten = \"127.0.0.1:0\"\nca_dir = \"ca\"")
    .append(extra)
    .toml()
}

const OTHER_ROUTE: &str = "[[routes]]\nprefix = \"/other\"\nupstream = \"http://127.0.0.1:1\"\n\
     public_url = \"https://api.example.com/v1\"\ncredential = \"cred\"\n";

#[test]
fn check_shows_the_cas_life_and_names_and_a_route_outside_them_is_refused_until_a_rotation() {
    let (dir, config) = support::cli::write_config(&forward_config(""));
    let check = Cli::new().arg("check").config_file(&config).run();
    assert_eq!(check.code, Some(0), "{}", check.stderr);
    let line = check
        .stdout
        .lines()
        .find(|l| l.starts_with("forward: "))
        .unwrap_or_default()
        .to_string();
    assert!(
        line.contains("for adobe.io, adobelogin.com, demdex.com)"),
        "{line}"
    );
    let next_year = (time::OffsetDateTime::now_utc() + time::Duration::days(365)).date();
    assert!(line.contains(&format!("valid until {next_year}")), "{line}");
    assert!(!check.stdout.contains("warning"), "{}", check.stdout);
    let before = std::fs::read_to_string(dir.path().join("ca/ca.pem")).expect("ca.pem");

    // A later route on a host outside the constraints: refused, saying how to get out.
    std::fs::write(&config, forward_config(OTHER_ROUTE)).expect("write");
    for args in [&["check"][..], &["run"][..], &["ca", "path"][..]] {
        let out = Cli::new().args(args).config_file(&config).run();
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.stderr);
        let err = out.error_line();
        assert!(err.starts_with("error: forward.ca_dir: "), "{err}");
        assert!(err.contains("api.example.com"), "{err}");
        assert!(err.contains("route /other"), "{err}");
        assert!(err.contains("ims-proxy ca rotate"), "{err}");
        assert!(!out.stderr.contains("listening"), "{}", out.stderr);
    }
    // The rotation makes a new key and certificate that cover it; the old key is gone.
    let old_key = std::fs::read_to_string(dir.path().join("ca/ca.key")).expect("ca.key");
    let rotate = Cli::new().args(["ca", "rotate"]).config_file(&config).run();
    assert_eq!(rotate.code, Some(0), "{}", rotate.stderr);
    assert!(
        rotate
            .stdout
            .contains("adobe.io, adobelogin.com, demdex.com, api.example.com"),
        "{}",
        rotate.stdout
    );
    let after = std::fs::read_to_string(dir.path().join("ca/ca.pem")).expect("ca.pem");
    assert_ne!(after, before);
    let new_key = std::fs::read_to_string(dir.path().join("ca/ca.key")).expect("ca.key");
    assert_ne!(new_key, old_key);
    let left: Vec<_> = std::fs::read_dir(dir.path().join("ca"))
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(!rotate.stdout.contains("PRIVATE KEY"));
    let check = Cli::new().arg("check").config_file(&config).run();
    assert_eq!(check.code, Some(0), "{}", check.stderr);
}

#[test]
fn a_ca_made_without_name_constraints_is_kept_with_a_warning_naming_the_rotation() {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let (dir, config) = support::cli::write_config(&forward_config(""));
    // What earlier versions made: no name constraints, ten years.
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "ims-proxy local CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(3650);
    let cert = params.self_signed(&key).expect("cert");
    let ca_dir = dir.path().join("ca");
    std::fs::create_dir(&ca_dir).expect("mkdir");
    std::fs::write(ca_dir.join("ca.key"), key.serialize_pem()).expect("key");
    std::fs::write(ca_dir.join("ca.pem"), cert.pem()).expect("pem");
    let check = Cli::new().arg("check").config_file(&config).run();
    assert_eq!(check.code, Some(0), "{}", check.stderr);
    assert!(
        check.stdout.contains("for any host (no name constraints)"),
        "{}",
        check.stdout
    );
    assert!(
        check.stdout.lines().any(|l| l
            .starts_with("warning: the local CA has no name constraints")
            && l.contains("ims-proxy ca rotate")),
        "{}",
        check.stdout
    );
    // Kept: clients that trust it keep working until the operator rotates.
    assert_eq!(
        std::fs::read_to_string(ca_dir.join("ca.pem")).ok(),
        Some(cert.pem())
    );
}

#[test]
fn an_expired_ca_is_replaced_at_start_with_a_warning() {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let (dir, config) = support::cli::write_config(&forward_config(""));
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "ims-proxy local CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(400);
    params.not_after = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    let cert = params.self_signed(&key).expect("cert");
    let ca_dir = dir.path().join("ca");
    std::fs::create_dir(&ca_dir).expect("mkdir");
    std::fs::write(ca_dir.join("ca.key"), key.serialize_pem()).expect("key");
    std::fs::write(ca_dir.join("ca.pem"), cert.pem()).expect("pem");
    let check = Cli::new().arg("check").config_file(&config).run();
    assert_eq!(check.code, Some(0), "{}", check.stderr);
    assert!(check.stderr.contains("expired"), "{}", check.stderr);
    let next_year = (time::OffsetDateTime::now_utc() + time::Duration::days(365)).date();
    assert!(
        check.stdout.contains(&format!("valid until {next_year}")),
        "{}",
        check.stdout
    );
    assert_ne!(
        std::fs::read_to_string(ca_dir.join("ca.pem")).ok(),
        Some(cert.pem())
    );
}

#[tokio::test]
async fn after_ca_rotate_a_reload_issues_leaves_from_the_new_ca_only() {
    let up = FakeUpstream::start().await;
    let route = Route::new("/campaign")
        .api("campaign")
        .extra("tenant = \"acme\"")
        .upstream(up.url());
    let toml = static_proxy(route)
        .section("[server]\nlisten = \"127.0.0.1:0\"")
        .section("[forward]\nlisten = \"127.0.0.1:0\"\nca_dir = \"ca\"")
        .toml();
    let p = ChildProxy::spawn(&toml, &[]);
    let fwd = p.forward_addr().await;
    let ca = p.dir.path().join("ca").join("ca.pem");
    let old = p.dir.path().join("old-ca.pem");
    std::fs::copy(&ca, &old).expect("keep the old certificate");
    let path = "/acme/campaign/profileAndServices/profile";
    let via =
        |trust: &std::path::Path| send_via(fwd, "mc.adobe.io", trusting(trust), "", get(path));
    assert_eq!(via(&old).await.expect("the old CA").status, 200);

    let rotate = Cli::new()
        .args(["ca", "rotate"])
        .config_file(&p.config)
        .run();
    assert_eq!(rotate.code, Some(0), "{}", rotate.stderr);
    p.signal("HUP");
    p.wait_event("configuration reloaded", std::time::Duration::from_secs(20))
        .await;
    // The listener issues from the new CA now: a client still trusting the old one fails
    // the handshake until it is given the new certificate.
    let got = via(&ca).await.expect("the new CA is trusted");
    assert_eq!(got.status, 200);
    let err = via(&old).await.expect_err("the old CA no longer vouches");
    assert!(err.contains("TLS"), "{err}");
    assert_eq!(up.count(), 2);
}

// ---- ims-proxy ca bundle: the app's other hosts keep working ----------------------------

#[tokio::test]
async fn ca_bundle_holds_the_machines_roots_then_the_local_ca_and_nothing_twice() {
    let up = FakeUpstream::start().await;
    let p = forward::campaign_child(&up);
    p.forward_addr().await;
    let pki = support::tls::TestPki::new();
    let local_ca = support::forward::pem_certs(&p.dir.path().join("ca/ca.pem"));
    let (path, certs) = support::forward::ca_bundle(&p.config, Some(&pki.ca_path()));
    assert_eq!(path, p.dir.path().join("ca").join("bundle.pem"));
    let test_root = support::forward::pem_certs(pki.ca_file.path());
    assert_eq!(certs, [test_root.clone(), local_ca.clone()].concat());
    // Again, and with SSL_CERT_FILE naming the bundle itself (a shell that exported the
    // README's line): the system's roots, never the bundle folded into itself.
    let (_, again) = support::forward::ca_bundle(&p.config, Some(&pki.ca_path()));
    assert_eq!(again, certs);
    let (_, from_system) =
        support::forward::ca_bundle(&p.config, Some(&path.display().to_string()));
    let system =
        support::forward::pem_certs(std::path::Path::new("/etc/ssl/certs/ca-certificates.crt"));
    assert!(system.len() > 50, "{} roots", system.len());
    assert_eq!(from_system, [system, local_ca].concat());
}

/// curl with `CURL_CA_BUNDLE=ca_file` and `HTTPS_PROXY` at the forward listener: its exit code.
async fn curl(ca_file: &std::path::Path, proxy: &str, no_proxy: &str, url: &str) -> i32 {
    let mut cmd = tokio::process::Command::new("curl");
    cmd.args(["-sS", "-o", "/dev/null", "--max-time", "30", url])
        .env("CURL_CA_BUNDLE", ca_file)
        .env("HTTPS_PROXY", proxy)
        .env("NO_PROXY", no_proxy)
        .env_remove("https_proxy")
        .env_remove("no_proxy")
        .env_remove("SSL_CERT_FILE")
        .kill_on_drop(true);
    let out = cmd.output().await.expect("run curl");
    out.status.code().unwrap_or(-1)
}

#[tokio::test]
async fn with_the_bundle_and_no_proxy_curl_reaches_adobe_through_the_proxy_and_other_hosts_directly(
) {
    let up = FakeUpstream::start().await;
    let p = forward::campaign_child(&up);
    let proxy = format!("http://{}", p.forward_addr().await);
    // The app's other host: a TLS server whose certificate chains to a root the machine
    // trusts (here a test CA, given to the bundle as the machine's roots).
    let pki = support::tls::TestPki::new();
    let other = FakeUpstream::start_tls_h1(&pki).await;
    let other_url = format!("https://localhost:{}/other", other.addr.port());
    let (bundle, _) = support::forward::ca_bundle(&p.config, Some(&pki.ca_path()));
    let adobe = "https://mc.adobe.io/acme/campaign/profileAndServices/profile";
    let ca_only = p.dir.path().join("ca/ca.pem");

    assert_eq!(curl(&bundle, &proxy, "localhost", adobe).await, 0);
    assert_eq!(curl(&bundle, &proxy, "localhost", &other_url).await, 0);
    assert_eq!((up.count(), other.count()), (1, 1));
    // The README's former line: the proxy's CA alone, and the other host fails
    // verification (curl's 60).
    assert_eq!(curl(&ca_only, &proxy, "localhost", &other_url).await, 60);
    // Without NO_PROXY the other host goes to the forward listener, which refuses it (403:
    // curl's 56).
    assert_eq!(curl(&bundle, &proxy, "", &other_url).await, 56);
    assert_eq!((up.count(), other.count()), (1, 1));
}

#[test]
fn ca_bundle_without_roots_to_read_fails_naming_the_file() {
    let (dir, config) = support::cli::write_config(&forward_config(""));
    let empty = dir.path().join("no-roots.pem");
    std::fs::write(&empty, "not a certificate\n").expect("write");
    let out = Cli::new()
        .args(["ca", "bundle"])
        .config_file(&config)
        .env("SSL_CERT_FILE", &empty.display().to_string())
        .run();
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.error_line().contains(&empty.display().to_string()),
        "{}",
        out.stderr
    );
    assert!(!dir.path().join("ca/bundle.pem").exists());
}

#[test]
fn a_refused_rotation_keeps_the_ca_it_would_have_replaced() {
    let (dir, config) = support::cli::write_config(&forward_config(""));
    let first = Cli::new().args(["ca", "path"]).config_file(&config).run();
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    let pem = std::fs::read_to_string(dir.path().join("ca/ca.pem")).expect("ca.pem");
    let key = std::fs::read_to_string(dir.path().join("ca/ca.key")).expect("ca.key");
    // A configuration error elsewhere: the rotation is refused and changes nothing.
    std::fs::write(&config, forward_config("[[routes]]\nprefix = \"/b\"\ncredential = \"nope\"\nupstream = \"http://127.0.0.1:1\"\n")).expect("write");
    let out = Cli::new().args(["ca", "rotate"]).config_file(&config).run();
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.error_line().contains("routes[1].credential"),
        "{}",
        out.stderr
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("ca/ca.pem")).ok(),
        Some(pem)
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("ca/ca.key")).ok(),
        Some(key)
    );
    let mut left: Vec<_> = std::fs::read_dir(dir.path().join("ca"))
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["ca.key", "ca.pem"]);
}

#[tokio::test]
async fn a_public_url_on_an_ip_address_is_intercepted_with_a_leaf_openssl_accepts() {
    let up = FakeUpstream::start().await;
    let route = Route::new("/ip")
        .upstream(up.url())
        .extra("public_url = \"https://127.0.0.1/ip\"");
    let toml = static_proxy(route)
        .section("[server]\nlisten = \"127.0.0.1:0\"")
        .section("[forward]\nlisten = \"127.0.0.1:0\"\nca_dir = \"ca\"")
        .toml();
    let p = ChildProxy::spawn(&toml, &[]);
    let proxy = format!("http://{}", p.forward_addr().await);
    let ca = p.dir.path().join("ca/ca.pem");
    let code = curl(&ca, &proxy, "", "https://127.0.0.1/ip/x").await;
    assert_eq!(code, 0);
    assert_eq!(up.only_request().target, "/x");
}

#[tokio::test]
async fn inside_a_tunnel_a_request_a_browser_sent_from_another_site_is_refused_and_not_forwarded() {
    // A browser whose system proxy is the forward listener and which trusts the local CA: a
    // page on another site POSTs to Adobe's host through it.
    let s = Setup::new("", "").await;
    for (name, value) in [
        ("origin", "https://attacker.example"),
        ("sec-fetch-site", "cross-site"),
    ] {
        let req = Request::post("/acme/campaign/profileAndServices/profile")
            .header("host", "mc.adobe.io")
            .header(name, value)
            .body(Full::from("from-a-page"))
            .expect("request");
        let got = s
            .send("mc.adobe.io", req)
            .await
            .expect("through the tunnel");
        assert_eq!(got.status, 403, "{}", got.text());
        assert_eq!(got.json()["error_code"], "cross_site_request");
    }
    assert_eq!(s.up.count(), 0);
    // An SDK sends neither header: its request goes through.
    let got = s
        .send(
            "mc.adobe.io",
            get("/acme/campaign/profileAndServices/profile"),
        )
        .await
        .expect("through the tunnel");
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(s.up.count(), 1);
}

// ---- passthrough tunnels dial through outbound ------------------------------------------

#[tokio::test]
async fn passthrough_tunnels_count_both_their_sockets_against_the_descriptor_budget() {
    let (port, accepted) = silent_upstream_counting().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let toml = static_proxy(Route::new("/api").upstream(format!("http://127.0.0.1:{port}")))
        .section("[server]\nlisten = \"127.0.0.1:0\"")
        .section("[server.limits]\nmax_connections = 1000\nheader_read_timeout = \"60s\"")
        .section("[admin]\nlisten = \"127.0.0.1:0\"\nmax_connections = 4")
        .section(&format!(
            "[forward]\nlisten = \"127.0.0.1:0\"\nca_dir = \"{}\"\npassthrough = [\"127.0.0.1:{port}\"]",
            dir.path().join("ca").display()
        ))
        .toml();
    // 128 descriptors: 32 kept back, 4 for the admin port, 92 for the sockets of connections.
    let child = ChildProxy::spawn_with_fd_limit(&toml, 128);
    let forward = child.forward_addr().await;
    let target = format!("127.0.0.1:{port}");
    let (mut held, mut refused, mut other) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..70 {
        match connect_within(forward, &target, "", Duration::from_secs(2)).await {
            Some((200, _, tunnel)) => held.push(tunnel),
            Some((503, text, _)) => refused.push(text),
            Some((status, text, _)) => other.push(format!("{status} {text}")),
            None => other.push("no answer within 2 s".into()),
        }
    }
    let tunnels = held.len();
    let fds = child.open_fds();
    let addr = child.addr().await;
    let api = raw_send(
        addr,
        format!("GET /api/x HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    eprintln!(
        "{tunnels} tunnels open, {} refused, {} otherwise; the process holds {fds} of 128 \
         descriptors; an API request got {:?}",
        refused.len(),
        other.len(),
        api.status()
    );
    assert!(other.is_empty(), "{other:?}");
    assert!(
        refused.iter().all(|t| t.contains("too_many_connections")),
        "{refused:?}"
    );
    assert_ne!(api.status(), Some(502), "{}", api.text);
    assert!(
        tunnels <= 92 / 2,
        "{tunnels} tunnels hold {} sockets",
        2 * tunnels
    );
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        tunnels,
        "one upstream socket per tunnel"
    );
    child.assert_serving_within_its_descriptors().await;
    drop(held);
}

#[tokio::test]
async fn a_passthrough_tunnel_goes_through_the_egress_proxy() {
    let port = echo_upstream().await;
    let corp = ConnectProxy::start().await;
    let s = Setup::new(
        &format!("passthrough = [\"127.0.0.1:{port}\"]"),
        &format!("[client]\nproxy = \"{}\"\n", corp.url()),
    )
    .await;
    let (status, text, mut tunnel) = connect(s.forward(), &format!("127.0.0.1:{port}"), "").await;
    assert_eq!(status, 200, "{text}");
    tunnel.write_all(b"ping").await.expect("write");
    let mut back = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(10), tunnel.read_exact(&mut back))
        .await
        .expect("echoed in time")
        .expect("read");
    assert_eq!(&back, b"ping");
    let seen = corp.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].method, "CONNECT");
    assert_eq!(seen[0].target, format!("127.0.0.1:{port}"));
}

#[tokio::test]
async fn passthrough_tunnels_to_one_host_are_capped_by_max_connections_per_upstream() {
    let (port, accepted) = silent_upstream_counting().await;
    let s = Setup::new(
        &format!("passthrough = [\"127.0.0.1:{port}\"]"),
        "[client]\nmax_connections_per_upstream = 2\nconnect_timeout = \"1s\"\n",
    )
    .await;
    let target = format!("127.0.0.1:{port}");
    let mut held = Vec::new();
    for _ in 0..2 {
        let (status, text, tunnel) = connect(s.forward(), &target, "").await;
        assert_eq!(status, 200, "{text}");
        held.push(tunnel);
    }
    let (status, text, _) = connect(s.forward(), &target, "").await;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("upstream_connection_limit"), "{text}");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    drop(held);
}

/// The reverse listener with `[ims_endpoint] prefix = "/ims"`, route `/api` to `up`, and
/// `extra` tables.
async fn ims_endpoint_proxy(up: &FakeUpstream, extra: &str) -> ims_proxy::Running {
    static_proxy(Route::new("/api").upstream(up.url()))
        .section("[ims_endpoint]\nprefix = \"/ims\"")
        .append(extra)
        .start()
        .await
}

#[tokio::test]
async fn under_ims_endpoint_prefix_the_reverse_listener_answers_ims_token_requests_itself() {
    let up = FakeUpstream::start().await;
    let p = ims_endpoint_proxy(&up, "").await;
    let got = Req::post(proxy_url(&p, "/ims/ims/token/v3"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&client_id=x&client_secret=y&scope=openid")
        .send()
        .await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.json()["expires_in"], 86_400);
    let other = Req::post(proxy_url(&p, "/ims/ims/authorize/v2"))
        .send()
        .await;
    assert_eq!(other.status, 404);
    assert_eq!(other.json()["error"], "not_found");
    assert_eq!(up.count(), 0, "never forwarded");
}

#[test]
fn ca_path_and_show_print_the_certificate_and_never_the_key() {
    let toml = static_proxy(
        Route::new("/a")
            .api("privacy")
            .upstream("http://127.0.0.1:1"),
    )
    .section("[forward]\nlisten = \"127.0.0.1:0\"\nca_dir = \"ca\"")
    .toml();
    let (dir, config) = support::cli::write_config(&toml);
    let path = Cli::new().args(["ca", "path"]).config_file(&config).run();
    assert_eq!(path.code, Some(0), "{}", path.stderr);
    let expected = dir.path().join("ca").join("ca.pem");
    assert_eq!(path.stdout.trim(), expected.display().to_string());
    let show = Cli::new().args(["ca", "show"]).config_file(&config).run();
    assert!(
        show.stdout.starts_with("-----BEGIN CERTIFICATE-----"),
        "{}",
        show.stdout
    );
    assert!(!show.stdout.contains("PRIVATE KEY"));
    assert_eq!(
        std::fs::read_to_string(&expected).ok().as_deref(),
        Some(show.stdout.as_str())
    );
}

#[test]
fn ca_without_a_forward_listener_is_a_config_error() {
    let toml = static_proxy(Route::new("/a").upstream("http://127.0.0.1:1")).toml();
    let out = Cli::new().args(["ca", "path"]).config(&toml).run();
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("forward"), "{}", out.stderr);
}

/// Deadlines short enough for a test: a body must start within 1 s and never pause for 1 s.
const QUICK_BODIES: &str =
    "[server.limits]\nheader_read_timeout = \"1s\"\n\n[client]\nbody_idle_timeout = \"1s\"\n";

/// A token request head that declares a 100-byte body.
fn token_head(host: &str, path: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n"
    )
}

#[tokio::test]
async fn a_token_request_whose_body_never_comes_gets_408_through_the_forward_listener() {
    let s = Setup::new("", QUICK_BODIES).await;
    let host = "ims-na1.adobelogin.com";
    let mut tls = support::forward::tunnel(s.forward(), host, trusting(&s.ca), "")
        .await
        .expect("tunnel");
    tls.write_all(token_head(host, "/ims/token/v3").as_bytes())
        .await
        .expect("write the head");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    // Bounded: the proxy must answer well within this, or the test fails rather than hangs.
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        while !String::from_utf8_lossy(&got).contains("request_timeout") {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
    assert!(
        text.contains("\"error_code\":\"request_timeout\""),
        "{text}"
    );
    assert_eq!(s.up.count(), 0);
}

#[tokio::test]
async fn a_token_request_whose_body_never_comes_gets_408_under_ims_endpoint() {
    let up = FakeUpstream::start().await;
    let p = ims_endpoint_proxy(&up, QUICK_BODIES).await;
    let reply = raw_send(
        p.addr,
        token_head("localhost", "/ims/ims/token/v3").as_bytes(),
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(reply.status(), Some(408), "{}", reply.text);
    assert!(
        reply.text.contains("\"error_code\":\"request_timeout\""),
        "{}",
        reply.text
    );
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn a_token_request_body_that_stalls_midway_gets_408_under_ims_endpoint() {
    let up = FakeUpstream::start().await;
    let p = ims_endpoint_proxy(&up, QUICK_BODIES).await;
    let mut raw = token_head("localhost", "/ims/ims/token/v3");
    raw.push_str("grant_type=client_credentials&client_id=x");
    let reply = raw_send(p.addr, raw.as_bytes(), Duration::from_secs(30)).await;
    assert_eq!(reply.status(), Some(408), "{}", reply.text);
    assert!(reply.text.contains("stalled"), "{}", reply.text);
}

#[tokio::test]
async fn a_token_request_body_over_the_cap_gets_413_under_ims_endpoint() {
    let up = FakeUpstream::start().await;
    let p = ims_endpoint_proxy(&up, "").await;
    let got = Req::post(proxy_url(&p, "/ims/ims/token/v3"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("client_id=x&pad={}", "a".repeat(70 * 1024)))
        .send()
        .await;
    assert_eq!(got.status, 413, "{}", got.text());
    assert_eq!(got.json()["error_code"], "payload_too_large");
}
