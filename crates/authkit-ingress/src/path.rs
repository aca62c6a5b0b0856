//! The downstream request-target, built from the raw (still percent-encoded)
//! path the client sent, never from a decoded copy. The rule is on
//! [`join_path`].

use std::fmt;

/// Why a client's path was refused (answered with 400 before anything is
/// sent downstream).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathRefused {
    reason: &'static str,
}

impl PathRefused {
    pub(crate) const fn new(reason: &'static str) -> Self {
        Self { reason }
    }

    /// What was wrong, for the client and the log (never the path itself).
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

impl fmt::Display for PathRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "path refused: {}", self.reason)
    }
}

impl std::error::Error for PathRefused {}

fn hex(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Decodes one raw segment's percent escapes into `out` (cleared first).
fn decode_segment(raw: &[u8], out: &mut Vec<u8>) -> Result<(), PathRefused> {
    out.clear();
    let mut bytes = raw.iter().copied();
    while let Some(byte) = bytes.next() {
        if byte == b'%' {
            let high = bytes.next().and_then(hex);
            let low = bytes.next().and_then(hex);
            match (high, low) {
                (Some(high), Some(low)) => out.push(high << 4 | low),
                _ => return Err(PathRefused::new("malformed percent-encoding")),
            }
        } else {
            out.push(byte);
        }
    }
    Ok(())
}

/// Checks one raw segment (between two `/`) against the rule.
fn check_segment(raw: &[u8], decoded: &mut Vec<u8>) -> Result<(), PathRefused> {
    decode_segment(raw, decoded)?;
    if decoded.iter().any(|&b| b == b'/' || b == b'\\') {
        return Err(PathRefused::new("a segment contains an encoded slash or a backslash"));
    }
    if decoded.iter().any(|&b| b < 0x20 || b == 0x7f || b == 0xc0 || b == 0xc1) {
        return Err(PathRefused::new("a segment contains a control or overlong byte"));
    }
    // `..;param` is `..` to servlet containers: judge the part before `;`.
    let name = decoded.split(|&b| b == b';').next().unwrap_or_default();
    if !name.is_empty() && name.iter().all(|&b| b == b'.') {
        return Err(PathRefused::new("a segment is a dot segment"));
    }
    Ok(())
}

/// Checks `raw_rest` (the raw path after the service prefix: empty or
/// starting with `/`) and appends it to `base_path`.
///
/// The rule, one for every request: the path after `/s/{name}` is appended
/// to the service's base path byte for byte, and the query is kept as sent.
/// Before that, the path is refused (400, nothing sent) when any of its
/// segments, percent-decoded once, would let a downstream see a different
/// path structure than the ingress checked:
///
/// - a dot segment: `.`, `..` (or only dots, as some servers trim trailing
///   dots), raw or encoded (`%2e`, `%2E`, mixed), also before a `;`
///   parameter (`..;/`, which Tomcat reads as `..`);
/// - an encoded `/` or `\` (`%2F`, `%5C`), or a raw `\`;
/// - a NUL or other control byte, or the overlong UTF-8 lead bytes
///   `0xC0`/`0xC1` (old decoders read `%C0%AE` as `.`);
/// - a malformed escape (`%` not followed by two hex digits);
/// - a joined path that would start with `//` (read as an authority by
///   some URL parsers).
///
/// So the forwarded path, decoded once and normalised (dot segments removed,
/// `\` read as `/`), always starts with the base path: a request for one
/// service never reaches another service's paths on a shared host, and
/// every other byte (`%20`, `%3F`, `%23`, `%C3%A9`, a double-encoded
/// `%252e`) reaches the service exactly as the client wrote it.
///
/// ```
/// use authkit_ingress::join_path;
///
/// assert_eq!(join_path("/app/", "/docs/a%20b").unwrap(), "/app/docs/a%20b");
/// assert_eq!(join_path("/", "/caf%C3%A9").unwrap(), "/caf%C3%A9");
/// assert!(join_path("/app/", "/..%2Fhr%2Fsecret").is_err());
/// assert!(join_path("/app/", "/%2e%2e/hr").is_err());
/// ```
pub fn join_path(base_path: &str, raw_rest: &str) -> Result<String, PathRefused> {
    if !(raw_rest.is_empty() || raw_rest.starts_with('/')) {
        return Err(PathRefused::new("the path is not under the service prefix"));
    }
    let mut decoded = Vec::new();
    for segment in raw_rest.as_bytes().split(|&b| b == b'/') {
        check_segment(segment, &mut decoded)?;
    }
    let base = base_path.trim_end_matches('/');
    let joined = match raw_rest {
        "" if base.is_empty() => "/".to_owned(),
        "" => base.to_owned(),
        rest => format!("{base}{rest}"),
    };
    if joined.starts_with("//") {
        return Err(PathRefused::new("the path would start with an empty segment"));
    }
    Ok(joined)
}

/// Splits a raw request path `/s/{name}{rest}` into its service name
/// (percent-decoded, as a router would match it) and the raw rest (empty
/// or starting with `/`). `None` when the path is not under `/s/`.
pub(crate) fn split_service_path(raw_path: &str) -> Option<(String, &str)> {
    let after = raw_path.strip_prefix("/s/")?;
    let end = after.find('/').unwrap_or(after.len());
    let (name, rest) = after.split_at(end);
    let mut decoded = Vec::new();
    decode_segment(name.as_bytes(), &mut decoded).ok()?;
    Some((String::from_utf8(decoded).ok()?, rest))
}

/// The once-decoded, normalised form of a path (dot segments resolved, `\`
/// read as `/`): what a lenient downstream might serve. For the fuzz
/// target and tests of the invariant.
#[doc(hidden)]
pub fn normalised(path: &str) -> String {
    let mut decoded = Vec::new();
    let mut bytes = path.bytes();
    while let Some(byte) = bytes.next() {
        if byte == b'%' {
            let high = bytes.next().and_then(hex);
            let low = bytes.next().and_then(hex);
            if let (Some(high), Some(low)) = (high, low) {
                decoded.push(high << 4 | low);
                continue;
            }
        }
        decoded.push(byte);
    }
    let text = String::from_utf8_lossy(&decoded).replace('\\', "/");
    let mut out: Vec<&str> = Vec::new();
    for segment in text.split('/') {
        match segment.split(';').next().unwrap_or_default() {
            "." => {}
            ".." => {
                out.pop();
            }
            _ => out.push(segment),
        }
    }
    let joined = out.join("/");
    if joined.starts_with('/') {
        joined
    } else {
        format!("/{joined}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_paths_are_refused() {
        for rest in [
            "/..%2Fhr%2Fsecret",
            "/../hr/secret",
            "/..",
            "/.",
            "/a/./b",
            "/a/../b",
            "/%2e%2e/hr",
            "/%2E%2E/hr",
            "/.%2E/hr",
            "/%2e./hr",
            "/%2e",
            "/...",
            "/..;/hr",
            "/..;jsessionid=x/hr",
            "/%2e%2e;x/hr",
            "/a%2Fb",
            "/a%2fb",
            "/a%5Cb",
            "/a%5cb",
            "/a\\b",
            "/a%00b",
            "/a%0ab",
            "/a%7Fb",
            "/%C0%AE%C0%AE/hr",
            "/%c1%9c",
            "/a%zz",
            "/a%2",
            "/a%",
            "no-leading-slash",
        ] {
            assert!(join_path("/app/", rest).is_err(), "{rest}");
        }
    }

    #[test]
    fn other_bytes_pass_through_unchanged() {
        for (base, rest, joined) in [
            ("/app/", "/docs/a", "/app/docs/a"),
            ("/app", "/docs/a", "/app/docs/a"),
            ("/app/", "", "/app"),
            ("/app/", "/", "/app/"),
            ("/", "", "/"),
            ("/", "/", "/"),
            ("", "/x", "/x"),
            ("/app/", "/a%20b", "/app/a%20b"),
            ("/app/", "/x%3Fy", "/app/x%3Fy"),
            ("/app/", "/x%23y", "/app/x%23y"),
            ("/app/", "/caf%C3%A9", "/app/caf%C3%A9"),
            ("/app/", "/%252e%252e/x", "/app/%252e%252e/x"),
            ("/app/", "/.well-known/x", "/app/.well-known/x"),
            ("/app/", "/a..b/c.", "/app/a..b/c."),
            ("/app/", "/a//b", "/app/a//b"),
            ("/app/", "/a;b=c", "/app/a;b=c"),
        ] {
            assert_eq!(join_path(base, rest).as_deref(), Ok(joined), "{base} + {rest}");
        }
        assert!(join_path("/", "//evil.example/x").is_err());
    }

    #[test]
    fn every_accepted_path_stays_under_the_base_once_decoded_and_normalised() {
        let pieces = [
            "", "a", ".", "..", "%2e", "%2E%2e", "%2F", "%5C", "%25", "%252e", ";", "..;", "b%20c", "%C3%A9", "\\",
        ];
        let mut checked = 0;
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    let rest = format!("/{a}/{b}/{c}");
                    if let Ok(joined) = join_path("/app/", &rest) {
                        checked += 1;
                        let normal = normalised(&joined);
                        assert!(normal == "/app" || normal.starts_with("/app/"), "{rest} -> {normal}");
                    }
                }
            }
        }
        assert!(checked > 100);
    }

    #[test]
    fn service_paths_split_on_the_raw_name() {
        assert_eq!(split_service_path("/s/wiki/a%2Fb"), Some(("wiki".to_owned(), "/a%2Fb")));
        assert_eq!(split_service_path("/s/wiki"), Some(("wiki".to_owned(), "")));
        assert_eq!(split_service_path("/s/wi%6Bi/"), Some(("wiki".to_owned(), "/")));
        assert_eq!(split_service_path("/other/wiki/"), None);
        assert_eq!(split_service_path("/s/%zz/"), None);
    }
}
