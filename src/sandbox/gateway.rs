//! The adobe.io gateway in front of every sandboxed API: it admits a request only with the
//! headers the real API requires, checked against what the sandbox's IMS issued, and refuses
//! in the gateway's `{"error_code","message"}` dialect (`shared/ADOBE.md` §4).
//!
//! Verified codes: `401013` (bad or expired token), `403003` (API key invalid), `403023`
//! (profile not valid, Campaign). The answers to a missing API key or org header and to a
//! foreign org are the sandbox's best guess at Adobe's; their exact text is not documented.

use super::ims::{FakeIms, Flow, TokenInfo};
use crate::adobe::Api;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};

pub type Reply = Response<Full<Bytes>>;

/// Largest request body an API reads (Privacy jobs carry up to 1000 users).
const MAX_BODY: usize = 1024 * 1024;

/// Why the gateway turned a request away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("Api Key is required")]
    MissingApiKey,
    #[error("Oauth token is not valid")]
    BadToken,
    #[error("Api Key is invalid")]
    WrongApiKey,
    /// A JWT token without this API's metascope: no product context for it.
    #[error("Profile is not valid")]
    NotEntitled,
    #[error("Missing required header x-gw-ims-org-id")]
    MissingOrg,
    #[error("Profile is not valid")]
    WrongOrg,
}

impl Refusal {
    pub fn status(self) -> u16 {
        match self {
            Refusal::BadToken => 401,
            Refusal::MissingOrg => 400,
            _ => 403,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Refusal::MissingApiKey => "403000",
            Refusal::BadToken => "401013",
            Refusal::WrongApiKey => "403003",
            Refusal::NotEntitled => "403023",
            Refusal::MissingOrg => "400003",
            Refusal::WrongOrg => "403025",
        }
    }

    pub fn reply(self) -> Reply {
        gateway(self.status(), self.code(), &self.to_string())
    }
}

/// Checks the auth headers `api` requires; the token's identity when they pass.
pub fn admit(ims: &FakeIms, headers: &HeaderMap, api: Api) -> Result<TokenInfo, Refusal> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let api_key = text("x-api-key").ok_or(Refusal::MissingApiKey)?;
    let token = text(header::AUTHORIZATION.as_str())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .and_then(|t| ims.validate_token(t))
        .ok_or(Refusal::BadToken)?;
    if !super::ims::constant_time_eq(api_key.as_bytes(), token.client_id.as_bytes()) {
        return Err(Refusal::WrongApiKey);
    }
    // A JWT token only reaches the APIs whose metascope it was issued for; OAuth scopes per
    // API are not documented (ADOBE.md §3), so OAuth tokens are not checked here.
    if token.flow == Flow::Jwt && !token.scopes.iter().any(|m| m == api.metascope()) {
        return Err(Refusal::NotEntitled);
    }
    if api.sends_org_id() {
        let org = text("x-gw-ims-org-id").ok_or(Refusal::MissingOrg)?;
        if org != token.org_id {
            return Err(Refusal::WrongOrg);
        }
    }
    Ok(token)
}

/// An answer in the gateway's error dialect.
pub fn gateway(status: u16, code: &str, message: &str) -> Reply {
    json(
        status,
        &serde_json::json!({"error_code": code, "message": message}),
    )
}

/// `body` as `application/json` with an `x-request-id`, as Adobe's APIs answer.
pub fn json(status: u16, body: &serde_json::Value) -> Reply {
    typed(status, "application/json", body)
}

/// Like [`json`] with another media type, e.g. `application/hal+json`.
pub fn typed(status: u16, content_type: &'static str, body: &serde_json::Value) -> Reply {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(id) = HeaderValue::from_str(&request_id()) {
        h.insert("x-request-id", id);
    }
    resp
}

pub fn request_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// A random (version 4) UUID, as Privacy Service and Campaign hand out.
pub fn uuid() -> String {
    let n = (rand::random::<u128>() & !(0xf << 76) & !(0x3 << 62)) | (0x4 << 76) | (0x2 << 62);
    let h = format!("{n:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// The request body as JSON; `Err` is why not, for a 400.
pub async fn read_json<B>(body: B) -> Result<serde_json::Value, String>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<crate::base::error::BoxError>,
{
    let bytes = Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map_err(|_| "unreadable or oversized request body".to_string())?
        .to_bytes();
    serde_json::from_slice(&bytes).map_err(|e| format!("the body is not JSON: {e}"))
}

/// RFC 3339 UTC timestamp for `t`, without pulling in a date crate.
pub fn timestamp(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = crate::logfmt::civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.000Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The APIs' in-memory data. A panic elsewhere while holding the lock leaves plain data
/// behind; keep serving.
pub fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_version_4_variant_1() {
        for _ in 0..100 {
            let u = uuid();
            assert_eq!(u.len(), 36);
            assert_eq!(&u[14..15], "4", "{u}");
            assert!("89ab".contains(&u[19..20]), "{u}");
        }
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        assert_eq!(timestamp(t), "2023-11-14T22:13:20.000Z");
        assert_eq!(timestamp(std::time::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }
}
