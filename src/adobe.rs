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
    fn only_cloud_manager_and_privacy_send_the_org_id() {
        assert!(!Api::Campaign.sends_org_id());
        assert!(!Api::AudienceManager.sends_org_id());
        assert!(Api::CloudManager.sends_org_id());
        assert!(Api::Privacy.sends_org_id());
    }
}
