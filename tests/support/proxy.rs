//! Starting ims-proxy in-process on a free port.

use ims_proxy::config::Config;
use ims_proxy::Running;

/// Parses `toml` (which need not have a `[server]` table) and starts the proxy on
/// 127.0.0.1:0.
pub async fn start_proxy(toml: &str) -> Running {
    let mut config = Config::from_toml(toml).unwrap_or_else(|e| panic!("test config: {e}"));
    config.server.listen = "127.0.0.1:0".into();
    ims_proxy::start(&config)
        .await
        .unwrap_or_else(|e| panic!("proxy start: {e}"))
}

/// A static credential named `cred` and one route; the most common test set-up.
pub fn static_route(prefix: &str, extra_route: &str, upstream: &str) -> String {
    format!(
        r#"
[credentials.cred]
type = "static"
access_token = "static-token-abc"
client_id = "client-123"
org_id = "ORG123@AdobeOrg"

[[routes]]
prefix = "{prefix}"
upstream = "{upstream}"
credential = "cred"
{extra_route}
"#
    )
}

pub fn proxy_url(p: &Running, path: &str) -> String {
    format!("http://{}{}", p.addr, path)
}
