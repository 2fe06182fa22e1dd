//! `ims-proxy check [--online]`: validate the configuration without listening, print what it
//! resolves to (secrets redacted), and with `--online` try every credential and upstream.

use super::logging::{fatal, out};
use super::setup::{load, runtime};
use crate::state::{Route, Snapshot};
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

/// Fetches a token for every credential and opens a connection to every route's upstream,
/// printing one line for each; true if all of them work.
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
        let prefix = r.label();
        let uri = http::Uri::builder()
            .scheme(r.upstream.scheme.clone())
            .authority(r.upstream.authority.clone())
            .path_and_query("/")
            .build();
        let reach = match uri {
            Err(e) => Err(e.to_string()),
            Ok(uri) => match tokio::time::timeout(deadline, s.outbound.probe(uri)).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(crate::base::error::error_chain(&*e)),
                Err(_) => Err(format!("no connection within {deadline:?}")),
            },
        };
        let cred = r.credential.name.as_str();
        let cred_ok = credential_ok.get(cred).copied().unwrap_or(false);
        match (&reach, cred_ok) {
            (Ok(()), true) => out(&format!(
                "route {prefix} -> {}: ok (credential {cred}, upstream reachable)\n",
                r.upstream
            )),
            _ => {
                failures += 1;
                let mut why = Vec::new();
                if !cred_ok {
                    why.push(format!("credential {cred} failed"));
                }
                if let Err(e) = &reach {
                    why.push(format!("upstream unreachable: {e}"));
                }
                out(&format!(
                    "route {prefix} -> {}: FAILED: {}\n",
                    r.upstream,
                    why.join("; ")
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
