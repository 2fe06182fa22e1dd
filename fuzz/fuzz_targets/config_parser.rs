//! Any bytes as `proxy.toml`: parsing and validation may refuse them, never panic. Validation
//! reads no file unless the input names one, and makes no network call.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = ims_proxy::config::Config::from_toml(text) {
        // Keep the fuzzer off the file system: only configs that name no files are built.
        if text.contains("_file") {
            return;
        }
        if let Ok(snapshot) = ims_proxy::Snapshot::build(&config, None) {
            let _ = snapshot.describe();
        }
    }
});
