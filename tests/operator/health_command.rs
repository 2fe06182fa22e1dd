//! `ims-proxy health`: the running proxy's readiness from its admin port, as an exit status,
//! for container health checks in images without a shell.

use support::*;

/// `ims-proxy health ARGS` against `config`, without blocking the runtime (the proxy it asks
/// may be serving in this process).
async fn health(config: &ProxyToml, args: &[&str]) -> Output {
    Cli::new()
        .arg("health")
        .args(args)
        .config(&config.toml())
        .output()
        .await
}

fn route() -> Route {
    Route::new("/api").upstream("http://127.0.0.1:1")
}

#[tokio::test]
async fn health_exits_0_when_the_running_proxy_is_ready() {
    let up = FakeUpstream::start().await;
    let p = static_proxy(Route::new("/api").upstream(up.url()))
        .admin()
        .start()
        .await;
    let admin = p.admin_addr.expect("admin listener");
    let config = static_proxy(Route::new("/api").upstream(up.url()))
        .section(&format!("[admin]\nlisten = \"{admin}\""));
    let out = health(&config, &[]).await;
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.starts_with("200 ") && out.stdout.contains("\"ready\""),
        "{}",
        out.stdout
    );
}

#[tokio::test]
async fn health_exits_1_when_nothing_answers_on_the_admin_port() {
    let port = unused_addr().port();
    let config = static_proxy(route()).section(&format!("[admin]\nlisten = \"127.0.0.1:{port}\""));
    let out = health(&config, &["--live"]).await;
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("/healthz"), "{}", out.stderr);
}

#[tokio::test]
async fn health_without_an_admin_listener_is_a_config_error() {
    let out = health(&static_proxy(route()), &[]).await;
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr.contains("admin.listen: required"),
        "{}",
        out.stderr
    );
}
