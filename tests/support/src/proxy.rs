//! Starting ims-proxy in-process on a free port, and its URLs.

use ims_proxy::config::Config;
use ims_proxy::Running;

/// Parses `toml` (which need not have a `[server]` table) and starts the proxy on
/// 127.0.0.1:0. [`crate::ProxyToml::start`] is this for a built configuration.
pub async fn start_proxy(toml: &str) -> Running {
    let toml = crate::config::on_outbound_path(toml);
    let mut config = Config::from_toml(&toml).unwrap_or_else(|e| panic!("test config: {e}"));
    config.server.listen = "127.0.0.1:0".into();
    ims_proxy::start(&config)
        .await
        .unwrap_or_else(|e| panic!("proxy start: {e}"))
}

/// `http://ADDR/path` on the proxy's listener.
pub fn proxy_url(p: &Running, path: &str) -> String {
    format!("http://{}{}", p.addr, path)
}

/// `http://ADDR/path` on the proxy's admin listener; panics if it has none.
pub fn admin_url(p: &Running, path: &str) -> String {
    format!("http://{}{}", p.admin_addr.expect("admin listener"), path)
}
