//! The admin listener's status page (`GET /`) and its JSON (`GET /status.json`): routes,
//! credentials with state and token expiry, IMS's last error, per-route counts and rates; no
//! secret, no token, nothing from config or IMS interpreted as markup.
//!
//! The browser tests run Debian's Chromium headless (`apt-get install -y
//! --no-install-recommends chromium`; `.ci/run` installs it). Without Chromium they fail;
//! set `IMS_PROXY_SKIP_BROWSER=1` to skip them, and only them, where it cannot be installed.

use std::time::Duration;
use support::ims::{Ims, OAUTH_SECRET};
use support::*;

const DEADLINE: Duration = Duration::from_secs(10);
/// What the hostile IMS answers as its `error_description`.
const HOSTILE: &str = r#"<script>alert(1)</script><b id="injected" onclick="x()">&</b>"#;

/// A proxy with an admin listener and three IMS credentials: `good` (the fake IMS issues its
/// token), `bad` (a wrong client secret, which the fake IMS refuses in Adobe's error JSON) and
/// `hostile` (an IMS whose error_description is markup), each on a Cloud Manager route.
struct Setup {
    ims: Ims,
    /// Holds the hostile IMS open.
    _hostile_ims: FakeUpstream,
    up: FakeUpstream,
    proxy: ims_proxy::Running,
}

impl Setup {
    async fn start() -> Setup {
        let ims = Ims::start().await;
        let hostile_ims = FakeUpstream::responding(|_| {
            let body = serde_json::json!({"error": "invalid_client", "error_description": HOSTILE});
            http::Response::builder()
                .status(400)
                .header("content-type", "application/json")
                .body(full(body.to_string()))
                .expect("response")
        })
        .await;
        let up = FakeUpstream::start().await;
        let hostile = ims
            .oauth_credential("hostile", "")
            .replace(&ims.url(), &hostile_ims.url());
        let proxy = ProxyToml::new()
            .admin()
            .credential(ims.oauth_credential("good", ""))
            .credential(
                ims.oauth_credential("bad", "")
                    .replace(OAUTH_SECRET, "wrong-secret"),
            )
            .credential(hostile)
            .route(
                Route::new("/cm")
                    .upstream(up.url())
                    .api("cloud-manager")
                    .credential("good"),
            )
            .route(
                Route::new("/broken")
                    .upstream(up.url())
                    .api("cloud-manager")
                    .credential("bad"),
            )
            .route(
                Route::new("/hostile")
                    .upstream(up.url())
                    .api("cloud-manager")
                    .credential("hostile"),
            )
            .start()
            .await;
        Setup {
            ims,
            _hostile_ims: hostile_ims,
            up,
            proxy,
        }
    }

    fn admin(&self, path: &str) -> String {
        admin_url(&self.proxy, path)
    }

    /// `/status.json` once `good` holds a token and both others are failing.
    async fn settled(&self) -> serde_json::Value {
        let url = self.admin("/status.json");
        poll(DEADLINE, || async {
            let json = get(&url).await.json();
            let state = |name: &str| {
                json["credentials"]
                    .as_array()
                    .and_then(|cs| cs.iter().find(|c| c["name"] == name))
                    .map(|c| c["state"].clone())
            };
            let settled = state("good") == Some("ok".into())
                && state("bad") == Some("failing".into())
                && state("hostile") == Some("failing".into());
            settled.then_some(json)
        })
        .await
        .expect("good ok, bad and hostile failing")
    }

    /// The token the fake IMS issued to `good`.
    fn token(&self) -> String {
        let issued = self.ims.fake.issued_tokens();
        assert_eq!(issued.len(), 1, "one token issued");
        issued[0].clone()
    }
}

fn credential<'a>(json: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    json["credentials"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("credential {name} in {json}"))
}

fn route<'a>(json: &'a serde_json::Value, prefix: &str) -> &'a serde_json::Value {
    json["routes"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["prefix"] == prefix))
        .unwrap_or_else(|| panic!("route {prefix} in {json}"))
}

#[tokio::test]
async fn the_page_lists_every_route_with_its_upstream_and_credential() {
    let s = Setup::start().await;
    s.settled().await;
    let page = get(&s.admin("/")).await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let html = page.text();
    for (prefix, credential) in [("/cm", "good"), ("/broken", "bad"), ("/hostile", "hostile")] {
        let row = format!(
            "<tr><td class=\"mono\">{prefix}</td><td class=\"mono\">{}</td>\
             <td>cloud-manager</td><td>{credential}</td>",
            s.up.url()
        );
        assert!(html.contains(&row), "{row} in\n{html}");
    }
}

#[tokio::test]
async fn a_credential_whose_ims_call_fails_shows_as_failing_with_imss_error() {
    let s = Setup::start().await;
    let json = s.settled().await;
    let bad = credential(&json, "bad");
    assert_eq!(bad["type"], "oauth");
    assert_eq!(bad["expires_in_seconds"], serde_json::Value::Null);
    let error = bad["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("invalid_client"), "{error}");
    let html = get(&s.admin("/")).await.text();
    assert!(
        html.contains(
            "<tr><td>bad</td><td>oauth</td><td><span class=\"state state-failing\">failing</span>"
        ),
        "{html}"
    );
    assert!(html.contains(error), "{error} in\n{html}");
    assert!(
        html.contains("state-not_ready\">not ready</span>"),
        "{html}"
    );
}

#[tokio::test]
async fn a_working_credential_shows_ok_with_its_tokens_remaining_lifetime() {
    let s = Setup::start().await;
    let json = s.settled().await;
    let secs = credential(&json, "good")["expires_in_seconds"]
        .as_u64()
        .expect("an expiry");
    assert!(secs > 80_000 && secs < 86_400, "{secs}");
    let html = get(&s.admin("/")).await.text();
    assert!(
        html.contains("<span class=\"state state-ok\">ok</span></td><td class=\"num countdown\" data-expires-in=\""),
        "{html}"
    );
}

#[tokio::test]
async fn a_hostile_error_description_from_ims_is_shown_as_text_not_markup() {
    let s = Setup::start().await;
    s.settled().await;
    let html = get(&s.admin("/")).await.text();
    assert!(
        html.contains(
            "&lt;script&gt;alert(1)&lt;/script&gt;&lt;b id=&quot;injected&quot; \
             onclick=&quot;x()&quot;&gt;&amp;&lt;/b&gt;"
        ),
        "{html}"
    );
    assert!(!html.contains("alert(1)</script>"), "{html}");
    assert!(!html.contains("id=\"injected\""), "{html}");
    assert_eq!(html.matches("<script>").count(), 1, "only the page's own");
}

#[tokio::test]
async fn neither_the_page_nor_its_json_contains_a_token_or_a_client_secret() {
    let s = Setup::start().await;
    s.settled().await;
    let token = s.token();
    for path in ["/", "/status.json"] {
        let body = get(&s.admin(path)).await.text();
        for secret in [token.as_str(), OAUTH_SECRET, "wrong-secret"] {
            assert!(!body.contains(secret), "{path} shows {secret}");
        }
    }
}

#[tokio::test]
async fn the_page_forbids_external_loads_and_neither_answer_may_be_cached() {
    let s = Setup::start().await;
    let page = get(&s.admin("/")).await;
    let csp = page.header("content-security-policy").unwrap_or_default();
    assert!(csp.starts_with("default-src 'none'; "), "{csp}");
    assert!(csp.contains("connect-src 'self'"), "{csp}");
    assert!(csp.contains("script-src 'sha256-"), "{csp}");
    assert!(!csp.contains("unsafe"), "{csp}");
    assert!(!csp.contains("http"), "no host allowed: {csp}");
    let html = page.text();
    assert!(
        !html.contains(" src="),
        "no external script or image: {html}"
    );
    assert!(!html.contains("<link"), "no external style sheet: {html}");
    let json = get(&s.admin("/status.json")).await;
    assert_eq!(json.header("content-type"), Some("application/json"));
    for got in [&page, &json] {
        assert_eq!(got.header("cache-control"), Some("no-store"));
    }
}

#[tokio::test]
async fn without_javascript_the_page_reloads_itself_every_10_seconds() {
    let s = Setup::start().await;
    let html = get(&s.admin("/")).await.text();
    assert!(
        html.contains("<noscript><meta http-equiv=\"refresh\" content=\"10\"></noscript>"),
        "{html}"
    );
}

#[tokio::test]
async fn accept_application_json_on_the_root_gives_the_json() {
    let s = Setup::start().await;
    let got = Req::get(s.admin("/"))
        .header("accept", "application/json")
        .send()
        .await;
    assert_eq!(got.header("content-type"), Some("application/json"));
    assert_eq!(route(&got.json(), "/cm")["credential"], "good");
}

#[tokio::test]
async fn requests_and_5xx_errors_are_counted_and_rated_per_route() {
    let s = Setup::start().await;
    s.settled().await;
    for _ in 0..2 {
        assert_eq!(get(&proxy_url(&s.proxy, "/cm/x")).await.status, 200);
    }
    assert_eq!(get(&proxy_url(&s.proxy, "/broken/x")).await.status, 503);
    let url = s.admin("/status.json");
    let json = poll(DEADLINE, || async {
        let json = get(&url).await.json();
        (!json["rate_window_seconds"].is_null()).then_some(json)
    })
    .await
    .expect("rates once the admin listener has a second of samples");
    let (cm, broken) = (route(&json, "/cm"), route(&json, "/broken"));
    assert_eq!(
        (cm["requests"].as_u64(), cm["errors"].as_u64()),
        (Some(2), Some(0))
    );
    assert_eq!(
        (broken["requests"].as_u64(), broken["errors"].as_u64()),
        (Some(1), Some(1))
    );
    let rate = |r: &serde_json::Value, key: &str| r[key].as_f64().unwrap_or(-1.0);
    assert!(rate(cm, "requests_per_second") > 0.0, "{json}");
    assert_eq!(rate(cm, "errors_per_second"), 0.0, "{json}");
    assert!(rate(broken, "errors_per_second") > 0.0, "{json}");
    let hostile = route(&json, "/hostile");
    assert_eq!(hostile["requests"].as_u64(), Some(0));
}

/// Chromium renders the page, its script refreshes it from the JSON under the page's CSP, and
/// what the operator needs is there: the routes, the failing credential as failing, a
/// countdown that ticks; the token is not.
#[tokio::test]
async fn in_a_real_browser_the_page_shows_routes_a_failing_credential_and_a_ticking_countdown_but_no_token(
) {
    if browser::skipped() {
        return;
    }
    let s = Setup::start().await;
    s.settled().await;
    let token = s.token();
    let dom = browser::dump_dom(&s.admin("/"), Duration::from_secs(3)).await;
    assert!(refreshed(&dom), "the script ran and refreshed:\n{dom}");
    for prefix in ["/cm", "/broken", "/hostile"] {
        assert!(
            dom.contains(&format!("<td class=\"mono\">{prefix}</td>")),
            "{dom}"
        );
    }
    assert!(
        dom.contains(
            "<tr><td>bad</td><td>oauth</td><td><span class=\"state state-failing\">failing</span>"
        ),
        "{dom}"
    );
    let (given, shown) = countdown(&dom).unwrap_or_else(|| panic!("a countdown in\n{dom}"));
    assert!(given > 80_000, "{given}");
    assert!(
        shown < given,
        "it ticked in the page's 3 s: {shown} of {given}"
    );
    assert!(!dom.contains(&token), "the token is on the page");
}

/// After the script re-rendered the tables from the JSON, IMS's hostile text is still text:
/// no element it names exists.
#[tokio::test]
async fn in_a_real_browser_a_hostile_error_description_stays_text() {
    if browser::skipped() {
        return;
    }
    let s = Setup::start().await;
    s.settled().await;
    let dom = browser::dump_dom(&s.admin("/"), Duration::from_secs(3)).await;
    assert!(refreshed(&dom), "the script ran and refreshed:\n{dom}");
    assert!(
        dom.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{dom}"
    );
    // A text node serialises its quotes as they are; an element would open with `<b `.
    assert!(dom.contains("&lt;b id=\"injected\""), "{dom}");
    assert!(!dom.contains("<b id=\"injected\""), "{dom}");
}

/// Whether the page's script replaced the served note with its own (the script's source
/// holds the word too, so the element is what counts).
fn refreshed(dom: &str) -> bool {
    dom.contains("<span id=\"refreshed\" class=\"note\">refreshed ")
}

/// The ticking countdown cell (one the script armed) in a dumped DOM: the seconds it was
/// given and the seconds it shows, read from "23h 59m 24s".
fn countdown(dom: &str) -> Option<(u64, u64)> {
    let cell = &dom[dom.find("data-expires-in=\"")? + "data-expires-in=\"".len()..];
    let given = cell[..cell.find('"')?].parse().ok()?;
    let shown = &cell[cell.find('>')? + 1..];
    let shown = &shown[..shown.find('<')?];
    let mut seconds = 0;
    for part in shown.split_whitespace() {
        let (n, unit) = part.split_at(part.len() - 1);
        let n: u64 = n.parse().ok()?;
        seconds += n * match unit {
            "h" => 3600,
            "m" => 60,
            "s" => 1,
            _ => return None,
        };
    }
    Some((given, seconds))
}

/// The sandbox's own config (OAuth routes only) with the org id replaced by a wrong one and the
/// route prefixes under `/{tag}/`, so each test's metrics series are its own.
fn sandbox_config_with_a_wrong_org(s: &support::sandbox::Local, tag: &str) -> String {
    let id = support::sandbox::identity();
    id.proxy_toml(&s.url(), "127.0.0.1:0", "127.0.0.1:0", s.dir.path(), false)
        .replace(
            &format!("org_id = \"{}\"", id.org_id),
            "org_id = \"0000000000000000DEADBEEF@AdobeOrg\"",
        )
        .replace("prefix = \"/oauth/", &format!("prefix = \"/{tag}/"))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[tokio::test]
async fn an_upstream_403_shows_on_the_page_and_in_status_json_with_adobes_error_code_and_when() {
    let s = support::sandbox::start_sandbox().await;
    let p = start_proxy(&sandbox_config_with_a_wrong_org(&s, "org403")).await;
    let before = unix_now();
    let got = get(&proxy_url(&p, "/org403/privacy/jobs?regulation=gdpr")).await;
    assert_eq!(got.status, 403, "{}", got.text());
    assert_eq!(got.json()["error_code"], "403025");
    let after = unix_now();
    let url = admin_url(&p, "/status.json");
    let json = poll(DEADLINE, || async {
        let json = get(&url).await.json();
        let seen = route(&json, "/org403/privacy")["upstream_refusals"]
            .as_array()
            .is_some_and(|r| !r.is_empty());
        seen.then_some(json)
    })
    .await
    .expect("the refusal is recorded once its body has been read");
    let privacy = route(&json, "/org403/privacy");
    assert_eq!(privacy["errors"], 0, "5xx only: {privacy}");
    let refusal = &privacy["upstream_refusals"][0];
    assert_eq!(refusal["status"], 403, "{refusal}");
    assert_eq!(refusal["error_code"], "403025", "{refusal}");
    assert_eq!(refusal["count"], 1, "{refusal}");
    let at = refusal["at_unix"].as_u64().expect("at_unix");
    assert!(
        (before..=after).contains(&at),
        "{before} <= {at} <= {after}"
    );
    let at_text = refusal["at"].as_str().expect("at").to_string();
    assert!(at_text.ends_with('Z') && at_text.len() == 20, "{at_text}");
    assert_eq!(
        route(&json, "/org403/campaign")["upstream_refusals"],
        serde_json::json!([])
    );
    // The credential itself is fine: IMS issues its tokens.
    assert_eq!(credential(&json, "oauth")["state"], "ok");
    let page = get(&admin_url(&p, "/")).await.text();
    assert!(
        page.contains(&format!("403 403025 \u{d7}1, last {at_text}")),
        "{page}"
    );
    let metrics = metrics_text(p.admin_addr.expect("admin")).await;
    let series = |route: &str, status: &str| {
        metric_value(
            &metrics,
            "ims_proxy_upstream_refusals_total",
            &[("route", route), ("status", status)],
        )
    };
    assert_eq!(series("/org403/privacy", "403"), Some(1.0), "{metrics}");
    assert_eq!(series("/org403/privacy", "401"), Some(0.0), "{metrics}");
    assert_eq!(series("/org403/campaign", "403"), Some(0.0), "{metrics}");
}

#[tokio::test]
async fn a_credential_whose_fresh_token_the_upstream_rejects_shows_as_rejected_until_one_is_accepted(
) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let ims = Ims::start().await;
    let reject = Arc::new(AtomicBool::new(true));
    let r = reject.clone();
    let up = FakeUpstream::responding(move |_| {
        let (status, body) = if r.load(Ordering::SeqCst) {
            (
                401,
                r#"{"error_code":"401013","message":"Oauth token is not valid"}"#,
            )
        } else {
            (200, r#"{"ok":true}"#)
        };
        http::Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(full(body))
            .expect("response")
    })
    .await;
    let p = ProxyToml::new()
        .admin()
        .credential(ims.oauth_credential("picky", ""))
        .route(
            Route::new("/picky")
                .upstream(up.url())
                .api("cloud-manager")
                .credential("picky"),
        )
        .start()
        .await;
    let got = get(&proxy_url(&p, "/picky/api/programs")).await;
    assert_eq!(got.status, 401, "{}", got.text());
    assert_eq!(up.count(), 2, "sent, then replayed once with a fresh token");
    assert_eq!(
        ims.calls(),
        2,
        "the replay's token was fetched after the 401"
    );
    let url = admin_url(&p, "/status.json");
    let json = poll(DEADLINE, || async {
        let json = get(&url).await.json();
        (credential(&json, "picky")["state"] == "rejected").then_some(json)
    })
    .await
    .expect("the credential shows as rejected");
    let error = credential(&json, "picky")["last_error"]
        .as_str()
        .expect("last_error")
        .to_string();
    assert!(
        error.contains("route /picky answered 401 error_code 401013"),
        "{error}"
    );
    assert!(credential(&json, "picky")["expires_in_seconds"]
        .as_u64()
        .is_some());
    assert_eq!(
        json["ready"], true,
        "a rejected token is still a token: {json}"
    );
    let ready = get(&admin_url(&p, "/readyz")).await;
    assert_eq!(ready.status, 200, "{}", ready.text());
    assert_eq!(ready.json()["credentials"]["picky"]["state"], "rejected");
    assert_eq!(
        route(&json, "/picky")["upstream_refusals"][0]["error_code"],
        "401013"
    );

    reject.store(false, Ordering::SeqCst);
    let got = get(&proxy_url(&p, "/picky/api/programs")).await;
    assert_eq!(got.status, 200, "{}", got.text());
    let json = get(&url).await.json();
    assert_eq!(credential(&json, "picky")["state"], "ok", "{json}");
    assert!(credential(&json, "picky")["last_error"].is_null(), "{json}");
}
