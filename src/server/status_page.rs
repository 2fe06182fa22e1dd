//! The admin listener's status page (`GET /`) and its data (`GET /status.json`): routes,
//! credentials with their state and token expiry, IMS's last error, and each route's request
//! and error rates. The HTML is complete as served (it works without JavaScript, refreshing
//! itself every 10 s); its one inline script re-renders from the JSON and ticks the
//! countdowns. No external asset, and a Content-Security-Policy that allows exactly the inline
//! style and script below, by hash, and fetches from the admin port itself.

use crate::fleet::SharedStatus;
use crate::state::{RouteCounts, Snapshot};
use crate::token::CredentialState;
use base64::Engine as _;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

const SCRIPT: &str = include_str!("status_page/page.js");
const STYLE: &str = include_str!("status_page/page.css");

/// How often the admin listener samples the routes' counts for the rates.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// Rates are over this much of the recent past (less while the listener is younger).
const RATE_WINDOW: Duration = Duration::from_secs(60);
/// Below this, a rate would be mostly noise: none is given yet.
const MIN_RATE_WINDOW: Duration = Duration::from_secs(1);

/// Allows the page's own inline style and script (by hash, so nothing injected could run),
/// fetches from the admin listener itself, and nothing else.
pub static CONTENT_SECURITY_POLICY: LazyLock<String> = LazyLock::new(|| {
    format!(
        "default-src 'none'; style-src '{}'; script-src '{}'; connect-src 'self'; \
         img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        sha256_source(STYLE),
        sha256_source(SCRIPT)
    )
});

fn sha256_source(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    format!(
        "sha256-{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// The routes' counts at one moment.
struct Sample {
    at: Instant,
    counts: BTreeMap<String, RouteCounts>,
}

/// The last minute of samples of every route's counts: the rates are the difference between
/// now and the oldest. Written every [`SAMPLE_EVERY`] and read per page view, off the request
/// path, so a mutex is fine here.
#[derive(Default)]
pub struct Rates {
    samples: Mutex<VecDeque<Sample>>,
}

impl Rates {
    pub fn sample(&self, snapshot: &Snapshot) {
        let now = Instant::now();
        let mut samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        samples.push_back(Sample {
            at: now,
            counts: counts(snapshot),
        });
        while samples
            .front()
            .is_some_and(|s| now.saturating_duration_since(s.at) > RATE_WINDOW)
        {
            samples.pop_front();
        }
    }

    /// The oldest sample within the window, and how long ago it was taken.
    fn baseline(&self, now: Instant) -> Option<(Duration, BTreeMap<String, RouteCounts>)> {
        let samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        let oldest = samples.front()?;
        let age = now.saturating_duration_since(oldest.at);
        (age >= MIN_RATE_WINDOW).then(|| (age, oldest.counts.clone()))
    }
}

fn counts(snapshot: &Snapshot) -> BTreeMap<String, RouteCounts> {
    snapshot
        .routes
        .iter()
        .map(|r| (r.label().to_string(), r.stats.counts()))
        .collect()
}

#[derive(Debug, Serialize)]
pub struct Status {
    /// As `/readyz` decides: no shutdown under way and every credential holds a token.
    pub ready: bool,
    /// How far back the rates reach; `None` until the admin listener has a second of samples.
    pub rate_window_seconds: Option<f64>,
    pub routes: Vec<RouteRow>,
    pub credentials: Vec<CredentialRow>,
    /// `[shared]`: whether this replica shares tokens and limits with its fleet right now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared: Option<SharedStatus>,
    /// Each credential's `quota`, for those that set one.
    pub quotas: Vec<QuotaRow>,
    /// Credentials and upstream hosts answered locally after an upstream 429, now.
    pub cool_downs: Vec<CoolDownRow>,
}

#[derive(Debug, Serialize)]
pub struct QuotaRow {
    pub credential: String,
    pub per_second: f64,
    pub burst: u32,
}

#[derive(Debug, Serialize)]
pub struct CoolDownRow {
    pub credential: String,
    pub host: String,
    /// Whole seconds, rounded up (what a caller's `Retry-After` says now).
    pub remaining_seconds: u64,
}

#[derive(Debug, Serialize)]
pub struct RouteRow {
    pub prefix: String,
    pub upstream: String,
    pub api: Option<&'static str>,
    pub credential: String,
    /// Since the route was configured.
    pub requests: u64,
    /// Answers with a 5xx status, since the route was configured.
    pub errors: u64,
    pub requests_per_second: Option<f64>,
    pub errors_per_second: Option<f64>,
    /// The last upstream 401, 403 and 429 passed on (Adobe refusing the proxy's credential,
    /// org or quota, which `errors` does not count), by status.
    pub upstream_refusals: Vec<RefusalRow>,
}

#[derive(Debug, Serialize)]
pub struct RefusalRow {
    pub status: u16,
    /// Adobe's `error_code` from the body (`"403025"`), when it had one.
    pub error_code: Option<String>,
    /// When the last one arrived: RFC 3339, UTC, and seconds since the Unix epoch.
    pub at: String,
    pub at_unix: u64,
    /// How many with this status since the route was configured.
    pub count: u64,
}

impl RefusalRow {
    fn from(r: &crate::state::Refusal) -> RefusalRow {
        RefusalRow {
            status: r.status,
            error_code: r.error_code.clone(),
            at: humantime::format_rfc3339_seconds(r.at).to_string(),
            at_unix: r
                .at
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            count: r.count,
        }
    }

    /// "403 403025 ×2, last 2026-12-06T16:00:00Z", as the page's script writes it.
    fn text(&self) -> String {
        let mut t = self.status.to_string();
        if let Some(c) = &self.error_code {
            t.push(' ');
            t.push_str(c);
        }
        format!("{t} \u{d7}{}, last {}", self.count, self.at)
    }
}

#[derive(Debug, Serialize)]
pub struct CredentialRow {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub state: CredentialState,
    /// `None` while there is no token, and for static tokens, which never expire here.
    pub expires_in_seconds: Option<u64>,
    /// IMS's `error` and `error_description` (or why IMS could not be asked); never a secret.
    pub last_error: Option<String>,
}

impl Status {
    pub fn read(snapshot: &Snapshot, rates: &Rates, draining: bool) -> Status {
        let now = Instant::now();
        let baseline = rates.baseline(now);
        let per_second = |now: u64, then: u64| {
            baseline.as_ref().map(|(age, _)| {
                let r = now.saturating_sub(then) as f64 / age.as_secs_f64();
                (r * 1000.0).round() / 1000.0
            })
        };
        let mut routes: Vec<RouteRow> = snapshot
            .routes
            .iter()
            .map(|r| {
                let now = r.stats.counts();
                let then = baseline
                    .as_ref()
                    .and_then(|(_, b)| b.get(r.label()).copied())
                    .unwrap_or_default();
                RouteRow {
                    prefix: r.label().to_string(),
                    upstream: r.upstream.to_string(),
                    api: r.api.map(|a| a.name()),
                    credential: r.credential.name.clone(),
                    requests: now.requests,
                    errors: now.errors,
                    requests_per_second: per_second(now.requests, then.requests),
                    errors_per_second: per_second(now.errors, then.errors),
                    upstream_refusals: r.stats.refusals().iter().map(RefusalRow::from).collect(),
                }
            })
            .collect();
        routes.sort_by(|a, b| a.prefix.cmp(&b.prefix));
        let credentials: Vec<CredentialRow> = snapshot
            .credentials
            .iter()
            .map(|(name, c)| {
                let status = c.status();
                CredentialRow {
                    name: name.clone(),
                    kind: c.kind.to_string(),
                    state: status.state,
                    expires_in_seconds: status.expires_in_seconds,
                    last_error: status.last_error,
                }
            })
            .collect();
        let quotas = snapshot
            .quotas
            .iter()
            .map(|(name, q)| QuotaRow {
                credential: name.clone(),
                per_second: q.rate.per_second,
                burst: q.rate.burst,
            })
            .collect();
        let mut cool_downs: Vec<CoolDownRow> = snapshot
            .fleet
            .cooldowns()
            .into_iter()
            .map(|c| CoolDownRow {
                credential: c.key.credential.name.to_string(),
                host: c.key.host.to_string(),
                remaining_seconds: c.remaining.as_secs_f64().ceil() as u64,
            })
            .collect();
        cool_downs.sort_by(|a, b| (&a.credential, &a.host).cmp(&(&b.credential, &b.host)));
        Status {
            // As `/readyz`: a token an upstream rejected is still a token (README, "Admin
            // listener").
            ready: !draining
                && credentials
                    .iter()
                    .all(|c| matches!(c.state, CredentialState::Ok | CredentialState::Rejected)),
            rate_window_seconds: baseline.map(|(age, _)| (age.as_secs_f64() * 10.0).round() / 10.0),
            routes,
            credentials,
            shared: snapshot.shared.as_ref().map(|s| s.status()),
            quotas,
            cool_downs,
        }
    }

    pub fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    /// The page, every value from the config or from IMS escaped.
    pub fn html(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        let (ready, ready_class) = if self.ready {
            ("ready", "ok")
        } else {
            ("not ready", "not_ready")
        };
        let window = match self.rate_window_seconds {
            Some(s) => format!("the last {} s", s.round()),
            None => "collecting".into(),
        };
        let _ = write!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <noscript><meta http-equiv=\"refresh\" content=\"10\"></noscript>\n\
             <title>ims-proxy status</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
             <h1>ims-proxy {version}</h1>\n\
             <p>Readiness: <span id=\"ready\" class=\"state state-{ready_class}\">{ready}</span>\
             \u{a0}\u{b7} <span id=\"refreshed\" class=\"note\">as served; refreshes itself</span></p>\n\
             <h2>Routes</h2>\n\
             <p class=\"note\">Requests and errors (answers with a 5xx status) since the route was \
             configured; per second over <span id=\"window\">{window}</span> \
             (sampled every {every} s). Upstream refusals: the last 401, 403 and 429 the upstream \
             answered, with Adobe's error code, how many, and when (UTC).</p>\n\
             <table>\n<thead><tr><th>prefix</th><th>upstream</th><th>api</th><th>credential</th>\
             <th class=\"num\">requests</th><th class=\"num\">errors</th>\
             <th class=\"num\">requests/s</th><th class=\"num\">errors/s</th>\
             <th>upstream refusals</th></tr></thead>\n\
             <tbody id=\"routes\">\n",
            version = env!("CARGO_PKG_VERSION"),
            every = SAMPLE_EVERY.as_secs(),
        );
        for r in &self.routes {
            let _ = writeln!(
                out,
                "<tr><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td>{}</td><td>{}</td>\
                 <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
                 <td class=\"num\">{}</td>{}</tr>",
                escape(&r.prefix),
                escape(&r.upstream),
                r.api.unwrap_or(DASH),
                escape(&r.credential),
                r.requests,
                r.errors,
                rate(r.requests_per_second),
                rate(r.errors_per_second),
                refusals_cell(&r.upstream_refusals),
            );
        }
        out.push_str("</tbody>\n</table>\n");
        if let Some(sh) = &self.shared {
            let detail = match (&sh.error, sh.state) {
                (Some(e), "down") => format!(
                    " \u{b7} tokens and limits are this replica's own until it answers: {}",
                    escape(e)
                ),
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "<p>Shared store (<span class=\"mono\">{}</span>): \
                 <span id=\"shared\" class=\"state state-{}\">{}</span>{detail}</p>",
                escape(&sh.key_prefix),
                if sh.state == "up" { "ok" } else { "not_ready" },
                sh.state,
            );
        }
        out.push_str(
            "<h2>Credentials</h2>\n\
             <table>\n<thead><tr><th>name</th><th>type</th><th>state</th>\
             <th class=\"num\">token expires in</th><th>last error</th></tr></thead>\n\
             <tbody id=\"credentials\">\n",
        );
        for c in &self.credentials {
            let state = state_name(c.state);
            let held = matches!(c.state, CredentialState::Ok | CredentialState::Rejected);
            let expiry = match (held, c.expires_in_seconds) {
                (true, Some(s)) => format!(
                    "<td class=\"num countdown\" data-expires-in=\"{s}\">{}</td>",
                    duration(s)
                ),
                (true, None) => "<td class=\"num countdown\">never</td>".into(),
                _ => format!("<td class=\"num countdown\">{DASH}</td>"),
            };
            let error = match &c.last_error {
                Some(e) => format!("<td class=\"error\">{}</td>", escape(e)),
                None => format!("<td>{DASH}</td>"),
            };
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td><span class=\"state state-{state}\">{state}</span></td>\
                 {expiry}{error}</tr>",
                escape(&c.name),
                escape(&c.kind),
            );
        }
        out.push_str(
            "</tbody>\n</table>\n<h2>Quotas and cool-downs</h2>\n\
             <p class=\"note\">A credential's quota counts the requests of all its routes; after an \
             upstream 429, its requests to that host are answered here with 429 until the \
             cool-down ends.</p>\n\
             <table>\n<thead><tr><th>credential</th><th class=\"num\">per second</th>\
             <th class=\"num\">burst</th></tr></thead>\n<tbody id=\"quotas\">\n",
        );
        for q in &self.quotas {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                escape(&q.credential),
                q.per_second,
                q.burst,
            );
        }
        out.push_str(
            "</tbody>\n</table>\n\
             <table>\n<thead><tr><th>cooling down</th><th>upstream host</th>\
             <th class=\"num\">ends in</th></tr></thead>\n<tbody id=\"cool_downs\">\n",
        );
        for c in &self.cool_downs {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td class=\"mono\">{}</td>\
                 <td class=\"num countdown\" data-expires-in=\"{s}\">{}</td></tr>",
                escape(&c.credential),
                escape(&c.host),
                duration(c.remaining_seconds),
                s = c.remaining_seconds,
            );
        }
        let _ = write!(
            out,
            "</tbody>\n</table>\n<p class=\"note\">This page shows no secret and no token; \
             the same data is at <a href=\"status.json\">status.json</a>.</p>\n\
             <script>{SCRIPT}</script>\n</body>\n</html>\n"
        );
        out
    }
}

const DASH: &str = "\u{2013}";

fn state_name(state: CredentialState) -> &'static str {
    match state {
        CredentialState::Ok => "ok",
        CredentialState::Refreshing => "refreshing",
        CredentialState::Failing => "failing",
        CredentialState::Rejected => "rejected",
    }
}

/// One line per status, as the page's script writes them.
fn refusals_cell(rows: &[RefusalRow]) -> String {
    if rows.is_empty() {
        return format!("<td>{DASH}</td>");
    }
    let lines: Vec<String> = rows.iter().map(|r| escape(&r.text())).collect();
    format!("<td class=\"error refusals\">{}</td>", lines.join("<br>"))
}

fn rate(r: Option<f64>) -> String {
    r.map_or_else(|| DASH.to_string(), |r| format!("{r:.2}"))
}

/// As the page's script writes it: "23h 55m 12s".
fn duration(seconds: u64) -> String {
    let (h, m, s) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s}s"),
        _ => format!("{h}h {m}m {s}s"),
    }
}

/// Text made safe for HTML element content and quoted attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_leaves_no_markup_and_no_way_out_of_an_attribute() {
        assert_eq!(
            escape(r#"<img src=x onerror='a()'> & "q""#),
            "&lt;img src=x onerror=&#39;a()&#39;&gt; &amp; &quot;q&quot;"
        );
    }

    #[test]
    fn durations_read_as_the_pages_script_writes_them() {
        assert_eq!(duration(7), "7s");
        assert_eq!(duration(61), "1m 1s");
        assert_eq!(duration(86_112), "23h 55m 12s");
    }

    #[test]
    fn the_policy_names_the_hashes_of_the_inline_style_and_script() {
        let csp = CONTENT_SECURITY_POLICY.as_str();
        assert!(csp.starts_with("default-src 'none'; "), "{csp}");
        assert!(csp.contains(&format!("script-src '{}'", sha256_source(SCRIPT))));
        assert!(csp.contains(&format!("style-src '{}'", sha256_source(STYLE))));
        assert!(!csp.contains("unsafe"), "{csp}");
    }
}
