//! Compact JWS splitting and header rules.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = std::str::from_utf8(data) {
        tower_authkit::fuzzing::jws(token);
    }
});
