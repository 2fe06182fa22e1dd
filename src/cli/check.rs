//! `ims-proxy check [--online]`: validate the configuration without listening, print what it
//! resolves to (secrets redacted), and with `--online` try every credential and upstream.

use super::logging::{fatal, out};
use super::setup::{load, runtime};
use crate::state::{Probe, Route, Snapshot};
use std::process::ExitCode;

pub fn check(path: &std::path::Path, online: bool) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    // Building the snapshot validates everything `run` would, without listening.
    match rt.block_on(async { Snapshot::build(&config, None) }) {
        Ok(s) => {
            let mut text = s.describe();
            // Relative paths are resolved against the config file's directory.
            for (key, file) in config.paths() {
                text.push_str(&format!("file {key}: {}\n", file.display()));
            }
            text.push_str("config ok\n");
            out(&text);
            if online && !rt.block_on(check_online(&s, config.outbound.request_timeout)) {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            fatal(format_args!("{e}"));
            ExitCode::from(2)
        }
    }
}

/// `[shared]`: connects (TLS, AUTH), writes and deletes a key under the prefix; one line.
async fn check_shared(shared: &crate::fleet::Shared) -> bool {
    let where_ = shared.store.endpoint().describe();
    match shared.store.open().await {
        Ok(_) => {
            out(&format!(
                "shared {where_}: ok (connected, authenticated, wrote and deleted a key under {})\n",
                shared.status().key_prefix
            ));
            true
        }
        Err(e) => {
            out(&format!("shared {where_}: FAILED: {e}\n"));
            false
        }
    }
}

/// Fetches a token for every credential and sends every route's probe (or, for a route
/// without one, opens a connection to its upstream), printing one line for each; true if all
/// of them work.
async fn check_online(s: &Snapshot, deadline: std::time::Duration) -> bool {
    use std::collections::BTreeMap;
    let mut failures = 0usize;
    if let Some(shared) = &s.shared {
        failures += usize::from(!check_shared(shared).await);
    }
    let mut credential_ok = BTreeMap::new();
    for (name, cred) in &s.credentials {
        let result = match tokio::time::timeout(deadline, cred.current()).await {
            Ok(r) => r.map(drop).map_err(|e| e.to_string()),
            Err(_) => Err(format!("no answer within {deadline:?}")),
        };
        match result {
            Ok(()) => {
                let status = cred.status();
                let expiry = match status.expires_in_seconds {
                    Some(secs) => format!("token expires in {secs} s"),
                    None => "token does not expire".into(),
                };
                out(&format!(
                    "credential {name}: ok ({}, {expiry})\n",
                    cred.kind
                ));
                credential_ok.insert(name.as_str(), true);
            }
            Err(e) => {
                out(&format!("credential {name}: FAILED: {e}\n"));
                credential_ok.insert(name.as_str(), false);
                failures += 1;
            }
        }
    }
    let mut routes: Vec<&Route> = s.routes.iter().collect();
    routes.sort_by(|a, b| a.prefix.cmp(&b.prefix));
    for r in routes {
        let cred = r.credential.name.as_str();
        let line = if !credential_ok.get(cred).copied().unwrap_or(false) {
            Err(format!("credential {cred} failed"))
        } else {
            match &r.probe {
                Some(p) => probe(s, r, p).await,
                None => reach(s, r, deadline).await,
            }
        };
        match line {
            Ok(Verdict::Ok(what)) => out(&format!(
                "route {} -> {}: ok (credential {cred}, {what})\n",
                r.label(),
                r.upstream
            )),
            Ok(Verdict::Warning(what)) => out(&format!(
                "route {} -> {}: WARNING: {what} (credential {cred})\n",
                r.label(),
                r.upstream
            )),
            Err(why) => {
                failures += 1;
                out(&format!(
                    "route {} -> {}: FAILED: {why}\n",
                    r.label(),
                    r.upstream
                ));
            }
        }
    }
    if failures == 0 {
        out("online check ok\n");
    } else {
        out(&format!("online check FAILED: {failures} problem(s)\n"));
    }
    failures == 0
}

/// A route's line when nothing failed.
enum Verdict {
    Ok(String),
    /// Not a failure, but not a confirmation either.
    Warning(String),
}

/// Sends the route's probe: what the upstream says of the credential and org. Any 4xx but 429
/// and any 5xx fail; 401 and 403 with a hint at what Adobe refused.
async fn probe(s: &Snapshot, r: &Route, p: &Probe) -> Result<Verdict, String> {
    let answer = crate::pipeline::probe::send(s, r, p)
        .await
        .map_err(|e| e.to_string())?;
    let status = answer.status.as_u16();
    let mut said = format!("{p} answered {status}");
    if let Some(code) = &answer.error_code {
        said.push_str(&format!(" error_code {code}"));
    }
    if let Some(message) = &answer.message {
        said.push_str(&format!(" {message:?}"));
    }
    match status {
        200..=399 => Ok(Verdict::Ok(said)),
        429 => Ok(Verdict::Warning(format!(
            "{said}: throttled, so Adobe said nothing about the credential; try again later"
        ))),
        401 => Err(format!(
            "{said}: Adobe refused the token (client_id, scopes or metascopes, or the \
             credential's product profile for this API)"
        )),
        403 => Err(format!(
            "{said}: Adobe refused the request (org_id, the API key, or the credential's \
             product profile for this API)"
        )),
        _ => Err(said),
    }
}

/// For a route without a probe: the upstream can be reached (DNS, TCP, the egress proxy's
/// tunnel, TLS), which says nothing of what Adobe thinks of the credential.
async fn reach(s: &Snapshot, r: &Route, deadline: std::time::Duration) -> Result<Verdict, String> {
    let uri = http::Uri::builder()
        .scheme(r.upstream.scheme.clone())
        .authority(r.upstream.authority.clone())
        .path_and_query("/")
        .build()
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(deadline, s.outbound.probe(uri)).await {
        Ok(Ok(())) => Ok(Verdict::Ok(
            "upstream reachable; no probe, so not asked: set probe = \"GET /path\" to check \
             what it says of the credential"
                .into(),
        )),
        Ok(Err(e)) => Err(format!(
            "upstream unreachable: {}",
            crate::base::error::error_chain(&*e)
        )),
        Err(_) => Err(format!(
            "upstream unreachable: no connection within {deadline:?}"
        )),
    }
}
