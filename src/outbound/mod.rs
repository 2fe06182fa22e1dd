//! The outbound side: one pooled HTTP client for upstreams and IMS alike, through a corporate
//! egress proxy when one is configured.

mod client;
mod egress;

pub use client::{Outbound, RequestBody};
