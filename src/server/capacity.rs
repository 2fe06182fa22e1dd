//! How many connections the listener holds: counted against the current snapshot's
//! `max_connections`, so a reload changes the limit without a restart.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[derive(Debug, Default)]
pub struct ConnectionCounter(AtomicUsize);

/// Held for a connection's lifetime; dropping it frees the slot.
pub struct ConnectionSlot(Arc<ConnectionCounter>);

impl ConnectionCounter {
    pub fn try_acquire(self: &Arc<Self>, max: usize) -> Option<ConnectionSlot> {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| ConnectionSlot(self.clone()))
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a client over the connection limit gets: one attempt to say why, then the close.
/// Never awaits, so a flood of connections cannot pile up tasks.
pub const OVER_CAPACITY_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\nconnection: close\r\ncontent-length: 87\r\n\r\n\
{\"error_code\":\"too_many_connections\",\"message\":\"ims-proxy is at its connection limit\"}\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_counter_refuses_beyond_the_limit_and_frees_on_drop() {
        let c = Arc::new(ConnectionCounter::default());
        let a = c.try_acquire(1);
        assert!(a.is_some());
        assert!(c.try_acquire(1).is_none());
        drop(a);
        assert!(c.try_acquire(1).is_some());
    }

    #[test]
    fn the_over_capacity_response_declares_its_body_length_exactly() {
        let text = std::str::from_utf8(OVER_CAPACITY_RESPONSE).unwrap_or("");
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or(("", ""));
        assert!(head.contains(&format!("content-length: {}", body.len())));
    }
}
