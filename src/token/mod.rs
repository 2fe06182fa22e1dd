//! Access tokens, one [`Credential`] per `[credentials.NAME]`, each with its own cache.
//!
//! A request reads the current token ([`Credential::current`]) through an `ArcSwap`: no lock,
//! no await, no IMS call while the token is valid. A background refresher ([`refresh`]) replaces it when
//! `refresh_at` of its lifetime has passed. Only a cold or expired cache makes requests wait,
//! and then they all share one IMS call (the `fetching` mutex is the single flight).

mod ims;
mod jwt;
mod oauth;
mod refresh;
mod status;
pub mod stub;

pub use status::{CredentialState, CredentialStatus};

use crate::adobe::Api;
use crate::base::secret::{has_userinfo, read_secret_file, Secret, USERINFO_REFUSED};
use crate::config::{ConfigError, CredentialConfig, CredentialKind, OutboundConfig};
use crate::fleet::{CredentialKey, Shared, SharedSpec, SharedToken, Stored, Version};
use crate::outbound::Outbound;
use arc_swap::ArcSwapOption;
use http::HeaderValue;
use ims::{ExpiresUnit, ImsError, Issued};
use jwt::{JwtSource, SigningKey};
use oauth::OAuthSource;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::Notify;

pub const DEFAULT_IMS_URL: &str = "https://ims-na1.adobelogin.com";
pub const DEFAULT_REFRESH_AT: f64 = 0.8;
pub const DEFAULT_REPLAY_BODY_LIMIT: u64 = 64 * 1024;
/// After an IMS failure, requests without a valid token get that failure for this long
/// instead of each calling IMS again; the refresher keeps retrying with backoff meanwhile.
const FAILURE_HOLD: Duration = Duration::from_secs(1);
/// At most one refresh forced by upstream 401s per credential in this window, so a stream of
/// 401s (a misconfigured API, not a stale token) cannot hammer IMS.
const FORCED_REFRESH_COOLDOWN: Duration = Duration::from_secs(5);
/// A token stops being sent this long before IMS says it expires (capped at 30 s, and at a
/// twentieth of its lifetime for short-lived tokens), so it cannot expire on the way.
const MAX_EXPIRY_MARGIN: Duration = Duration::from_secs(30);
/// How often a replica waiting for another's IMS call looks for the token in the shared store.
const SHARED_WAIT_POLL: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, thiserror::Error)]
pub enum TokenError {
    #[error(transparent)]
    Ims(#[from] ImsError),
    #[error("{0}")]
    Unavailable(String),
    #[error("a token was refreshed for this credential less than {0:?} ago")]
    RefreshCooldown(Duration),
}

/// A token ready to send: the `Authorization` value is built once, not per request.
#[derive(Debug)]
pub struct Token {
    pub bearer: HeaderValue,
    /// When it stops being sent; `None` for static tokens, which IMS does not manage.
    usable_until: Option<Instant>,
    /// When the refresher replaces it.
    refresh_after: Option<Instant>,
    /// Its name in the fleet's shared store, when it was stored there or read from there.
    version: Option<Version>,
}

impl Token {
    fn usable(&self, now: Instant) -> bool {
        self.usable_until.is_none_or(|t| now < t)
    }

    fn refresh_due(&self, now: Instant) -> bool {
        !self.usable(now) || self.refresh_after.is_some_and(|r| now >= r)
    }
}

/// Where tokens come from.
#[derive(Debug)]
enum Flow {
    Static,
    Jwt(JwtSource),
    OAuth(OAuthSource),
}

/// What a credential was built from, including file contents, so a rebuilt snapshot can
/// tell whether an existing credential (and its cached token) can be kept.
#[derive(Debug, PartialEq)]
struct Spec {
    config: CredentialConfig,
    metascopes: Vec<String>,
    scopes: Vec<String>,
    outbound: OutboundConfig,
    material: Vec<Secret>,
    shared: Option<SharedSpec>,
}

#[derive(Debug)]
struct Failure {
    error: TokenError,
    at: Instant,
}

/// An upstream's 401 to a token fetched after an earlier 401.
#[derive(Debug)]
struct Rejection {
    route: String,
    error_code: Option<String>,
    at: SystemTime,
}

#[derive(Debug, Default)]
struct FlightState {
    last_forced: Option<Instant>,
}

/// What a route needs from a credential: its token and the identity headers.
#[derive(Debug)]
pub struct Credential {
    pub name: String,
    pub kind: CredentialKind,
    /// `x-api-key`: always the credential's client id.
    pub api_key: HeaderValue,
    /// `x-gw-ims-org-id`, for the APIs that require it.
    pub org_id: Option<HeaderValue>,
    /// Bodies up to this size are kept while streaming so a 401 can be replayed.
    pub replay_body_limit: u64,
    /// Who this credential is to the fleet's limits and cool-downs.
    pub fleet_key: CredentialKey,
    spec: Spec,
    flow: Flow,
    outbound: Outbound,
    timeout: Duration,
    refresh_at: f64,
    current: ArcSwapOption<Token>,
    last_failure: ArcSwapOption<Failure>,
    /// Set by [`Credential::rejected_by_upstream`]; `rejected` says so with one relaxed load,
    /// for the request path's [`Credential::accepted_by_upstream`].
    rejection: ArcSwapOption<Rejection>,
    rejected: AtomicBool,
    /// Counts finished IMS calls, so requests that queued behind a failed one share its
    /// failure instead of each trying again.
    attempts: AtomicU64,
    fetching: tokio::sync::Mutex<FlightState>,
    /// `[shared]`: the fleet's one token for this credential, in Redis.
    fleet: Option<SharedToken>,
    refresher_started: AtomicBool,
    stop: Arc<Notify>,
}

impl Drop for Credential {
    fn drop(&mut self) {
        // The refresher holds only a `Weak`; this wakes it to notice and end.
        self.stop.notify_one();
    }
}

impl Credential {
    /// Builds a credential from its config without any I/O beyond reading its files.
    /// `presets` are the APIs of the routes using it, which supply default metascopes and
    /// scopes when the credential names none. With `shared`, its token is the fleet's.
    pub fn build(
        name: &str,
        cfg: &CredentialConfig,
        presets: &[Api],
        outbound: &Outbound,
        outbound_cfg: &OutboundConfig,
        shared: Option<&Arc<Shared>>,
    ) -> Result<Credential, ConfigError> {
        let key = format!("credentials.{name}");
        let client_id = required(&key, "client_id", cfg.client_id.as_deref(), cfg.kind)?;
        let api_key = header_value(&key, "client_id", client_id)?;
        let org_id = match cfg.org_id.as_deref() {
            Some(o) if !o.trim().is_empty() => Some(header_value(&key, "org_id", o)?),
            _ => None,
        };
        let refresh_at = cfg.refresh_at.unwrap_or(DEFAULT_REFRESH_AT);
        if !(refresh_at > 0.0 && refresh_at < 1.0) {
            return Err(ConfigError::new(
                format!("{key}.refresh_at"),
                "must be a fraction of the token lifetime between 0 and 1 (exclusive)",
            ));
        }
        let metascopes = cfg
            .metascopes
            .clone()
            .unwrap_or_else(|| dedup(presets.iter().map(|a| a.metascope().to_string())));
        let scopes = cfg.scopes.clone().unwrap_or_else(|| {
            dedup(
                presets
                    .iter()
                    .flat_map(|a| a.oauth_scopes().iter().map(|s| s.to_string())),
            )
        });
        let mut material = Vec::new();
        let mut current = None;
        let flow = match cfg.kind {
            CredentialKind::Static => {
                let token = static_token(&key, cfg)?;
                current = Some(Arc::new(Token {
                    bearer: bearer_header(&key, &token)?,
                    usable_until: None,
                    refresh_after: None,
                    version: None,
                }));
                material.push(token);
                Flow::Static
            }
            CredentialKind::Jwt => {
                let client_secret = client_secret(&key, cfg)?;
                let org = required(&key, "org_id", cfg.org_id.as_deref(), cfg.kind)?;
                let tech = required(
                    &key,
                    "technical_account_id",
                    cfg.technical_account_id.as_deref(),
                    cfg.kind,
                )?;
                let path = cfg.private_key_file.as_deref().ok_or_else(|| {
                    ConfigError::new(
                        format!("{key}.private_key_file"),
                        "required for type = \"jwt\"",
                    )
                })?;
                let (signing, pem) = SigningKey::load(&format!("{key}.private_key_file"), path)?;
                if metascopes.is_empty() {
                    return Err(ConfigError::new(
                        format!("{key}.metascopes"),
                        "required: no route using this credential has an api preset to supply them",
                    ));
                }
                material.push(client_secret.clone());
                material.push(pem);
                Flow::Jwt(JwtSource {
                    ims_url: ims_url(&key, cfg)?,
                    client_id: client_id.to_string(),
                    client_secret,
                    org_id: org.to_string(),
                    technical_account_id: tech.to_string(),
                    metascopes: metascopes.clone(),
                    key: signing,
                })
            }
            CredentialKind::Oauth => {
                let client_secret = client_secret(&key, cfg)?;
                if scopes.is_empty() {
                    return Err(ConfigError::new(
                        format!("{key}.scopes"),
                        "required: list the scopes Adobe Developer Console shows for this credential",
                    ));
                }
                material.push(client_secret.clone());
                Flow::OAuth(OAuthSource {
                    ims_url: ims_url(&key, cfg)?,
                    client_id: client_id.to_string(),
                    client_secret,
                    scopes: scopes.clone(),
                })
            }
        };
        let fleet = match (&flow, shared) {
            (Flow::Jwt(j), Some(s)) => {
                let identity = [
                    "jwt",
                    j.org_id.as_str(),
                    j.technical_account_id.as_str(),
                    &metascopes.join(","),
                ];
                Some(SharedToken::new(
                    s,
                    name,
                    &j.ims_url,
                    &j.client_id,
                    &identity,
                ))
            }
            (Flow::OAuth(o), Some(s)) => {
                let identity = ["oauth", &scopes.join(",")];
                Some(SharedToken::new(
                    s,
                    name,
                    &o.ims_url,
                    &o.client_id,
                    &identity,
                ))
            }
            _ => None,
        };
        Ok(Credential {
            name: name.to_string(),
            kind: cfg.kind,
            fleet_key: CredentialKey {
                name: name.into(),
                identity: client_id.into(),
            },
            api_key,
            org_id,
            replay_body_limit: cfg.replay_body_limit.unwrap_or(DEFAULT_REPLAY_BODY_LIMIT),
            spec: Spec {
                config: token_config(cfg),
                metascopes,
                scopes,
                outbound: outbound_cfg.clone(),
                material,
                shared: fleet.as_ref().map(|f| f.shared().spec().clone()),
            },
            flow,
            outbound: outbound.clone(),
            timeout: outbound_cfg.request_timeout,
            refresh_at,
            current: ArcSwapOption::new(current),
            last_failure: ArcSwapOption::empty(),
            rejection: ArcSwapOption::empty(),
            rejected: AtomicBool::new(false),
            attempts: AtomicU64::new(0),
            fetching: tokio::sync::Mutex::new(FlightState::default()),
            fleet,
            refresher_started: AtomicBool::new(false),
            stop: Arc::new(Notify::new()),
        })
    }

    /// True when `other` was built from the same config and file contents, so `self` (with
    /// its cached token and running refresher) can stand in for it.
    pub fn same_as(&self, other: &Credential) -> bool {
        self.name == other.name && self.spec == other.spec
    }

    /// Whether tokens come from IMS (and so can be refreshed).
    pub fn is_managed(&self) -> bool {
        !matches!(self.flow, Flow::Static)
    }

    pub fn ims_url(&self) -> Option<&str> {
        match &self.flow {
            Flow::Static => None,
            Flow::Jwt(j) => Some(&j.ims_url),
            Flow::OAuth(o) => Some(&o.ims_url),
        }
    }

    /// The host of [`Self::ims_url`].
    pub fn ims_host(&self) -> Option<String> {
        let url = url::Url::parse(self.ims_url()?).ok()?;
        url.host_str().map(str::to_ascii_lowercase)
    }

    /// The metascopes (jwt) or scopes (oauth) this credential asks IMS for.
    pub fn requested_scopes(&self) -> &[String] {
        match &self.flow {
            Flow::Static => &[],
            Flow::Jwt(_) => &self.spec.metascopes,
            Flow::OAuth(_) => &self.spec.scopes,
        }
    }

    /// The `Authorization` header value to send now. Lock-free while a valid token is cached;
    /// otherwise waits on the one shared IMS call.
    pub async fn current(&self) -> Result<HeaderValue, TokenError> {
        if let Some(b) = self.usable_bearer() {
            return Ok(b);
        }
        if !self.is_managed() {
            return Err(TokenError::Unavailable(
                "no token has been configured".into(),
            ));
        }
        let seen = self.attempts.load(Ordering::Acquire);
        if let Some(f) = self.recent_failure() {
            return Err(f);
        }
        let _flight = self.fetching.lock().await;
        if let Some(b) = self.usable_bearer() {
            return Ok(b);
        }
        if self.attempts.load(Ordering::Acquire) != seen {
            if let Some(f) = self.recent_failure() {
                return Err(f);
            }
        }
        self.fetch_and_store(None).await
    }

    /// After an upstream rejected `stale` with 401: a new token, shared with every other
    /// request that saw the same 401, or an error when one was forced too recently.
    pub async fn refresh_after_401(&self, stale: &HeaderValue) -> Result<HeaderValue, TokenError> {
        if !self.is_managed() {
            return Err(TokenError::Unavailable(
                "a static token cannot be refreshed".into(),
            ));
        }
        let mut flight = self.fetching.lock().await;
        let held = self.current.load_full();
        if let Some(t) = held.as_deref().filter(|t| t.usable(Instant::now())) {
            if t.bearer != stale {
                return Ok(t.bearer.clone());
            }
        }
        // The stored token is purged fleet-wide only if it is still the one that got the 401.
        let stale_version = held
            .as_deref()
            .filter(|t| t.bearer == stale)
            .and_then(|t| t.version);
        let now = Instant::now();
        if flight
            .last_forced
            .is_some_and(|t| now.duration_since(t) < FORCED_REFRESH_COOLDOWN)
        {
            return Err(TokenError::RefreshCooldown(FORCED_REFRESH_COOLDOWN));
        }
        flight.last_forced = Some(now);
        tracing::info!(credential = %self.name, "upstream answered 401; refreshing the token");
        self.fetch_and_store(Some(stale_version)).await
    }

    /// A token fresh from IMS, neither read from nor stored in the cache: for `ims-proxy token`.
    pub async fn fetch(&self) -> Result<Secret, TokenError> {
        match &self.flow {
            Flow::Static => self
                .spec
                .material
                .first()
                .cloned()
                .ok_or_else(|| TokenError::Unavailable("no token has been configured".into())),
            _ => Ok(self.call_ims().await?.access_token),
        }
    }

    /// Starts the background refresher once, the first time a snapshot holding this
    /// credential is served; a credential kept across a reload keeps its refresher.
    pub fn start_refresher(self: &Arc<Self>) {
        if !self.is_managed() || self.refresher_started.swap(true, Ordering::AcqRel) {
            return;
        }
        self.warn_if_retired();
        refresh::spawn(Arc::downgrade(self), self.stop.clone());
    }

    /// Adobe's Service Account (JWT) credentials are at end of life.
    pub fn warn_if_retired(&self) {
        if self.kind == CredentialKind::Jwt {
            tracing::warn!(
                credential = %self.name,
                "Adobe retired Service Account (JWT) credentials: none can be created since \
                 2024-06-03 and the deadline to convert them, 2026-03-01, has passed; migrate \
                 this credential to type = \"oauth\" (OAuth Server-to-Server): see the README, \
                 \"Moving from jwt to oauth\", and Adobe's migration guide, \
                 https://developer.adobe.com/developer-console/docs/guides/authentication/ServerToServerAuthentication/migration/"
            );
        }
    }

    /// An upstream (on `route`) answered 401 to a token IMS issued after an earlier 401:
    /// the credential shows as `rejected` until an upstream accepts one of its tokens.
    pub fn rejected_by_upstream(&self, route: &str, error_code: Option<String>, at: SystemTime) {
        // Stored before the flag, so whoever sees the flag sees a rejection.
        self.rejection.store(Some(Arc::new(Rejection {
            route: route.to_string(),
            error_code: error_code.clone(),
            at,
        })));
        // Once per episode: under load every replayed request can meet the same refusal.
        if self.rejected.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::warn!(
            credential = %self.name,
            route,
            error_code = error_code.as_deref().unwrap_or("-"),
            "the upstream rejected a token IMS had just issued (401 after a refresh): IMS \
             accepts this credential, the API does not; check its product profile and org"
        );
    }

    /// An upstream answered a request with one of this credential's tokens with something
    /// other than 401. One relaxed load on the request path while nothing was rejected.
    #[inline]
    pub fn accepted_by_upstream(&self) {
        if self.rejected.load(Ordering::Relaxed) && self.rejected.swap(false, Ordering::AcqRel) {
            self.rejection.store(None);
        }
    }

    /// Answers from the token cache: `ok` while a usable token is held, `failing` when the
    /// last IMS call failed and none is, `refreshing` while the first fetch is under way;
    /// `rejected` while a token is held that an upstream refused right after a refresh.
    pub fn status(&self) -> CredentialStatus {
        let now = Instant::now();
        let last_error = self.last_error();
        let rejection = self.rejection.load_full();
        match self.usable_until(now) {
            Some(until) if rejection.is_some() => CredentialStatus {
                state: CredentialState::Rejected,
                expires_in_seconds: until.map(|u| u.saturating_duration_since(now).as_secs()),
                last_error: rejection.map(|r| {
                    format!(
                        "route {} answered 401{} to a token IMS had just issued, at {}",
                        r.route,
                        r.error_code
                            .as_deref()
                            .map(|c| format!(" error_code {c}"))
                            .unwrap_or_default(),
                        humantime::format_rfc3339_seconds(r.at)
                    )
                }),
            },
            Some(until) => CredentialStatus {
                state: CredentialState::Ok,
                expires_in_seconds: until.map(|u| u.saturating_duration_since(now).as_secs()),
                last_error,
            },
            None if last_error.is_some() => CredentialStatus {
                state: CredentialState::Failing,
                expires_in_seconds: None,
                last_error,
            },
            None => CredentialStatus {
                state: CredentialState::Refreshing,
                expires_in_seconds: None,
                last_error: None,
            },
        }
    }

    /// `Some(expiry)` while a usable token is held (`Some(None)`: it never expires).
    fn usable_until(&self, now: Instant) -> Option<Option<Instant>> {
        let guard = self.current.load();
        guard
            .as_deref()
            .filter(|t| t.usable(now))
            .map(|t| t.usable_until)
    }

    /// IMS's error from the last failed call, until a call succeeds.
    fn last_error(&self) -> Option<String> {
        self.last_failure
            .load()
            .as_deref()
            .map(|f| f.error.to_string())
    }

    fn usable_bearer(&self) -> Option<HeaderValue> {
        let guard = self.current.load();
        match guard.as_deref() {
            Some(t) if t.usable(Instant::now()) => Some(t.bearer.clone()),
            _ => None,
        }
    }

    fn recent_failure(&self) -> Option<TokenError> {
        let guard = self.last_failure.load();
        guard
            .as_deref()
            .filter(|f| f.at.elapsed() < FAILURE_HOLD)
            .map(|f| f.error.clone())
    }

    /// Whether the refresher should fetch now: no usable token, or past its refresh point.
    fn refresh_due(&self, now: Instant) -> bool {
        match self.current.load().as_deref() {
            Some(t) => t.refresh_due(now),
            None => true,
        }
    }

    /// How long the refresher may sleep when the last refresh succeeded.
    fn until_refresh(&self, now: Instant) -> Duration {
        match self.current.load().as_deref() {
            Some(t) if t.usable(now) => t
                .refresh_after
                .map_or(Duration::MAX, |r| r.saturating_duration_since(now)),
            _ => Duration::ZERO,
        }
    }

    /// Called with the `fetching` lock held. `forced`: a 401 made this refresh, on the token
    /// with that shared version (`Some(None)`: one that was never shared).
    async fn fetch_and_store(
        &self,
        forced: Option<Option<Version>>,
    ) -> Result<HeaderValue, TokenError> {
        let result = match &self.fleet {
            Some(fleet) => self.obtain_shared(fleet, forced).await,
            None => self.obtain_from_ims().await,
        }
        .map(|token| {
            let bearer = token.bearer.clone();
            self.current.store(Some(Arc::new(token)));
            bearer
        });
        match &result {
            Ok(_) => self.last_failure.store(None),
            Err(e) => {
                tracing::warn!(credential = %self.name, error = %e, "could not obtain an access token");
                self.last_failure.store(Some(Arc::new(Failure {
                    error: e.clone(),
                    at: Instant::now(),
                })));
            }
        }
        self.attempts.fetch_add(1, Ordering::AcqRel);
        result
    }

    async fn obtain_from_ims(&self) -> Result<Token, TokenError> {
        let result = self.call_ims().await.and_then(|i| self.token_from(i));
        crate::metrics::token_refresh(&self.name, result.is_ok());
        result
    }

    /// The fleet's token: the stored one while it is not due for refresh; otherwise this
    /// replica fetches it for everyone (holding the lock) or waits, up to the IMS timeout, for
    /// the replica that does. Whenever the store cannot be asked, this replica fetches alone.
    async fn obtain_shared(
        &self,
        fleet: &SharedToken,
        forced: Option<Option<Version>>,
    ) -> Result<Token, TokenError> {
        let fallback = |e: crate::fleet::SharedError| {
            tracing::debug!(credential = %self.name, error = %e, "fetching the token without the fleet");
            crate::metrics::shared_fallback("token");
        };
        let deadline = Instant::now() + self.timeout;
        let mut purged = false;
        loop {
            match fleet.read().await {
                Err(e) => {
                    fallback(e);
                    return self.obtain_from_ims().await;
                }
                Ok(Some(stored)) => {
                    let stale = forced.flatten() == Some(stored.version);
                    if !stale {
                        let token = self.token_from_stored(&stored)?;
                        if !token.refresh_due(Instant::now()) {
                            return Ok(token);
                        }
                    } else if !purged {
                        purged = true;
                        if let Err(e) = fleet.purge(&stored.version).await {
                            fallback(e);
                            return self.obtain_from_ims().await;
                        }
                    }
                }
                Ok(None) => {}
            }
            match fleet.lock(self.timeout + SHARED_WAIT_POLL).await {
                Err(e) => {
                    fallback(e);
                    return self.obtain_from_ims().await;
                }
                Ok(Some(lock)) => {
                    // Another replica may have stored a token between this replica's read and
                    // its lock (it fetched, stored and unlocked meanwhile): read once more under
                    // the lock, or two replicas each ask IMS for the same refresh.
                    if let Ok(Some(stored)) = fleet.read().await {
                        let fresh = (forced.flatten() != Some(stored.version))
                            .then(|| self.token_from_stored(&stored).ok())
                            .flatten()
                            .filter(|t| !t.refresh_due(Instant::now()));
                        if let Some(token) = fresh {
                            let _ = fleet.unlock(lock).await;
                            return Ok(token);
                        }
                    }
                    let result = match self.call_ims().await {
                        Ok(issued) => {
                            let version = self.share(fleet, &issued).await;
                            self.token_from(issued).map(|t| Token { version, ..t })
                        }
                        Err(e) => Err(e),
                    };
                    crate::metrics::token_refresh(&self.name, result.is_ok());
                    let _ = fleet.unlock(lock).await;
                    return result;
                }
                Ok(None) if Instant::now() >= deadline => {
                    // The replica holding the lock took longer than an IMS call may.
                    crate::metrics::shared_fallback("token");
                    return self.obtain_from_ims().await;
                }
                Ok(None) => tokio::time::sleep(SHARED_WAIT_POLL).await,
            }
        }
    }

    /// Stores a token fresh from IMS for the fleet; its version, or `None` if it could not be.
    async fn share(&self, fleet: &SharedToken, issued: &Issued) -> Option<Version> {
        let usable = issued.lifetime - expiry_margin(issued.lifetime);
        match fleet
            .store(&issued.access_token, issued.lifetime, usable)
            .await
        {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::debug!(credential = %self.name, error = %e, "could not share the token");
                None
            }
        }
    }

    /// A token another replica stored: its times from the key's TTL, not from any clock.
    fn token_from_stored(&self, stored: &Stored) -> Result<Token, TokenError> {
        let now = Instant::now();
        let margin = expiry_margin(stored.lifetime);
        let elapsed = (stored.lifetime - margin).saturating_sub(stored.remaining);
        let bearer = bearer_header(&format!("credentials.{}", self.name), &stored.token)
            .map_err(|e| TokenError::Unavailable(e.reason))?;
        Ok(Token {
            bearer,
            usable_until: Some(now + stored.remaining),
            refresh_after: Some(
                now + stored
                    .lifetime
                    .mul_f64(self.refresh_at)
                    .saturating_sub(elapsed),
            ),
            version: Some(stored.version),
        })
    }

    async fn call_ims(&self) -> Result<Issued, TokenError> {
        let (url, form, unit) = match &self.flow {
            Flow::Static => {
                return Err(TokenError::Unavailable(
                    "a static credential has no IMS".into(),
                ))
            }
            Flow::Jwt(j) => (j.endpoint(), j.form(SystemTime::now()), ExpiresUnit::Millis),
            Flow::OAuth(o) => (o.endpoint(), o.form(), ExpiresUnit::Seconds),
        };
        let form = form.map_err(|e| TokenError::Ims(ImsError::Request(e)))?;
        tracing::debug!(credential = %self.name, %url, "requesting an access token from IMS");
        let issued = ims::post_form(&self.outbound, self.timeout, &url, form, unit).await?;
        Ok(issued)
    }

    fn token_from(&self, issued: Issued) -> Result<Token, TokenError> {
        let now = Instant::now();
        let lifetime = issued.lifetime;
        let margin = expiry_margin(lifetime);
        let bearer = bearer_header(&format!("credentials.{}", self.name), &issued.access_token)
            .map_err(|e| TokenError::Unavailable(e.reason))?;
        tracing::info!(
            credential = %self.name,
            lifetime_s = lifetime.as_secs_f64(),
            "obtained an access token"
        );
        Ok(Token {
            bearer,
            usable_until: Some(now + (lifetime - margin)),
            refresh_after: Some(now + lifetime.mul_f64(self.refresh_at)),
            version: None,
        })
    }
}

/// How long before IMS's expiry a token stops being sent.
fn expiry_margin(lifetime: Duration) -> Duration {
    (lifetime / 20).min(MAX_EXPIRY_MARGIN)
}

impl refresh::Refresh for Credential {
    fn until_refresh(&self, now: Instant) -> Duration {
        Credential::until_refresh(self, now)
    }

    async fn refresh_if_due(&self) -> bool {
        let _flight = self.fetching.lock().await;
        // A request (or a forced refresh) may have fetched while the refresher slept.
        if !self.refresh_due(Instant::now()) {
            return true;
        }
        self.fetch_and_store(None).await.is_ok()
    }
}

/// The part of a credential's config its tokens depend on: a changed `quota` or cool-down
/// setting (the state layer's business) keeps the cached token.
fn token_config(cfg: &CredentialConfig) -> CredentialConfig {
    CredentialConfig {
        quota: None,
        on_upstream_429: Default::default(),
        cool_down_max: None,
        ..cfg.clone()
    }
}

fn dedup(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

fn required<'a>(
    key: &str,
    field: &str,
    value: Option<&'a str>,
    kind: CredentialKind,
) -> Result<&'a str, ConfigError> {
    match value {
        Some(v) if !v.trim().is_empty() => Ok(v.trim()),
        _ => Err(ConfigError::new(
            format!("{key}.{field}"),
            format!("required for type = \"{kind}\""),
        )),
    }
}

fn header_value(key: &str, field: &str, v: &str) -> Result<HeaderValue, ConfigError> {
    HeaderValue::from_str(v.trim()).map_err(|_| {
        ConfigError::new(
            format!("{key}.{field}"),
            "contains characters not allowed in an HTTP header",
        )
    })
}

fn ims_url(key: &str, cfg: &CredentialConfig) -> Result<String, ConfigError> {
    let raw = cfg.ims_url.as_deref().unwrap_or(DEFAULT_IMS_URL).trim();
    if has_userinfo(raw) {
        return Err(ConfigError::new(format!("{key}.ims_url"), USERINFO_REFUSED));
    }
    let err = |r: &str| ConfigError::new(format!("{key}.ims_url"), format!("{raw:?} {r}"));
    let url = url::Url::parse(raw).map_err(|_| err("is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(err("must be an http(s) URL with a host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(err("may not have a query or fragment"));
    }
    // IMS compares `aud` and metascope claims textually with its own origin.
    Ok(raw.trim_end_matches('/').to_string())
}

fn client_secret(key: &str, cfg: &CredentialConfig) -> Result<Secret, ConfigError> {
    match (&cfg.client_secret, &cfg.client_secret_file) {
        (Some(_), Some(_)) => Err(ConfigError::new(
            format!("{key}.client_secret_file"),
            "give either client_secret or client_secret_file, not both",
        )),
        (Some(s), None) if !s.is_empty() => Ok(Secret::new(s.expose().trim())),
        (None, Some(path)) => read_secret_file(path)
            .map_err(|r| ConfigError::new(format!("{key}.client_secret_file"), r)),
        _ => Err(ConfigError::new(
            format!("{key}.client_secret"),
            format!(
                "required for type = \"{}\" (or client_secret_file)",
                cfg.kind
            ),
        )),
    }
}

/// `Bearer <token>`, marked sensitive so HTTP/2 never puts it in a compression table.
pub fn bearer_header(key: &str, token: &Secret) -> Result<HeaderValue, ConfigError> {
    let mut v = HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
        ConfigError::new(
            key.to_string(),
            "the access token contains characters not allowed in an HTTP header",
        )
    })?;
    v.set_sensitive(true);
    Ok(v)
}

fn static_token(key: &str, cfg: &CredentialConfig) -> Result<Secret, ConfigError> {
    match (&cfg.access_token, &cfg.access_token_file) {
        (Some(_), Some(_)) => Err(ConfigError::new(
            format!("{key}.access_token_file"),
            "give either access_token or access_token_file, not both",
        )),
        (Some(t), None) if !t.is_empty() => Ok(Secret::new(t.expose().trim())),
        (None, Some(path)) => read_secret_file(path)
            .map_err(|r| ConfigError::new(format!("{key}.access_token_file"), r)),
        _ => Err(ConfigError::new(
            format!("{key}.access_token"),
            "required for type = \"static\" (or access_token_file)",
        )),
    }
}
