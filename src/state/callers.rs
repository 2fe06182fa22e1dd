//! Access control: the callers of `[[clients]]`. When any caller is configured, every proxied
//! request must present one of their keys, as `x-proxy-key: <key>` or `Authorization: Bearer <key>`
//! (so tools that already send a bearer token work unchanged). Keys are held only as SHA-256
//! digests and compared in constant time against every client, so neither the comparison nor
//! the position of the matching client leaks through timing. Authentication happens before
//! routing, so an unauthenticated caller cannot even learn which prefixes exist.

use super::routes::label;
use crate::base::headers::X_PROXY_KEY;
use crate::base::secret::{read_secret_file, warn_if_exposed, Secret};
use crate::config::{normalise_prefix, CallerConfig, ConfigError};
use http::header::{HeaderMap, AUTHORIZATION};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// Shorter keys are refused: they would be guessable, and a digest cannot be checked later.
const MIN_KEY_LEN: usize = 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AccessError {
    #[error("a client key is required (x-proxy-key or Authorization: Bearer)")]
    MissingKey,
    #[error("the client key is not recognised")]
    UnknownKey,
    #[error("client {client:?} may not use route {route:?}")]
    Forbidden { client: String, route: String },
}

#[derive(Debug)]
struct Entry {
    name: Arc<str>,
    digest: [u8; 32],
    /// Normalised prefixes; `None` means every route.
    routes: Option<Vec<String>>,
}

/// The callers of one snapshot. Empty means access control is off.
#[derive(Debug, Default)]
pub struct Callers {
    entries: Vec<Entry>,
}

/// Who a request authenticated as.
#[derive(Debug, Clone)]
pub struct Caller {
    index: usize,
    pub name: Arc<str>,
}

impl Callers {
    /// `route_prefixes` are the normalised prefixes of the configured routes, to catch typos.
    pub fn build(
        configs: &[CallerConfig],
        route_prefixes: &[String],
    ) -> Result<Callers, ConfigError> {
        let mut entries = Vec::with_capacity(configs.len());
        let mut names = BTreeMap::new();
        for (i, c) in configs.iter().enumerate() {
            let key = format!("clients[{i}]");
            if c.name.trim().is_empty() {
                return Err(ConfigError::new(format!("{key}.name"), "must not be empty"));
            }
            if let Some(j) = names.insert(c.name.clone(), i) {
                return Err(ConfigError::new(
                    format!("{key}.name"),
                    format!("duplicate client name {:?} (also clients[{j}])", c.name),
                ));
            }
            let digest = client_digest(&key, c)?;
            if let Some(j) = entries
                .iter()
                .position(|o: &Entry| bool::from(o.digest.ct_eq(&digest)))
            {
                return Err(ConfigError::new(
                    &key,
                    format!("same key as clients[{j}]: each client needs its own key"),
                ));
            }
            let routes = match &c.routes {
                None => None,
                Some(list) => {
                    let mut out = Vec::with_capacity(list.len());
                    for (r, p) in list.iter().enumerate() {
                        let rkey = format!("{key}.routes[{r}]");
                        let norm = normalise_prefix(p).map_err(|e| ConfigError::new(&rkey, e))?;
                        if !route_prefixes.contains(&norm) {
                            return Err(ConfigError::new(
                                &rkey,
                                format!("no route has prefix {p:?}"),
                            ));
                        }
                        out.push(norm);
                    }
                    Some(out)
                }
            };
            entries.push(Entry {
                name: c.name.as_str().into(),
                digest,
                routes,
            });
        }
        Ok(Callers { entries })
    }

    pub fn is_enabled(&self) -> bool {
        !self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Finds the client whose key the request presents, and removes the key from the headers
    /// whatever the outcome, so it can never be forwarded. With access control off it only
    /// removes `x-proxy-key`.
    pub fn authenticate(&self, headers: &mut HeaderMap) -> Result<Option<Caller>, AccessError> {
        let presented = take_key(headers);
        self.identify(presented)
    }

    /// The caller a forward-proxy `CONNECT` authenticates as: its key in `Proxy-Authorization`,
    /// as `Bearer <key>` or as the password of `Basic` (`HTTPS_PROXY=http://name:key@host:port`).
    pub fn authenticate_proxy(&self, headers: &HeaderMap) -> Result<Option<Caller>, AccessError> {
        self.identify(proxy_key(headers))
    }

    fn identify(&self, presented: Option<Secret>) -> Result<Option<Caller>, AccessError> {
        if !self.is_enabled() {
            return Ok(None);
        }
        let presented = presented.ok_or(AccessError::MissingKey)?;
        let digest: [u8; 32] = Sha256::digest(presented.expose().as_bytes()).into();
        // Every client is compared, match or not, so the time taken says nothing about which.
        let mut found: Option<usize> = None;
        for (i, c) in self.entries.iter().enumerate() {
            if bool::from(c.digest.ct_eq(&digest)) {
                found = Some(i);
            }
        }
        let index = found.ok_or(AccessError::UnknownKey)?;
        Ok(Some(Caller {
            index,
            name: self.entries[index].name.clone(),
        }))
    }

    /// Whether `who` may use the route with normalised prefix `route`.
    pub fn authorize(&self, who: &Caller, route: &str) -> Result<(), AccessError> {
        let allowed = match self.entries.get(who.index).and_then(|c| c.routes.as_ref()) {
            None => true,
            Some(list) => list.iter().any(|p| p == route),
        };
        if allowed {
            Ok(())
        } else {
            Err(AccessError::Forbidden {
                client: who.name.to_string(),
                route: label(route).into(),
            })
        }
    }
}

/// The key from `x-proxy-key`, else from `Authorization: Bearer`. More than one `x-proxy-key`
/// is ambiguous and counts as none. The headers are removed here.
fn proxy_key(headers: &HeaderMap) -> Option<Secret> {
    use base64::Engine as _;
    let mut values = headers.get_all(http::header::PROXY_AUTHORIZATION).iter();
    let (Some(v), None) = (values.next(), values.next()) else {
        return None;
    };
    let (scheme, rest) = v.to_str().ok()?.trim().split_once(' ')?;
    let key = if scheme.eq_ignore_ascii_case("bearer") {
        rest.trim().to_string()
    } else if scheme.eq_ignore_ascii_case("basic") {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()?;
        let text = String::from_utf8(raw).ok()?;
        match text.split_once(':') {
            Some((_, pass)) if !pass.is_empty() => pass.to_string(),
            Some((user, _)) => user.to_string(),
            None => text,
        }
    } else {
        return None;
    };
    (!key.is_empty()).then(|| Secret::new(key))
}

fn take_key(headers: &mut HeaderMap) -> Option<Secret> {
    let mut proxy_keys = headers.get_all(&X_PROXY_KEY).iter();
    let from_header = match (proxy_keys.next(), proxy_keys.next()) {
        (Some(v), None) => Some(v.to_str().ok().map(str::trim).unwrap_or("").to_string()),
        (Some(_), Some(_)) => Some(String::new()),
        (None, _) => None,
    };
    headers.remove(&X_PROXY_KEY);
    let key = match from_header {
        Some(k) => k,
        None => {
            let mut auths = headers.get_all(AUTHORIZATION).iter();
            let bearer = match (auths.next(), auths.next()) {
                (Some(v), None) => v
                    .to_str()
                    .ok()
                    .and_then(|v| {
                        let (scheme, rest) = v.trim().split_once(' ')?;
                        scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
                    })
                    .map(str::to_string),
                _ => None,
            };
            // Forwarding removes Authorization anyway; removing it here too keeps the key from
            // ever depending on that.
            if bearer.is_some() {
                headers.remove(AUTHORIZATION);
            }
            bearer?
        }
    };
    (!key.is_empty()).then(|| Secret::new(key))
}

fn client_digest(key: &str, c: &CallerConfig) -> Result<[u8; 32], ConfigError> {
    let plain = match (&c.key_sha256, &c.key_file, &c.key) {
        (Some(hex), None, None) => {
            return parse_hex_digest(hex.trim()).ok_or_else(|| {
                ConfigError::new(
                    format!("{key}.key_sha256"),
                    "must be 64 hex digits (the SHA-256 of the key)",
                )
            });
        }
        (None, Some(path), None) => {
            let field = format!("{key}.key_file");
            warn_if_exposed(&field, path);
            read_secret_file(path).map_err(|r| ConfigError::new(&field, r))?
        }
        (None, None, Some(k)) => Secret::new(k.expose().trim()),
        (None, None, None) => {
            return Err(ConfigError::new(
                format!("{key}.key_sha256"),
                "one of key_sha256, key_file or key is required",
            ))
        }
        _ => {
            return Err(ConfigError::new(
                key,
                "give only one of key_sha256, key_file or key",
            ))
        }
    };
    if plain.expose().len() < MIN_KEY_LEN {
        return Err(ConfigError::new(
            format!("{key}.{}", if c.key.is_some() { "key" } else { "key_file" }),
            format!("a client key must be at least {MIN_KEY_LEN} characters (try: openssl rand -hex 32)"),
        ));
    }
    if plain.expose().bytes().any(|b| !b.is_ascii_graphic()) {
        return Err(ConfigError::new(
            format!("{key}.{}", if c.key.is_some() { "key" } else { "key_file" }),
            "a client key may contain only printable ASCII without spaces",
        ));
    }
    Ok(Sha256::digest(plain.expose().as_bytes()).into())
}

fn parse_hex_digest(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn ac() -> Callers {
        let cfg = |name: &str, key: &str, routes: Option<Vec<&str>>| CallerConfig {
            name: name.into(),
            key_sha256: None,
            key_file: None,
            key: Some(Secret::new(key)),
            routes: routes.map(|r| r.into_iter().map(String::from).collect()),
        };
        Callers::build(
            &[
                cfg("all", "key-for-all-routes-0001", None),
                cfg(
                    "privacy-only",
                    "key-for-privacy-only-02",
                    Some(vec!["/privacy/"]),
                ),
            ],
            &["/privacy".into(), "/campaign".into()],
        )
        .unwrap_or_default()
    }

    #[test]
    fn keys_are_found_in_either_header_and_removed() {
        let ac = ac();
        let mut h = HeaderMap::new();
        h.insert(
            X_PROXY_KEY,
            HeaderValue::from_static("key-for-all-routes-0001"),
        );
        assert_eq!(
            ac.authenticate(&mut h)
                .map(|i| i.map(|i| i.name.to_string())),
            Ok(Some("all".into()))
        );
        assert!(h.is_empty());
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_static("bearer key-for-privacy-only-02"),
        );
        let who = ac.authenticate(&mut h).ok().flatten();
        assert_eq!(who.as_ref().map(|i| &*i.name), Some("privacy-only"));
        assert!(h.is_empty());
        let who = who.unwrap_or_else(|| unreachable!());
        assert!(ac.authorize(&who, "/privacy").is_ok());
        assert!(ac.authorize(&who, "/campaign").is_err());
    }

    #[test]
    fn missing_unknown_and_ambiguous_keys_are_refused() {
        let ac = ac();
        let mut h = HeaderMap::new();
        assert_eq!(ac.authenticate(&mut h).err(), Some(AccessError::MissingKey));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Basic a2V5Og=="));
        assert_eq!(ac.authenticate(&mut h).err(), Some(AccessError::MissingKey));
        h.insert(
            X_PROXY_KEY,
            HeaderValue::from_static("not-a-configured-key"),
        );
        assert_eq!(ac.authenticate(&mut h).err(), Some(AccessError::UnknownKey));
        h.append(
            X_PROXY_KEY,
            HeaderValue::from_static("key-for-all-routes-0001"),
        );
        h.append(
            X_PROXY_KEY,
            HeaderValue::from_static("key-for-all-routes-0001"),
        );
        assert_eq!(ac.authenticate(&mut h).err(), Some(AccessError::MissingKey));
    }

    #[test]
    fn a_sha256_digest_authenticates_the_key_it_was_made_from() {
        let hex: String = Sha256::digest(b"key-for-all-routes-0001")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let c = CallerConfig {
            name: "h".into(),
            key_sha256: Some(hex.to_uppercase()),
            key_file: None,
            key: None,
            routes: None,
        };
        let ac = Callers::build(&[c], &[]).unwrap_or_default();
        let mut h = HeaderMap::new();
        h.insert(
            X_PROXY_KEY,
            HeaderValue::from_static("key-for-all-routes-0001"),
        );
        assert!(matches!(ac.authenticate(&mut h), Ok(Some(_))));
    }
}
