//! One accept loop for every listener of the proxy (the proxy port and the admin port).

use crate::state::Shared;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// A listening socket on `addr` that other sockets of this process may share
/// (`SO_REUSEPORT`), non-blocking, with the backlog and `SO_REUSEADDR` Tokio's own `bind` uses.
///
/// The `first` socket of a port binds without `SO_REUSEPORT` and sets it only before `listen`:
/// Linux refuses a bind without it while any other socket listens on the address, even one of
/// another process that set `SO_REUSEPORT` (a second ims-proxy of the same user, which would
/// otherwise silently take half the connections). Once bound, the flag lets the others join:
/// they bind with it, and the kernel puts every listener of the port in one group. A second
/// ims-proxy's first bind is refused the same way, so of two started at once only one binds.
pub fn bind_reuseport(addr: SocketAddr, first: bool) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    #[cfg(unix)]
    {
        socket.set_reuse_address(true)?;
        if !first {
            socket.set_reuse_port(true)?;
        }
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    #[cfg(unix)]
    if first {
        socket.set_reuse_port(true)?;
    }
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Accepts connections until `shutdown` resolves, handing each to `on_accept`, which must not
/// await: a flood of connections must not pile up in the loop.
pub async fn accept_until(
    listener: &TcpListener,
    what: &'static str,
    shutdown: impl Future<Output = ()>,
    mut on_accept: impl FnMut(TcpStream, SocketAddr),
) {
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(listener = what, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => return,
        };
        on_accept(stream, peer);
    }
}

/// After the accept loop: tells every connection to drain and waits for them, up to the grace
/// period, read now rather than at bind because a reload may have changed it.
pub async fn drain(shared: &Shared, drain: tokio::sync::watch::Sender<()>) {
    let grace = shared.snapshot.load().shutdown_grace;
    let _ = drain.send(());
    tokio::select! {
        _ = drain.closed() => {}
        _ = tokio::time::sleep(grace) => {
            tracing::warn!(?grace, "shutdown grace period over; closing remaining connections");
        }
    }
}
