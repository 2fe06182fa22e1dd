//! The four Adobe APIs ims-proxy knows by name: their upstreams, the headers each one requires,
//! and the IMS metascopes and scopes their credentials need. Facts in `docs/adobe.md`.

use serde::Deserialize;
use std::fmt;

/// The IMS hosts Adobe's SDKs log in to (production and stage), whatever a credential's own
/// `ims_url` says: the forward listener answers them itself.
pub const SDK_IMS_HOSTS: [&str; 2] = ["ims-na1.adobelogin.com", "ims-na1-stg1.adobelogin.com"];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Api {
    Campaign,
    AudienceManager,
    CloudManager,
    Privacy,
}

impl Api {
    pub fn name(self) -> &'static str {
        match self {
            Api::Campaign => "campaign",
            Api::AudienceManager => "audience-manager",
            Api::CloudManager => "cloud-manager",
            Api::Privacy => "privacy",
        }
    }

    /// The production base URL. Campaign's depends on the tenant (not the IMS org id) and on
    /// whether the stage instance (`{tenant}-mkt-stage`) is wanted.
    pub fn default_upstream(self, tenant: Option<&str>, stage: bool) -> Result<String, String> {
        match self {
            Api::Campaign => {
                let tenant = tenant.ok_or_else(|| {
                    "required for api = \"campaign\" unless `upstream` is set".to_string()
                })?;
                if tenant.is_empty()
                    || !tenant
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    return Err(format!(
                        "{tenant:?} is not a Campaign tenant id (letters, digits, '-' and '_')"
                    ));
                }
                let suffix = if stage { "-mkt-stage" } else { "" };
                Ok(format!("https://mc.adobe.io/{tenant}{suffix}/campaign"))
            }
            Api::AudienceManager => Ok("https://aam.adobe.io".into()),
            Api::CloudManager => Ok("https://cloudmanager.adobe.io".into()),
            Api::Privacy => Ok("https://platform.adobe.io/data/core/privacy".into()),
        }
    }

    /// The base URLs Adobe's own clients call this API at, which the forward listener
    /// intercepts: the production base URL, and for Audience Manager also `api.demdex.com`,
    /// the host its docs' own examples and Python clients call with the same IMS tokens
    /// (ADOBE.md §4.2). The beta hosts are another environment and are not included.
    pub fn public_urls(self, tenant: Option<&str>, stage: bool) -> Result<Vec<String>, String> {
        let mut urls = vec![self.default_upstream(tenant, stage)?];
        if self == Api::AudienceManager {
            urls.push("https://api.demdex.com".into());
        }
        Ok(urls)
    }

    /// A cheap, side-effect-free authenticated read for `check --online`, relative to the
    /// route's upstream: one item of a list every credential for the API may read. Not AAM's
    /// `/v1/users/self`: its first call creates the technical user (ADOBE.md §4.2).
    pub fn probe(self) -> &'static str {
        match self {
            Api::Campaign => "/profileAndServices/profile?_lineCount=1",
            Api::AudienceManager => "/v1/segments/?page=0&pageSize=1",
            Api::CloudManager => "/api/programs",
            Api::Privacy => "/jobs?regulation=gdpr&size=1",
        }
    }

    /// Campaign and Audience Manager take no `x-gw-ims-org-id`; Cloud Manager and Privacy
    /// Service require it.
    pub fn sends_org_id(self) -> bool {
        matches!(self, Api::CloudManager | Api::Privacy)
    }

    /// Headers every Adobe example for this API sends, beyond the auth headers.
    pub fn static_headers(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Api::Campaign => &[("cache-control", "no-cache")],
            _ => &[],
        }
    }

    /// The Service Account (JWT) metascope bound to this API's credential.
    pub fn metascope(self) -> &'static str {
        match self {
            Api::Campaign => "ent_campaign_sdk",
            Api::AudienceManager => "ent_audiencemanagerplatform_sdk",
            Api::CloudManager => "ent_cloudmgr_sdk",
            Api::Privacy => "ent_gdpr_sdk",
        }
    }

    /// OAuth Server-to-Server scopes Adobe documents for this API, where it documents them.
    pub fn oauth_scopes(self) -> &'static [&'static str] {
        match self {
            Api::CloudManager => &[
                "openid",
                "AdobeID",
                "read_organizations",
                "additional_info.projectedProductContext",
                "read_pc.dma_aem_ams",
            ],
            _ => &[],
        }
    }
}

/// Adobe's code for a refusal, from the start of its body: the gateway's `error_code`
/// (`"403025"`), else a service's `code`, else OAuth's `error`. Bounded and printable, since
/// it comes from the network and goes to a page, a log and a terminal. `None` when the body
/// is not JSON (or was cut short) or carries none of them.
pub fn error_code(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let code = ["error_code", "code", "error"]
        .iter()
        .find_map(|k| match value.get(k)? {
            serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        })?;
    Some(printable(&code, 64))
}

/// Adobe's `message` (or `error_description`, or problem+json's `title`) from a refusal's body,
/// bounded and printable, for `check --online`.
pub fn error_message(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    ["message", "error_description", "title"]
        .iter()
        .find_map(|k| value.get(k)?.as_str().filter(|s| !s.is_empty()))
        .map(|s| printable(s, 200))
}

fn printable(text: &str, max_chars: usize) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(max_chars)
        .collect()
}

impl fmt::Display for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn campaign_stage_uses_the_mkt_stage_tenant() {
        assert_eq!(
            Api::Campaign.default_upstream(Some("acme"), true).unwrap(),
            "https://mc.adobe.io/acme-mkt-stage/campaign"
        );
        assert_eq!(
            Api::Campaign.default_upstream(Some("acme"), false).unwrap(),
            "https://mc.adobe.io/acme/campaign"
        );
    }

    #[test]
    fn campaign_without_tenant_is_an_error() {
        assert!(Api::Campaign.default_upstream(None, false).is_err());
        assert!(Api::Campaign.default_upstream(Some("a/b"), false).is_err());
    }

    #[test]
    fn the_audience_manager_preset_is_called_on_both_of_adobes_hosts() {
        assert_eq!(
            Api::AudienceManager.public_urls(None, false).unwrap(),
            ["https://aam.adobe.io", "https://api.demdex.com"]
        );
        assert_eq!(
            Api::Privacy.public_urls(None, false).unwrap(),
            ["https://platform.adobe.io/data/core/privacy"]
        );
    }

    #[test]
    fn adobes_error_code_is_read_from_each_dialect_and_kept_printable() {
        let code = |b: &str| error_code(b.as_bytes());
        assert_eq!(
            code(r#"{"error_code":"403025","message":"Profile is not valid"}"#).as_deref(),
            Some("403025")
        );
        assert_eq!(
            code(r#"{"code":500,"message":"Oops"}"#).as_deref(),
            Some("500")
        );
        assert_eq!(
            code(r#"{"error":"invalid_token"}"#).as_deref(),
            Some("invalid_token")
        );
        assert_eq!(
            code(r#"{"error_code":"4\u0000\n03"}"#).as_deref(),
            Some("403")
        );
        assert_eq!(
            code(&format!(r#"{{"error_code":"{}"}}"#, "x".repeat(500))).map(|c| c.len()),
            Some(64)
        );
        assert_eq!(code("<html>403</html>"), None);
        assert_eq!(code(r#"{"error_code":"4030"#), None);
    }

    #[test]
    fn only_cloud_manager_and_privacy_send_the_org_id() {
        assert!(!Api::Campaign.sends_org_id());
        assert!(!Api::AudienceManager.sends_org_id());
        assert!(Api::CloudManager.sends_org_id());
        assert!(Api::Privacy.sends_org_id());
    }
}
