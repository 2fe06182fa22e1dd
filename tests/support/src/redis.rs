//! A real Redis for the fleet tests: Debian's `redis-server` as a child process on loopback,
//! each test its own server, port and directory, nothing persisted; optionally TLS (a
//! throwaway CA from [`crate::tls`]) and ACL users. Faults are what operators meet: a hung
//! server (`SIGSTOP`), a killed one, a restart on the same port, `CLIENT PAUSE`, `FLUSHALL`.
//!
//! Commands go through `redis-cli` (installed with the server), as the admin user when ACLs
//! are on, so a test can read what the proxies wrote (`SCAN` the whole keyspace).

use crate::tls::TestPki;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A server that has not said "Ready to accept connections" by then has failed to start.
const STARTUP: Duration = Duration::from_secs(20);
/// Ports are picked free and then handed to redis-server (which cannot bind port 0): another
/// process may take one in between, so a collision is retried on a fresh port.
const PORT_TRIES: usize = 8;
/// The administrator the tests use when ACLs are on (the proxies get a user of their own).
const ADMIN_USER: &str = "admin";

/// Debian's redis-server and redis-cli, installed by `install-redis.sh` the first time one is
/// missing (once per test process).
fn installed() {
    static INSTALLED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let r = INSTALLED.get_or_init(|| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/install-redis.sh");
        match Command::new("bash").arg(script).status() {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(format!(
                "{script} failed ({s}): redis-server is not installed"
            )),
            Err(e) => Err(format!("cannot run {script}: {e}")),
        }
    });
    if let Err(e) = r {
        panic!("{e}");
    }
}

/// An ACL user: its name, password and the key pattern it may touch.
#[derive(Clone, Debug)]
pub struct AclUser {
    pub name: String,
    pub password: String,
    /// Key and channel patterns, e.g. `ims-proxy:test:*`.
    pub pattern: String,
}

/// How to start the server.
#[derive(Default)]
pub struct RedisBuilder {
    tls: bool,
    user: Option<AclUser>,
}

impl RedisBuilder {
    /// TLS only (no plain-text port), with a server certificate for 127.0.0.1 and localhost.
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// ACLs on: the default user is off, `user` may touch only its pattern, and the tests
    /// speak as an admin user of their own.
    pub fn acl_user(mut self, name: &str, password: &str, pattern: &str) -> Self {
        self.user = Some(AclUser {
            name: name.into(),
            password: password.into(),
            pattern: pattern.into(),
        });
        self
    }

    pub fn start(self) -> RedisServer {
        installed();
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = self.tls.then(|| {
            let pki = TestPki::new();
            let id = pki.server_identity("redis");
            id.write(dir.path(), "redis");
            std::fs::write(dir.path().join("ca.crt"), &pki.ca_pem).expect("write ca");
            pki
        });
        let admin_password = format!("admin-{:016x}", rand::random::<u64>());
        let mut server = RedisServer {
            child: None,
            port: 0,
            dir,
            pki,
            user: self.user,
            admin_password,
        };
        let mut last = String::new();
        for _ in 0..PORT_TRIES {
            server.port = crate::unused_addr().port();
            match server.spawn() {
                Ok(()) => return server,
                Err(e) => last = e,
            }
        }
        panic!("redis-server did not start in {PORT_TRIES} tries: {last}");
    }
}

/// A running `redis-server`; killed (and its directory removed) when dropped.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    pki: Option<TestPki>,
    user: Option<AclUser>,
    admin_password: String,
}

impl RedisServer {
    pub fn builder() -> RedisBuilder {
        RedisBuilder::default()
    }

    /// A plain-text server without ACLs.
    pub fn start() -> RedisServer {
        Self::builder().start()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT/0` or `rediss://USER@127.0.0.1:PORT/0` (the password is never in
    /// the URL: the proxy refuses one there).
    pub fn url(&self) -> String {
        let scheme = if self.pki.is_some() {
            "rediss"
        } else {
            "redis"
        };
        let user = match &self.user {
            Some(u) => format!("{}@", u.name),
            None => String::new(),
        };
        format!("{scheme}://{user}127.0.0.1:{}/0", self.port)
    }

    /// The CA that signed the server's certificate, for `[shared] ca_file` (TLS only).
    pub fn ca_file(&self) -> Option<PathBuf> {
        self.pki.as_ref().map(|_| self.dir.path().join("ca.crt"))
    }

    /// The proxies' ACL user, when ACLs are on.
    pub fn user(&self) -> Option<&AclUser> {
        self.user.as_ref()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("redis-server is running").id()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    fn args(&self) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "--bind".into(),
            "127.0.0.1".into(),
            "--dir".into(),
            self.dir.path().display().to_string(),
            "--logfile".into(),
            self.log_path().display().to_string(),
            // No persistence: a restart starts empty, like a cache that lost its node.
            "--save".into(),
            String::new(),
            "--appendonly".into(),
            "no".into(),
            "--daemonize".into(),
            "no".into(),
        ];
        let port = self.port.to_string();
        if self.pki.is_some() {
            let d = self.dir.path();
            a.extend(["--port".into(), "0".into(), "--tls-port".into(), port]);
            a.extend([
                "--tls-cert-file".into(),
                d.join("redis.crt").display().to_string(),
                "--tls-key-file".into(),
                d.join("redis.key").display().to_string(),
                "--tls-ca-cert-file".into(),
                d.join("ca.crt").display().to_string(),
                "--tls-auth-clients".into(),
                "no".into(),
            ]);
        } else {
            a.extend(["--port".into(), port]);
        }
        if let Some(u) = &self.user {
            a.extend(["--user".into(), "default".into(), "off".into()]);
            a.extend([
                "--user".into(),
                ADMIN_USER.into(),
                "on".into(),
                format!(">{}", self.admin_password),
                "~*".into(),
                "&*".into(),
                "+@all".into(),
            ]);
            a.extend([
                "--user".into(),
                u.name.clone(),
                "on".into(),
                format!(">{}", u.password),
                format!("~{}", u.pattern),
                format!("&{}", u.pattern),
                "+@all".into(),
                "-@dangerous".into(),
            ]);
        }
        a
    }

    /// Starts redis-server on `self.port` and waits until it accepts connections.
    fn spawn(&mut self) -> Result<(), String> {
        let _ = std::fs::remove_file(self.log_path());
        let mut child = Command::new("redis-server")
            .args(self.args())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run redis-server: {e}"))?;
        let end = Instant::now() + STARTUP;
        loop {
            let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
            if log.contains("Ready to accept connections") {
                self.child = Some(child);
                return Ok(());
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("redis-server exited ({status}): {log}"));
            }
            if Instant::now() >= end {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("not ready within {STARTUP:?}: {log}"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn signal(&self, sig: libc::c_int) {
        let pid = self.pid() as libc::pid_t;
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        let r = unsafe { libc::kill(pid, sig) };
        assert_eq!(r, 0, "kill({pid}, {sig})");
    }

    /// Hangs the server (`SIGSTOP`): connections stay open, nothing answers.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// Resumes a server hung by [`Self::pause`] (`SIGCONT`).
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    /// Kills the server (`SIGKILL`): connections are reset, the port refuses.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills the server and starts a new, empty one on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn().unwrap_or_else(|e| panic!("restart: {e}"));
    }

    /// `redis-cli ARGS` against this server as the admin (TLS and ACLs handled): its stdout,
    /// trimmed. Panics when redis-cli fails.
    pub fn cli(&self, args: &[&str]) -> String {
        String::from_utf8_lossy(&self.cli_bytes(args))
            .trim()
            .to_string()
    }

    /// As [`Self::cli`], stdout as raw bytes (`--raw` prints values as stored).
    pub fn cli_bytes(&self, args: &[&str]) -> Vec<u8> {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some(ca) = self.ca_file() {
            cmd.arg("--tls").arg("--cacert").arg(ca);
        }
        if self.user.is_some() {
            cmd.args(["--user", ADMIN_USER, "--no-auth-warning"]);
            cmd.env("REDISCLI_AUTH", &self.admin_password);
        }
        let out = cmd.args(args).output().expect("run redis-cli");
        assert!(
            out.status.success(),
            "redis-cli {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// `FLUSHALL`: every key gone at once.
    pub fn flushall(&self) {
        assert_eq!(self.cli(&["FLUSHALL"]), "OK");
    }

    /// `CLIENT PAUSE ms`: the server keeps its connections but answers no client for `ms`.
    pub fn client_pause(&self, ms: u64) {
        assert_eq!(self.cli(&["CLIENT", "PAUSE", &ms.to_string()]), "OK");
    }

    /// Every key in the keyspace (`SCAN`, all of it).
    pub fn keys(&self) -> Vec<String> {
        let out = self.cli(&["--scan"]);
        out.lines().map(str::to_string).collect()
    }

    /// A key's value as stored, whatever its type: a string's bytes; a hash's fields and
    /// values, a list's or set's members, one after another.
    pub fn raw_value(&self, key: &str) -> Vec<u8> {
        let kind = self.cli(&["TYPE", key]);
        let args: Vec<&str> = match kind.as_str() {
            "string" => vec!["--raw", "GET", key],
            "hash" => vec!["--raw", "HGETALL", key],
            "list" => vec!["--raw", "LRANGE", key, "0", "-1"],
            "set" => vec!["--raw", "SMEMBERS", key],
            "zset" => vec!["--raw", "ZRANGE", key, "0", "-1", "WITHSCORES"],
            _ => return Vec::new(),
        };
        self.cli_bytes(&args)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
