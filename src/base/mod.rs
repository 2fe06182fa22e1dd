//! What every layer may use and that knows nothing of the proxy: the error helpers, form
//! bodies (URL-encoded and multipart), the header names the proxy owns, secrets and the files
//! they live in, PEM files, writing through IO wrappers, the file-descriptor budget, who counts as one client address,
//! what the binary was built from.

pub mod build;
pub mod error;
pub mod fds;
pub mod form;
pub mod headers;
pub mod io;
pub mod peer;
pub mod pem;
pub mod secret;
