//! The real binary as a child process: access log lines, SIGHUP and `--watch` reloads,
//! SIGTERM with a stream in flight, `check --online`, proxy environment variables, and a
//! second proxy started on a port the first holds.

use http_body_util::BodyExt;
use std::time::Duration;
use support::tls::TestPki;
use support::*;

const WAIT: Duration = Duration::from_secs(20);

/// A long shutdown grace, an admin listener, the static credential, and `routes`.
fn config(routes: &[Route]) -> ProxyToml {
    let base = ProxyToml::new()
        .section("[server]\nlisten = \"127.0.0.1:0\"\nshutdown_grace = \"20s\"")
        .admin()
        .static_credential("cred");
    routes.iter().cloned().fold(base, ProxyToml::route)
}

fn route(prefix: &str, upstream: &str) -> Route {
    Route::new(prefix).upstream(upstream)
}

async fn get_with_id(url: &str, id: &str) -> Got {
    Req::get(url).header("x-request-id", id).send().await
}

#[tokio::test]
async fn every_request_gets_exactly_one_access_log_event_with_its_fields() {
    let up = FakeUpstream::start().await;
    let child = ChildProxy::spawn(&config(&[route("/api", &up.url())]).toml(), &[]);
    let addr = child.addr().await;
    assert_eq!(
        get_with_id(&format!("http://{addr}/api/x"), "req-ok-1")
            .await
            .status,
        200
    );
    assert_eq!(
        get_with_id(&format!("http://{addr}/nowhere"), "req-404-1")
            .await
            .status,
        404
    );
    let access = |id: &str| -> Vec<serde_json::Value> {
        child
            .events()
            .into_iter()
            .filter(|e| e["target"] == "ims_proxy::access" && e["request_id"] == id)
            .collect()
    };
    // Each access line is written once its response is done: wait for both.
    eventually(WAIT, || {
        !access("req-ok-1").is_empty() && !access("req-404-1").is_empty()
    })
    .await;
    let ok = access("req-ok-1");
    assert_eq!(ok.len(), 1, "{ok:?}");
    let e = &ok[0];
    assert_eq!(e["level"], "INFO");
    assert_eq!(e["http.request.method"], "GET");
    assert_eq!(e["url.path"], "/api/x");
    assert_eq!(e["route"], "/api");
    assert_eq!(e["credential"], "cred");
    assert_eq!(e["caller"], "-");
    assert_eq!(e["client.address"], "127.0.0.1");
    assert_eq!(e["http.response.status_code"], 200);
    assert_eq!(e["bytes_in"], 0);
    assert_eq!(e["bytes_out"], 11); // {"ok":true}
    assert_eq!(e["completed"], true);
    let (total, upstream) = (&e["duration_us"], &e["upstream_us"]);
    assert!(total.is_u64() && upstream.is_u64(), "{e}");
    assert!(total.as_u64() >= upstream.as_u64(), "{e}");
    let missed = access("req-404-1");
    assert_eq!(missed.len(), 1, "{missed:?}");
    assert_eq!(missed[0]["http.response.status_code"], 404);
    assert_eq!(missed[0]["route"], "-");
    assert!(missed[0].get("upstream_us").is_none());
    assert!(!child.stderr().contains(STATIC_TOKEN));
}

#[tokio::test]
async fn the_readmes_example_access_line_has_exactly_the_fields_of_a_real_one() {
    let readme = include_str!("../../README.md");
    let section = &readme[readme
        .find("### Access log")
        .expect("README has an Access log section")..];
    let example: serde_json::Value = section
        .lines()
        .find(|l| l.contains("\"target\":\"ims_proxy::access\""))
        .and_then(|l| serde_json::from_str(l).ok())
        .expect("the Access log section shows a JSON access line");
    let up = FakeUpstream::start().await;
    let child = ChildProxy::spawn(&config(&[route("/api", &up.url())]).toml(), &[]);
    let addr = child.addr().await;
    get_with_id(&format!("http://{addr}/api/x"), "req-readme-1").await;
    let real = poll(WAIT, || {
        std::future::ready(
            child
                .events()
                .into_iter()
                .find(|e| e["target"] == "ims_proxy::access" && e["request_id"] == "req-readme-1"),
        )
    })
    .await
    .expect("an access line");
    let keys = |v: &serde_json::Value| -> Vec<String> {
        let mut k: Vec<String> = v
            .as_object()
            .map_or(vec![], |o| o.keys().cloned().collect());
        k.sort();
        k
    };
    assert_eq!(
        keys(&example),
        keys(&real),
        "README: {example}\nreal: {real}"
    );
}

#[tokio::test]
async fn sighup_applies_a_new_route_and_refuses_an_invalid_config_while_the_old_one_serves() {
    let up = FakeUpstream::start().await;
    let one = route("/one", &up.url());
    let child = ChildProxy::spawn(&config(std::slice::from_ref(&one)).toml(), &[]);
    let addr = child.addr().await;
    let admin = child.admin_addr().await;
    assert_eq!(get(&format!("http://{addr}/two/x")).await.status, 404);

    let both = [one, route("/two", &up.url())];
    child.rewrite_config(&config(&both).toml());
    child.signal("HUP");
    child.wait_event("configuration reloaded", WAIT).await;
    assert_eq!(get(&format!("http://{addr}/two/x")).await.status, 200);
    assert_eq!(up.requests().last().unwrap().target, "/x");

    // An unknown credential: refused, one error line, and both routes keep working.
    let broken = config(&both).route(route("/three", &up.url()).credential("nope"));
    child.rewrite_config(&broken.toml());
    child.signal("HUP");
    let refused = child
        .wait_event(
            "configuration reload refused; the previous configuration keeps serving",
            WAIT,
        )
        .await;
    assert_eq!(refused["level"], "ERROR");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("routes[2].credential"),
        "{refused}"
    );
    assert_eq!(get(&format!("http://{addr}/one/x")).await.status, 200);
    assert_eq!(get(&format!("http://{addr}/two/x")).await.status, 200);
    assert_eq!(get(&format!("http://{addr}/three/x")).await.status, 404);
    let text = metrics_text(admin).await;
    assert_eq!(
        metric_value(&text, "ims_proxy_config_reloads_total", &[("result", "ok")]),
        Some(1.0)
    );
    assert_eq!(
        metric_value(
            &text,
            "ims_proxy_config_reloads_total",
            &[("result", "error")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn sighup_refuses_a_truncated_config_file_and_every_route_keeps_serving() {
    let up = FakeUpstream::start().await;
    let child = ChildProxy::spawn(&config(&[route("/one", &up.url())]).toml(), &[]);
    let addr = child.addr().await;
    child.rewrite_config("");
    child.signal("HUP");
    let refused = child
        .wait_event(
            "configuration reload refused; the previous configuration keeps serving",
            WAIT,
        )
        .await;
    assert!(
        refused["error"]
            .as_str()
            .unwrap_or("")
            .starts_with("routes: "),
        "{refused}"
    );
    assert_eq!(get(&format!("http://{addr}/one/x")).await.status, 200);
    assert_eq!(up.requests().len(), 1);
}

#[tokio::test]
async fn with_watch_a_changed_config_file_or_secret_file_is_reloaded() {
    let up = FakeUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "first-token\n").unwrap();
    let with_file = |routes: &[Route]| {
        config(routes).toml().replace(
            &format!("access_token = \"{STATIC_TOKEN}\""),
            &format!("access_token_file = \"{}\"", token.display()),
        )
    };
    let one = route("/one", &up.url());
    let child = ChildProxy::spawn(&with_file(std::slice::from_ref(&one)), &["--watch"]);
    let addr = child.addr().await;
    assert_eq!(get(&format!("http://{addr}/one/x")).await.status, 200);

    let both = [one, route("/two", &up.url())];
    child.rewrite_config(&with_file(&both));
    child.wait_event("configuration reloaded", WAIT).await;
    assert_eq!(get(&format!("http://{addr}/two/x")).await.status, 200);

    // Kubernetes rotates a mounted secret: the new token is used without a signal.
    std::fs::write(&token, "second-token\n").unwrap();
    let rotated = poll(WAIT, || async {
        get(&format!("http://{addr}/one/x")).await;
        let auth = up.requests().last().unwrap().headers["authorization"].clone();
        (auth == "Bearer second-token").then_some(())
    })
    .await;
    assert!(
        rotated.is_some(),
        "rotated secret file not picked up; stderr:\n{}",
        child.stderr()
    );
}

/// Writes `content` to `path` the way a renewal does: beside it, then renamed over it.
fn replace_file(path: &std::path::Path, content: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test]
async fn with_watch_a_renewed_listener_certificate_is_served_without_a_signal() {
    let up = FakeUpstream::start().await;
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = pki.server_identity("first").write(dir.path(), "listener");
    let toml = config(&[route("/api", &up.url())])
        .section(&format!(
            "[server.tls]\ncert_file = \"{cert}\"\nkey_file = \"{key}\""
        ))
        .toml();
    let child = ChildProxy::spawn(&toml, &["--watch"]);
    let addr = child.addr().await;
    let first = pki.presented_cert(addr).await;

    let renewed = pki.server_identity("renewed");
    replace_file(std::path::Path::new(&key), &renewed.key_pem);
    replace_file(std::path::Path::new(&cert), &renewed.cert_pem);
    let served = poll(WAIT, || async {
        let now = pki.presented_cert(addr).await;
        (now != first).then_some(now)
    })
    .await;
    let served = served.unwrap_or_else(|| {
        panic!(
            "the renewed certificate is not served; stderr:\n{}",
            child.stderr()
        )
    });
    let want = rustls_pemfile::certs(&mut renewed.cert_pem.as_bytes())
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(served, want.to_vec());
}

#[tokio::test]
async fn with_watch_a_rotated_client_key_file_takes_effect_without_a_signal() {
    let up = FakeUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("app.key");
    let (old_key, new_key) = ("first-app-key-0123456789", "rotated-app-key-9876543210");
    std::fs::write(&key_file, old_key).unwrap();
    let toml = config(&[route("/api", &up.url())])
        .append(&format!(
            "[[clients]]\nname = \"app\"\nkey_file = \"{}\"",
            key_file.display()
        ))
        .toml();
    let child = ChildProxy::spawn(&toml, &["--watch"]);
    let addr = child.addr().await;
    let with_key = |key: &'static str| {
        let url = format!("http://{addr}/api/x");
        async move { Req::get(url).header("x-proxy-key", key).send().await.status }
    };
    assert_eq!(with_key(old_key).await, 200);

    replace_file(&key_file, new_key);
    let rotated = poll(WAIT, || async {
        (with_key(new_key).await == 200).then_some(())
    })
    .await;
    assert!(
        rotated.is_some(),
        "the rotated key is not accepted; stderr:\n{}",
        child.stderr()
    );
    assert_eq!(with_key(old_key).await, 401);
}

#[tokio::test]
async fn with_watch_a_replaced_forward_ca_signs_new_tunnels_without_a_signal() {
    use support::forward::{send_via, trusting};
    let up = FakeUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let with_ca = |ca_dir: &std::path::Path| {
        config(&[Route::new("/privacy").api("privacy").upstream(up.url())])
            .section(&format!(
                "[forward]\nlisten = \"127.0.0.1:0\"\nca_dir = \"{}\"",
                ca_dir.display()
            ))
            .toml()
    };
    let (live, next) = (dir.path().join("ca"), dir.path().join("next"));
    // The replacement, made beforehand as a user makes one for a Secret.
    let made = Cli::new()
        .args(["ca", "path"])
        .config(&with_ca(&next))
        .run();
    assert_eq!(made.code, Some(0), "{}", made.stderr);
    let child = ChildProxy::spawn(&with_ca(&live), &["--watch"]);
    let forward = child.forward_addr().await;
    let request = || {
        http::Request::get("/data/core/privacy/jobs")
            .header("host", "platform.adobe.io")
            .body(http_body_util::Full::default())
            .unwrap()
    };
    let host = "platform.adobe.io";
    let first = trusting(&live.join("ca.pem"));
    let got = send_via(forward, host, first, "", request()).await;
    assert_eq!(got.map(|g| g.status.as_u16()), Ok(200));

    // Kubernetes swaps a Secret's files together; here, one rename each.
    let (first_pem, new_pem) = (dir.path().join("first.pem"), live.join("ca.pem"));
    std::fs::copy(&new_pem, &first_pem).unwrap();
    replace_file(
        &live.join("ca.key"),
        &std::fs::read_to_string(next.join("ca.key")).unwrap(),
    );
    replace_file(
        &new_pem,
        &std::fs::read_to_string(next.join("ca.pem")).unwrap(),
    );
    let renewed = trusting(&next.join("ca.pem"));
    let signed = poll(WAIT, || async {
        send_via(forward, host, renewed.clone(), "", request())
            .await
            .ok()
            .map(|g| g.status.as_u16())
    })
    .await;
    assert_eq!(signed, Some(200), "stderr:\n{}", child.stderr());
    let old = send_via(forward, host, trusting(&first_pem), "", request()).await;
    assert!(old.is_err(), "a new tunnel is still signed by the old CA");
}

#[tokio::test]
async fn sigterm_lets_a_stream_in_flight_finish_then_exits_0() {
    let up = FakeUpstream::held_midway(b"first,", b"last").await;
    let mut child = ChildProxy::spawn(&config(&[route("/api", &up.url())]).toml(), &[]);
    let addr = child.addr().await;
    let admin = child.admin_addr().await;

    let resp = Req::get(format!("http://{addr}/api/stream"))
        .response()
        .await;
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&first[..], b"first,");

    child.signal("TERM");
    child.wait_event("shutting down", WAIT).await;
    // Draining: not ready, and no new connections.
    let ready = get(&format!("http://{admin}/readyz")).await;
    assert_eq!(ready.status, 503);
    let refused = poll(WAIT, || async {
        tokio::net::TcpStream::connect(addr).await.err()
    })
    .await;
    assert!(
        refused.is_some(),
        "the listener still accepts after SIGTERM"
    );
    assert!(
        child.wait_exit_now().is_none(),
        "exited with a stream in flight"
    );

    up.release();
    let mut rest = Vec::new();
    while let Some(f) = body.frame().await {
        if let Ok(d) = f.unwrap().into_data() {
            rest.extend_from_slice(&d);
        }
    }
    assert_eq!(&rest[..], b"last");
    let status = child.wait_exit(WAIT).await;
    assert_eq!(status.code(), Some(0), "stderr:\n{}", child.stderr());
}

async fn check_online(config: &ProxyToml) -> Output {
    Cli::new()
        .json_logs("info")
        .config(&config.toml())
        .args(["check", "--online"])
        .output()
        .await
}

/// `[client]` trusting `pki`'s CA.
fn trusting(config: ProxyToml, pki: &TestPki) -> ProxyToml {
    config.client(&format!("ca_file = \"{}\"", pki.ca_path()))
}

#[tokio::test]
async fn check_online_reports_each_credential_and_route_and_exits_0_when_all_work() {
    let pki = TestPki::new();
    let up = FakeUpstream::start_tls(&pki).await;
    let Output {
        code, stdout: out, ..
    } = check_online(&trusting(config(&[route("/api", &up.url())]), &pki)).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("credential cred: ok (static, token does not expire)"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "route /api -> {}: ok (credential cred, upstream reachable; no probe, so not asked",
            up.url()
        )),
        "{out}"
    );
    assert!(out.trim_end().ends_with("online check ok"), "{out}");
}

#[tokio::test]
async fn check_online_exits_1_naming_the_route_that_fails() {
    let up = FakeUpstream::start().await;
    let closed = unused_addr();
    let routes = [
        route("/good", &up.url()),
        route("/bad", &format!("http://{closed}")),
    ];
    let Output {
        code, stdout: out, ..
    } = check_online(&config(&routes)).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("route /good -> "), "{out}");
    // `check` first prints the resolved routes, then the online results.
    let bad = out.lines().rfind(|l| l.starts_with("route /bad")).unwrap();
    assert!(bad.contains("FAILED: upstream unreachable"), "{bad}");
    assert!(out.contains("online check FAILED: 1 problem(s)"), "{out}");
}

#[tokio::test]
async fn check_online_warns_on_an_upstream_429_and_fails_on_any_other_4xx() {
    let up = FakeUpstream::responding(|rec| {
        let (status, body) = if rec.target.starts_with("/busy") {
            (
                429,
                r#"{"error_code":"429050","message":"Too many requests"}"#,
            )
        } else {
            (
                404,
                r#"{"error_code":"404003","message":"Service not found"}"#,
            )
        };
        http::Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(full(body))
            .expect("response")
    })
    .await;
    let routes = [
        route("/busy", &up.url()).extra("probe = \"GET /busy?x=1\""),
        route("/gone", &up.url()).extra("probe = \"HEAD /nothing-here\""),
    ];
    let Output {
        code, stdout: out, ..
    } = check_online(&config(&routes)).await;
    assert_eq!(code, Some(1), "{out}");
    let line = |prefix: &str| {
        out.lines()
            .rfind(|l| l.starts_with(&format!("route {prefix} -> ")))
            .unwrap_or_default()
            .to_string()
    };
    let busy = line("/busy");
    assert!(
        busy.contains(": WARNING: GET /busy?x=1 answered 429 error_code 429050"),
        "{busy}"
    );
    let gone = line("/gone");
    assert!(
        gone.contains(": FAILED: HEAD /nothing-here answered 404"),
        "{gone}"
    );
    assert!(out.contains("online check FAILED: 1 problem(s)"), "{out}");
    let seen: Vec<(String, String)> = up
        .requests()
        .iter()
        .map(|r| (r.method.to_string(), r.target.clone()))
        .collect();
    assert!(
        seen.contains(&("GET".into(), "/busy?x=1".into())),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("HEAD".into(), "/nothing-here".into())),
        "{seen:?}"
    );
    let busy_request = up
        .requests()
        .into_iter()
        .find(|r| r.target.starts_with("/busy"))
        .expect("the probe");
    assert_eq!(
        busy_request
            .headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok()),
        Some(STATIC_CLIENT_ID)
    );
}

#[tokio::test]
async fn https_proxy_and_no_proxy_from_the_environment_are_honoured() {
    let pki = TestPki::new();
    let up = FakeUpstream::start_tls(&pki).await;
    let corp = ConnectProxy::start().await;
    let port = up.addr.port();
    // Same upstream under two names: 127.0.0.1 goes through the proxy, localhost is exempt.
    let routes = [
        route("/via", &format!("https://127.0.0.1:{port}")),
        route("/direct", &format!("https://localhost:{port}")),
    ];
    let child = ChildProxy::spawn_with_env(
        &trusting(config(&routes), &pki).toml(),
        &[],
        &[("HTTPS_PROXY", &corp.url()), ("NO_PROXY", "localhost")],
    );
    let addr = child.addr().await;
    assert_eq!(get(&format!("http://{addr}/via/a")).await.status, 200);
    assert_eq!(get(&format!("http://{addr}/direct/b")).await.status, 200);
    let seen = corp.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].method, "CONNECT");
    assert_eq!(seen[0].target, format!("127.0.0.1:{port}"));
    assert_eq!(up.count(), 2);
}

/// Waits (bounded) until `child` has either exited or logged `listening`; `Some` if it exited.
async fn exited_before_listening(child: &mut ChildProxy) -> Option<std::process::ExitStatus> {
    poll(WAIT, || {
        let exited = child.wait_exit_now();
        let listening = !child.events_with("listening").is_empty();
        std::future::ready(match (exited, listening) {
            (Some(status), _) => Some(Some(status)),
            (None, true) => Some(None),
            (None, false) => None,
        })
    })
    .await
    .unwrap_or_else(|| panic!("neither exited nor listening; stderr:\n{}", child.stderr()))
}

/// Asserts that `child`'s stderr holds `line`, which may still be on its way from the pipe after
/// the process exited.
async fn assert_logged(child: &ChildProxy, line: &str) {
    let logged = eventually(WAIT, || child.stderr().contains(line)).await;
    assert!(logged, "no {line:?} in stderr:\n{}", child.stderr());
}

#[tokio::test]
async fn a_second_proxy_on_the_port_of_a_running_one_exits_1_naming_server_listen_and_the_first_serves_every_request(
) {
    // Thread-per-core binds one `SO_REUSEPORT` listener per worker; one worker binds one plain.
    for workers in ["2", "1"] {
        let env = [("TOKIO_WORKER_THREADS", workers)];
        let (first_up, second_up) = (FakeUpstream::start().await, FakeUpstream::start().await);
        let first = ChildProxy::spawn_with_env(
            &config(&[route("/api", &first_up.url())]).toml(),
            &[],
            &env,
        );
        let addr = first.addr().await;
        let second_config = ProxyToml::new()
            .section(&format!("[server]\nlisten = \"{addr}\""))
            .static_credential("cred")
            .route(route("/api", &second_up.url()));
        let mut second = ChildProxy::spawn_with_env(&second_config.toml(), &[], &env);
        let exited = exited_before_listening(&mut second).await;

        for i in 0..20 {
            let got = Req::get(format!("http://{addr}/api/{i}")).send().await;
            assert_eq!(
                got.status,
                200,
                "workers {workers}, request {i}: {}",
                got.text()
            );
        }
        assert_eq!(
            (first_up.count(), second_up.count()),
            (20, 0),
            "workers {workers}: requests seen by the first proxy's upstream and the second's"
        );
        let status = exited
            .unwrap_or_else(|| panic!("workers {workers}: the second proxy listens on {addr} too"));
        assert_eq!(
            status.code(),
            Some(1),
            "workers {workers}: {}",
            second.stderr()
        );
        let refusal = format!("server.listen {addr}: address already in use (another ims-proxy?)");
        assert_logged(&second, &refusal).await;
    }
}

#[tokio::test]
async fn a_second_proxy_on_the_admin_port_of_a_running_one_exits_1_naming_admin_listen() {
    let up = FakeUpstream::start().await;
    let first = ChildProxy::spawn(&config(&[route("/api", &up.url())]).toml(), &[]);
    let admin = first.admin_addr().await;
    let second_config = ProxyToml::new()
        .section("[server]\nlisten = \"127.0.0.1:0\"")
        .section(&format!("[admin]\nlisten = \"{admin}\""))
        .static_credential("cred")
        .route(route("/api", &up.url()));
    let mut second = ChildProxy::spawn(&second_config.toml(), &[]);
    let status = exited_before_listening(&mut second)
        .await
        .unwrap_or_else(|| panic!("the second proxy started with its admin port on {admin}"));
    assert_eq!(status.code(), Some(1), "{}", second.stderr());
    let refusal = format!("admin.listen {admin}: address already in use (another ims-proxy?)");
    assert_logged(&second, &refusal).await;
    for _ in 0..5 {
        let health = Req::get(format!("http://{admin}/healthz")).send().await;
        assert_eq!(health.status, 200, "{}", health.text());
    }
}

#[tokio::test]
async fn a_second_proxy_on_the_forward_port_of_a_running_one_exits_1_naming_forward_listen() {
    let up = FakeUpstream::start().await;
    let forward = |listen: &str| format!("[forward]\nlisten = \"{listen}\"\nca_dir = \"ca\"");
    let first_config = config(&[route("/api", &up.url())]).section(&forward("127.0.0.1:0"));
    let first = ChildProxy::spawn(&first_config.toml(), &[]);
    let held = first.forward_addr().await;
    let second_config = ProxyToml::new()
        .section("[server]\nlisten = \"127.0.0.1:0\"")
        .section(&forward(&held.to_string()))
        .static_credential("cred")
        .route(route("/api", &up.url()));
    let mut second = ChildProxy::spawn(&second_config.toml(), &[]);
    let status = exited_before_listening(&mut second)
        .await
        .unwrap_or_else(|| panic!("the second proxy started with its forward port on {held}"));
    assert_eq!(status.code(), Some(1), "{}", second.stderr());
    let refusal = format!("forward.listen {held}: address already in use (another ims-proxy?)");
    assert_logged(&second, &refusal).await;
    // The first's forward listener still answers (403 for a host it neither intercepts nor
    // passes through: it is the first proxy's policy that answered).
    let refused = raw_send(
        held,
        b"CONNECT elsewhere.example:443 HTTP/1.1\r\nHost: elsewhere.example:443\r\n\r\n",
        WAIT,
    )
    .await;
    assert_eq!(refused.status(), Some(403), "{}", refused.text);
}
