//! A configuration that cannot silently mislead (issue 15): scopes, relative paths, the
//! environment's overrides, `check`'s refusals, and the command line's manners, through the
//! real binary.

use std::io::Read;
use std::process::Stdio;
use support::ims::*;
use support::*;

const STATIC: &str = r#"
[credentials.c]
type = "static"
access_token = "secret-token-value"
client_id = "cid"
org_id = "O@AdobeOrg"

[[routes]]
prefix = "/campaign"
api = "campaign"
tenant = "acme"
credential = "c"
"#;

/// An oauth credential serving `apis`, with `extra` in its table; nothing calls IMS.
fn oauth_config(apis: &[&str], extra: &str) -> String {
    let mut toml = format!(
        "[credentials.adobe]\ntype = \"oauth\"\nclient_id = \"cid\"\nclient_secret = \"s\"\n\
         org_id = \"O@AdobeOrg\"\n{extra}\n"
    );
    for api in apis {
        toml.push_str(&format!(
            "\n[[routes]]\nprefix = \"/{api}\"\napi = \"{api}\"\ncredential = \"adobe\"\n"
        ));
        if *api == "campaign" {
            toml.push_str("tenant = \"acme\"\n");
        }
    }
    toml
}

fn check(toml: &str) -> Output {
    Cli::new().arg("check").config(toml).run()
}

fn assert_refused(out: &Output, expected: &[&str]) {
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    let line = out.error_line();
    for e in expected {
        assert!(line.contains(e), "expected {e:?} in {:?}", out.stderr);
    }
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}

// --- 1. scopes ------------------------------------------------------------------------------

#[test]
fn oauth_scopes_its_routes_presets_cannot_supply_are_a_config_error() {
    let out = check(&oauth_config(&["campaign", "privacy", "cloud-manager"], ""));
    assert_refused(
        &out,
        &[
            "error: credentials.adobe.scopes: required",
            "api = \"campaign\"",
            "Developer Console",
        ],
    );
}

#[test]
fn check_prints_the_scopes_each_credential_will_request() {
    let out = check(&oauth_config(&["cloud-manager"], ""));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout
            .contains(&format!("scopes={}", CM_SCOPES.join(","))),
        "{}",
        out.stdout
    );
    let listed = check(&oauth_config(
        &["campaign", "cloud-manager"],
        "scopes = [\"openid\", \"campaign_sdk\"]",
    ));
    assert_eq!(listed.code, Some(0), "{}", listed.stderr);
    assert!(
        listed.stdout.contains("scopes=openid,campaign_sdk"),
        "{}",
        listed.stdout
    );
}

// --- 2. relative paths ----------------------------------------------------------------------

#[test]
fn relative_paths_resolve_against_the_config_files_directory() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let sub = dir.path().join("etc");
    std::fs::create_dir(&sub).expect("mkdir");
    let token = sub.join("token.txt");
    std::fs::write(&token, "tok\n").expect("write");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let toml = STATIC.replace(
        "access_token = \"secret-token-value\"",
        "access_token_file = \"./token.txt\"",
    );
    std::fs::write(sub.join("proxy.toml"), toml).expect("write");
    // Run from the parent directory, naming the config relatively: nothing is found from the
    // working directory.
    let mut cmd = Cli::new()
        .args(["check", "--config", "etc/proxy.toml"])
        .command();
    cmd.current_dir(dir.path());
    let out = Output::from(cmd.output().expect("run"));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let real = std::fs::canonicalize(&sub).expect("canonical");
    let printed = out
        .stdout
        .lines()
        .find(|l| l.starts_with("file credentials.c.access_token_file: "))
        .unwrap_or_else(|| panic!("no resolved path in {}", out.stdout));
    let path = printed.rsplit(": ").next().unwrap_or_default();
    assert!(std::path::Path::new(path).is_absolute(), "{printed}");
    assert_eq!(
        std::fs::canonicalize(path).expect("exists"),
        real.join("token.txt")
    );
}

// --- 3. environment overrides ---------------------------------------------------------------

#[test]
fn an_indexed_environment_variable_overrides_an_array_entry() {
    let out = Cli::new()
        .arg("check")
        .config(STATIC)
        .env("IMS_PROXY_ROUTES__0__PREFIX", "/renamed")
        .env("IMS_PROXY_ROUTES__0__TENANT", "other")
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout
            .contains("route /renamed -> https://mc.adobe.io/other/campaign"),
        "{}",
        out.stdout
    );
}

#[test]
fn an_index_one_past_the_end_adds_an_entry_and_beyond_is_an_error() {
    let out = Cli::new()
        .arg("check")
        .config(STATIC)
        .envs(&[
            ("IMS_PROXY_ROUTES__1__PREFIX", "/aam"),
            ("IMS_PROXY_ROUTES__1__API", "audience-manager"),
            ("IMS_PROXY_ROUTES__1__CREDENTIAL", "c"),
        ])
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("route /aam -> https://aam.adobe.io"));
    let out = Cli::new()
        .arg("check")
        .config(STATIC)
        .env("IMS_PROXY_ROUTES__3__PREFIX", "/x")
        .run();
    assert_refused(
        &out,
        &["error: IMS_PROXY_ROUTES__3__PREFIX: routes has 1 entries"],
    );
}

#[test]
fn an_environment_secret_replaces_the_files_secret_file() {
    let toml = oauth_config(&["cloud-manager"], "").replace(
        "client_secret = \"s\"",
        "client_secret_file = \"/nonexistent/secret\"",
    );
    assert_eq!(check(&toml).code, Some(2));
    let out = Cli::new()
        .arg("check")
        .config(&toml)
        .env("IMS_PROXY_CREDENTIALS__ADOBE__CLIENT_SECRET", "from-env")
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(!out.stdout.contains("from-env"), "{}", out.stdout);
}

#[test]
fn an_empty_file_variable_unsets_the_files_path() {
    let toml = format!("[client]\nca_file = \"/nonexistent/roots.pem\"\n{STATIC}");
    assert_eq!(check(&toml).code, Some(2));
    let out = Cli::new()
        .arg("check")
        .config(&toml)
        .env("IMS_PROXY_CLIENT__CA_FILE", "")
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
}

// --- 4. check refuses what will not work ----------------------------------------------------

#[test]
fn the_untouched_example_config_is_refused_naming_the_placeholder() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/proxy.toml.example");
    let out = Cli::new().args(["check", "--config", example]).run();
    assert_refused(&out, &["REPLACE_WITH_", "placeholder", "Developer Console"]);
}

#[test]
fn admin_on_the_proxys_own_address_is_refused() {
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:8080\"\n[admin]\nlisten = \"127.0.0.1:8080\"\n{STATIC}"
    );
    assert_refused(&check(&toml), &["error: admin.listen: ", "server.listen"]);
}

#[test]
fn a_tenant_that_upstream_makes_unused_is_refused() {
    let toml = STATIC.replace(
        "tenant = \"acme\"",
        "tenant = \"acme\"\nupstream = \"https://mc.adobe.io/acme/campaign\"",
    );
    assert_refused(&check(&toml), &["error: routes[0].tenant: unused"]);
}

#[test]
fn an_unknown_api_lists_the_known_ones() {
    let toml = STATIC.replace("api = \"campaign\"", "api = \"aam\"");
    assert_refused(
        &check(&toml),
        &[
            "error: routes[0].api: unknown value \"aam\"",
            "\"audience-manager\"",
            "\"cloud-manager\"",
        ],
    );
}

#[test]
fn a_bare_number_duration_says_how_to_write_it() {
    let toml = format!("[server]\nshutdown_grace = 30\n{STATIC}");
    assert_refused(
        &check(&toml),
        &["error: server.shutdown_grace: ", "write \"30s\""],
    );
}

// --- 6, 7, 8. the command line ---------------------------------------------------------------

#[test]
fn fatal_errors_are_json_lines_under_log_format_json() {
    let toml = STATIC.replace("api = \"campaign\"", "api = \"aam\"");
    let out = Cli::new()
        .args(["--log-format", "json", "check"])
        .config(&toml)
        .run();
    assert_eq!(out.code, Some(2));
    let line = out.stderr.lines().next().unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
    assert_eq!(v["level"], "ERROR");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("routes[0].api: "),
        "{v}"
    );
    assert!(v["timestamp"].is_string() && v["target"].is_string(), "{v}");
}

#[test]
fn a_closed_stdout_ends_check_quietly() {
    let (_dir, path) = support::cli::write_config(STATIC);
    let mut child = Cli::new()
        .arg("check")
        .config_file(&path)
        .command()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Like `| head -0`: the reader is gone before anything is written.
    drop(child.stdout.take());
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        e.read_to_string(&mut stderr).expect("stderr");
    }
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}

#[test]
fn demo_and_sandbox_take_no_config_flag() {
    for cmd in ["demo", "sandbox"] {
        let help = Cli::new().args([cmd, "--help"]).run();
        assert_eq!(help.code, Some(0), "{}", help.stderr);
        assert!(!help.stdout.contains("--config"), "{cmd}: {}", help.stdout);
        let out = Cli::new().args(["--config", "x.toml", cmd]).run();
        assert_refused(&out, &["error: --config: "]);
        let out = Cli::new().args([cmd, "--config", "x.toml"]).run();
        assert_eq!(out.code, Some(2), "{}", out.stderr);
    }
    for cmd in ["run", "check", "token", "health"] {
        let help = Cli::new().args([cmd, "--help"]).run();
        assert!(help.stdout.contains("--config"), "{cmd}: {}", help.stdout);
    }
}

// --- 5. bind before the first IMS call --------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_clash_costs_no_ims_call() {
    let ims = Ims::start().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let config = ProxyToml::new()
        .section(&format!("[server]\nlisten = \"127.0.0.1:{port}\""))
        .credential(ims.oauth_credential("cred", ""))
        .route(
            Route::new("/api")
                .upstream("http://127.0.0.1:9")
                .api("cloud-manager"),
        );
    let path = ims.file("proxy.toml", &config.toml());
    let out = Cli::new().arg("run").config_file(&path).output().await;
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "server.listen 127.0.0.1:{port}: address already in use (another ims-proxy?)"
        )),
        "{}",
        out.stderr
    );
    assert_eq!(ims.calls(), 0, "IMS was called before the bind failed");
}
