//! Raw sockets for what no well-behaved client sends, with the facts a test asserts on: what
//! came back, and whether the proxy closed the connection.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct RawReply {
    pub text: String,
    /// The proxy closed the connection (EOF or reset) within the deadline.
    pub closed: bool,
}

impl RawReply {
    pub fn status(&self) -> Option<u16> {
        self.text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
    }
}

/// Writes `raw` (without asking for the connection to close) and reads until the proxy closes
/// it or `deadline` passes.
pub async fn raw_send(addr: SocketAddr, raw: &[u8], deadline: Duration) -> RawReply {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    // The proxy may close before reading everything; a failed write is then expected.
    let _ = s.write_all(raw).await;
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let closed = tokio::time::timeout(deadline, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    RawReply {
        text: String::from_utf8_lossy(&out).into_owned(),
        closed,
    }
}
