//! Any bytes on one HTTP/1.1 connection, through the lean server's parser and body decoder and
//! through hyper's HTTP/1 server behind the framing watcher: every request the lean server
//! takes, hyper takes alike (method, target, fields, body, or a broken body on both), and
//! what the lean server hands to hyper, hyper serves as it would have on its own.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Err(difference) = ims_proxy::differential::compare(bytes) {
        panic!("{difference}");
    }
});
