//! No secret in any log line (at trace level), error response or `check` output. Scenarios run
//! with everything captured; then every capture is scanned for every secret. Extend SECRETS
//! and the scenarios when a credential type adds its own (IMS-issued tokens, client secrets).
//!
//! A test binary of its own: the log capture (`support::logs::capture_trace`) is process-wide.

use support::logs::{capture_trace, scan};
use support::*;

const TOKEN: &str = STATIC_TOKEN;
const CLIENT_KEY: &str = "client-key-never-logged-0123";
const WRONG_KEY: &str = "wrong-key-also-never-logged-987";
const RESTRICTED_KEY: &str = "restricted-key-never-logged-456";

fn secrets() -> Vec<(&'static str, &'static str)> {
    vec![
        ("static access token", TOKEN),
        ("client key", CLIENT_KEY),
        ("presented wrong key", WRONG_KEY),
        ("restricted client key", RESTRICTED_KEY),
    ]
}

#[tokio::test]
async fn no_secret_appears_in_trace_logs_or_error_responses() {
    let logs = capture_trace();
    let up = FakeUpstream::start().await;
    let p = static_proxy(Route::new("/api").upstream(up.url()))
        .route(
            Route::new("/down")
                .upstream("http://127.0.0.1:1")
                .extra("max_body_size = 4"),
        )
        .append(&format!(
            "[[clients]]\nname = \"scanner\"\nkey = \"{CLIENT_KEY}\"\n\n\
             [[clients]]\nname = \"restricted\"\nkey = \"{RESTRICTED_KEY}\"\nroutes = [\"/down\"]"
        ))
        .start()
        .await;
    let mut answers = String::new();
    let call = |method: &str, path: &str, headers: &[(&str, &str)], body: &'static [u8]| {
        Req::new(method, proxy_url(&p, path))
            .headers(headers)
            .body(body)
    };
    let bearer = format!("Bearer {CLIENT_KEY}");
    let basic = format!("Basic {}", basic_auth("scanner", CLIENT_KEY));
    let scenarios = vec![
        call("GET", "/api/ok", &[("x-proxy-key", CLIENT_KEY)], b""),
        call("POST", "/api/ok", &[("authorization", &bearer)], b"{}"),
        // Basic is for the forward listener's Proxy-Authorization; here it is refused, and
        // the key it carries must show up nowhere.
        call("GET", "/api/ok", &[("authorization", &basic)], b""),
        call("GET", "/api/ok", &[("x-proxy-key", WRONG_KEY)], b""),
        call(
            "GET",
            "/api/ok",
            &[("authorization", "Bearer wrong-key-also-never-logged-987")],
            b"",
        ),
        call("GET", "/api/ok", &[], b""),
        call("GET", "/down/x", &[("x-proxy-key", CLIENT_KEY)], b""),
        call(
            "POST",
            "/down/x",
            &[("x-proxy-key", CLIENT_KEY)],
            b"too large",
        ),
        call("GET", "/nowhere", &[("x-proxy-key", CLIENT_KEY)], b""),
        call("GET", "/api/ok", &[("x-proxy-key", RESTRICTED_KEY)], b""),
    ];
    let mut statuses = Vec::new();
    for req in scenarios {
        let got = req.send().await;
        statuses.push(got.status.as_u16());
        answers.push_str(&format!(
            "{:?}\n{}\n",
            got.headers,
            String::from_utf8_lossy(&got.body)
        ));
    }
    assert_eq!(statuses, [200, 200, 401, 401, 401, 401, 502, 413, 404, 403]);
    let text = logs.text();
    assert!(
        text.contains("\"caller\":\"scanner\""),
        "the capture must hold the access log"
    );
    // The upstream got the token: the scan would find a leak if one happened.
    assert_eq!(
        up.requests()[0].headers["authorization"],
        format!("Bearer {TOKEN}")
    );
    assert_eq!(
        scan(&text, &secrets()),
        Vec::<&str>::new(),
        "secret in the logs"
    );
    assert_eq!(
        scan(&answers, &secrets()),
        Vec::<&str>::new(),
        "secret in a response"
    );
}

#[test]
fn check_at_trace_level_shows_no_secret() {
    let config = static_proxy(Route::new("/api").upstream("http://127.0.0.1:1")).append(&format!(
        "[[clients]]\nname = \"scanner\"\nkey = \"{CLIENT_KEY}\""
    ));
    let out = Cli::new()
        .arg("check")
        .config(&config.toml())
        .env("RUST_LOG", "trace")
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(all.contains("config ok"), "{all}");
    assert_eq!(scan(&all, &secrets()), Vec::<&str>::new(), "{all}");
}

#[test]
fn the_scanner_finds_a_secret_plain_or_base64_encoded() {
    let s = [("token", "static-token-abc")];
    assert_eq!(
        scan("Authorization: Bearer static-token-abc", &s),
        ["token"]
    );
    assert_eq!(scan("basic c3RhdGljLXRva2VuLWFiYw==", &s), ["token"]);
    assert!(scan("nothing here", &s).is_empty());
}

/// `Basic base64(name:key)`, the way `HTTPS_PROXY=http://name:key@host` sends a client key.
fn basic_auth(name: &str, key: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{name}:{key}"))
}

#[test]
fn the_scanner_finds_a_client_key_sent_as_basic_auth_whatever_the_name_length() {
    let s = [("client key", CLIENT_KEY)];
    // Names of each length modulo 3 put the key at each offset of the encoding.
    for name in ["scanner", "scanner1", "scanner12", "a", ""] {
        let leak = format!("authorization: Basic {}", basic_auth(name, CLIENT_KEY));
        assert_eq!(scan(&leak, &s), ["client key"], "name {name:?}: {leak}");
    }
    let clean = format!(
        "authorization: Basic {}",
        basic_auth("scanner", "another-key-0123456")
    );
    assert!(scan(&clean, &s).is_empty(), "{clean}");
}

#[test]
fn the_scanner_finds_a_secret_in_a_url_safe_base64_segment() {
    use base64::Engine as _;
    let s = [("client key", CLIENT_KEY)];
    // A JWT payload: URL-safe, unpadded, the key at whatever offset its claim puts it.
    let payload = format!("{{\"key\":\"{CLIENT_KEY}\"}}");
    let segment = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload);
    assert_eq!(
        scan(&format!("eyJhbGciOiJIUzI1NiJ9.{segment}.sig"), &s),
        ["client key"]
    );
}

/// A password put in a URL: it must never be printed, whatever the URL is for.
const URL_PASSWORD: &str = "url-password-never-printed-55";

/// An OAuth credential `x` (IMS at `ims_url`) and one route `/api` with `route_keys`.
fn oauth_toml(ims_url: &str, route_keys: &str) -> String {
    format!(
        "[credentials.x]\ntype = \"oauth\"\nclient_id = \"cid\"\nclient_secret = \"s\"\n\
         scopes = [\"openid\"]\nims_url = \"{ims_url}\"\n\n\
         [[routes]]\nprefix = \"/api\"\ncredential = \"x\"\n{route_keys}\n"
    )
}

/// A config, its environment, and the key the error must name.
type Refusal = (String, Vec<(&'static str, String)>, &'static str);

#[test]
fn a_password_in_any_configured_url_is_refused_naming_the_key_and_never_printed() {
    let pw = URL_PASSWORD;
    let ok_upstream = "upstream = \"http://127.0.0.1:1\"";
    let forward = "[forward]\nlisten = \"127.0.0.1:0\"\nca_dir = \"ca\"\n";
    let cases: Vec<Refusal> = vec![
        (
            oauth_toml(&format!("http://user:{pw}@127.0.0.1:1"), ok_upstream),
            vec![],
            "credentials.x.ims_url",
        ),
        (
            oauth_toml("http://127.0.0.1:1", ok_upstream),
            vec![(
                "IMS_PROXY_CREDENTIALS__X__IMS_URL",
                format!("https://user:{pw}@ims.example"),
            )],
            "credentials.x.ims_url",
        ),
        (
            oauth_toml(
                "http://127.0.0.1:1",
                &format!("upstream = \"https://user:{pw}@api.example/base\""),
            ),
            vec![],
            "routes[0].upstream",
        ),
        // No host: the URL does not even parse, and the error still must not repeat it.
        (
            oauth_toml(
                "http://127.0.0.1:1",
                &format!("upstream = \"http://user:{pw}@/x\""),
            ),
            vec![],
            "routes[0].upstream",
        ),
        (
            format!(
                "{}{forward}",
                oauth_toml(
                    "http://127.0.0.1:1",
                    &format!("{ok_upstream}\npublic_url = \"https://user:{pw}@api.example/base\""),
                )
            ),
            vec![],
            "routes[0].public_url",
        ),
    ];
    for (toml, env, key) in &cases {
        for command in ["check", "run"] {
            let mut cli = Cli::new()
                .arg(command)
                .config(toml)
                .env("RUST_LOG", "trace");
            for (k, v) in env {
                cli = cli.env(k, v);
            }
            let out = cli.run();
            let all = format!("{}{}", out.stdout, out.stderr);
            assert_eq!(out.code, Some(2), "{command} with {key}: {all}");
            assert!(
                out.error_line().starts_with(&format!("error: {key}: ")),
                "{command}: {all}"
            );
            assert!(!all.contains(pw), "{command} printed the password: {all}");
            assert!(
                !all.contains("listening"),
                "{command} must not listen: {all}"
            );
        }
    }
}

#[tokio::test]
async fn a_reload_refusing_a_password_in_ims_url_does_not_log_it() {
    let up = FakeUpstream::start().await;
    let ims = format!("http://{}", unused_addr());
    let credential = |ims_url: &str| {
        format!(
            "[credentials.x]\ntype = \"oauth\"\nclient_id = \"cid\"\nclient_secret = \"s\"\n\
             scopes = [\"openid\"]\nims_url = \"{ims_url}\"\n"
        )
    };
    let config = |ims_url: &str| {
        static_proxy(Route::new("/api").upstream(up.url()))
            .section("[server]\nlisten = \"127.0.0.1:0\"")
            .credential(credential(ims_url))
    };
    let p = ChildProxy::spawn(&config(&ims).toml(), &[]);
    let addr = p.addr().await;
    let with_password = ims.replace("http://", &format!("http://user:{URL_PASSWORD}@"));
    p.rewrite_config(&config(&with_password).toml());
    p.signal("HUP");
    let refused = p
        .wait_event(
            "configuration reload refused; the previous configuration keeps serving",
            std::time::Duration::from_secs(20),
        )
        .await;
    assert!(
        refused.to_string().contains("credentials.x.ims_url"),
        "{refused}"
    );
    // The previous configuration serves on, and nothing it says holds the password.
    let got = get(&format!("http://{addr}/api/x")).await;
    assert_eq!(got.status, 200);
    assert!(!p.stderr().contains(URL_PASSWORD), "{}", p.stderr());
}

#[tokio::test]
async fn egress_proxy_credentials_are_sent_to_it_but_never_shown() {
    let user = "egress-user-never-shown";
    let closed = unused_addr();
    let with_credentials = format!("http://{user}:{URL_PASSWORD}@{closed}");
    let config = static_proxy(Route::new("/api").upstream("https://api.example"))
        .client(&format!("proxy = \"{with_credentials}\"\n"));
    let check = Cli::new()
        .arg("check")
        .config(&config.toml())
        .env("RUST_LOG", "trace")
        .run();
    let all = format!("{}{}", check.stdout, check.stderr);
    assert_eq!(check.code, Some(0), "{all}");
    assert!(
        check.stdout.contains(&format!(
            "egress: client.proxy = http://[redacted]@{closed}"
        )),
        "{all}"
    );
    // The same from the environment, which `check` names by variable.
    let env = Cli::new()
        .arg("check")
        .config(&static_proxy(Route::new("/api").upstream("https://api.example")).toml())
        .env("HTTPS_PROXY", &with_credentials)
        .run();
    let env_all = format!("{}{}", env.stdout, env.stderr);
    assert_eq!(env.code, Some(0), "{env_all}");
    assert!(
        env.stdout
            .contains(&format!("HTTPS_PROXY=http://[redacted]@{closed}")),
        "{env_all}"
    );
    // A request through the unreachable egress proxy: the 502 names the proxy, not its
    // credentials; nor does any log line.
    let logs = capture_trace();
    let p = config.start().await;
    let got = get(&proxy_url(&p, "/api/x")).await;
    assert_eq!(got.status, 502, "{:?}", got.body);
    let body = String::from_utf8_lossy(&got.body).into_owned();
    assert!(body.contains(&closed.to_string()), "{body}");
    let secrets = [("egress user", user), ("egress password", URL_PASSWORD)];
    for (what, text) in [
        ("check", all.as_str()),
        ("check with HTTPS_PROXY", env_all.as_str()),
        ("the 502", body.as_str()),
        ("the logs", logs.text().as_str()),
    ] {
        assert_eq!(scan(text, &secrets), Vec::<&str>::new(), "{what}: {text}");
    }
}
