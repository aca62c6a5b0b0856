//! The ingress's path rule: whatever request-target a client sends for
//! `/s/wiki/...`, a downstream that decodes the forwarded path once and
//! normalises it (dot segments, `\` as `/`) still lands under the
//! service's base path; and nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use authkit_ingress::{Destination, normalised};

fuzz_target!(|data: &[u8]| {
    let Some((&choice, target)) = data.split_first() else {
        return;
    };
    let (base, base_path) = match choice % 3 {
        0 => ("http://10.0.0.1/app/", "/app"),
        1 => ("http://10.0.0.1/a/b", "/a/b"),
        _ => ("http://10.0.0.1/", ""),
    };
    let wiki = Destination::parse("wiki", base).expect("an internal URL");
    let Ok(target) = std::str::from_utf8(target) else {
        return;
    };
    // What a server hands on: a request-target that parsed as a URI.
    let Ok(uri) = format!("/s/wiki{target}").parse::<http::Uri>() else {
        return;
    };
    if let Ok(forwarded) = wiki.target(&uri) {
        let path = normalised(forwarded.path());
        assert!(
            path == base_path || path == "/" || path.starts_with(&format!("{base_path}/")),
            "{uri} was forwarded as {forwarded}, which normalises to {path}"
        );
        assert_eq!(forwarded.query(), uri.query(), "the query is kept as sent");
    }
});
