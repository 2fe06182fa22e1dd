//! The connection limits of one listener as plain values: what the server reads for every
//! connection it accepts.

use crate::config::{AdminConfig, LimitsConfig};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    pub max_connections: usize,
    /// Connections from one client address (IPv6: one /64); `None` when off.
    pub max_connections_per_peer: Option<usize>,
    /// Until this has passed, a connection must have sent a whole request head (or the
    /// HTTP/2 preface); whatever its protocol, a silent connection is closed then.
    pub header_read_timeout: Duration,
    /// A connection with no request in flight this long is closed.
    pub idle_timeout: Duration,
    /// After this a connection finishes what is in flight and closes; `None`: no limit.
    pub max_age: Option<Duration>,
    /// How long requests in flight may run on once a connection is told to close.
    pub drain: Duration,
    /// Premature HTTP/2 resets that end a connection; `None`: not counted.
    pub h2_max_premature_resets: Option<usize>,
}

impl ConnLimits {
    /// The proxy port's, from `[server.limits]` (checked by `config::validate`); `drain` is
    /// the shutdown grace.
    pub fn proxy(l: &LimitsConfig, drain: Duration) -> ConnLimits {
        ConnLimits {
            max_connections: l.max_connections,
            max_connections_per_peer: (l.max_connections_per_peer > 0)
                .then_some(l.max_connections_per_peer),
            header_read_timeout: l.header_read_timeout,
            idle_timeout: l.idle_timeout,
            max_age: Some(l.max_connection_age),
            drain,
            h2_max_premature_resets: Some(l.h2_max_premature_resets),
        }
    }

    /// The admin port's, from `[admin]`: no per-peer cap (its callers are probes and
    /// scrapers, often all from one address) and no age limit (its requests are short).
    pub fn admin(a: &AdminConfig) -> ConnLimits {
        ConnLimits {
            max_connections: a.max_connections,
            max_connections_per_peer: None,
            header_read_timeout: a.header_read_timeout,
            idle_timeout: a.idle_timeout,
            max_age: None,
            drain: Duration::from_secs(1),
            h2_max_premature_resets: None,
        }
    }
}
