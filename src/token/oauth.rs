//! OAuth Server-to-Server credentials, what Adobe issues today: the client credentials grant
//! at `/ims/token/v3`.

use crate::base::secret::Secret;

#[derive(Debug, Clone)]
pub struct OAuthSource {
    pub ims_url: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub scopes: Vec<String>,
}

impl OAuthSource {
    pub fn endpoint(&self) -> String {
        format!("{}/ims/token/v3", self.ims_url)
    }

    /// The form body: all four parameters are mandatory, scopes comma-separated.
    pub fn form(&self) -> Result<Secret, String> {
        let scope = self.scopes.join(",");
        serde_urlencoded::to_string([
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose()),
            ("scope", scope.as_str()),
        ])
        .map(Secret::new)
        .map_err(|e| format!("cannot encode the form: {e}"))
    }
}
