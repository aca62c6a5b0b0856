//! Token-source parsing: Authorization, a named header, cookies, the query.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tower_authkit::fuzzing::token_sources(data);
});
