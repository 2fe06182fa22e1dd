//! A real browser for pages the proxy serves: Debian's Chromium, headless, run once per page
//! with a fresh profile, returning the DOM after the page's scripts ran.

use std::os::unix::process::CommandExt as _;
use std::process::Stdio;
use std::time::Duration;

/// Set to `1` to skip browser tests where Chromium cannot be installed; anywhere else a
/// missing Chromium is installed on first use (`install-chromium.sh`), and fails them if that
/// fails.
pub const SKIP_ENV: &str = "IMS_PROXY_SKIP_BROWSER";

/// The whole run, start-up included, on a loaded 2-core machine.
const DEADLINE: Duration = Duration::from_secs(60);

/// Whether `IMS_PROXY_SKIP_BROWSER=1` asks to skip browser tests.
pub fn skipped() -> bool {
    std::env::var(SKIP_ENV).is_ok_and(|v| v == "1")
}

/// Chromium on PATH, installed by `install-chromium.sh` the first time it is missing (once per
/// test process; concurrent callers wait for that one install).
fn installed() -> Result<(), String> {
    static INSTALLED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/install-chromium.sh");
            match std::process::Command::new("bash").arg(script).status() {
                Ok(s) if s.success() => Ok(()),
                Ok(s) => Err(format!("{script} failed ({s}): chromium is not installed")),
                Err(e) => Err(format!("cannot run {script}: {e}")),
            }
        })
        .clone()
}

/// `chromium --headless --dump-dom url` (see [`Chromium::dump_dom`]).
pub async fn dump_dom(url: &str, virtual_time: Duration) -> String {
    Chromium::new().dump_dom(url, virtual_time).await
}

/// Chromium with options: `Chromium::new().resolving("attacker.test").dump_dom(url, t)`.
#[derive(Debug, Default, Clone)]
pub struct Chromium {
    /// Names resolved to 127.0.0.1.
    names: Vec<String>,
}

impl Chromium {
    pub fn new() -> Chromium {
        Chromium::default()
    }

    /// Resolves `name` to 127.0.0.1 without DNS (`--host-resolver-rules`): a page on a site of
    /// its own served from loopback, or a name re-pointed at the proxy as DNS rebinding does.
    pub fn resolving(mut self, name: &str) -> Chromium {
        self.names.push(name.into());
        self
    }

    /// The DOM of `url` once `virtual_time` of page time has passed (timers run in virtual
    /// time, so a page's refresh and countdown scripts run that long without the test waiting
    /// for them; network fetches pause it). A form the page submits replaces the DOM with the
    /// answer's. Panics when Chromium is missing or fails, and kills it (its whole process
    /// group) at the deadline.
    pub async fn dump_dom(&self, url: &str, virtual_time: Duration) -> String {
        dump(url, virtual_time, &self.names).await
    }
}

async fn dump(url: &str, virtual_time: Duration, names: &[String]) -> String {
    if let Err(e) = installed() {
        panic!("{e}; set {SKIP_ENV}=1 to skip browser tests");
    }
    let profile = tempfile::tempdir().expect("profile dir");
    let mut cmd = std::process::Command::new("chromium");
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        // On a closed network Chromium otherwise hangs on refused background connections.
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args((!names.is_empty()).then(|| {
        let rules: Vec<String> = names.iter().map(|n| format!("MAP {n} 127.0.0.1")).collect();
        format!("--host-resolver-rules={}", rules.join(","))
    }))
    .arg(format!(
        "--virtual-time-budget={}",
        virtual_time.as_millis()
    ))
    .arg("--dump-dom")
    .arg(url)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    // Its own group, so the deadline can end its helper processes too.
    .process_group(0);
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    let child = cmd.spawn().unwrap_or_else(|e| {
        panic!(
            "cannot run chromium ({e}): install it (apt-get install -y --no-install-recommends \
             chromium) or set {SKIP_ENV}=1 to skip browser tests"
        )
    });
    let pid = child.id();
    match tokio::time::timeout(DEADLINE, child.wait_with_output()).await {
        Ok(Ok(out)) => {
            assert!(
                out.status.success(),
                "chromium exited with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
        Ok(Err(e)) => panic!("chromium: {e}"),
        Err(_) => {
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                // SAFETY: signals the process group this call started, and nothing else.
                unsafe { libc::kill(-pid, libc::SIGKILL) };
            }
            panic!("chromium did not finish within {DEADLINE:?}; killed");
        }
    }
}
