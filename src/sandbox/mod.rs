//! A faithful local stand-in for Adobe, for `ims-proxy sandbox`, `ims-proxy demo` and tests:
//! one listener serving [`ims`] (the token endpoints) and four APIs behind [`gateway`], which
//! admits only the headers each real API requires, with tokens this IMS issued.
//!
//! Paths as on Adobe's hosts, so that only the base URL changes: `/ims/...` (IMS),
//! `/{tenant}/campaign/...` ([`campaign`]), `/v1/segments|traits` ([`audience_manager`]),
//! `/api/...` ([`cloud_manager`]), `/data/core/privacy/jobs` ([`privacy`]). [`identity`] is the
//! generated integration. `cli` runs it as the `sandbox` and `demo` subcommands.

pub mod audience_manager;
pub mod campaign;
pub mod cloud_manager;
pub mod gateway;
pub mod identity;
pub mod ims;
pub mod privacy;
pub mod serve;
pub mod throttle;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use identity::Identity;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Where tests (and operators rehearsing) read [`Sandbox::stats`]; no Adobe path starts so.
pub const STATS_PATH: &str = "/_sandbox/stats";

struct Apis {
    campaign: campaign::Campaign,
    cloud_manager: cloud_manager::CloudManager,
    privacy: privacy::Privacy,
}

/// IMS and the four APIs; cheap to clone, clones share state.
#[derive(Clone)]
pub struct Sandbox {
    ims: ims::FakeIms,
    apis: Arc<Apis>,
    identity: Arc<Identity>,
    /// `--quota`: Adobe's per-credential throttle, when set.
    throttle: Option<Arc<throttle::Throttle>>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("client_id", &self.identity.client_id)
            .finish_non_exhaustive()
    }
}

impl Sandbox {
    /// A sandbox whose IMS knows `identity`'s client.
    pub fn new(identity: Identity) -> Result<Sandbox, String> {
        let ims = ims::FakeIms::new();
        ims.register(identity.registration())?;
        Ok(Sandbox {
            apis: Arc::new(Apis {
                campaign: campaign::Campaign::new(&identity.campaign_tenant),
                cloud_manager: cloud_manager::CloudManager::new(&identity.org_id),
                privacy: privacy::Privacy::default(),
            }),
            ims,
            identity: Arc::new(identity),
            throttle: None,
        })
    }

    /// Throttles each credential's API requests to `per_second`, as Adobe's gateway does.
    pub fn with_quota(mut self, per_second: u32) -> Sandbox {
        self.throttle = Some(Arc::new(throttle::Throttle::new(per_second)));
        self
    }

    /// What tests read at `GET /_sandbox/stats`: tokens granted by client id, and requests
    /// refused by the quota by `x-api-key`. Client ids are not secrets; no token is shown.
    pub fn stats(&self) -> serde_json::Value {
        serde_json::json!({
            "grants": self.ims.grants(),
            "throttled": self.throttle.as_ref().map(|t| t.refused()).unwrap_or_default(),
        })
    }

    /// The IMS, for its knobs (lifetimes, failures) and the tokens it issued.
    pub fn ims(&self) -> &ims::FakeIms {
        &self.ims
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Answers one request, IMS or API by path.
    pub async fn handle<B>(&self, req: Request<B>) -> http::Response<Full<Bytes>>
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: Into<crate::base::error::BoxError>,
    {
        let path = req.uri().path().to_string();
        let method = req.method().clone();
        let reply = self.dispatch(req).await;
        // Never the headers: they carry the tokens.
        tracing::debug!(%method, %path, status = reply.status().as_u16(), "sandbox request");
        reply
    }

    async fn dispatch<B>(&self, req: Request<B>) -> http::Response<Full<Bytes>>
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: Into<crate::base::error::BoxError>,
    {
        let path = req.uri().path().to_string();
        if path.starts_with("/ims/") {
            return self.ims.handle(req).await;
        }
        if path == STATS_PATH {
            return gateway::json(200, &self.stats());
        }
        if let Some(refused) = self.throttle.as_ref().and_then(|t| t.check(req.headers())) {
            return refused;
        }
        if let Some(r) = audience_manager::handle(&self.ims, req.method(), &path, req.headers()) {
            return r;
        }
        if let Some(r) =
            self.apis
                .cloud_manager
                .handle(&self.ims, req.method(), &path, req.headers())
        {
            return r;
        }
        if path.starts_with("/data/core/privacy/") {
            if let Some(r) = self.apis.privacy.handle(&self.ims, req).await {
                return r;
            }
        } else if let Some(r) = self.apis.campaign.handle(&self.ims, req).await {
            return r;
        }
        // The adobe.io gateway's answer for a path no service is mounted on.
        gateway::gateway(404, "404003", "Service not found")
    }

    /// Serves HTTP/1.1 and HTTP/2 on `listener` until `shutdown` resolves.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        serve::serve(listener, shutdown, move |req| {
            let sandbox = self.clone();
            async move { sandbox.handle(req).await }
        })
        .await
    }

    /// Binds `addr` and serves in the background until the returned handle is dropped.
    pub async fn start(&self, addr: SocketAddr) -> std::io::Result<LocalSandbox> {
        let sandbox = self.clone();
        serve::Serving::start(addr, move |req| {
            let sandbox = sandbox.clone();
            async move { sandbox.handle(req).await }
        })
        .await
    }
}

/// A sandbox serving in the background; dropping it stops accepting connections. `url()` is
/// the base URL, IMS and APIs alike.
pub type LocalSandbox = serve::Serving;
