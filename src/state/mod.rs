//! What requests read: the [`Snapshot`] built from the config (routes, credentials, callers,
//! shaping, listener TLS), swapped whole on reload through [`Shared`].

mod ca;
mod callers;
mod forward;
mod limits;
mod routes;
mod shaping;
mod site;
mod snapshot;
mod stats;
mod tls;

pub use ca::LocalCa;
pub use callers::{AccessError, Caller};
pub use forward::Decision;
pub use limits::ConnLimits;
pub use routes::{Probe, Route, DEFAULT_COOL_DOWN};
pub use shaping::{Permit, Refused, RefusedBy};
pub use site::SiteRefusal;
pub use snapshot::Snapshot;
pub use stats::{Refusal, RouteCounts, RouteStats, REFUSALS};

use arc_swap::ArcSwap;
use std::sync::Arc;

/// Shared by every connection: the current snapshot, swapped whole on reload.
pub struct Shared {
    pub snapshot: ArcSwap<Snapshot>,
}

impl Shared {
    pub fn new(snapshot: Snapshot) -> Arc<Shared> {
        Arc::new(Shared {
            snapshot: ArcSwap::from_pointee(snapshot),
        })
    }
}
