//! The process's file descriptors, as a budget: when `accept` fails with EMFILE the listener
//! can say nothing to anyone (the kernel keeps the connection queued, the client times out),
//! so the proxy refuses connections itself, with an answer, before that happens.
//!
//! The budget is `RLIMIT_NOFILE`'s soft limit less a headroom for what is not a connection
//! (listeners, the runtime, files read on reload, DNS lookups) and less what the admin
//! listener may hold (its own cap, so it can never be starved). What is left is shared by the
//! proxy port's connections and the outbound ones; [`FdSlot`] is one of them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Connections counted against the budget now (accepted on the proxy port, or outbound).
static OPEN: AtomicUsize = AtomicUsize::new(0);
/// The budget for them; set by the proxy listener, which knows the admin listener's cap.
static SHARE: AtomicUsize = AtomicUsize::new(usize::MAX);

/// `RLIMIT_NOFILE`'s soft limit, read once; `None` when unlimited or unreadable.
pub fn soft_limit() -> Option<usize> {
    static LIMIT: OnceLock<Option<usize>> = OnceLock::new();
    *LIMIT.get_or_init(|| {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct we own and nothing else.
        let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } == 0;
        (ok && r.rlim_cur != libc::RLIM_INFINITY)
            .then(|| usize::try_from(r.rlim_cur).unwrap_or(usize::MAX))
    })
}

/// Descriptors kept back from connections: a tenth of the limit, at least 32, at most 1024.
pub fn headroom(soft: usize) -> usize {
    (soft / 10).clamp(32, 1024)
}

/// What the proxy port and outbound connections may hold together when `reserved`
/// descriptors are set aside for the admin listener.
pub fn share(reserved: usize) -> usize {
    match soft_limit() {
        None => usize::MAX,
        Some(soft) => soft.saturating_sub(headroom(soft)).saturating_sub(reserved),
    }
}

/// Sets the shared budget (see [`share`]).
pub fn set_share(n: usize) {
    SHARE.store(n, Ordering::Relaxed);
}

/// One connection counted against the budget, for as long as it is held.
#[derive(Debug)]
pub struct FdSlot(());

impl FdSlot {
    /// A slot, or `None` when the budget is spent.
    pub fn try_acquire() -> Option<FdSlot> {
        let max = SHARE.load(Ordering::Relaxed);
        OPEN.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .ok()
        .map(|_| FdSlot(()))
    }
}

impl Drop for FdSlot {
    fn drop(&mut self) {
        OPEN.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_headroom_is_a_tenth_of_the_limit_within_bounds() {
        assert_eq!(headroom(100), 32);
        assert_eq!(headroom(4096), 409);
        assert_eq!(headroom(1 << 20), 1024);
    }
}
