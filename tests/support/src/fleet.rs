//! A fleet: several `ims-proxy run` processes with one `[shared]` table, one real Redis
//! ([`crate::redis`]) and usually the sandbox as IMS and upstream.

use crate::child::ChildProxy;
use crate::redis::RedisServer;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The `[shared]` table and the files it names (seal key, password), in a directory of its own.
pub struct SharedSetup {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub seal_key_file: PathBuf,
    pub password_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub key_prefix: String,
    pub timeout: Duration,
    pub replicas: u32,
}

impl SharedSetup {
    /// For `redis`: its URL, CA and ACL user's password, a random seal key, prefix
    /// `ims-proxy:test`, a 500 ms timeout (a loaded 2-core machine misses 50 ms: exact counts
    /// through Redis then fall back to the local share), 3 replicas.
    pub fn for_redis(redis: &RedisServer) -> SharedSetup {
        let dir = tempfile::tempdir().expect("tempdir");
        let seal_key_file = dir.path().join("seal.key");
        std::fs::write(&seal_key_file, rand::random::<[u8; 32]>()).expect("write seal key");
        let password_file = redis.user().map(|u| {
            let p = dir.path().join("redis-password");
            std::fs::write(&p, format!("{}\n", u.password)).expect("write password");
            p
        });
        SharedSetup {
            url: redis.url(),
            seal_key_file,
            password_file,
            ca_file: redis.ca_file(),
            key_prefix: "ims-proxy:test".into(),
            timeout: Duration::from_millis(500),
            replicas: 3,
            dir,
        }
    }

    /// Another seal key (tokens sealed with the first one no longer open).
    pub fn with_new_seal_key(self) -> SharedSetup {
        let seal_key_file = self.dir.path().join("seal-2.key");
        std::fs::write(&seal_key_file, rand::random::<[u8; 32]>()).expect("write seal key");
        SharedSetup {
            seal_key_file,
            ..self
        }
    }

    /// The `[shared]` table.
    pub fn toml(&self) -> String {
        let mut t = format!(
            "\n[shared]\nurl = {:?}\nseal_key_file = {:?}\nkey_prefix = {:?}\ntimeout = \"{}ms\"\nreplicas = {}\n",
            self.url,
            self.seal_key_file.display().to_string(),
            self.key_prefix,
            self.timeout.as_millis(),
            self.replicas,
        );
        if let Some(p) = &self.password_file {
            t.push_str(&format!("password_file = {:?}\n", p.display().to_string()));
        }
        if let Some(p) = &self.ca_file {
            t.push_str(&format!("ca_file = {:?}\n", p.display().to_string()));
        }
        t
    }
}

/// `n` proxies from `toml` with `shared`'s table appended, each started and listening.
pub struct Fleet {
    pub proxies: Vec<ChildProxy>,
    pub addrs: Vec<SocketAddr>,
}

impl Fleet {
    /// Each replica listens on a port of its own (`IMS_PROXY_SERVER__LISTEN=127.0.0.1:0`,
    /// whatever `toml` says): the proxy binds with `SO_REUSEPORT`, so replicas (and other
    /// tests' proxies) given one fixed port would all share it, and the kernel would spread
    /// connections among them.
    pub async fn start(toml: &str, shared: &SharedSetup, n: usize) -> Fleet {
        let toml = format!("{toml}{}", shared.toml());
        let own_port = [("IMS_PROXY_SERVER__LISTEN", "127.0.0.1:0")];
        let proxies: Vec<ChildProxy> = (0..n)
            .map(|_| ChildProxy::spawn_with_env(&toml, &[], &own_port))
            .collect();
        let mut addrs = Vec::new();
        for p in &proxies {
            addrs.push(p.addr().await);
        }
        Fleet { proxies, addrs }
    }

    /// `http://ADDR{path}` on replica `i`.
    pub fn url(&self, i: usize, path: &str) -> String {
        format!("http://{}{path}", self.addrs[i])
    }
}
