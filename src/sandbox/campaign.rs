//! Adobe Campaign Standard (`mc.adobe.io/{tenant}/campaign/...`): profiles under
//! `profileAndServices/profile`. The tenant in the path must be the sandbox's (or its
//! `-mkt-stage` twin); any other gets the 403023 a token without that product context gets.
//! No `x-gw-ims-org-id` is required (ADOBE.md §4.1). A profile's PKey in the path may be
//! percent-encoded (`%40` for its leading `@`), as Adobe's SDK sends it. A trailing slash is
//! ignored (the SDK lists and creates at `.../profile/`), and so is the request body's
//! `Content-Type` (the SDK sends its JSON as `text/plain;charset=UTF-8`).

use super::gateway::{self, json, Reply};
use super::ims::FakeIms;
use crate::adobe::Api;
use bytes::Bytes;
use http::{Method, Request};
use std::sync::Mutex;

pub struct Campaign {
    tenant: String,
    profiles: Mutex<Vec<serde_json::Value>>,
}

impl Campaign {
    pub fn new(tenant: &str) -> Campaign {
        let seed = [
            ("Ada", "Lovelace", "ada.lovelace@example.com", "1815-12-10"),
            ("Grace", "Hopper", "grace.hopper@example.com", "1906-12-09"),
        ];
        let profiles = seed
            .iter()
            .map(|(first, last, email, birth)| profile(first, last, email, birth))
            .collect();
        Campaign {
            tenant: tenant.to_string(),
            profiles: Mutex::new(profiles),
        }
    }

    /// `rest` is the path after `/{tenant}/campaign`; `None` when the path is not Campaign's.
    pub async fn handle<B>(&self, ims: &FakeIms, req: Request<B>) -> Option<Reply>
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: Into<crate::base::error::BoxError>,
    {
        let path = req.uri().path().to_string();
        let mut parts = path.trim_start_matches('/').splitn(3, '/');
        let (tenant, campaign, rest) = (parts.next()?, parts.next()?, parts.next().unwrap_or(""));
        if campaign != "campaign" {
            return None;
        }
        if let Err(refusal) = gateway::admit(ims, req.headers(), Api::Campaign) {
            return Some(refusal.reply());
        }
        let base = tenant.strip_suffix("-mkt-stage").unwrap_or(tenant);
        if base != self.tenant {
            return Some(gateway::gateway(403, "403023", "Profile is not valid"));
        }
        let href_base = format!("/{tenant}/campaign/profileAndServices/profile");
        let rest = rest.trim_end_matches('/');
        let reply = match (req.method(), rest) {
            (&Method::GET, "profileAndServices/profile") => {
                let profiles = self.with_hrefs(&href_base);
                json(
                    200,
                    &serde_json::json!({
                        "content": profiles,
                        "count": {"href": format!("{href_base}/_count")},
                        "serverSidePagination": true,
                    }),
                )
            }
            (&Method::GET, "profileAndServices/profile/_count") => {
                let n = gateway::lock(&self.profiles).len();
                json(200, &serde_json::json!({"count": n}))
            }
            (&Method::POST, "profileAndServices/profile") => {
                match gateway::read_json(req.into_body()).await {
                    Err(why) => gateway::gateway(400, "400", &why),
                    Ok(body) => self.create(body, &href_base),
                }
            }
            (&Method::GET, r) => match r
                .strip_prefix("profileAndServices/profile/")
                .and_then(decode_key)
            {
                Some(pkey) => match self
                    .with_hrefs(&href_base)
                    .into_iter()
                    .find(|p| p["PKey"] == pkey.as_str())
                {
                    Some(p) => json(200, &p),
                    None => not_found(),
                },
                None => not_found(),
            },
            _ => not_found(),
        };
        Some(reply)
    }

    fn with_hrefs(&self, href_base: &str) -> Vec<serde_json::Value> {
        let mut out = gateway::lock(&self.profiles).clone();
        for p in &mut out {
            let href = format!("{href_base}/{}", p["PKey"].as_str().unwrap_or_default());
            p["href"] = href.into();
        }
        out
    }

    fn create(&self, body: serde_json::Value, href_base: &str) -> Reply {
        let Some(fields) = body.as_object() else {
            return gateway::gateway(400, "400", "a profile is a JSON object");
        };
        let email = fields.get("email").and_then(|v| v.as_str()).unwrap_or("");
        if !email.contains('@') {
            return gateway::gateway(400, "400", "email: a valid address is required");
        }
        let mut p = profile("", "", email, "");
        if let Some(obj) = p.as_object_mut() {
            for (k, v) in fields {
                if !matches!(k.as_str(), "PKey" | "created" | "lastModified" | "href") {
                    obj.insert(k.clone(), v.clone());
                }
            }
        }
        gateway::lock(&self.profiles).push(p.clone());
        p["href"] = format!("{href_base}/{}", p["PKey"].as_str().unwrap_or_default()).into();
        json(201, &p)
    }
}

fn profile(first: &str, last: &str, email: &str, birth: &str) -> serde_json::Value {
    let now = gateway::timestamp(std::time::SystemTime::now());
    serde_json::json!({
        "PKey": format!("@{:x}", rand::random::<u64>()),
        "firstName": first,
        "lastName": last,
        "email": email,
        "birthDate": birth,
        "created": now,
        "lastModified": now,
    })
}

/// A PKey as a path segment, percent-escapes decoded: PKeys start with `@`, which
/// `aio-lib-campaign-standard` (swagger-client) sends as `%40`, as it escapes every character
/// outside RFC 3986's unreserved set. `None` when the escapes do not spell UTF-8.
fn decode_key(segment: &str) -> Option<String> {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .ok()
        .map(|k| k.into_owned())
}

/// Campaign's answer to a URI it does not know (ADOBE.md §4.1).
fn not_found() -> Reply {
    json(
        404,
        &serde_json::json!({"code": 404, "message": "Oops. Something went wrong. Check your URI and try again."}),
    )
}
