//! The outbound side: one pooled HTTP client for upstreams and IMS alike, through a corporate
//! egress proxy when one is configured.

mod breaker;
mod client;
mod egress;

pub use breaker::UpstreamBusy;
pub use client::{Outbound, RequestBody};
