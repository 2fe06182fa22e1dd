//! What this binary was built from, stamped by `build.rs`: for `--version` and
//! `ims_proxy_build_info`.

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The short commit, or `unknown` when built outside a git work tree.
pub const GIT_SHA: &str = env!("IMS_PROXY_GIT_SHA");
/// YYYY-MM-DD (UTC), from `SOURCE_DATE_EPOCH` when it was set.
pub const BUILD_DATE: &str = env!("IMS_PROXY_BUILD_DATE");
/// `0.1.0 (abc1234 2026-12-02)`: what `--version` prints after the name.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("IMS_PROXY_GIT_SHA"),
    " ",
    env!("IMS_PROXY_BUILD_DATE"),
    ")"
);
