//! Talking to IMS: one form POST through the shared upstream client, and reading what comes
//! back. Both flows answer `{"access_token","token_type","expires_in"}` on success and
//! `{"error","error_description"}` on failure; only the unit of `expires_in` differs.

use crate::base::error::{error_chain, BoxError};
use crate::base::secret::Secret;
use crate::outbound::{Answer, Outbound};
use base64::Engine as _;
use bytes::Bytes;
use http::{header, HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// IMS answers are a few hundred bytes; anything this large is not IMS.
const MAX_RESPONSE_BYTES: usize = 256 * 1024;
/// IMS's `error_description` is shown to clients; keep a misbehaving server from flooding them.
const MAX_DESCRIPTION_CHARS: usize = 300;

/// Why no token came back. Never carries a secret: IMS's own `error`/`error_description`
/// are safe to show, response bodies are not echoed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImsError {
    #[error("IMS answered {status} {error}: {description}")]
    Rejected {
        status: u16,
        error: String,
        description: String,
    },
    #[error("IMS answered {status} without an error in Adobe's format")]
    UnexpectedStatus { status: u16 },
    #[error("IMS answered {status} with an unreadable body: {reason}")]
    Unreadable { status: u16, reason: String },
    #[error("IMS unreachable at {url}: {reason}")]
    Transport { url: String, reason: String },
    #[error("IMS at {url} did not answer within {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    #[error("cannot build the IMS request: {0}")]
    Request(String),
}

/// In which unit a flow's `expires_in` is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiresUnit {
    /// `/ims/exchange/jwt`.
    Millis,
    /// `/ims/token/v3`.
    Seconds,
}

/// A token as IMS issued it, with how long it stays valid from the moment it was read.
#[derive(Debug, Clone)]
pub struct Issued {
    pub access_token: Secret,
    pub lifetime: Duration,
}

/// POSTs `form` (already URL-encoded; it holds secrets) to `url` and reads the answer.
pub async fn post_form(
    client: &Outbound,
    timeout: Duration,
    url: &str,
    form: Secret,
    unit: ExpiresUnit,
) -> Result<Issued, ImsError> {
    let body = Full::new(Bytes::from(form.expose().to_owned()))
        .map_err(|e| -> BoxError { match e {} })
        .boxed();
    let req = Request::post(url)
        .header(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        )
        .header(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"))
        .header(header::ACCEPT, HeaderValue::from_static("application/json"))
        .body(body)
        .map_err(|e| ImsError::Request(e.to_string()))?;
    let exchange = async {
        let resp = client
            .request(req, None)
            .await
            .map(Answer::keep)
            .map_err(|e| ImsError::Transport {
                url: url.to_string(),
                reason: error_chain(&e),
            })?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| ImsError::Unreadable {
                status: status.as_u16(),
                reason: e.to_string(),
            })?
            .to_bytes();
        Ok::<_, ImsError>((status, body))
    };
    let (status, body) = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| ImsError::Timeout {
            url: url.to_string(),
            timeout,
        })??;
    parse_response(status, &body, unit, SystemTime::now())
}

/// Reads an IMS answer. Fields are picked from a `Value` by hand rather than by serde derive,
/// because serde's messages quote the offending value, which could be a token.
pub fn parse_response(
    status: StatusCode,
    body: &[u8],
    unit: ExpiresUnit,
    now: SystemTime,
) -> Result<Issued, ImsError> {
    let code = status.as_u16();
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    if !status.is_success() {
        let err = json.as_ref().and_then(|j| j.get("error")?.as_str());
        return Err(match err {
            Some(error) => ImsError::Rejected {
                status: code,
                error: truncate(error),
                description: json
                    .as_ref()
                    .and_then(|j| j.get("error_description")?.as_str())
                    .map(truncate)
                    .unwrap_or_default(),
            },
            None => ImsError::UnexpectedStatus { status: code },
        });
    }
    let unreadable = |reason: &str| ImsError::Unreadable {
        status: code,
        reason: reason.to_string(),
    };
    let json = json.ok_or_else(|| unreadable("not JSON"))?;
    let token = json
        .get("access_token")
        .and_then(|t| t.as_str())
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| unreadable("no access_token"))?;
    let from_response = match json.get("expires_in") {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(
            number(v)
                .map(|n| match unit {
                    ExpiresUnit::Millis => Duration::from_millis(n),
                    ExpiresUnit::Seconds => Duration::from_secs(n),
                })
                .ok_or_else(|| unreadable("expires_in is not a number"))?,
        ),
    };
    let from_claims =
        claims_expiry(token).map(|expiry| expiry.duration_since(now).unwrap_or(Duration::ZERO));
    let lifetime = match (from_response, from_claims) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => return Err(unreadable("no expires_in")),
    };
    if lifetime.is_zero() {
        return Err(unreadable("the token is already expired"));
    }
    Ok(Issued {
        access_token: Secret::new(token),
        lifetime,
    })
}

/// A non-negative integer given as a JSON number or a string of digits.
fn number(v: &serde_json::Value) -> Option<u64> {
    match v {
        serde_json::Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0)
                .map(|f| f as u64)
        }),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// IMS access tokens are JWTs whose payload carries `created_at` and `expires_in`, both in
/// milliseconds and usually strings; the expiry they state, when they state one.
pub fn claims_expiry(token: &str) -> Option<SystemTime> {
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&raw).ok()?;
    let created = number(claims.get("created_at")?)?;
    let expires = number(claims.get("expires_in")?)?;
    UNIX_EPOCH.checked_add(Duration::from_millis(created.checked_add(expires)?))
}

fn truncate(s: &str) -> String {
    s.chars().take(MAX_DESCRIPTION_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt_with(payload: serde_json::Value) -> String {
        let b = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        format!(
            "{}.{}.sig",
            b(br#"{"alg":"RS256"}"#),
            b(payload.to_string().as_bytes())
        )
    }

    #[test]
    fn jwt_exchange_expires_in_is_milliseconds() {
        let body = br#"{"access_token":"t","token_type":"bearer","expires_in":86399000}"#;
        let i = parse_response(StatusCode::OK, body, ExpiresUnit::Millis, SystemTime::now());
        assert_eq!(i.unwrap().lifetime, Duration::from_secs(86399));
    }

    #[test]
    fn oauth_expires_in_is_seconds_and_may_be_a_string() {
        let body = br#"{"access_token":"t","token_type":"bearer","expires_in":"86399"}"#;
        let i = parse_response(
            StatusCode::OK,
            body,
            ExpiresUnit::Seconds,
            SystemTime::now(),
        );
        assert_eq!(i.unwrap().lifetime, Duration::from_secs(86399));
    }

    #[test]
    fn the_earlier_of_response_and_token_claims_wins() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let created = 1_700_000_000_000u64 - 1000;
        let token = jwt_with(serde_json::json!({
            "created_at": created.to_string(), "expires_in": "11000"
        }));
        let body = serde_json::json!({"access_token": token, "expires_in": 86399}).to_string();
        let i = parse_response(StatusCode::OK, body.as_bytes(), ExpiresUnit::Seconds, now);
        assert_eq!(i.unwrap().lifetime, Duration::from_secs(10));
    }

    #[test]
    fn adobe_errors_keep_error_and_description() {
        let body =
            br#"{"error_description":"invalid client_secret parameter","error":"invalid_client"}"#;
        let e = parse_response(
            StatusCode::UNAUTHORIZED,
            body,
            ExpiresUnit::Seconds,
            SystemTime::now(),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "IMS answered 401 invalid_client: invalid client_secret parameter"
        );
    }

    #[test]
    fn garbage_is_unreadable_and_never_echoed() {
        let e = parse_response(
            StatusCode::OK,
            b"<html>secret-ish</html>",
            ExpiresUnit::Seconds,
            SystemTime::now(),
        )
        .unwrap_err();
        assert!(!e.to_string().contains("secret-ish"));
        let e = parse_response(
            StatusCode::OK,
            br#"{"access_token":"tok","expires_in":"soon"}"#,
            ExpiresUnit::Seconds,
            SystemTime::now(),
        )
        .unwrap_err();
        assert!(!e.to_string().contains("tok"), "{e}");
    }
}
