//! An upstream that answers with exact bytes: what no HTTP library would send (ambiguous
//! framing, unknown codings, bodies cut short), and what it received, byte for byte.
//!
//! ```no_run
//! # async fn t() {
//! use ims_proxy_test_support::*;
//! let up = RawUpstream::replying(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort")
//!     .then(End::Reset)
//!     .start()
//!     .await;
//! # }
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the upstream does once its reply is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Closes its side cleanly (FIN).
    Close,
    /// Resets the connection (RST: SO_LINGER 0).
    Reset,
    /// Keeps the connection open, reading, until the peer closes it.
    Hold,
    /// Keeps the connection open for the next request, reads its head, then closes without
    /// an answer: a request lost on a reused connection, after its bytes were written.
    LoseNext,
}

/// The builder: [`RawUpstream::replying`], then [`RawUpstreamBuilder::then`], then start.
pub struct RawUpstreamBuilder {
    reply: &'static [u8],
    end: End,
}

impl RawUpstreamBuilder {
    pub fn then(mut self, end: End) -> Self {
        self.end = end;
        self
    }

    pub async fn start(self) -> RawUpstream {
        let received: Arc<Mutex<Vec<u8>>> = Arc::default();
        let rec = received.clone();
        let connections: Arc<AtomicUsize> = Arc::default();
        let conns = connections.clone();
        let closed: Arc<AtomicUsize> = Arc::default();
        let closes = closed.clone();
        let (reply, end) = (self.reply, self.end);
        let (addr, tx) = crate::listen(move |mut stream| {
            conns.fetch_add(1, Ordering::SeqCst);
            let rec = rec.clone();
            let closes = closes.clone();
            async move {
                let mut buf = [0u8; 16 * 1024];
                // The request head (the proxy's requests in these tests have no body).
                if !read_head(&mut stream, &mut buf, &rec).await {
                    return;
                }
                if stream.write_all(reply).await.is_err() {
                    return;
                }
                let _ = stream.flush().await;
                match end {
                    End::Close => {
                        let _ = stream.shutdown().await;
                    }
                    End::Reset => {
                        // Let the proxy read what was written before the reset arrives.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        let _ = stream.set_zero_linger();
                    }
                    End::LoseNext => {
                        if read_head(&mut stream, &mut buf, &rec).await {
                            let _ = stream.shutdown().await;
                        }
                    }
                    End::Hold => {
                        while let Ok(n) = stream.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                            rec.lock().expect("lock").extend_from_slice(&buf[..n]);
                        }
                        closes.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        })
        .await;
        RawUpstream {
            addr,
            received,
            connections,
            closed,
            _shutdown: tx,
        }
    }
}

/// Reads until a whole request head has arrived, recording every byte; false if the peer
/// closed first.
async fn read_head(
    stream: &mut tokio::net::TcpStream,
    buf: &mut [u8],
    rec: &Mutex<Vec<u8>>,
) -> bool {
    let mut seen = Vec::new();
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => {
                seen.extend_from_slice(&buf[..n]);
                rec.lock().expect("lock").extend_from_slice(&buf[..n]);
            }
        }
    }
    true
}

pub struct RawUpstream {
    pub addr: std::net::SocketAddr,
    received: Arc<Mutex<Vec<u8>>>,
    connections: Arc<AtomicUsize>,
    /// Held connections ([`End::Hold`]) the proxy has closed.
    closed: Arc<AtomicUsize>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl RawUpstream {
    /// Answers every connection's first request with `reply`, then closes cleanly unless
    /// told otherwise with [`RawUpstreamBuilder::then`].
    pub fn replying(reply: &'static [u8]) -> RawUpstreamBuilder {
        RawUpstreamBuilder {
            reply,
            end: End::Close,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Held connections ([`End::Hold`]) the proxy has closed so far.
    pub fn closed(&self) -> usize {
        self.closed.load(Ordering::SeqCst)
    }

    /// Every byte received so far, all connections together, as text.
    pub fn received(&self) -> String {
        String::from_utf8_lossy(&self.received.lock().expect("lock")).into_owned()
    }
}
