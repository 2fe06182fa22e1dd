//! What operators wire ims-proxy into (issue 15, items 15 and 18): metrics that are complete
//! from the first scrape, the build it reports, shell completions and the man page, through
//! the real binary.

use std::process::Command;
use std::time::Duration;
use support::*;

const WAIT: Duration = Duration::from_secs(20);

/// The series the README's Metrics table lists, in its order.
fn documented_series() -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let section = readme
        .split_once("### Metrics\n")
        .expect("a Metrics section")
        .1;
    let table = section
        .split("\n\n")
        .find(|block| block.starts_with("| series |"))
        .expect("the Metrics table");
    let names: Vec<String> = table
        .lines()
        .skip(2)
        // The `[shared]` series exist only with `[shared]` (tests/fleet.rs reads them there).
        .filter(|l| !l.contains("| `[shared]`:"))
        .filter_map(|l| l.strip_prefix("| `")?.split('`').next())
        .map(String::from)
        .collect();
    assert!(names.len() > 10, "table not read: {names:?}");
    names
}

/// The first sample line of `name` (a histogram's `_count`), or None.
fn any_sample<'t>(text: &'t str, name: &str) -> Option<&'t str> {
    text.lines().filter(|l| !l.starts_with('#')).find(|l| {
        let series = l.split([' ', '{']).next().unwrap_or_default();
        series == name || series == format!("{name}_count")
    })
}

/// An IMS credential `adobe` whose IMS holds every request (so nothing is counted before
/// the scrape), two routes using it, `/one` with a rate limit, the admin and forward
/// listeners, and `routes` beyond those.
fn fresh_config(ims: &FakeUpstream, api: &FakeUpstream, more: &[Route]) -> ProxyToml {
    let base = ProxyToml::new()
        .section("[server]\nlisten = \"127.0.0.1:0\"")
        .admin()
        .client("request_timeout = \"5m\"")
        .section("[forward]\nlisten = \"127.0.0.1:0\"\nca_dir = \"ca\"")
        .credential(format!(
            "[credentials.adobe]\ntype = \"oauth\"\nclient_id = \"id\"\nclient_secret = \"s\"\n\
             org_id = \"ORG@AdobeOrg\"\nscopes = [\"openid\"]\nims_url = \"{}\"",
            ims.url()
        ))
        .route(
            Route::new("/one")
                .api("privacy")
                .upstream(api.url())
                .credential("adobe")
                .extra("rate_limit = { per_second = 5 }"),
        )
        .route(
            Route::new("/two")
                .api("cloud-manager")
                .upstream(api.url())
                .credential("adobe"),
        )
        .credential(format!(
            "{}quota = {{ per_second = 50 }}",
            support::config::static_credential("quoted")
        ))
        .route(
            Route::new("/quoted")
                .upstream(api.url())
                .credential("quoted"),
        );
    more.iter().cloned().fold(base, ProxyToml::route)
}

#[tokio::test]
async fn a_fresh_proxy_shows_every_documented_series_at_zero_before_any_request() {
    let (ims, api) = (FakeUpstream::held().await, FakeUpstream::start().await);
    let child = ChildProxy::spawn(&fresh_config(&ims, &api, &[]).toml(), &[]);
    let text = metrics_text(child.admin_addr().await).await;

    for name in documented_series() {
        assert!(
            any_sample(&text, &name).is_some(),
            "{name} missing:\n{text}"
        );
    }
    let zero = |name: &str, labels: &[(&str, &str)]| {
        assert_eq!(
            metric_value(&text, name, labels),
            Some(0.0),
            "{name} {labels:?}:\n{text}"
        );
    };
    for route in ["/one", "/two", "-"] {
        for method in ["GET", "POST", "DELETE", "OTHER"] {
            for status in ["2xx", "4xx", "5xx"] {
                let labels = [("route", route), ("method", method), ("status", status)];
                zero("ims_proxy_requests_total", &labels);
            }
        }
        zero(
            "ims_proxy_request_duration_seconds_count",
            &[("route", route)],
        );
        zero(
            "ims_proxy_upstream_duration_seconds_count",
            &[("route", route)],
        );
        zero("ims_proxy_request_bytes_total", &[("route", route)]);
        zero("ims_proxy_response_bytes_total", &[("route", route)]);
    }
    for result in ["ok", "error"] {
        let labels = [("credential", "adobe"), ("result", result)];
        zero("ims_proxy_token_refreshes_total", &labels);
        zero("ims_proxy_config_reloads_total", &[("result", result)]);
    }
    zero("ims_proxy_token_expiry_seconds", &[("credential", "adobe")]);
    zero(
        "ims_proxy_upstream_401_replays_total",
        &[("credential", "adobe")],
    );
    for route in ["/one", "/two"] {
        for status in ["401", "403"] {
            let labels = [("route", route), ("status", status)];
            zero("ims_proxy_upstream_refusals_total", &labels);
        }
    }
    zero("ims_proxy_rate_limited_total", &[("route", "/one")]);
    zero("ims_proxy_rate_limit_queued", &[("route", "/one")]);
    zero("ims_proxy_quota_limited_total", &[("credential", "quoted")]);
    zero(
        "ims_proxy_cool_down_refused_total",
        &[("credential", "adobe")],
    );
    zero(
        "ims_proxy_upstream_cool_downs_total",
        &[("credential", "adobe"), ("host", "127.0.0.1")],
    );
    zero("ims_proxy_forward_refused_total", &[]);
    zero("ims_proxy_open_connections", &[]);
    // A route without limits cannot refuse or queue: no series to watch there.
    assert_eq!(
        metric_value(&text, "ims_proxy_rate_limited_total", &[("route", "/two")]),
        None
    );
}

#[tokio::test]
async fn a_reload_that_adds_a_route_and_a_credential_exposes_their_series_at_zero() {
    let (ims, api) = (FakeUpstream::held().await, FakeUpstream::start().await);
    let child = ChildProxy::spawn(&fresh_config(&ims, &api, &[]).toml(), &[]);
    let admin = child.admin_addr().await;
    let three = Route::new("/three")
        .api("campaign")
        .upstream(api.url())
        .credential("later")
        // The forward listener is on: a Campaign route names the tenant it intercepts.
        .extra("max_concurrent = 2\ntenant = \"acme\"");
    let later = format!(
        "[credentials.later]\ntype = \"oauth\"\nclient_id = \"id2\"\nclient_secret = \"s2\"\n\
         org_id = \"ORG@AdobeOrg\"\nscopes = [\"openid\"]\nims_url = \"{}\"",
        ims.url()
    );
    child.rewrite_config(&fresh_config(&ims, &api, &[three]).credential(later).toml());
    child.signal("HUP");
    child.wait_event("configuration reloaded", WAIT).await;

    let text = metrics_text(admin).await;
    let zero = |name: &str, labels: &[(&str, &str)]| {
        assert_eq!(
            metric_value(&text, name, labels),
            Some(0.0),
            "{name} {labels:?}:\n{text}"
        );
    };
    let labels = [("route", "/three"), ("method", "PATCH"), ("status", "5xx")];
    zero("ims_proxy_requests_total", &labels);
    zero(
        "ims_proxy_request_duration_seconds_count",
        &[("route", "/three")],
    );
    zero("ims_proxy_rate_limited_total", &[("route", "/three")]);
    zero("ims_proxy_rate_limit_queued", &[("route", "/three")]);
    let labels = [("credential", "later"), ("result", "error")];
    zero("ims_proxy_token_refreshes_total", &labels);
    zero("ims_proxy_token_expiry_seconds", &[("credential", "later")]);
    assert_eq!(
        metric_value(&text, "ims_proxy_config_reloads_total", &[("result", "ok")]),
        Some(1.0)
    );
}

#[tokio::test]
async fn metrics_report_the_build_and_the_process_resources() {
    let up = FakeUpstream::start().await;
    let p = static_proxy(Route::new("/api").upstream(up.url()))
        .admin()
        .start()
        .await;
    let text = metrics_text(p.admin_addr.expect("admin listener")).await;

    let build = any_sample(&text, "ims_proxy_build_info").expect("build info");
    let version = format!("version=\"{}\"", env!("CARGO_PKG_VERSION"));
    assert!(build.contains(&version), "{build}");
    assert!(
        build.contains(&format!("git_sha=\"{}\"", head_or_unknown())),
        "{build}"
    );
    assert!(build.contains("build_date=\""), "{build}");
    assert!(build.ends_with(" 1"), "{build}");
    for name in [
        "process_cpu_seconds_total",
        "process_virtual_memory_bytes",
        "process_virtual_memory_max_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
        "process_threads",
    ] {
        assert!(any_sample(&text, name).is_some(), "{name} missing:\n{text}");
    }
    // Positive values, not placeholders: this process has memory and open sockets.
    for name in ["process_resident_memory_bytes", "process_open_fds"] {
        let value = metric_value(&text, name, &[]).expect(name);
        assert!(value > 0.0, "{name} = {value}");
    }
}

/// `git rev-parse --short HEAD` in the repository, or `unknown` where there is no git or no
/// repository (as build.rs decides).
fn head_or_unknown() -> String {
    Command::new("git")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

#[test]
fn version_prints_the_version_the_commit_and_the_build_date() {
    let out = Cli::new().arg("--version").run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let line = out.stdout.trim();
    let built_from = format!(
        "ims-proxy {} ({} ",
        env!("CARGO_PKG_VERSION"),
        head_or_unknown()
    );
    let date = line
        .strip_prefix(&built_from)
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("not {built_from:?}DATE): {line:?}"));
    let digits: Vec<&str> = date.split('-').collect();
    assert!(
        digits.len() == 3 && digits.iter().all(|d| d.chars().all(|c| c.is_ascii_digit())),
        "not a YYYY-MM-DD date: {date:?}"
    );
}

/// The subcommands `--help` lists (clap's "Commands:" block), without `help`.
fn subcommands() -> Vec<String> {
    let help = Cli::new().arg("--help").run().stdout;
    let block = help.split_once("Commands:\n").expect("a Commands: block").1;
    let names: Vec<String> = block
        .lines()
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| *n != "help")
        .map(String::from)
        .collect();
    assert!(names.len() >= 9, "{names:?}");
    names
}

#[test]
fn bash_completions_name_every_subcommand() {
    let out = Cli::new().args(["completions", "bash"]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    for name in subcommands() {
        assert!(
            out.stdout.contains(&format!("ims__proxy__subcmd__{name}")),
            "{name} missing from the bash completions"
        );
    }
}

#[test]
fn bash_accepts_the_bash_completion_script() {
    let out = Cli::new().args(["completions", "bash"]).run();
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("ims-proxy.bash");
    std::fs::write(&script, &out.stdout).expect("write script");
    let bash = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .expect("run bash");
    assert!(
        bash.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&bash.stderr)
    );
}

#[test]
fn completions_come_for_zsh_fish_elvish_and_powershell_too() {
    for (shell, mark) in [
        ("zsh", "#compdef ims-proxy"),
        ("fish", "complete -c ims-proxy"),
        ("elvish", "edit:completion:arg-completer[ims-proxy]"),
        (
            "powershell",
            "Register-ArgumentCompleter -Native -CommandName 'ims-proxy'",
        ),
    ] {
        let out = Cli::new().args(["completions", shell]).run();
        assert_eq!(out.code, Some(0), "{shell}: {}", out.stderr);
        assert!(out.stdout.contains(mark), "{shell}:\n{}", out.stdout);
    }
}

#[test]
fn the_man_page_is_roff_with_a_title_and_every_subcommand() {
    let out = Cli::new().arg("man").run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    // clap_mangen opens with two lines defining the apostrophe string; then the title.
    let first_macro = out
        .stdout
        .lines()
        .find(|l| !l.starts_with(".ie") && !l.starts_with(".el"))
        .unwrap_or_default();
    assert!(first_macro.starts_with(".TH ims-proxy 1"), "{first_macro}");
    for name in subcommands() {
        assert!(
            out.stdout.contains(&format!("ims\\-proxy\\-{name}(1)")),
            "{name} missing from the man page"
        );
    }
}

#[test]
fn completions_and_man_refuse_a_config_they_would_ignore() {
    let out = Cli::new()
        .args(["--config", "proxy.toml", "completions", "bash"])
        .run();
    assert_eq!(out.code, Some(2));
    assert!(out.error_line().contains("--config"), "{}", out.stderr);
}

/// The README's headings (`##`, `###`) outside code blocks, in order, each with its anchor as
/// GitHub makes it (lower case; punctuation but `-` and `_` dropped; spaces become `-`).
fn readme_headings(readme: &str) -> Vec<(usize, String, String)> {
    let mut fence = false;
    let mut out = Vec::new();
    for line in readme.lines() {
        if line.starts_with("```") {
            fence = !fence;
            continue;
        }
        let level = line.chars().take_while(|c| *c == '#').count();
        let Some(title) = line.get(level..).and_then(|t| t.strip_prefix(' ')) else {
            continue;
        };
        if fence || level < 2 {
            continue;
        }
        let anchor: String = title
            .to_lowercase()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | '_'))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        out.push((level, title.to_string(), anchor));
    }
    out
}

#[test]
fn the_readmes_contents_list_every_section_in_order_and_every_anchor_link_lands_on_a_heading() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let headings = readme_headings(&readme);
    let mut anchors: Vec<&str> = headings.iter().map(|(_, _, a)| a.as_str()).collect();
    anchors.sort_unstable();
    let twice: Vec<_> = anchors.windows(2).filter(|w| w[0] == w[1]).collect();
    assert!(twice.is_empty(), "two headings share an anchor: {twice:?}");
    let contents = readme
        .split_once("## Contents\n\n")
        .expect("a Contents list")
        .1
        .split("\n\n")
        .next()
        .unwrap_or_default();
    let listed: Vec<String> = contents.lines().map(String::from).collect();
    let expected: Vec<String> = headings
        .iter()
        .filter(|(level, title, _)| *level <= 3 && title != "Contents")
        .map(|(level, title, anchor)| {
            let indent = if *level == 2 { "" } else { "  " };
            format!("{indent}- [{title}](#{anchor})")
        })
        .collect();
    assert_eq!(
        listed, expected,
        "the Contents list and the headings differ"
    );
    for link in readme.split("](#").skip(1) {
        let anchor = link.split(')').next().unwrap_or_default();
        assert!(
            headings.iter().any(|(_, _, a)| a == anchor),
            "a link to #{anchor}, which no heading has"
        );
    }
}

#[test]
fn the_readme_shows_how_to_use_adobes_sdks_right_after_the_quick_start() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let sections: Vec<String> = readme_headings(&readme)
        .into_iter()
        .filter(|(level, _, _)| *level == 2)
        .map(|(_, title, _)| title)
        .collect();
    assert_eq!(
        sections.get(..3).unwrap_or_default(),
        [
            "Contents",
            "Quick start",
            "Use it with Adobe's SDKs (the forward listener)"
        ]
    );
}

#[test]
fn every_test_file_the_readme_and_ci_name_exists() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut missing = Vec::new();
    for doc in ["README.md", ".ci/run"] {
        let text = std::fs::read_to_string(root.join(doc)).expect(doc);
        for (at, _) in text.match_indices("tests/") {
            // Only a path's start: `tests/` right after a word character is the tail of
            // another path (`../tests/`, `fuzz/tests/`), not one under the repository's tests.
            if text[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '/') {
                continue;
            }
            let path: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
                .collect();
            let path = path.trim_end_matches('.');
            if !root.join(path).exists() {
                missing.push(format!("{doc}: {path}"));
            }
        }
    }
    assert!(missing.is_empty(), "paths named but not there: {missing:?}");
}
