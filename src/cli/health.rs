//! `ims-proxy health [--live]`: ask the running proxy's admin port, as a health check for
//! images without a shell or curl.

use super::logging::{fatal, out};
use super::setup::{load, runtime};
use std::process::ExitCode;

pub fn health(path: &std::path::Path, live: bool) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let Some(listen) = config.admin.listen.as_deref() else {
        fatal(format_args!(
            "admin.listen: required for `health` (it asks the admin port)"
        ));
        return ExitCode::from(2);
    };
    let mut addr = match std::net::ToSocketAddrs::to_socket_addrs(listen)
        .ok()
        .and_then(|mut a| a.next())
    {
        Some(a) => a,
        None => {
            fatal(format_args!("admin.listen: {listen:?} is not host:port"));
            return ExitCode::from(2);
        }
    };
    // A wildcard listener is reached on loopback from inside the same host or container.
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let url = format!("http://{addr}{}", if live { "/healthz" } else { "/readyz" });
    let result = rt.block_on(async {
        use http_body_util::BodyExt;
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<http_body_util::Empty<bytes::Bytes>>();
        let uri: http::Uri = url.parse().map_err(|e| format!("{e}"))?;
        let resp = tokio::time::timeout(std::time::Duration::from_secs(5), client.get(uri))
            .await
            .map_err(|_| "no answer within 5 s".to_string())?
            .map_err(|e| crate::base::error::error_chain(&e))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        Ok::<_, String>((status, body))
    });
    match result {
        Ok((status, body)) => {
            out(&format!(
                "{} {}\n",
                status.as_u16(),
                String::from_utf8_lossy(&body).trim()
            ));
            if status == http::StatusCode::OK {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            fatal(format_args!("{url}: {e}"));
            ExitCode::FAILURE
        }
    }
}
