//! A bad configuration exits with status 2 before listening, with one line naming the key
//! and the reason, and no panic or backtrace.

use support::{static_proxy, Cli, Output, Route};

const GOOD: &str = r#"
[credentials.campaign]
type = "static"
access_token = "secret-token-value"
client_id = "cid"
org_id = "O@AdobeOrg"

[credentials.privacy]
type = "static"
access_token = "t2"
client_id = "cid2"
org_id = "O@AdobeOrg"

[[routes]]
prefix = "/campaign"
api = "campaign"
tenant = "acme"
credential = "campaign"
"#;

fn run(args: &[&str], toml: &str) -> Output {
    Cli::new().args(args).config(toml).run()
}

/// `check` on the GOOD config with extra environment variables.
fn check_good_with_env(envs: &[(&str, &str)]) -> Output {
    Cli::new().arg("check").config(GOOD).envs(envs).run()
}

fn assert_config_error(toml: &str, expected: &str) {
    for args in [&["check"][..], &["run"][..]] {
        let out = run(args, toml);
        let err = &out.stderr;
        assert_eq!(out.code, Some(2), "{args:?} exit status; stderr: {err}");
        let line = out.error_line();
        assert!(
            line.contains(expected),
            "{args:?}: expected {expected:?} in {err:?}"
        );
        assert!(!err.contains("panicked"), "{err}");
        assert!(!err.contains("listening"), "must not listen: {err}");
    }
}

#[test]
fn check_prints_resolved_routes_with_secrets_redacted() {
    let out = run(&["check"], GOOD);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout
            .contains("route /campaign -> https://mc.adobe.io/acme/campaign"),
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("secret-token-value") && !out.stderr.contains("secret-token-value")
    );
}

#[test]
fn an_unknown_credential_names_the_route_and_the_known_ones() {
    let toml = format!("{GOOD}\n[[routes]]\nprefix = \"/x\"\nupstream = \"http://127.0.0.1:1\"\ncredential = \"campain\"\n");
    assert_config_error(
        &toml,
        r#"error: routes[1].credential: unknown credential "campain" (known: campaign, privacy)"#,
    );
}

#[test]
fn an_unknown_preset_is_an_error() {
    let toml = GOOD.replace("api = \"campaign\"", "api = \"campaing\"");
    assert_config_error(&toml, "routes[0].api");
}

#[test]
fn a_bad_upstream_url_is_an_error() {
    let toml = format!("{GOOD}\n[[routes]]\nprefix = \"/x\"\nupstream = \"ftp://example\"\ncredential = \"campaign\"\n");
    assert_config_error(&toml, "routes[1].upstream:");
}

#[test]
fn a_missing_field_is_an_error() {
    let toml = GOOD.replace("prefix = \"/campaign\"\n", "");
    assert_config_error(&toml, "routes[0].prefix: missing field");
}

#[test]
fn an_unknown_key_is_an_error() {
    let toml = GOOD.replace("tenant = \"acme\"", "tenant = \"acme\"\ntennant = \"x\"");
    assert_config_error(&toml, "routes[0].tennant: unknown key");
}

#[test]
fn an_unreadable_token_file_is_an_error() {
    let toml = GOOD.replace(
        "access_token = \"secret-token-value\"",
        "access_token_file = \"/nonexistent/token\"",
    );
    assert_config_error(
        &toml,
        "credentials.campaign.access_token_file: cannot read /nonexistent/token",
    );
}

#[test]
fn a_duplicate_prefix_is_an_error() {
    let toml = format!("{GOOD}\n[[routes]]\nprefix = \"/campaign/\"\nupstream = \"http://127.0.0.1:1\"\ncredential = \"privacy\"\n");
    assert_config_error(&toml, "routes[1].prefix: duplicate prefix");
}

#[test]
fn a_campaign_route_without_tenant_or_upstream_is_an_error() {
    let toml = GOOD.replace("tenant = \"acme\"\n", "");
    assert_config_error(&toml, "routes[0].tenant: required");
}

#[test]
fn a_missing_config_file_is_an_error() {
    let out = Cli::new()
        .args(["check", "--config", "/nonexistent/proxy.toml"])
        .run();
    assert_eq!(out.code, Some(2));
    let err = &out.stderr;
    assert!(
        err.contains("error: config: cannot read /nonexistent/proxy.toml"),
        "{err}"
    );
}

#[test]
fn environment_variables_override_the_file() {
    let out = check_good_with_env(&[
        ("IMS_PROXY_CREDENTIALS__CAMPAIGN__CLIENT_ID", "from-env"),
        ("IMS_PROXY_SERVER__LISTEN", "127.0.0.1:9999"),
    ]);
    let stdout = &out.stdout;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        stdout.contains("credential campaign: type=static client_id=from-env"),
        "{stdout}"
    );
    assert!(stdout.contains("listen: 127.0.0.1:9999"), "{stdout}");
}

#[test]
fn kubernetes_service_link_variables_are_not_settings() {
    // A Service named ims-proxy puts these into every pod of its namespace.
    let out = check_good_with_env(&[
        ("IMS_PROXY_PORT", "tcp://10.0.0.7:8080"),
        ("IMS_PROXY_PORT_8080_TCP_ADDR", "10.0.0.7"),
        ("IMS_PROXY_SERVICE_HOST", "10.0.0.7"),
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
}

#[test]
fn a_misspelt_section_in_an_environment_variable_is_still_an_error() {
    let out = check_good_with_env(&[("IMS_PROXY_SERVR__LISTEN", "0.0.0.0:1")]);
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("servr"));
}

#[test]
fn the_shipped_example_config_passes_check_once_its_placeholders_are_set() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/proxy.toml.example");
    let out = Cli::new()
        .args(["check", "--config", example])
        .envs(&[
            ("IMS_PROXY_CREDENTIALS__ADOBE__CLIENT_ID", "cid"),
            ("IMS_PROXY_CREDENTIALS__ADOBE__CLIENT_SECRET", "s3cret"),
            ("IMS_PROXY_CREDENTIALS__ADOBE__ORG_ID", "O@AdobeOrg"),
            ("IMS_PROXY_ROUTES__0__TENANT", "acme"),
        ])
        .run();
    let stdout = &out.stdout;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    for prefix in ["/campaign", "/aam", "/cloudmanager", "/privacy"] {
        assert!(stdout.contains(&format!("route {prefix} -> ")), "{stdout}");
    }
    assert!(!stdout.contains("REPLACE_WITH_CLIENT_SECRET"), "{stdout}");
}

#[test]
fn a_garbage_worker_thread_count_is_a_clear_error_not_a_panic() {
    for value in ["", "abc", "0", "-1", " 2", "20000"] {
        for args in [&["check"][..], &["run"][..], &["health"][..]] {
            // `health` needs an admin port to ask; nothing listens there, nor need it.
            let toml = format!("{GOOD}\n[admin]\nlisten = \"127.0.0.1:1\"\n");
            let out = Cli::new()
                .args(args)
                .config(&toml)
                .env("TOKIO_WORKER_THREADS", value)
                .run();
            assert_eq!(out.code, Some(2), "{value:?} {args:?}: {}", out.stderr);
            assert!(
                out.error_line()
                    .starts_with("error: TOKIO_WORKER_THREADS: "),
                "{value:?} {args:?}: {}",
                out.stderr
            );
            assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
        }
    }
}

#[test]
fn a_sane_worker_thread_count_is_used() {
    let out = Cli::new()
        .arg("check")
        .config(GOOD)
        .env("TOKIO_WORKER_THREADS", "2")
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
}

#[test]
fn a_config_without_routes_is_an_error() {
    assert_config_error("", "routes: at least one [[routes]] entry is required");
}

#[test]
fn limits_that_would_serve_nothing_are_errors() {
    for (table, line, key) in [
        (
            "[server.limits]",
            "max_connections = 0",
            "server.limits.max_connections",
        ),
        (
            "[server.limits]",
            "idle_timeout = \"0s\"",
            "server.limits.idle_timeout",
        ),
        (
            "[server.limits]",
            "h2_max_concurrent_streams = 0",
            "server.limits.h2_max_concurrent_streams",
        ),
        (
            "[server.limits]",
            "header_read_timeout = \"0s\"",
            "server.limits.header_read_timeout",
        ),
        (
            "[client]",
            "request_timeout = \"0s\"",
            "client.request_timeout",
        ),
        (
            "[client]",
            "body_idle_timeout = \"0s\"",
            "client.body_idle_timeout",
        ),
    ] {
        assert_config_error(
            &format!("{GOOD}\n{table}\n{line}\n"),
            &format!("{key}: must be"),
        );
    }
}

#[test]
fn a_route_may_not_set_any_hop_by_hop_header() {
    for name in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "transfer-encoding",
        "upgrade",
        "proxy-authenticate",
        "proxy-authorization",
    ] {
        let toml = format!("{GOOD}headers = {{ \"{name}\" = \"x\" }}\n");
        assert_config_error(
            &toml,
            &format!("routes[0].headers.{name}: set by the proxy itself"),
        );
    }
}

#[test]
fn a_client_key_file_still_holding_an_example_placeholder_is_refused() {
    // What deploy/'s example Secrets and compose's example key file hold.
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("client-reporting.key");
    std::fs::write(&key, "REPLACE_WITH_A_LONG_RANDOM_KEY\n").expect("write key");
    let toml = format!(
        "{GOOD}\n[[clients]]\nname = \"reporting\"\nkey_file = \"{}\"\n",
        key.display()
    );
    assert_config_error(&toml, "clients[0].key_file: ");
    let out = run(&["check"], &toml);
    assert!(out.error_line().contains("placeholder"), "{}", out.stderr);
}

#[test]
fn the_shipped_example_config_names_every_key_of_the_readmes_reference() {
    let root = env!("CARGO_MANIFEST_DIR");
    let example = std::fs::read_to_string(format!("{root}/proxy.toml.example")).expect("example");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).expect("README");
    let reference = readme
        .split_once("## Configuration reference\n")
        .expect("the reference")
        .1;
    let table = reference
        .split("\n\n")
        .find(|b| b.starts_with("| key |"))
        .expect("the reference table");
    let mut missing = Vec::new();
    for row in table.lines().skip(2) {
        let first = row.split('|').nth(1).unwrap_or_default();
        for key in first.split('`').skip(1).step_by(2) {
            if key.ends_with('*') {
                continue;
            }
            let name = key.rsplit(['.', ']']).next().unwrap_or(key);
            // A key of a table (`forward.listen`) needs that table too, not only a `listen =`.
            let section = key
                .split_once('.')
                .map(|(t, _)| t)
                .filter(|t| !t.contains('[') && !["credentials", "routes"].contains(t));
            let found = if key.starts_with('[') {
                example.contains(key)
            } else {
                (example.contains(&format!("{name} =")) || example.contains(&format!("[{name}]")))
                    && section.is_none_or(|t| {
                        example.contains(&format!("[{t}]")) || example.contains(&format!("[{t}."))
                    })
            };
            if !found {
                missing.push(key.to_string());
            }
        }
    }
    assert!(missing.is_empty(), "proxy.toml.example lacks {missing:?}");
}

#[test]
fn a_probe_that_could_change_something_is_refused_naming_the_key() {
    let toml = static_proxy(
        Route::new("/own")
            .upstream("http://127.0.0.1:1")
            .extra("probe = \"POST /jobs\""),
    )
    .toml();
    let out = Cli::new().arg("check").config(&toml).run();
    assert_eq!(out.code, Some(2), "{}", out.stdout);
    let line = out.error_line();
    assert!(line.starts_with("error: routes[0].probe: "), "{line}");
    assert!(line.contains("only GET or HEAD"), "{line}");
}

#[test]
fn a_public_url_on_a_route_kept_off_the_forward_listener_is_refused_as_unused() {
    let toml = static_proxy(
        Route::new("/p")
            .api("privacy")
            .upstream("http://127.0.0.1:1")
            .extra(
                "intercept = false\npublic_url = \"https://platform.adobe.io/data/core/privacy\"",
            ),
    )
    .toml();
    let out = Cli::new().arg("check").config(&toml).run();
    assert_eq!(out.code, Some(2), "{}", out.stdout);
    assert!(
        out.error_line()
            .starts_with("error: routes[0].public_url: unused"),
        "{}",
        out.stderr
    );
}

#[test]
fn without_a_proxy_toml_the_error_points_at_demo_sandbox_and_the_example() {
    let empty = tempfile::tempdir().expect("tempdir");
    for args in [&[][..], &["run"][..], &["check"][..], &["ca", "path"][..]] {
        let out = Cli::new().args(args).current_dir(empty.path()).run();
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.stderr);
        let line = out.error_line();
        assert!(
            line.starts_with("error: config: cannot read proxy.toml"),
            "{line}"
        );
        let looked = empty.path().join("proxy.toml");
        for hint in [
            looked.display().to_string().as_str(),
            "`ims-proxy demo`",
            "`ims-proxy sandbox`",
            "proxy.toml.example",
            "--config PATH",
            "IMS_PROXY_CONFIG=PATH",
        ] {
            assert!(line.contains(hint), "{args:?}: {hint:?} not in {line}");
        }
        assert_eq!(out.stderr.lines().count(), 1, "one line: {}", out.stderr);
    }
}

#[test]
fn ca_path_works_from_any_directory_through_ims_proxy_config_and_prints_an_absolute_path() {
    let toml = format!("{GOOD}\n[forward]\nlisten = \"127.0.0.1:0\"\nca_dir = \"ca\"\n");
    let (dir, config) = support::cli::write_config(&toml);
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let expected = dir.path().join("ca").join("ca.pem");
    // The variable, from an app's own directory; and a relative --config from a parent.
    let by_env = Cli::new()
        .args(["ca", "path"])
        .current_dir(elsewhere.path())
        .env("IMS_PROXY_CONFIG", &config.display().to_string())
        .run();
    let parent = dir.path().parent().expect("parent");
    let relative = dir
        .path()
        .file_name()
        .map(|d| std::path::Path::new(d).join("proxy.toml"))
        .expect("relative");
    let by_relative = Cli::new()
        .args(["ca", "path", "--config"])
        .arg(&relative)
        .current_dir(parent)
        .run();
    for out in [by_env, by_relative] {
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        assert_eq!(out.stdout.trim(), expected.display().to_string());
        assert!(std::path::Path::new(out.stdout.trim()).is_file());
    }
    // The variable also stands for --config in `check`; --config still wins over it.
    let check = Cli::new()
        .arg("check")
        .current_dir(elsewhere.path())
        .env("IMS_PROXY_CONFIG", &config.display().to_string())
        .run();
    assert_eq!(check.code, Some(0), "{}", check.stderr);
    let named = Cli::new()
        .args(["check", "--config", "/nonexistent/proxy.toml"])
        .env("IMS_PROXY_CONFIG", &config.display().to_string())
        .run();
    assert_eq!(named.code, Some(2), "{}", named.stderr);
}
