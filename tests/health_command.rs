//! `ims-proxy health`: the running proxy's readiness from its admin port, as an exit status,
//! for container health checks in images without a shell.

mod support;

use std::process::Command;
use support::*;

fn health(config: &str, args: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.toml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ims-proxy"))
        .arg("health")
        .args(args)
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn health_exits_0_when_the_running_proxy_is_ready() {
    let up = FakeUpstream::start().await;
    let route = static_route("/api", "", &up.url());
    let p = start_proxy(&format!("[admin]\nlisten = \"127.0.0.1:0\"\n{route}")).await;
    let admin = p.admin_addr.expect("admin listener");
    let config = format!("[admin]\nlisten = \"{admin}\"\n{route}");
    let (code, out, err) = tokio::task::spawn_blocking(move || health(&config, &[]))
        .await
        .unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with("200 ") && out.contains("\"ready\""),
        "{out}"
    );
}

#[tokio::test]
async fn health_exits_1_when_nothing_answers_on_the_admin_port() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = format!(
        "[admin]\nlisten = \"127.0.0.1:{port}\"\n{}",
        static_route("/api", "", "http://127.0.0.1:1")
    );
    let (code, _out, err) = tokio::task::spawn_blocking(move || health(&config, &["--live"]))
        .await
        .unwrap();
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("/healthz"), "{err}");
}

#[test]
fn health_without_an_admin_listener_is_a_config_error() {
    let (code, _out, err) = health(&static_route("/api", "", "http://127.0.0.1:1"), &[]);
    assert_eq!(code, 2);
    assert!(err.contains("admin.listen: required"), "{err}");
}
