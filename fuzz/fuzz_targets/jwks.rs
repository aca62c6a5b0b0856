//! JWKS documents.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tower_authkit::fuzzing::jwks(data);
});
