//! The outbound side: one HTTP client for upstreams and IMS alike (a pool, and connections
//! held per caller connection), through a corporate egress proxy when one is configured.

mod affinity;
mod breaker;
mod client;
mod egress;
mod share;
mod wire;

pub use affinity::Affinity;
pub use breaker::{NoDescriptors, UpstreamBusy};
pub use client::{Answer, Outbound, OutboundError, RequestBody};
pub use share::{CallerKey, CallerShare, Share};
