//! A fake Adobe IMS that behaves like the real one rather than accepting anything: it checks
//! client id and secret, verifies JWT signatures with the registered public key, `aud`, `iss`,
//! `sub`, `exp` and metascopes, checks OAuth scopes, and answers with Adobe's JSON, statuses
//! and `expires_in` units (milliseconds for the JWT exchange, seconds for OAuth). Tests and
//! `ims-proxy sandbox` share it. It can be told to fail, hang, answer garbage or issue
//! short-lived tokens, counts its calls, and remembers the tokens it issued so a fake API can
//! check a bearer token with [`FakeIms::validate_token`].
//!
//! Facts: `shared/ADOBE.md` §1, §3 and §6. Parameters come from the query string and the
//! body, the body's winning; the body is `application/x-www-form-urlencoded` (Python
//! `requests`, curl) or `multipart/form-data` (the `form-data` package behind
//! `@adobe/aio-lib-ims` and `@adobe/jwt-auth`), as its `Content-Type` says. A multipart body
//! that does not parse is refused like a bad form: 400 `invalid_request`.

use crate::base::form;
use crate::base::secret::Secret;
use base64::Engine as _;
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;

/// Adobe's default access-token lifetime, just under 24 hours.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(86_399);
/// "IMS allows a time skew of 30 seconds" on the JWT's `exp`.
const CLOCK_SKEW: Duration = Duration::from_secs(30);
const MAX_BODY: usize = 64 * 1024;

/// An integration as Developer Console would have set it up.
#[derive(Debug, Clone)]
pub struct ClientRegistration {
    pub client_id: String,
    pub client_secret: Secret,
    pub org_id: String,
    pub technical_account_id: String,
    /// PEM public key (`PUBLIC KEY` or `RSA PUBLIC KEY`) of the certificate bound for the
    /// JWT exchange; `None` for an OAuth-only client.
    pub public_key_pem: Option<String>,
    /// Metascopes bound to the JWT credential, e.g. `ent_campaign_sdk`.
    pub metascopes: Vec<String>,
    /// Scopes the OAuth credential may ask for.
    pub scopes: Vec<String>,
}

/// How the fake misbehaves. `Default` is a healthy IMS.
#[derive(Debug, Clone, Default)]
pub struct Knobs {
    pub failure: Option<Failure>,
    /// When `failure` applies; `None` is always.
    pub failure_when: Option<FailWhen>,
    /// Lifetime of issued tokens (default [`DEFAULT_TOKEN_LIFETIME`]).
    pub token_lifetime: Option<Duration>,
    /// A different lifetime in the token's own `created_at`/`expires_in` claims, to exercise
    /// "the earlier expiry wins".
    pub claims_lifetime: Option<Duration>,
    /// Send `expires_in` as a JSON string, as some IMS answers do.
    pub expires_in_as_string: bool,
    /// Wait this long before answering.
    pub delay: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Answer this status with `{"error":"server_error",...}`.
    Status(u16),
    /// Never answer.
    Hang,
    /// Answer 200 with a body that is not JSON.
    Garbage,
}

/// Outages that come and go, so users can rehearse refresh and recovery.
#[derive(Debug, Clone, PartialEq)]
pub enum FailWhen {
    /// Healthy for `period`, then failing for `period`, and so on, counted from `since`.
    /// Starting healthy lets a client get its first token before the first outage.
    Alternating {
        period: Duration,
        since: std::time::Instant,
    },
    /// Each call fails with this probability (0 to 1).
    Ratio(f64),
}

impl FailWhen {
    /// Whether a call arriving `now` fails; `roll` is uniform in [0, 1).
    pub fn fails(&self, now: std::time::Instant, roll: f64) -> bool {
        match self {
            FailWhen::Alternating { period, since } => {
                let period = period.as_nanos().max(1);
                let elapsed = now.saturating_duration_since(*since).as_nanos();
                (elapsed / period) % 2 == 1
            }
            FailWhen::Ratio(r) => roll < *r,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Jwt,
    OAuth,
}

/// What IMS knows about a token it issued.
#[derive(Debug, Clone)]
pub struct TokenInfo {
    pub client_id: String,
    pub org_id: String,
    pub flow: Flow,
    pub expires_at: SystemTime,
    /// Metascopes (JWT) or scopes (OAuth) the token was issued for.
    pub scopes: Vec<String>,
}

struct Registered {
    reg: ClientRegistration,
    key: Option<DecodingKey>,
}

#[derive(Default)]
struct Inner {
    clients: Mutex<HashMap<String, Registered>>,
    knobs: Mutex<Knobs>,
    calls: AtomicUsize,
    tokens: Mutex<HashMap<String, TokenInfo>>,
    revoked: Mutex<HashSet<String>>,
    /// Tokens granted, by client id.
    grants: Mutex<HashMap<String, usize>>,
}

/// The fake IMS; cheap to clone, all clones share state.
#[derive(Clone, Default)]
pub struct FakeIms {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for FakeIms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeIms")
            .field("calls", &self.calls())
            .finish_non_exhaustive()
    }
}

/// An IMS error in Adobe's shape.
struct ImsReject {
    status: StatusCode,
    error: &'static str,
    description: String,
}

fn reject(status: u16, error: &'static str, description: impl Into<String>) -> ImsReject {
    ImsReject {
        status: StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        error,
        description: description.into(),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves plain data behind; keep serving.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl FakeIms {
    pub fn new() -> FakeIms {
        FakeIms::default()
    }

    /// Registers (or replaces) a client. Fails when the public key is not an RSA PEM key.
    pub fn register(&self, reg: ClientRegistration) -> Result<(), String> {
        let key = match &reg.public_key_pem {
            Some(pem) => Some(
                DecodingKey::from_rsa_pem(pem.as_bytes())
                    .map_err(|e| format!("public key of {}: {e}", reg.client_id))?,
            ),
            None => None,
        };
        lock(&self.inner.clients).insert(reg.client_id.clone(), Registered { reg, key });
        Ok(())
    }

    pub fn knobs(&self) -> Knobs {
        lock(&self.inner.knobs).clone()
    }

    pub fn set_knobs(&self, knobs: Knobs) {
        *lock(&self.inner.knobs) = knobs;
    }

    pub fn update_knobs(&self, f: impl FnOnce(&mut Knobs)) {
        f(&mut lock(&self.inner.knobs));
    }

    /// Every request received, whatever its outcome.
    pub fn calls(&self) -> usize {
        self.inner.calls.load(Ordering::SeqCst)
    }

    /// What IMS knows of `token` (with or without a `Bearer ` prefix) while it is valid.
    pub fn validate_token(&self, token: &str) -> Option<TokenInfo> {
        let token = token.strip_prefix("Bearer ").unwrap_or(token);
        if lock(&self.inner.revoked).contains(token) {
            return None;
        }
        let info = lock(&self.inner.tokens).get(token).cloned()?;
        (SystemTime::now() < info.expires_at).then_some(info)
    }

    /// Tokens granted so far, by client id: what Adobe counts when it throttles an
    /// integration that "generates too many access tokens".
    pub fn grants(&self) -> HashMap<String, usize> {
        lock(&self.inner.grants).clone()
    }

    /// Every token issued so far, valid, expired or revoked.
    pub fn issued_tokens(&self) -> Vec<String> {
        lock(&self.inner.tokens).keys().cloned().collect()
    }

    /// Revokes every issued token, as an admin rotating a secret would.
    pub fn revoke_all(&self) {
        let issued: Vec<String> = lock(&self.inner.tokens).keys().cloned().collect();
        lock(&self.inner.revoked).extend(issued);
    }

    /// Answers one request.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<Full<Bytes>>
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: Into<crate::base::error::BoxError>,
    {
        self.inner.calls.fetch_add(1, Ordering::SeqCst);
        let knobs = self.knobs();
        if let Some(d) = knobs.delay {
            tokio::time::sleep(d).await;
        }
        let failure = match (&knobs.failure, &knobs.failure_when) {
            (Some(f), Some(when)) => when
                .fails(std::time::Instant::now(), rand::random::<f64>())
                .then(|| f.clone()),
            (f, None) => f.clone(),
            (None, Some(_)) => None,
        };
        match failure {
            Some(Failure::Hang) => std::future::pending::<()>().await,
            Some(Failure::Status(s)) => {
                return error_response(&reject(
                    s,
                    "server_error",
                    "IMS is temporarily unavailable (simulated)",
                ))
            }
            Some(Failure::Garbage) => {
                return plain(
                    StatusCode::OK,
                    "text/html",
                    "<html><body>Gateway says hi</body></html>",
                )
            }
            None => {}
        }
        match self.answer(req, &knobs).await {
            Ok(body) => plain(StatusCode::OK, "application/json", body.to_string()),
            Err(r) => error_response(&r),
        }
    }

    async fn answer<B>(
        &self,
        req: Request<B>,
        knobs: &Knobs,
    ) -> Result<serde_json::Value, ImsReject>
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: Into<crate::base::error::BoxError>,
    {
        let path = req.uri().path().trim_end_matches('/').to_string();
        let flow = match path.as_str() {
            "/ims/exchange/jwt" => Flow::Jwt,
            "/ims/token/v3" | "/ims/token/v2" => Flow::OAuth,
            _ => return Err(reject(404, "not_found", format!("no such endpoint {path}"))),
        };
        if req.method() != Method::POST {
            return Err(reject(405, "method_not_allowed", "use POST"));
        }
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
            .or_else(|| req.uri().authority().map(|a| a.to_string()))
            .unwrap_or_default();
        let mut params: HashMap<String, String> = req
            .uri()
            .query()
            .and_then(|q| serde_urlencoded::from_str(q).ok())
            .unwrap_or_default();
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = Limited::new(req.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|_| reject(400, "invalid_request", "unreadable request body"))?
            .to_bytes();
        if !body.is_empty() {
            let form = form::parse(content_type.as_deref(), &body)
                .map_err(|e| reject(400, "invalid_request", e.to_string()))?;
            params.extend(form);
        }
        let client = self.authenticate(&params)?;
        let (scopes, lifetime_unit) = match flow {
            Flow::Jwt => (self.check_jwt(&client, &params, &host)?, 1000),
            Flow::OAuth => (check_oauth(&client.reg, &params)?, 1),
        };
        let lifetime = knobs.token_lifetime.unwrap_or(DEFAULT_TOKEN_LIFETIME);
        let token = self.issue(&client.reg, flow, scopes, lifetime, knobs.claims_lifetime);
        let n = lifetime.as_millis() as u64 * lifetime_unit / 1000;
        let expires_in = if knobs.expires_in_as_string {
            serde_json::Value::from(n.to_string())
        } else {
            serde_json::Value::from(n)
        };
        Ok(serde_json::json!({
            "access_token": token,
            "token_type": "bearer",
            "expires_in": expires_in,
        }))
    }

    /// client_id and client_secret, checked first as IMS does.
    fn authenticate(&self, params: &HashMap<String, String>) -> Result<RegisteredRef, ImsReject> {
        let id = params
            .get("client_id")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| reject(400, "invalid_request", "missing client_id parameter"))?;
        let clients = lock(&self.inner.clients);
        let c = clients
            .get(id)
            .ok_or_else(|| reject(400, "invalid_client", "invalid client_id parameter"))?;
        let secret = params
            .get("client_secret")
            .map(String::as_str)
            .unwrap_or("");
        if !constant_time_eq(secret.as_bytes(), c.reg.client_secret.expose().as_bytes()) {
            return Err(reject(
                401,
                "invalid_client",
                "invalid client_secret parameter",
            ));
        }
        Ok(RegisteredRef {
            reg: c.reg.clone(),
            key: c.key.clone(),
        })
    }

    /// Verifies the JWT of an exchange; returns the metascopes it asked for.
    fn check_jwt(
        &self,
        client: &RegisteredRef,
        params: &HashMap<String, String>,
        host: &str,
    ) -> Result<Vec<String>, ImsReject> {
        let reg = &client.reg;
        let key = client.key.as_ref().ok_or_else(|| {
            reject(
                401,
                "invalid_client",
                "client is not allowed to exchange a JWT (no exchange_jwt scope)",
            )
        })?;
        let jwt = params
            .get("jwt_token")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| reject(400, "invalid_token", "JWT token is missing"))?;
        let malformed = || {
            reject(
                400,
                "invalid_token",
                "JWT token is incorrectly formatted, and can not be decoded.",
            )
        };
        let no_binding = || {
            reject(
                400,
                "invalid_token",
                "Could not match JWT signature to any of the bindings",
            )
        };
        let head = jsonwebtoken::decode_header(jwt).map_err(|_| malformed())?;
        if head.alg != Algorithm::RS256 {
            return Err(reject(
                400,
                "invalid_signature",
                "the JWT must be signed with RS256",
            ));
        }
        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims = HashSet::new();
        let claims = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            jwt,
            key,
            &validation,
        )
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => no_binding(),
            _ => malformed(),
        })?
        .claims;

        let exp = claims
            .get("exp")
            .and_then(|v| v.as_u64())
            .ok_or_else(malformed)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        if exp + CLOCK_SKEW.as_secs() < now.as_secs() {
            return Err(reject(400, "invalid_token", "JWT token has expired"));
        }

        let aud = match claims.get("aud") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Array(a)) if a.len() == 1 => {
                a[0].as_str().map(str::to_string).ok_or_else(malformed)?
            }
            _ => {
                return Err(reject(
                    400,
                    "invalid_client",
                    "the JWT needs exactly one aud",
                ))
            }
        };
        let (aud_host, aud_path) = split_url(&aud)
            .ok_or_else(|| reject(400, "invalid_client", "aud is not an IMS client URL"))?;
        if !aud_host.eq_ignore_ascii_case(host) {
            return Err(reject(
                400,
                "invalid_client",
                "aud does not point to this IMS environment",
            ));
        }
        if aud_path != format!("c/{}", reg.client_id) {
            return Err(reject(
                400,
                "invalid_client",
                "client_id does not match the aud of the JWT",
            ));
        }

        let claim_str = |k: &str| claims.get(k).and_then(|v| v.as_str()).unwrap_or("");
        if claim_str("iss") != reg.org_id || claim_str("sub") != reg.technical_account_id {
            return Err(no_binding());
        }

        let mut metascopes = Vec::new();
        for (k, v) in &claims {
            let Some((h, p)) = split_url(k) else { continue };
            let Some(name) = p.strip_prefix("s/") else {
                continue;
            };
            if v != &serde_json::Value::Bool(true) {
                continue;
            }
            if !h.eq_ignore_ascii_case(host) {
                return Err(reject(
                    400,
                    "invalid_scope",
                    format!("metascope {k} is not on this IMS"),
                ));
            }
            metascopes.push(name.to_string());
        }
        if metascopes.is_empty() || !metascopes.iter().all(|m| reg.metascopes.contains(m)) {
            return Err(reject(
                400,
                "invalid_scope",
                "The metascopes in the JWT are not a subset of the metascopes in the binding.",
            ));
        }
        Ok(metascopes)
    }

    fn issue(
        &self,
        reg: &ClientRegistration,
        flow: Flow,
        scopes: Vec<String>,
        lifetime: Duration,
        claims_lifetime: Option<Duration>,
    ) -> String {
        let now = SystemTime::now();
        let created_ms = now
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let claims_lifetime = claims_lifetime.unwrap_or(lifetime);
        let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let header = serde_json::json!({"alg": "RS256", "x5u": "ims_na1-key-at-1.cer", "kid": "ims_na1-key-at-1", "itt": "at"});
        let payload = serde_json::json!({
            "id": format!("{:032x}", rand::random::<u128>()),
            "type": "access_token",
            "client_id": reg.client_id,
            "user_id": reg.technical_account_id,
            "as": "ims-na1",
            "org": reg.org_id,
            "scope": scopes.join(","),
            "created_at": created_ms.to_string(),
            "expires_in": claims_lifetime.as_millis().to_string(),
        });
        let signature: [u8; 32] = rand::random();
        let token = format!(
            "{}.{}.{}",
            b64(header.to_string().as_bytes()),
            b64(payload.to_string().as_bytes()),
            b64(&signature)
        );
        *lock(&self.inner.grants)
            .entry(reg.client_id.clone())
            .or_default() += 1;
        lock(&self.inner.tokens).insert(
            token.clone(),
            TokenInfo {
                client_id: reg.client_id.clone(),
                org_id: reg.org_id.clone(),
                flow,
                expires_at: now + lifetime.min(claims_lifetime),
                scopes,
            },
        );
        token
    }

    /// Serves HTTP/1.1 and HTTP/2 on `listener` until `shutdown` resolves.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        super::serve::serve(listener, shutdown, move |req| {
            let ims = self.clone();
            async move { ims.handle(req).await }
        })
        .await
    }

    /// Binds `addr` (e.g. `127.0.0.1:0`) and serves in the background until the returned
    /// handle is dropped.
    pub async fn start(&self, addr: SocketAddr) -> std::io::Result<LocalIms> {
        let ims = self.clone();
        super::serve::Serving::start(addr, move |req| {
            let ims = ims.clone();
            async move { ims.handle(req).await }
        })
        .await
    }
}

/// A fake IMS serving in the background; dropping it stops accepting connections. `url()` is
/// the `ims_url` to configure.
pub type LocalIms = super::serve::Serving;

struct RegisteredRef {
    reg: ClientRegistration,
    key: Option<DecodingKey>,
}

fn check_oauth(
    reg: &ClientRegistration,
    params: &HashMap<String, String>,
) -> Result<Vec<String>, ImsReject> {
    match params.get("grant_type").map(String::as_str) {
        Some("client_credentials") => {}
        Some(_) => {
            return Err(reject(
                400,
                "unsupported_grant_type",
                "grant_type must be client_credentials",
            ))
        }
        None => {
            return Err(reject(
                400,
                "invalid_request",
                "missing grant_type parameter",
            ))
        }
    }
    let scopes: Vec<String> = params
        .get("scope")
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if scopes.is_empty() {
        return Err(reject(400, "invalid_scope", "missing scope parameter"));
    }
    let unknown: Vec<&str> = scopes
        .iter()
        .filter(|s| !reg.scopes.contains(s))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(reject(
            400,
            "invalid_scope",
            format!("invalid scope(s): {}", unknown.join(",")),
        ));
    }
    Ok(scopes)
}

/// `https://host:port/rest` → (`host:port`, `rest`).
fn split_url(s: &str) -> Option<(&str, &str)> {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))?;
    rest.split_once('/')
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn plain(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    resp
}

fn error_response(r: &ImsReject) -> Response<Full<Bytes>> {
    let body = serde_json::json!({"error": r.error, "error_description": r.description});
    plain(r.status, "application/json;charset=utf-8", body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn alternating_failures_start_healthy_and_flip_every_period() {
        let since = Instant::now();
        let when = FailWhen::Alternating {
            period: Duration::from_secs(10),
            since,
        };
        let at = |s| since + Duration::from_secs(s);
        assert!(!when.fails(at(0), 0.0));
        assert!(!when.fails(at(9), 0.0));
        assert!(when.fails(at(10), 0.0));
        assert!(when.fails(at(19), 0.0));
        assert!(!when.fails(at(20), 0.0));
        assert!(when.fails(at(35), 0.0));
    }

    #[test]
    fn a_failure_ratio_fails_the_rolls_below_it() {
        let when = FailWhen::Ratio(0.25);
        assert!(when.fails(Instant::now(), 0.1));
        assert!(!when.fails(Instant::now(), 0.25));
        assert!(!FailWhen::Ratio(0.0).fails(Instant::now(), 0.0));
    }
}
