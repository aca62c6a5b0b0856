//! Entry points for the cargo-fuzz targets in `fuzz/` (feature `fuzzing`).
//! Not a public API: they exist so crate-private parsers can be fuzzed.

use http::{HeaderMap, HeaderName, HeaderValue, Uri};

use crate::token::{TokenSource, TokenSources};

/// Splits `data` into request parts (headers, a query) and extracts a
/// credential the way every layer does. Must never panic.
pub fn token_sources(data: &[u8]) {
    let mut parts = data.split(|b| *b == b'\n');
    let query = parts.next().unwrap_or_default();
    let mut headers = HeaderMap::new();
    for line in parts {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(&line[colon + 1..]),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    let uri = std::str::from_utf8(query)
        .ok()
        .and_then(|q| format!("/path?{q}").parse::<Uri>().ok())
        .unwrap_or_else(|| Uri::from_static("/"));
    let sources = TokenSources::new([
        TokenSource::Bearer,
        TokenSource::Header(HeaderName::from_static("x-token")),
        TokenSource::Cookie("session".into()),
        TokenSource::Query("access_token".into()),
    ])
    .max_len(4096);
    let _ = sources.extract(&headers, &uri);
}

/// Splits a compact JWS and applies the header rules. Must never panic.
pub fn jws(token: &str) {
    let allowed = crate::jwt::Algorithm::ALL.into_iter().collect();
    // Accepting or rejecting are both fine; panicking is not.
    let _ = crate::jwt::fuzz_parse(token, allowed);
}

/// Parses a JWKS document into usable keys. Must never panic.
pub fn jwks(body: &[u8]) {
    crate::jwt::fuzz_jwks(body);
}
