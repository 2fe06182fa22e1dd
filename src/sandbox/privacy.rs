//! AEP Privacy Service (`platform.adobe.io/data/core/privacy/jobs`): `POST /jobs` creates one
//! job per user, `GET /jobs?regulation=...` lists them, `GET /jobs/{jobId}` shows one. Jobs are
//! "processing" for [`PROCESSING`], then "complete". Requires `x-gw-ims-org-id` (§4.4).

use super::gateway::{self, json, Reply};
use super::ims::FakeIms;
use crate::adobe::Api;
use bytes::Bytes;
use http::{Method, Request};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

const PROCESSING: Duration = Duration::from_secs(10);
const REGULATIONS: &[&str] = &[
    "gdpr", "ccpa", "lgpd_bra", "pdpa_tha", "nzpa_nzl", "cpra_usa",
];
const ACTIONS: &[&str] = &["access", "delete"];
/// "Up to 1000 data subjects per request" (ADOBE.md §4.4).
const MAX_USERS: usize = 1000;

struct Job {
    id: String,
    request_id: String,
    user_key: String,
    actions: Vec<String>,
    user_ids: serde_json::Value,
    regulation: String,
    submitted_by: String,
    created: SystemTime,
    started: Instant,
}

impl Job {
    fn json(&self) -> serde_json::Value {
        let done = self.started.elapsed() >= PROCESSING;
        let created = gateway::timestamp(self.created);
        let modified = if done {
            gateway::timestamp(self.created + PROCESSING)
        } else {
            created.clone()
        };
        serde_json::json!({
            "jobId": self.id,
            "requestId": self.request_id,
            "userKey": self.user_key,
            "action": self.actions.first().cloned().unwrap_or_default(),
            "status": if done { "complete" } else { "processing" },
            "submittedBy": self.submitted_by,
            "createdDate": created,
            "lastModifiedDate": modified,
            "userIds": self.user_ids,
            "productResponses": [],
            "regulation": self.regulation,
        })
    }
}

#[derive(Default)]
pub struct Privacy {
    jobs: Mutex<Vec<Job>>,
}

impl Privacy {
    /// `None` when the path is not Privacy Service's.
    pub async fn handle<B>(&self, ims: &FakeIms, req: Request<B>) -> Option<Reply>
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: Into<crate::base::error::BoxError>,
    {
        let path = req.uri().path().trim_end_matches('/').to_string();
        let rest = path.strip_prefix("/data/core/privacy/jobs")?;
        if !(rest.is_empty() || rest.starts_with('/')) {
            return None;
        }
        let token = match gateway::admit(ims, req.headers(), Api::Privacy) {
            Ok(t) => t,
            Err(refusal) => return Some(refusal.reply()),
        };
        let query: HashMap<String, String> = req
            .uri()
            .query()
            .and_then(|q| serde_urlencoded::from_str(q).ok())
            .unwrap_or_default();
        let id = rest.trim_start_matches('/');
        Some(match (req.method().clone(), id) {
            (Method::GET, "") => self.list(&query),
            (Method::POST, "") => match gateway::read_json(req.into_body()).await {
                Ok(body) => self.create(&body, &token.client_id),
                Err(why) => gateway::gateway(400, "400", &why),
            },
            (Method::GET, id) => {
                let jobs = gateway::lock(&self.jobs);
                match jobs.iter().find(|j| j.id == id) {
                    Some(j) => json(200, &j.json()),
                    None => gateway::gateway(404, "404", &format!("job {id} not found")),
                }
            }
            _ => gateway::gateway(405, "405", "method not allowed"),
        })
    }

    fn list(&self, query: &HashMap<String, String>) -> Reply {
        let Some(regulation) = query.get("regulation") else {
            return gateway::gateway(400, "400", "the regulation query parameter is required");
        };
        if !REGULATIONS.contains(&regulation.as_str()) {
            return gateway::gateway(400, "400", &format!("unknown regulation {regulation}"));
        }
        let num = |k: &str, d: usize| query.get(k).and_then(|v| v.parse().ok()).unwrap_or(d);
        let (page, size) = (num("page", 1).max(1), num("size", 100).clamp(1, 1000));
        let jobs = gateway::lock(&self.jobs);
        let matching: Vec<&Job> = jobs
            .iter()
            .filter(|j| &j.regulation == regulation)
            .collect();
        let list: Vec<_> = matching
            .iter()
            .skip((page - 1) * size)
            .take(size)
            .map(|j| j.json())
            .collect();
        json(
            200,
            &serde_json::json!({"jobs": list, "totalRecords": matching.len(), "page": page, "size": size}),
        )
    }

    fn create(&self, body: &serde_json::Value, client_id: &str) -> Reply {
        let bad = |m: &str| gateway::gateway(400, "400", m);
        let regulation = body["regulation"].as_str().unwrap_or("");
        if !REGULATIONS.contains(&regulation) {
            return bad(
                "regulation: one of gdpr, ccpa, lgpd_bra, pdpa_tha, nzpa_nzl, cpra_usa is required",
            );
        }
        if body["companyContexts"].as_array().is_none_or(Vec::is_empty) {
            return bad("companyContexts: at least one company context is required");
        }
        let Some(users) = body["users"].as_array().filter(|u| !u.is_empty()) else {
            return bad("users: at least one user is required");
        };
        if users.len() > MAX_USERS {
            return bad("users: at most 1000 users per request");
        }
        let request_id = gateway::uuid();
        let mut created = Vec::new();
        for (i, u) in users.iter().enumerate() {
            let key = u["key"].as_str().unwrap_or("");
            let actions: Vec<String> = u["action"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            if key.is_empty()
                || actions.is_empty()
                || !actions.iter().all(|a| ACTIONS.contains(&a.as_str()))
                || u["userIDs"].as_array().is_none_or(Vec::is_empty)
            {
                return bad(&format!(
                    "users[{i}]: key, action (access or delete) and userIDs are required"
                ));
            }
            created.push(Job {
                id: gateway::uuid(),
                request_id: request_id.clone(),
                user_key: key.to_string(),
                actions,
                user_ids: u["userIDs"].clone(),
                regulation: regulation.to_string(),
                submitted_by: client_id.to_string(),
                created: SystemTime::now(),
                started: Instant::now(),
            });
        }
        let answer: Vec<_> = created
            .iter()
            .map(|j| {
                serde_json::json!({
                    "jobId": j.id,
                    "customer": {"user": {"key": j.user_key, "action": j.actions}},
                })
            })
            .collect();
        let n = created.len();
        gateway::lock(&self.jobs).extend(created);
        json(
            200,
            &serde_json::json!({"jobs": answer, "requestStatus": 1, "totalRecords": n}),
        )
    }
}
