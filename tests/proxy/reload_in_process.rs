//! What a new snapshot keeps from the one it replaces: the warm upstream connections (the
//! pool, and those held for caller connections), as long as the `[client]` settings did not
//! change.

use ims_proxy::Snapshot;
use std::sync::Arc;
use support::*;

/// Builds a snapshot from `config` on top of the running one and swaps it in, as a reload
/// does.
fn swap_in(p: &ims_proxy::Running, config: &ProxyToml) {
    let mut config = config.parse();
    config.server.listen = "127.0.0.1:0".into();
    let current = p.shared().snapshot.load_full();
    let next = Snapshot::build(&config, Some(&current)).expect("snapshot");
    p.shared().snapshot.store(Arc::new(next));
}

fn api(up: &FakeUpstream) -> ProxyToml {
    static_proxy(Route::new("/api").upstream(up.url()))
}

#[tokio::test]
async fn a_reload_that_leaves_client_settings_alone_keeps_upstream_connections() {
    let up = FakeUpstream::start().await;
    let p = api(&up).start().await;
    let mut caller = H1Conn::open(p.addr).await;
    let one = Req::get(proxy_url(&p, "/api/one"));
    assert_eq!(caller.send(one).await.status, 200);

    let reloaded = Route::new("/api")
        .upstream(up.url())
        .extra(r#"headers = { "X-Reloaded" = "yes" }"#);
    swap_in(&p, &static_proxy(reloaded));
    let two = Req::get(proxy_url(&p, "/api/two"));
    assert_eq!(caller.send(two).await.status, 200);

    let r = up.requests();
    assert_eq!(r[1].headers["x-reloaded"], "yes", "the new snapshot serves");
    assert_eq!(up.connections(), 1, "the upstream connection was reused");
}

#[tokio::test]
async fn a_reload_that_changes_client_settings_starts_a_new_pool() {
    let up = FakeUpstream::start().await;
    let p = api(&up).start().await;
    let mut caller = H1Conn::open(p.addr).await;
    assert_eq!(
        caller
            .send(Req::get(proxy_url(&p, "/api/one")))
            .await
            .status,
        200
    );

    swap_in(&p, &api(&up).client("request_timeout = \"30s\""));
    assert_eq!(
        caller
            .send(Req::get(proxy_url(&p, "/api/two")))
            .await
            .status,
        200
    );
    assert_eq!(up.connections(), 2);
}
