//! The real `ims-proxy` binary as a command: `Cli::new().config(toml).arg("check").run()`.

use crate::child::Spawned;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Proxy settings from the developer's environment must not leak into tests.
pub const PROXY_VARS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
];

const DEADLINE: Duration = Duration::from_secs(30);

/// The binary under test. Cargo builds it for integration tests and names it in
/// `CARGO_BIN_EXE_ims-proxy`, which recent cargo also sets when it runs them; otherwise (an
/// older cargo, or a test binary run by hand) it is the `ims-proxy` beside the `deps/`
/// directory the test binary runs from.
pub fn bin() -> PathBuf {
    if let Some(p) = std::env::var_os("CARGO_BIN_EXE_ims-proxy") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let p = dir.join(format!("ims-proxy{}", std::env::consts::EXE_SUFFIX));
    assert!(p.exists(), "no ims-proxy binary at {}", p.display());
    p
}

/// Writes `toml` to a fresh directory's `proxy.toml`.
pub fn write_config(toml: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("proxy.toml");
    std::fs::write(&path, toml).expect("write config");
    (dir, path)
}

/// What a finished command printed, and how it exited.
#[derive(Debug)]
pub struct Output {
    /// The exit code; `None` if a signal ended it.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// The first stderr line starting `error: `, or "".
    pub fn error_line(&self) -> &str {
        self.stderr
            .lines()
            .find(|l| l.starts_with("error: "))
            .unwrap_or_default()
    }
}

/// A command line for the binary, with no proxy variables or `RUST_LOG` from the developer's
/// environment and stdin closed.
pub struct Cli {
    cmd: Command,
    dir: Option<tempfile::TempDir>,
}

impl Default for Cli {
    fn default() -> Self {
        Cli::new()
    }
}

impl Cli {
    pub fn new() -> Cli {
        let mut cmd = Command::new(bin());
        for v in PROXY_VARS {
            cmd.env_remove(v);
        }
        cmd.env_remove("RUST_LOG")
            .env_remove("IMS_PROXY_CONFIG")
            .stdin(Stdio::null());
        Cli { cmd, dir: None }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Cli {
        self.cmd.arg(arg);
        self
    }

    pub fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Cli {
        self.cmd.args(args);
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Cli {
        self.cmd.env(key, value);
        self
    }

    /// Runs it in `dir` (relative paths, the default `proxy.toml`, are looked up there).
    pub fn current_dir(mut self, dir: &Path) -> Cli {
        self.cmd.current_dir(dir);
        self
    }

    pub fn envs(self, vars: &[(&str, &str)]) -> Cli {
        vars.iter().fold(self, |c, (k, v)| c.env(k, v))
    }

    /// Writes `toml` to a fresh directory (kept while this command lives) and passes
    /// `--config` with its path, here in the argument list.
    pub fn config(mut self, toml: &str) -> Cli {
        let (dir, path) = write_config(toml);
        self.dir = Some(dir);
        self.config_file(&path)
    }

    /// `--config path`, here in the argument list.
    pub fn config_file(self, path: &Path) -> Cli {
        self.arg("--config").arg(path)
    }

    /// Runs it with `RLIMIT_NOFILE` (soft and hard) set to `n`: a process near its
    /// file-descriptor limit without opening thousands of connections.
    pub fn fd_limit(mut self, n: u64) -> Cli {
        use std::os::unix::process::CommandExt;
        // SAFETY: setrlimit is async-signal-safe; the closure allocates nothing.
        unsafe {
            self.cmd.pre_exec(move || {
                let r = libc::rlimit {
                    rlim_cur: n as libc::rlim_t,
                    rlim_max: n as libc::rlim_t,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &r) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        self
    }

    /// JSON logs on stderr at `level`, as [`crate::ChildProxy`] reads them.
    pub fn json_logs(self, level: &str) -> Cli {
        self.env("RUST_LOG", level).args(["--log-format", "json"])
    }

    /// Runs to completion, blocking the thread: for `#[test]`s.
    pub fn run(mut self) -> Output {
        let out = self.cmd.output().expect("run ims-proxy");
        Output::from(out)
    }

    /// Runs to completion (within 30 s) without blocking the runtime: for tests that serve
    /// something in-process meanwhile.
    pub async fn output(self) -> Output {
        let mut cmd = tokio::process::Command::from(self.cmd);
        cmd.kill_on_drop(true);
        let out = tokio::time::timeout(DEADLINE, cmd.output())
            .await
            .expect("ims-proxy finishes within 30 s")
            .expect("run ims-proxy");
        Output::from(out)
    }

    /// Starts it, reading stdout and stderr line by line; killed when dropped.
    pub fn spawn(self) -> Spawned {
        Spawned::new(self.cmd, self.dir)
    }

    /// The command itself, for what this builder does not cover (a [`Self::config`] file
    /// is gone with the builder: use [`Self::config_file`] with it).
    pub fn command(self) -> Command {
        self.cmd
    }
}

impl From<std::process::Output> for Output {
    fn from(out: std::process::Output) -> Output {
        Output {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}
