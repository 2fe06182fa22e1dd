//! Each route's request and error counts, for the admin's status page. The metrics facade
//! writes to the exporter and gives nothing back, so the page reads these instead.

use crate::metrics::{RequestRecord, RouteSeries};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

/// The upstream statuses that say Adobe refused the proxy's request itself (its credential,
/// org or quota), not the caller's: the status page keeps the last of each per route.
pub const REFUSALS: [u16; 3] = [401, 403, 429];

/// The last upstream answer with one of [`REFUSALS`], and how many there were.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    /// Adobe's `error_code` (or `code`, `error`) from the body, when it had one.
    pub error_code: Option<String>,
    /// When its response head arrived.
    pub at: SystemTime,
    /// Refusals with this status since the route was configured.
    pub count: u64,
}

/// Answers a route gave since it was first configured (a reload keeps a route's counts while
/// its prefix stays). Counting is two relaxed atomic adds at most: no lock, no allocation.
#[derive(Debug, Default)]
pub struct RouteStats {
    requests: AtomicU64,
    errors: AtomicU64,
    /// The route's metrics handles, taken at its first answer (by then the recorder, if any,
    /// is installed: the admin listener installs it before the proxy port serves).
    series: OnceLock<RouteSeries>,
    /// By place in [`REFUSALS`]. Locked only for a refusal and a page view.
    refusals: Mutex<[Option<Refusal>; 3]>,
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

    /// Records an upstream answer with a status of [`REFUSALS`] (others are ignored).
    pub fn record_refusal(&self, status: u16, error_code: Option<String>, at: SystemTime) {
        let Some(i) = REFUSALS.iter().position(|s| *s == status) else {
            return;
        };
        let mut slots = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        let count = slots[i].as_ref().map_or(0, |r| r.count) + 1;
        slots[i] = Some(Refusal {
            status,
            error_code,
            at,
            count,
        });
    }

    /// The last refusal of each status there was, by status.
    pub fn refusals(&self) -> Vec<Refusal> {
        let slots = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        slots.iter().flatten().cloned().collect()
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
    fn the_last_refusal_of_each_status_is_kept_with_its_count() {
        let stats = RouteStats::default();
        let t = SystemTime::UNIX_EPOCH;
        stats.record_refusal(403, Some("403025".into()), t);
        stats.record_refusal(404, None, t);
        stats.record_refusal(403, Some("403003".into()), t);
        stats.record_refusal(401, None, t);
        let got = stats.refusals();
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].status, got[0].count), (401, 1));
        assert_eq!(got[1].error_code.as_deref(), Some("403003"));
        assert_eq!((got[1].status, got[1].count), (403, 2));
    }

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
