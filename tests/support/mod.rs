//! Shared test helpers: a recording fake upstream (plain and TLS), test certificates, HTTP
//! clients, and a harness that starts the proxy in-process on a free port.
#![allow(dead_code, unused_imports)]

pub mod child;
pub mod client;
pub mod connect_proxy;
pub mod ims;
pub mod logs;
pub mod proxy;
pub mod raw;
pub mod tls;
pub mod upstream;

#[allow(unused_imports)]
pub use {child::*, client::*, connect_proxy::*, proxy::*, upstream::*};

use std::time::Duration;

/// Polls `cond` until it holds or `deadline` passes; for tests on a loaded machine.
pub async fn eventually<F: FnMut() -> bool>(deadline: Duration, mut cond: F) -> bool {
    let end = tokio::time::Instant::now() + deadline;
    loop {
        if cond() {
            return true;
        }
        if tokio::time::Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
