//! Audience Manager REST API (`aam.adobe.io/v1/...`): segments and traits, each a JSON array
//! when listed and an object by `sid`. Only `x-api-key` beside the token (ADOBE.md §4.2).

use super::gateway::{self, json, Reply};
use super::ims::FakeIms;
use crate::adobe::Api;
use http::{HeaderMap, Method};

/// `None` when the path is not Audience Manager's.
pub fn handle(ims: &FakeIms, method: &Method, path: &str, headers: &HeaderMap) -> Option<Reply> {
    let rest = path.strip_prefix("/v1/")?.trim_end_matches('/');
    let (collection, id) = match rest.split_once('/') {
        Some((c, id)) => (c, Some(id)),
        None => (rest, None),
    };
    let items = match collection {
        "segments" => segments(),
        "traits" => traits(),
        _ => return None,
    };
    if let Err(refusal) = gateway::admit(ims, headers, Api::AudienceManager) {
        return Some(refusal.reply());
    }
    if method != Method::GET {
        return Some(gateway::gateway(
            405,
            "405",
            "only GET is supported by the sandbox",
        ));
    }
    Some(match id {
        None => json(200, &serde_json::Value::Array(items)),
        Some(id) => match items
            .into_iter()
            .find(|i| i["sid"].as_u64().map(|n| n.to_string()).as_deref() == Some(id))
        {
            Some(item) => json(200, &item),
            None => json(
                404,
                &serde_json::json!({"code": "404", "message": format!("{collection} {id} not found")}),
            ),
        },
    })
}

fn segments() -> Vec<serde_json::Value> {
    vec![
        serde_json::json!({
            "sid": 1_001_001, "pid": 1234, "folderId": 11, "dataSourceId": 100_001,
            "name": "Sandbox: recent buyers",
            "description": "Bought something in the last 30 days",
            "integrationCode": "recent_buyers",
            "segmentRule": "2001001T",
            "mergeRuleDataSourceId": 0,
            "createTime": 1_704_067_200_000_u64, "updateTime": 1_706_745_600_000_u64,
        }),
        serde_json::json!({
            "sid": 1_001_002, "pid": 1234, "folderId": 11, "dataSourceId": 100_001,
            "name": "Sandbox: newsletter readers",
            "description": "Opened a newsletter this quarter",
            "integrationCode": "newsletter_readers",
            "segmentRule": "2001002T",
            "mergeRuleDataSourceId": 0,
            "createTime": 1_704_067_200_000_u64, "updateTime": 1_706_745_600_000_u64,
        }),
    ]
}

fn traits() -> Vec<serde_json::Value> {
    vec![
        serde_json::json!({
            "sid": 2_001_001, "pid": 1234, "folderId": 21, "dataSourceId": 100_001,
            "name": "Sandbox: purchase event",
            "traitType": "RULE_BASED_TRAIT",
            "traitRule": "event==\"purchase\"",
            "integrationCode": "purchase",
            "status": "ACTIVE",
            "createTime": 1_704_067_200_000_u64, "updateTime": 1_706_745_600_000_u64,
        }),
        serde_json::json!({
            "sid": 2_001_002, "pid": 1234, "folderId": 21, "dataSourceId": 100_001,
            "name": "Sandbox: newsletter open",
            "traitType": "RULE_BASED_TRAIT",
            "traitRule": "event==\"newsletter_open\"",
            "integrationCode": "newsletter_open",
            "status": "ACTIVE",
            "createTime": 1_704_067_200_000_u64, "updateTime": 1_706_745_600_000_u64,
        }),
    ]
}
