//! An upstream that answers a request as soon as its head has arrived, before reading its
//! body, and then reads the body as if it were the next request: the upstream that makes a
//! reused connection hand one caller's answers to the next request (nginx closes such a
//! connection; so must the proxy).
//!
//! It answers the first request of a connection at once, with `answered <target>`, and each
//! later one when the request after it arrives (a slow backend: the late answer is on its way
//! just as the next request goes out, a race made certain). So a body that carries
//! `GET /hidden HTTP/1.1` is answered `answered /hidden`, to whoever sends the next request on
//! that connection.
//!
//! ```no_run
//! # async fn t() {
//! use ims_proxy_test_support::*;
//! let up = HastyUpstream::start().await;
//! assert_eq!(up.targets(), Vec::<String>::new());
//! # }
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct HastyUpstream {
    pub addr: std::net::SocketAddr,
    /// Every request head read, in order: (connection number from 1, target).
    heads: Arc<Mutex<Vec<(usize, String)>>>,
    connections: Arc<AtomicUsize>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

/// The answer it gives to `target`.
pub fn hasty_answer(target: &str) -> String {
    format!("answered {target}")
}

fn response(target: &str) -> Vec<u8> {
    let body = hasty_answer(target);
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

impl HastyUpstream {
    pub async fn start() -> HastyUpstream {
        let heads: Arc<Mutex<Vec<(usize, String)>>> = Arc::default();
        let connections: Arc<AtomicUsize> = Arc::default();
        let (h, c) = (heads.clone(), connections.clone());
        let (addr, tx) = crate::listen(move |mut stream| {
            let n = c.fetch_add(1, Ordering::SeqCst) + 1;
            let heads = h.clone();
            async move {
                let mut seen: Vec<u8> = Vec::new();
                let mut buf = [0u8; 16 * 1024];
                // The answer owed to the last request, sent when the next one arrives.
                let mut owed: Option<Vec<u8>> = None;
                let mut first = true;
                loop {
                    let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(k) => seen.extend_from_slice(&buf[..k]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&seen[..end]).into_owned();
                    seen.drain(..end + 4);
                    let target = head
                        .lines()
                        .next()
                        .and_then(|l| l.split(' ').nth(1))
                        .unwrap_or("?")
                        .to_string();
                    heads.lock().expect("lock").push((n, target.clone()));
                    let mut out = owed.take().unwrap_or_default();
                    if std::mem::take(&mut first) {
                        out.extend_from_slice(&response(&target));
                    } else {
                        owed = Some(response(&target));
                    }
                    if stream.write_all(&out).await.is_err() {
                        return;
                    }
                }
            }
        })
        .await;
        HastyUpstream {
            addr,
            heads,
            connections,
            _shutdown: tx,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The targets of the request heads read so far, all connections together, in order.
    pub fn targets(&self) -> Vec<String> {
        let heads = self.heads.lock().expect("lock");
        heads.iter().map(|(_, t)| t.clone()).collect()
    }

    /// The connection (numbered from 1) each request head came on, in order.
    pub fn conns(&self) -> Vec<usize> {
        self.heads
            .lock()
            .expect("lock")
            .iter()
            .map(|(c, _)| *c)
            .collect()
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}
