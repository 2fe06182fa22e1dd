//! `ims-proxy demo`: the sandbox and the proxy in one process, with a generated config that
//! routes the four APIs through an OAuth Server-to-Server credential, and `curl` commands to
//! paste. OAuth only: Service Account (JWT) credentials are retired (`ims-proxy sandbox`'s
//! written config keeps a `/jwt/...` credential for orgs that still rehearse one).
//! Its credentials live in a temporary directory removed on exit.

use super::logging::out;
use super::sandbox::{CommandError, ImsBehaviour};
use crate::sandbox::identity::Identity;
use crate::sandbox::Sandbox;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Where the proxy listens (a free port unless given).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
    /// Where the proxy's admin listener (/healthz, /readyz, /metrics) listens (a free port
    /// unless given).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub admin_listen: String,
    /// Where the sandbox listens (a free port unless given).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub sandbox_listen: SocketAddr,
    #[command(flatten)]
    pub ims: ImsBehaviour,
}

/// Removes the demo's credentials when the demo ends, however it ends.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the demo until `shutdown` resolves.
pub async fn run(args: DemoArgs, shutdown: impl Future<Output = ()>) -> Result<(), CommandError> {
    let dir = TempDir(std::env::temp_dir().join(format!(
        "ims-proxy-demo-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )));
    let identity = {
        let path = dir.0.clone();
        tokio::task::spawn_blocking(move || {
            let id = Identity::generate()?;
            id.write(&path)?;
            Ok::<_, CommandError>(id)
        })
        .await??
    };
    let sandbox = Sandbox::new(identity).map_err(CommandError::Register)?;
    sandbox.ims().set_knobs(args.ims.knobs());
    let local = sandbox
        .start(args.sandbox_listen)
        .await
        .map_err(|e| CommandError::Bind(args.sandbox_listen, e))?;
    let toml = sandbox.identity().proxy_toml(
        &local.url(),
        &args.listen,
        &args.admin_listen,
        &dir.0,
        false,
    );
    let config = crate::config::Config::from_toml(&toml)?;
    let running = crate::app::start(&config).await?;
    tracing::info!(addr = %running.addr, sandbox = %local.addr, "demo listening");
    let admin = running
        .admin_addr
        .map_or_else(String::new, |a| format!("http://{a}"));
    out(&instructions(
        sandbox.identity(),
        &local.url(),
        &format!("http://{}", running.addr),
        &admin,
    ));
    shutdown.await;
    running.stop().await;
    drop(local);
    Ok(())
}

/// What the demo prints: comments and one `curl` command per line.
pub fn instructions(id: &Identity, sandbox: &str, proxy: &str, admin: &str) -> String {
    let job = serde_json::json!({
        "companyContexts": [{"namespace": "imsOrgID", "value": id.org_id}],
        "users": [{
            "key": "ada",
            "action": ["access"],
            "userIDs": [{"namespace": "email", "value": "ada.lovelace@example.com", "type": "standard"}],
        }],
        "regulation": "gdpr",
    });
    format!(
        "# ims-proxy demo: ims-proxy at {proxy} in front of a local Adobe sandbox at {sandbox}
# (plain HTTP on loopback; the sandbox's IMS issues the tokens). The commands carry no
# credentials: the proxy adds Authorization, x-api-key and x-gw-ims-org-id, with an OAuth
# Server-to-Server credential (what Adobe issues today). Ctrl-C stops.

# Campaign: profiles
curl -s {proxy}/oauth/campaign/profileAndServices/profile
# Audience Manager: segments and traits
curl -s {proxy}/oauth/aam/v1/segments
curl -s {proxy}/oauth/aam/v1/traits
# Cloud Manager: programs, pipelines, start an execution
curl -s {proxy}/oauth/cloudmanager/api/programs
curl -s {proxy}/oauth/cloudmanager/api/program/4/pipelines
curl -s -X PUT {proxy}/oauth/cloudmanager/api/program/4/pipeline/10/execution
# Privacy Service: submit an access job, then list the jobs
curl -s -X POST -H 'content-type: application/json' -d '{job}' {proxy}/oauth/privacy/jobs
curl -s '{proxy}/oauth/privacy/jobs?regulation=gdpr'
# The admin port: the status page (open it in a browser), readiness (with each
# credential's token expiry) and Prometheus metrics
curl -s {admin}/
curl -s {admin}/readyz
curl -s {admin}/metrics
# The sandbox itself, without a token: refused as Adobe would (401, error_code 401013)
curl -s -H 'x-api-key: {client}' {sandbox}/{tenant}/campaign/profileAndServices/profile
",
        client = id.client_id,
        tenant = id.campaign_tenant,
    )
}
