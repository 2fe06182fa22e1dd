//! Safe by default: beyond loopback, someone must be checking who calls; and secret files
//! readable by others are named in a warning.

use support::{Cli, Output};

const BASE: &str = r#"
[credentials.cred]
type = "static"
access_token_file = "TOKEN_FILE"
client_id = "cid"

[[routes]]
prefix = "/api"
upstream = "http://127.0.0.1:1"
credential = "cred"
"#;

/// `check` with `[server]` set to `server`, `extra` appended, and the token file in mode
/// `token_mode`.
fn check(server: &str, extra: &str, token_mode: u32) -> Output {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let token = dir.path().join("token");
    std::fs::write(&token, "file-token-value-123").expect("write");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(token_mode)).expect("chmod");
    let toml = format!(
        "[server]\n{server}\n{}\n{extra}",
        BASE.replace("TOKEN_FILE", &token.display().to_string())
    );
    Cli::new()
        .args(["--log-format", "text", "check"])
        .config(&toml)
        .run()
}

#[test]
fn listening_beyond_loopback_without_authentication_is_a_config_error() {
    let r = check("listen = \"0.0.0.0:8080\"", "", 0o600);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    let line = r.error_line();
    assert!(
        line.starts_with("error: server.listen: 0.0.0.0:8080 is reachable from other hosts"),
        "{line}"
    );
    assert!(
        line.contains("server.allow_unauthenticated = true"),
        "{line}"
    );
}

#[test]
fn listening_on_loopback_needs_no_authentication() {
    for listen in [
        "127.0.0.1:8080",
        "[::1]:8080",
        "localhost:8080",
        "127.8.9.10:8080",
    ] {
        let r = check(&format!("listen = \"{listen}\""), "", 0o600);
        assert_eq!(r.code, Some(0), "{listen}: {}", r.stderr);
    }
}

#[test]
fn allow_unauthenticated_lets_the_operator_choose_an_open_listener() {
    let r = check(
        "listen = \"0.0.0.0:8080\"\nallow_unauthenticated = true",
        "",
        0o600,
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
}

#[test]
fn client_keys_make_a_non_loopback_listener_acceptable() {
    let extra = "[[clients]]\nname = \"job\"\nkey = \"0123456789abcdef0123456789\"\n";
    let r = check("listen = \"0.0.0.0:8080\"", extra, 0o600);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains("clients: 1"), "{}", r.stdout);
}

#[test]
fn a_secret_file_readable_by_others_produces_a_warning_naming_it() {
    let r = check("listen = \"127.0.0.1:8080\"", "", 0o644);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let warning = r
        .stderr
        .lines()
        .find(|l| l.contains("WARN") && l.contains("readable by group or others"))
        .unwrap_or_else(|| panic!("no warning in {}", r.stderr));
    assert!(warning.contains("/token"), "{warning}");
    assert!(
        warning.contains("credentials.cred.access_token_file"),
        "{warning}"
    );
    assert!(!r.stderr.contains("file-token-value-123"));
}

#[test]
fn a_private_secret_file_produces_no_warning() {
    assert_no_permission_warning(0o600);
}

#[test]
fn a_secret_file_readable_only_by_our_own_group_produces_no_warning() {
    // Kubernetes mounts secrets 0440 with the pod's fsGroup: private to the process.
    assert_no_permission_warning(0o640);
}

/// `check` on loopback with the token file in `token_mode` passes without a warning.
fn assert_no_permission_warning(token_mode: u32) {
    let r = check("listen = \"127.0.0.1:8080\"", "", token_mode);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        !r.stderr.contains("readable by group or others"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_client_key_file_readable_by_another_group_produces_a_warning_naming_it() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("client.key");
    std::fs::write(&key, "0123456789abcdef0123456789").expect("write");
    // Handing the file to another group needs root (as in CI); otherwise make it readable by
    // others, which must warn just the same.
    let other_group = std::fs::metadata(dir.path())
        .map(|m| std::os::unix::fs::MetadataExt::gid(&m).wrapping_add(1))
        .expect("metadata");
    let mode = if std::os::unix::fs::chown(&key, None, Some(other_group)).is_ok() {
        0o640
    } else {
        0o644
    };
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).expect("chmod");
    let extra = format!(
        "[[clients]]\nname = \"job\"\nkey_file = \"{}\"\n",
        key.display()
    );
    let r = check("listen = \"127.0.0.1:8080\"", &extra, 0o600);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stderr
            .lines()
            .any(|l| l.contains("readable by group or others") && l.contains("client.key")),
        "{}",
        r.stderr
    );
}

#[test]
fn a_listener_beyond_loopback_without_hostnames_is_warned_about_and_check_shows_the_names() {
    let open = "listen = \"0.0.0.0:8080\"\nallow_unauthenticated = true";
    let r = check(open, "", 0o600);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stderr.contains("server.hostnames is empty"),
        "{}",
        r.stderr
    );
    let r = check(
        &format!("{open}\nhostnames = [\"ims-proxy.tools.svc\", \"*.example.com\"]"),
        "",
        0o600,
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(!r.stderr.contains("server.hostnames"), "{}", r.stderr);
    assert!(
        r.stdout
            .contains("hostnames: IP addresses, localhost, ims-proxy.tools.svc, *.example.com"),
        "{}",
        r.stdout
    );
    // On loopback a name is rarely needed: no warning.
    let r = check("listen = \"127.0.0.1:8080\"", "", 0o600);
    assert!(!r.stderr.contains("server.hostnames"), "{}", r.stderr);
}

#[test]
fn a_hostname_that_is_not_a_name_is_a_config_error_naming_the_entry() {
    for (entry, why) in [
        ("http://gw.example:8080", "is not a host name"),
        ("*.com", "top-level domain"),
    ] {
        let r = check(
            &format!("hostnames = [\"gw.example\", \"{entry}\"]"),
            "",
            0o600,
        );
        assert_eq!(r.code, Some(2), "{}", r.stderr);
        let line = r.error_line();
        assert!(line.starts_with("error: server.hostnames[1]: "), "{line}");
        assert!(line.contains(why), "{line}");
    }
}

#[test]
fn an_allowed_origin_that_would_allow_every_page_or_is_not_an_origin_is_a_config_error() {
    for (entry, why) in [
        ("null", "would allow every site"),
        ("*", "would allow every site"),
        ("https://app.example.com/path", "is not a web origin"),
    ] {
        let r = check(&format!("allowed_origins = [\"{entry}\"]"), "", 0o600);
        assert_eq!(r.code, Some(2), "{}", r.stderr);
        let line = r.error_line();
        assert!(
            line.starts_with("error: server.allowed_origins[0]: "),
            "{line}"
        );
        assert!(line.contains(why), "{line}");
    }
}
