//! The one raw-socket client, for what no well-behaved client sends: write bytes, read what
//! comes back within a deadline, and tell whether the peer closed the connection.
//!
//! [`raw_send`] is the one-shot form; [`RawConn`] keeps the connection for exchanges in
//! steps (a body sent in two parts, a keep-alive request left open, HTTP/2 frames).

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What came back on a raw connection.
#[derive(Debug)]
pub struct RawReply {
    pub text: String,
    /// The peer closed the connection (EOF or reset) within the deadline.
    pub closed: bool,
}

impl RawReply {
    /// The status of the first HTTP/1.1 response, if the reply starts with one.
    pub fn status(&self) -> Option<u16> {
        self.text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
    }
}

/// Connects to `addr`, writes `raw` (without asking for the connection to close) and reads
/// until the peer closes it or `deadline` passes.
pub async fn raw_send(addr: SocketAddr, raw: &[u8], deadline: Duration) -> RawReply {
    let mut conn = RawConn::connect(addr).await;
    conn.write(raw).await;
    conn.read_to_close(deadline).await
}

/// A TCP connection and everything read from it so far.
pub struct RawConn {
    stream: TcpStream,
    received: Vec<u8>,
    closed: bool,
}

impl RawConn {
    pub async fn connect(addr: SocketAddr) -> RawConn {
        RawConn {
            stream: TcpStream::connect(addr).await.expect("connect"),
            received: Vec::new(),
            closed: false,
        }
    }

    /// This end's address: how the proxy's log names the connection's peer.
    pub fn local_addr(&self) -> SocketAddr {
        self.stream.local_addr().expect("local address")
    }

    /// Connects from `source` (any 127.0.0.0/8 address works on loopback): a client at an
    /// address of its own, for limits per client address.
    pub async fn connect_from(addr: SocketAddr, source: std::net::IpAddr) -> RawConn {
        let socket = match source {
            std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
            std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
        }
        .expect("socket");
        socket
            .bind(SocketAddr::new(source, 0))
            .expect("bind source");
        RawConn {
            stream: socket.connect(addr).await.expect("connect"),
            received: Vec::new(),
            closed: false,
        }
    }

    /// Writes `bytes`; false if that failed, as it may when the peer has already closed
    /// (which is what some tests expect).
    pub async fn write(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).await.is_ok()
    }

    /// Closes the sending side (a half-close), as a client does that has nothing more to send.
    pub async fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown().await;
    }

    /// Reads until `done` holds for everything received, the peer closes, or `deadline`
    /// passes; whether `done` held.
    pub async fn read_until(&mut self, deadline: Duration, done: impl Fn(&[u8]) -> bool) -> bool {
        let (stream, received, closed) = (&mut self.stream, &mut self.received, &mut self.closed);
        let mut buf = [0u8; 16 * 1024];
        let read = async {
            while !done(received) {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        *closed = true;
                        return;
                    }
                    Ok(n) => received.extend_from_slice(&buf[..n]),
                }
            }
        };
        let _ = tokio::time::timeout(deadline, read).await;
        done(&self.received)
    }

    /// Reads until the peer closes or `deadline` passes.
    pub async fn read_to_close(mut self, deadline: Duration) -> RawReply {
        self.read_until(deadline, |_| false).await;
        RawReply {
            text: self.text(),
            closed: self.closed,
        }
    }

    /// Everything received so far.
    pub fn received(&self) -> &[u8] {
        &self.received
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.received).into_owned()
    }

    /// Whether the peer has closed the connection (seen by a read).
    pub fn closed(&self) -> bool {
        self.closed
    }
}
