//! The real `ims-proxy` binary as a child process: for signals, reload and exit codes.
//! [`Spawned`] is any subcommand with its output read line by line; [`ChildProxy`] is
//! `ims-proxy run` with JSON logs on stderr, whose ports are read from its `listening` lines,
//! so tests bind `127.0.0.1:0`.

use crate::cli::{write_config, Cli};
use crate::config::on_outbound_path;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const STARTUP: Duration = Duration::from_secs(20);

/// The lines a child writes to one pipe, collected by a thread as they come.
#[derive(Clone, Default)]
pub struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    fn collect(pipe: impl Read + Send + 'static) -> Lines {
        let lines = Lines::default();
        let sink = lines.0.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                sink.lock().expect("lines").push(line);
            }
        });
        lines
    }

    pub fn all(&self) -> Vec<String> {
        self.0.lock().expect("lines").clone()
    }

    pub fn text(&self) -> String {
        self.all().join("\n")
    }
}

/// A subcommand of the real binary with stdout and stderr collected line by line; killed
/// when dropped.
pub struct Spawned {
    child: std::process::Child,
    pub stdout: Lines,
    pub stderr: Lines,
    _dir: Option<tempfile::TempDir>,
}

impl Spawned {
    pub(crate) fn new(mut cmd: Command, dir: Option<tempfile::TempDir>) -> Spawned {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ims-proxy");
        let stdout = Lines::collect(child.stdout.take().expect("stdout"));
        let stderr = Lines::collect(child.stderr.take().expect("stderr"));
        Spawned {
            child,
            stdout,
            stderr,
            _dir: dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stdout so far, once a line starting with `prefix` has appeared (within `deadline`).
    pub async fn stdout_until(&self, prefix: &str, deadline: Duration) -> Vec<String> {
        let found = crate::poll(deadline, || {
            let lines = self.stdout.all();
            let seen = lines.iter().any(|l| l.starts_with(prefix));
            std::future::ready(seen.then_some(lines))
        })
        .await;
        found.unwrap_or_else(|| {
            panic!(
                "no {prefix:?} line within {deadline:?}; stdout: {:?}; stderr: {:?}",
                self.stdout.all(),
                self.stderr.all()
            )
        })
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

    /// Waits (bounded) for the process to exit on its own.
    pub async fn wait_exit(&mut self, deadline: Duration) -> ExitStatus {
        let status = crate::poll(deadline, || std::future::ready(self.exited())).await;
        status.unwrap_or_else(|| {
            panic!(
                "still running after {deadline:?}; stderr:\n{}",
                self.stderr.text()
            )
        })
    }

    /// The exit status if the process has already exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ims-proxy run` as a child process, with JSON logs at info on stderr.
pub struct ChildProxy {
    proc: Spawned,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl ChildProxy {
    /// Starts `ims-proxy run` with `toml` as its config and `args` after `run`.
    pub fn spawn(toml: &str, args: &[&str]) -> ChildProxy {
        Self::spawn_with_env(toml, args, &[])
    }

    /// As [`Self::spawn`], with these environment variables set.
    pub fn spawn_with_env(toml: &str, args: &[&str], env: &[(&str, &str)]) -> ChildProxy {
        let (dir, config) = write_config(&on_outbound_path(toml));
        let proc = Cli::new()
            .json_logs("info")
            .config_file(&config)
            .arg("run")
            .args(args)
            .envs(env)
            .spawn();
        ChildProxy { proc, dir, config }
    }

    /// As [`Self::spawn`] (no arguments), with `RLIMIT_NOFILE` set to `nofile`.
    pub fn spawn_with_fd_limit(toml: &str, nofile: u64) -> ChildProxy {
        let (dir, config) = write_config(&on_outbound_path(toml));
        let proc = Cli::new()
            .json_logs("info")
            .config_file(&config)
            .arg("run")
            .fd_limit(nofile)
            .spawn();
        ChildProxy { proc, dir, config }
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Every stderr line that is a JSON event.
    pub fn events(&self) -> Vec<Value> {
        self.proc
            .stderr
            .all()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub fn stderr(&self) -> String {
        self.proc.stderr.text()
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
        let found = crate::poll(deadline, || {
            std::future::ready(self.events_with(message).into_iter().next())
        })
        .await;
        found.unwrap_or_else(|| {
            panic!(
                "no {message:?} event within {deadline:?}; stderr:\n{}",
                self.stderr()
            )
        })
    }

    async fn addr_from(&self, message: &str) -> SocketAddr {
        let e = self.wait_event(message, STARTUP).await;
        e["addr"]
            .as_str()
            .expect("addr")
            .parse()
            .expect("socket addr")
    }

    /// The proxy's bound address, from its `listening` event.
    pub async fn addr(&self) -> SocketAddr {
        self.addr_from("listening").await
    }

    /// The forward listener's bound address, from its `forward listening` event.
    pub async fn forward_addr(&self) -> SocketAddr {
        self.addr_from("forward listening").await
    }

    /// The admin listener's bound address, from its `admin listening` event.
    pub async fn admin_addr(&self) -> SocketAddr {
        self.addr_from("admin listening").await
    }

    /// Asserts what a process near its file-descriptor limit must still do: its admin port
    /// answers `/healthz`, and no listener's `accept` has failed (the log says `accept
    /// failed` when one has, which leaves a client unanswered).
    pub async fn assert_serving_within_its_descriptors(&self) {
        let health = crate::raw_send(
            self.admin_addr().await,
            b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            Duration::from_secs(30),
        )
        .await;
        assert_eq!(health.status(), Some(200), "{}", health.text);
        assert!(
            !self.stderr().contains("accept failed"),
            "accept hit the descriptor limit:\n{}",
            self.stderr()
        );
    }

    /// How many file descriptors the process holds now (`/proc/PID/fd`).
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Sends `signal` (`HUP`, `TERM`, ...) with kill(1).
    pub fn signal(&self, signal: &str) {
        self.proc.signal(signal)
    }

    /// Waits (bounded) for the process to exit.
    pub async fn wait_exit(&mut self, deadline: Duration) -> ExitStatus {
        self.proc.wait_exit(deadline).await
    }

    /// The exit status if the process has already exited.
    pub fn wait_exit_now(&mut self) -> Option<ExitStatus> {
        self.proc.exited()
    }

    /// Replaces the config file the way deployment tools do: written beside and renamed, so
    /// no half-written file is read.
    pub fn rewrite_config(&self, toml: &str) {
        let tmp = self.dir.path().join("proxy.toml.new");
        std::fs::write(&tmp, on_outbound_path(toml)).expect("write config");
        std::fs::rename(&tmp, &self.config).expect("rename config");
    }
}
