//! The proxy's own IMS token endpoint, for tools that log in to IMS themselves (Adobe's SDKs):
//! `POST /ims/token/v1|v2|v3` and `/ims/exchange/jwt` are answered here, never forwarded, in
//! Adobe's shape and units (`expires_in` in seconds from `token/v*`, milliseconds from
//! `exchange/jwt`). The token is a placeholder: JWT-shaped with the claims SDKs decode, signed
//! by this process, never valid at Adobe. It grants nothing by itself: on the way out the
//! route's own credential replaces whatever `Authorization` the tool sends.

use super::Credential;
use crate::base::form;
use base64::Engine as _;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body_util::Full;
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What a static credential's placeholder claims to live: Adobe's usual 24 hours.
const STATIC_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// Whether `path` is one of IMS's token endpoints, and in which unit it gives `expires_in`.
fn endpoint(path: &str) -> Option<Unit> {
    match path.trim_end_matches('/') {
        "/ims/token/v1" | "/ims/token/v2" | "/ims/token/v3" => Some(Unit::Seconds),
        "/ims/exchange/jwt" => Some(Unit::Millis),
        _ => None,
    }
}

#[derive(Clone, Copy)]
enum Unit {
    Seconds,
    Millis,
}

/// Answers an IMS request for `credentials` (those whose IMS host it was sent to).
pub async fn answer(
    credentials: &[Arc<Credential>],
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Response<Full<Bytes>> {
    let Some(unit) = endpoint(path) else {
        return ims_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "ims-proxy answers only IMS's token endpoints (/ims/token/v1|v2|v3, /ims/exchange/jwt)",
        );
    };
    if method != Method::POST {
        return ims_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            "POST only",
        );
    }
    let params = parameters(query, headers, body);
    let client_id = params.get("client_id").cloned().unwrap_or_default();
    // The tool's own client id names the credential when it is a real one; dummies get the
    // credential of this IMS host.
    let credential = credentials
        .iter()
        .find(|c| c.api_key.as_bytes() == client_id.as_bytes())
        .or_else(|| credentials.first());
    let Some(credential) = credential else {
        return ims_error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "ims-proxy has no credential for this IMS",
        );
    };
    if let Err(e) = credential.current().await {
        return ims_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            &format!(
                "ims-proxy has no token for credential {:?}: {e}",
                credential.name
            ),
        );
    }
    let lifetime = credential
        .status()
        .expires_in_seconds
        .map_or(STATIC_LIFETIME, Duration::from_secs);
    let shown_client = if client_id.is_empty() {
        credential.api_key.to_str().unwrap_or("").to_string()
    } else {
        client_id
    };
    let token = placeholder(
        &shown_client,
        params.get("scope").map(String::as_str),
        lifetime,
    );
    let expires_in = match unit {
        Unit::Seconds => lifetime.as_secs(),
        Unit::Millis => u64::try_from(lifetime.as_millis()).unwrap_or(u64::MAX),
    };
    let body = serde_json::json!({
        "access_token": token,
        "token_type": "bearer",
        "expires_in": expires_in,
    });
    json(StatusCode::OK, body)
}

/// A JWT-shaped token with the claims SDKs decode (`created_at`, `expires_in` in ms as strings,
/// `client_id`, `type`), signed HS256 with a key this process made, so it is recognisably ours
/// and worthless anywhere else.
fn placeholder(client_id: &str, scope: Option<&str>, lifetime: Duration) -> String {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    let key = KEY.get_or_init(rand::random);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let id: u64 = rand::random();
    let mut claims = serde_json::json!({
        "id": format!("ims-proxy-{id:016x}"),
        "type": "access_token",
        "client_id": client_id,
        "as": "ims-proxy",
        "created_at": now.to_string(),
        "expires_in": lifetime.as_millis().to_string(),
    });
    if let Some(s) = scope {
        claims["scope"] = s.into();
    }
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(key),
    )
    .unwrap_or_else(|_| {
        // HS256 with an in-memory key cannot fail; still, never panic on a request.
        let b = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        format!(
            "{}.{}.",
            b(b"{\"alg\":\"none\"}"),
            b(claims.to_string().as_bytes())
        )
    })
}

/// Parameters from the query and the body (`application/x-www-form-urlencoded` or
/// `multipart/form-data`, as aio-lib-ims sends them), the body's winning.
fn parameters(query: Option<&str>, headers: &HeaderMap, body: &[u8]) -> BTreeMap<String, String> {
    let mut params: BTreeMap<String, String> = query
        .and_then(|q| form::urlencoded(q.as_bytes()).ok())
        .unwrap_or_default()
        .into_iter()
        .collect();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    params.extend(form::parse(content_type, body).unwrap_or_default());
    params
}

/// IMS's error shape: `{"error","error_description"}`.
fn ims_error(status: StatusCode, error: &str, description: &str) -> Response<Full<Bytes>> {
    json(
        status,
        serde_json::json!({"error": error, "error_description": description}),
    )
}

fn json(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=utf-8"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_fields_are_read_like_a_form() {
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"client_id\"\r\n\r\nabc\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"scope\"\r\n\r\nopenid,AdobeID\r\n--XyZ--\r\n";
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("multipart/form-data; boundary=XyZ"),
        );
        let p = parameters(Some("grant_type=client_credentials"), &h, body.as_bytes());
        assert_eq!(p.get("client_id").map(String::as_str), Some("abc"));
        assert_eq!(p.get("scope").map(String::as_str), Some("openid,AdobeID"));
        assert_eq!(
            p.get("grant_type").map(String::as_str),
            Some("client_credentials")
        );
    }

    #[test]
    fn the_placeholder_is_jwt_shaped_with_millisecond_string_claims() {
        let t = placeholder("abc", None, Duration::from_secs(60));
        let parts: Vec<&str> = t.split('.').collect();
        assert_eq!(parts.len(), 3);
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .unwrap_or_default();
        let claims: serde_json::Value = serde_json::from_slice(&raw).unwrap_or_default();
        assert_eq!(claims["expires_in"], "60000");
        assert_eq!(claims["type"], "access_token");
        assert!(claims["created_at"].as_str().is_some());
    }

    #[test]
    fn token_endpoints_are_known_with_or_without_a_trailing_slash() {
        assert!(endpoint("/ims/token/v3/").is_some());
        assert!(endpoint("/ims/exchange/jwt/").is_some());
        assert!(endpoint("/ims/authorize/v2").is_none());
    }
}
