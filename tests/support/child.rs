//! The real `ims-proxy` binary as a child process: for signals, reload and exit codes. It logs
//! JSON on stderr; its ports are read from its `listening` lines, so tests bind `127.0.0.1:0`.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_ims-proxy");

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

pub struct ChildProxy {
    child: std::process::Child,
    lines: Arc<Mutex<Vec<String>>>,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

/// Writes `toml` to a fresh directory's `proxy.toml`.
pub fn write_config(toml: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("proxy.toml");
    std::fs::write(&path, toml).expect("write config");
    (dir, path)
}

/// A `Command` for the binary with a clean proxy environment and JSON logs at info.
pub fn command(config: &std::path::Path) -> Command {
    let mut cmd = Command::new(BIN);
    for v in PROXY_VARS {
        cmd.env_remove(v);
    }
    cmd.env("RUST_LOG", "info")
        .arg("--log-format")
        .arg("json")
        .arg("--config")
        .arg(config);
    cmd
}

impl ChildProxy {
    /// Starts `ims-proxy run` with `toml` as its config and `args` after `run`.
    pub fn spawn(toml: &str, args: &[&str]) -> ChildProxy {
        Self::spawn_with_env(toml, args, &[])
    }

    pub fn spawn_with_env(toml: &str, args: &[&str], env: &[(&str, &str)]) -> ChildProxy {
        let (dir, config) = write_config(toml);
        let mut cmd = command(&config);
        cmd.arg("run").args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ims-proxy");
        let stderr = child.stderr.take().expect("stderr");
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().expect("lock").push(line);
            }
        });
        ChildProxy {
            child,
            lines,
            dir,
            config,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every stderr line that is a JSON event.
    pub fn events(&self) -> Vec<Value> {
        self.lines
            .lock()
            .expect("lock")
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub fn stderr(&self) -> String {
        self.lines.lock().expect("lock").join("\n")
    }

    /// Events whose `message` is `message`.
    pub fn events_with(&self, message: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["message"] == message)
            .collect()
    }

    /// Waits (bounded) for an event with `message`.
    pub async fn wait_event(&self, message: &str, deadline: Duration) -> Value {
        let end = tokio::time::Instant::now() + deadline;
        loop {
            if let Some(e) = self.events_with(message).into_iter().next() {
                return e;
            }
            if tokio::time::Instant::now() >= end {
                panic!(
                    "no {message:?} event within {deadline:?}; stderr:\n{}",
                    self.stderr()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The proxy's bound address, from its `listening` event.
    pub async fn addr(&self) -> SocketAddr {
        let e = self.wait_event("listening", Duration::from_secs(20)).await;
        e["addr"]
            .as_str()
            .expect("addr")
            .parse()
            .expect("socket addr")
    }

    pub async fn admin_addr(&self) -> SocketAddr {
        let e = self
            .wait_event("admin listening", Duration::from_secs(20))
            .await;
        e["addr"]
            .as_str()
            .expect("addr")
            .parse()
            .expect("socket addr")
    }

    /// Sends `signal` (`HUP`, `TERM`, ...) with kill(1).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits (bounded) for the process to exit.
    pub async fn wait_exit(&mut self, deadline: Duration) -> ExitStatus {
        let end = tokio::time::Instant::now() + deadline;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if tokio::time::Instant::now() >= end {
                panic!(
                    "still running after {deadline:?}; stderr:\n{}",
                    self.stderr()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The exit status if the process has already exited.
    pub fn wait_exit_now(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    pub fn rewrite_config(&self, toml: &str) {
        // Written beside and renamed, as deployment tools do, so no half-written file is read.
        let tmp = self.dir.path().join("proxy.toml.new");
        std::fs::write(&tmp, toml).expect("write config");
        std::fs::rename(&tmp, &self.config).expect("rename config");
    }
}

impl Drop for ChildProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of the series `name` whose labels include all of `labels`, from Prometheus text.
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (series, value) = l.rsplit_once(' ')?;
        let (n, rest) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        if n != name {
            return None;
        }
        let all = labels
            .iter()
            .all(|(k, v)| rest.split(',').any(|kv| kv == format!("{k}=\"{v}\"")));
        if all {
            value.parse().ok()
        } else {
            None
        }
    })
}
