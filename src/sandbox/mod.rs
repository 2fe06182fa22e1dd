//! A faithful local stand-in for Adobe IMS, for tests and for `ims-proxy sandbox`.

pub mod ims;
