//! Each route's request and error counts, for the admin's status page. The metrics facade
//! writes to the exporter and gives nothing back, so the page reads these instead.

use crate::metrics::{RequestRecord, RouteSeries};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Answers a route gave since it was first configured (a reload keeps a route's counts while
/// its prefix stays). Counting is two relaxed atomic adds at most: no lock, no allocation.
#[derive(Debug, Default)]
pub struct RouteStats {
    requests: AtomicU64,
    errors: AtomicU64,
    /// The route's metrics handles, taken at its first answer (by then the recorder, if any,
    /// is installed: the admin listener installs it before the proxy port serves).
    series: OnceLock<RouteSeries>,
}

/// What the counters held at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouteCounts {
    pub requests: u64,
    /// Answers with a 5xx status, the proxy's own (502, 503, 504) and the upstream's.
    pub errors: u64,
}

impl RouteStats {
    /// Counts one answer with `status`.
    #[inline]
    pub fn record(&self, status: u16) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if status >= 500 {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records a finished request in the route's metrics; `r.route` names the route.
    #[inline]
    pub fn record_metrics(&self, r: &RequestRecord<'_>) {
        self.series
            .get_or_init(|| RouteSeries::new(r.route))
            .record(r);
    }

    pub fn counts(&self) -> RouteCounts {
        RouteCounts {
            requests: self.requests.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_answer_is_a_request_and_only_5xx_answers_are_errors() {
        let stats = RouteStats::default();
        for status in [200, 404, 429, 499, 500, 503, 599] {
            stats.record(status);
        }
        assert_eq!(
            stats.counts(),
            RouteCounts {
                requests: 7,
                errors: 3
            }
        );
    }
}
