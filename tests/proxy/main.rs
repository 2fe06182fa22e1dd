//! The reverse proxy's request path, in-process: what the upstream receives and what the
//! caller gets, from the caller's bytes to the upstream's answer and back, at every limit.
//!
//! One test binary (one link of the crate, not one per file) for every test here that needs
//! no process of its own. A file stays out, as its own binary beside this one, when it
//! changes what other tests in the process would see, or is disturbed by them: the
//! process-wide log capture (`support::logs::capture_trace`: access_control, rate_limits,
//! secrets, trace_context, web_pages), Prometheus series asserted by a label that other tests
//! also record (the recorder is process-wide: admin), or counts that hold only with little
//! running beside them (fleet: Redis calls with a 50 ms timeout). Nothing here captures
//! logs; the metrics these files read carry labels of their own. Environment variables,
//! signals, working directories, span export and descriptor limits belong to child processes
//! (`support::child`), never to this one.

mod affinity;
mod availability;
mod bad_input;
mod body_pace;
mod egress;
mod forwarding;
mod limits;
mod listener_tls;
mod path_properties;
mod presets;
mod redirects;
mod reload_in_process;
mod routing;
mod smuggled_headers;
mod streaming;
mod tls_upstream;
mod upstream_failures;
mod upstream_framing;
mod upstream_slots;
