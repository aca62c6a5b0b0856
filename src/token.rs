//! Token sources: where a request's credential is found.

use std::fmt;

use http::header::{AUTHORIZATION, COOKIE};
use http::{HeaderMap, HeaderName, Uri};

use crate::rejection::AuthError;

/// The default upper bound on a credential's length: 16 KiB.
pub const DEFAULT_MAX_TOKEN_LEN: usize = 16 * 1024;

/// A credential taken from a request. Its `Debug` output never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    value: String,
    source: SourceKind,
}

impl Credential {
    /// Wraps a raw credential found by `source`.
    pub fn new(value: impl Into<String>, source: SourceKind) -> Self {
        Self {
            value: value.into(),
            source,
        }
    }

    /// The raw credential. Never log it.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// Which kind of source found it.
    pub fn source(&self) -> SourceKind {
        self.source
    }
}

impl Credential {
    /// Whether the credential has the shape of a compact JWT: three
    /// non-empty dot-separated parts, the first a base64url JSON object
    /// (`eyJ…`). Nothing is decoded or verified.
    pub fn is_compact_jwt(&self) -> bool {
        let mut parts = self.value.split('.');
        matches!(
            (parts.next(), parts.next(), parts.next(), parts.next()),
            (Some(header), Some(payload), Some(signature), None)
                if header.starts_with("eyJ") && !payload.is_empty() && !signature.is_empty()
        )
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("value", &"[redacted]")
            .field("len", &self.value.len())
            .field("source", &self.source)
            .finish()
    }
}

/// The kind of place a credential came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SourceKind {
    /// `Authorization: Bearer <token>` (also gRPC `authorization` metadata).
    Bearer,
    /// A named header (also gRPC metadata of that name).
    Header,
    /// A named cookie.
    Cookie,
    /// A query-string parameter.
    Query,
    /// `Authorization: DPoP <token>` (RFC 9449), with a `DPoP` proof header.
    Dpop,
}

/// One place to look for a credential.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenSource {
    /// `Authorization: Bearer <token>`; the scheme is case-insensitive.
    Bearer,
    /// `Authorization: DPoP <token>` (RFC 9449); the layer of an issuer with
    /// DPoP on reads it.
    Dpop,
    /// The whole value of a named header, e.g. `Cf-Access-Jwt-Assertion`.
    Header(HeaderName),
    /// The value of a named cookie.
    Cookie(String),
    /// A query-string parameter. Tokens in URLs end up in logs and browser
    /// history: use only when a client cannot send headers.
    Query(String),
}

impl TokenSource {
    fn kind(&self) -> SourceKind {
        match self {
            TokenSource::Bearer => SourceKind::Bearer,
            TokenSource::Dpop => SourceKind::Dpop,
            TokenSource::Header(_) => SourceKind::Header,
            TokenSource::Cookie(_) => SourceKind::Cookie,
            TokenSource::Query(_) => SourceKind::Query,
        }
    }
}

/// An ordered list of [`TokenSource`]s with a length limit.
///
/// Token sources: where a request's credential is found.
///
/// A [`TokenSources`] list is tried in order; the first source that finds a
/// credential wins. Each source answers "absent", "present" or "malformed"
/// (a rejection: two `Authorization` headers, a token with spaces, an oversized
/// token). Oversized values are rejected before any parsing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenSources {
    sources: Vec<TokenSource>,
    max_len: usize,
    /// Several cookies of one name are ambiguous for a bearer-like cookie
    /// (400); a signed session cookie can tell its own from the others.
    duplicate_cookies_allowed: bool,
    /// Bearer is read, but not offered in challenges (DPoP required).
    bearer_not_offered: bool,
}

impl Default for TokenSources {
    /// `Authorization: Bearer` only, 16 KiB limit.
    fn default() -> Self {
        Self::new([TokenSource::Bearer])
    }
}

impl TokenSources {
    /// Whether `Authorization: DPoP` is one of the sources.
    pub(crate) fn offers_dpop(&self) -> bool {
        self.sources.contains(&TokenSource::Dpop)
    }

    /// Sources tried in the given order.
    pub fn new(sources: impl IntoIterator<Item = TokenSource>) -> Self {
        Self {
            sources: sources.into_iter().collect(),
            max_len: DEFAULT_MAX_TOKEN_LEN,
            duplicate_cookies_allowed: false,
            bearer_not_offered: false,
        }
    }

    /// Challenges (for requests with no credential) offer `DPoP` only.
    #[cfg(feature = "jwks")]
    pub(crate) fn challenging_dpop_only(mut self) -> Self {
        self.bearer_not_offered = true;
        self
    }

    /// Whether a challenge offers the `Bearer` scheme: not when every
    /// issuer requires DPoP, nor when credentials come from cookies only
    /// (a browser session, which no `Authorization` header can replace).
    pub(crate) fn offers_bearer(&self) -> bool {
        !self.bearer_not_offered && !self.cookies_only()
    }

    /// Whether every source is a cookie.
    pub(crate) fn cookies_only(&self) -> bool {
        !self.sources.is_empty()
            && self
                .sources
                .iter()
                .all(|source| matches!(source, TokenSource::Cookie(_)))
    }

    /// Lets several cookies of one name through (the first well-formed one
    /// is the credential), for authenticators that pick the right one
    /// themselves by its signature.
    #[cfg(feature = "session")]
    pub(crate) fn allowing_duplicate_cookies(mut self) -> Self {
        self.duplicate_cookies_allowed = true;
        self
    }

    /// Adds a source tried after the existing ones.
    pub fn with(mut self, source: TokenSource) -> Self {
        self.sources.push(source);
        self
    }

    /// Sets the largest accepted credential, in bytes.
    pub fn max_len(mut self, max_len: usize) -> Self {
        self.max_len = max_len;
        self
    }

    /// Finds the request's credential: `Ok(None)` when no source has one.
    pub fn extract(&self, headers: &HeaderMap, uri: &Uri) -> Result<Option<Credential>, AuthError> {
        for source in &self.sources {
            let found = match source {
                TokenSource::Bearer => authorization(headers, "bearer", self.max_len)?,
                TokenSource::Dpop => authorization(headers, "dpop", self.max_len)?,
                TokenSource::Header(name) => named_header(headers, name, self.max_len)?,
                TokenSource::Cookie(name) => cookie(headers, name, self.max_len, self.duplicate_cookies_allowed)?,
                TokenSource::Query(name) => query(uri, name, self.max_len)?,
            };
            if let Some(value) = found {
                return Ok(Some(Credential::new(value, source.kind())));
            }
        }
        Ok(None)
    }
}

/// SHA-256 of a credential, with a context (e.g. the upstream URL) mixed in:
/// caches key on this, never on the token itself.
#[cfg(any(feature = "cloudflare", feature = "proxy-user", feature = "introspection"))]
pub(crate) fn digest(context: &str, token: &str) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(context.as_bytes());
    hasher.update([0u8]);
    hasher.update(token.as_bytes());
    hasher.finalize().into()
}

fn too_large() -> AuthError {
    AuthError::invalid_token("token too large")
}

/// RFC 6265 `cookie-octet`s only: printable ASCII except space, `"`, `,`,
/// `;` and `\\`. Cookies are not bearer headers: signed values such as the
/// `cookie` crate's carry `=` inside.
fn is_cookie_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| (0x21..=0x7e).contains(&b) && !matches!(b, b'"' | b',' | b';' | b'\\'))
}

/// RFC 6750 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
pub fn is_b64token(token: &str) -> bool {
    // Branch-free per byte and checked in chunks so the compiler vectorizes
    // it: this runs on every request, over the whole token.
    fn allowed(b: u8) -> bool {
        let lower = b | 0x20;
        (lower.wrapping_sub(b'a') < 26)
            | (b.wrapping_sub(b'0') < 10)
            | (b == b'-')
            | (b == b'.')
            | (b == b'_')
            | (b == b'~')
            | (b == b'+')
            | (b == b'/')
    }
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body
            .as_bytes()
            .chunks(64)
            .all(|chunk| chunk.iter().fold(true, |ok, &b| ok & allowed(b)))
}

fn single_header<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Result<Option<&'a [u8]>, AuthError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthError::invalid_request(format!("multiple {name} headers")));
    }
    Ok(Some(first.as_bytes()))
}

/// The token of `Authorization: <wanted> <token>` (`bearer` or `dpop`).
fn authorization(headers: &HeaderMap, wanted: &str, max_len: usize) -> Result<Option<String>, AuthError> {
    let Some(raw) = single_header(headers, &AUTHORIZATION)? else {
        return Ok(None);
    };
    if raw.len() > max_len + "Bearer ".len() {
        return Err(too_large());
    }
    let Ok(text) = std::str::from_utf8(raw) else {
        return Err(AuthError::invalid_request("malformed Authorization header"));
    };
    let (scheme, rest) = text.split_once(' ').unwrap_or((text, ""));
    if !scheme.eq_ignore_ascii_case(wanted) {
        // Another scheme (Basic, Pomerium, ...) is not ours to judge.
        return Ok(None);
    }
    let token = rest.trim_matches(' ');
    if token.is_empty() {
        return Err(AuthError::invalid_request("empty bearer token"));
    }
    if token.len() > max_len {
        return Err(too_large());
    }
    if !is_b64token(token) {
        return Err(AuthError::invalid_request("malformed bearer token"));
    }
    Ok(Some(token.to_owned()))
}

fn named_header(headers: &HeaderMap, name: &HeaderName, max_len: usize) -> Result<Option<String>, AuthError> {
    let Some(raw) = single_header(headers, name)? else {
        return Ok(None);
    };
    if raw.len() > max_len {
        return Err(too_large());
    }
    let token = std::str::from_utf8(raw).map(str::trim).unwrap_or("");
    if token.is_empty() {
        return Ok(None);
    }
    if !is_b64token(token) {
        return Err(AuthError::invalid_request(format!("malformed {name} header")));
    }
    Ok(Some(token.to_owned()))
}

fn cookie(headers: &HeaderMap, name: &str, max_len: usize, duplicates: bool) -> Result<Option<String>, AuthError> {
    let mut found: Option<String> = None;
    for header in headers.get_all(COOKIE) {
        // Bound the work on hostile input: no single Cookie header may exceed
        // the token limit plus a generous allowance for other cookies.
        if header.len() > max_len + 8 * 1024 {
            return Err(too_large());
        }
        let Ok(text) = header.to_str() else { continue };
        for parsed in cookie::Cookie::split_parse(text).flatten() {
            if parsed.name() != name {
                continue;
            }
            if duplicates && (parsed.value().is_empty() || !is_cookie_value(parsed.value())) {
                continue;
            }
            if found.is_some() {
                if duplicates {
                    continue;
                }
                return Err(AuthError::invalid_request(format!("multiple {name} cookies")));
            }
            let value = parsed.value();
            if value.len() > max_len {
                return Err(too_large());
            }
            found = Some(value.to_owned());
        }
    }
    match found {
        Some(value) if value.is_empty() => Ok(None),
        Some(value) if !is_cookie_value(&value) => Err(AuthError::invalid_request(format!("malformed {name} cookie"))),
        other => Ok(other),
    }
}

fn query(uri: &Uri, name: &str, max_len: usize) -> Result<Option<String>, AuthError> {
    let Some(query) = uri.query() else {
        return Ok(None);
    };
    let mut found: Option<String> = None;
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        if key != name {
            continue;
        }
        if found.is_some() {
            return Err(AuthError::invalid_request(format!("multiple {name} parameters")));
        }
        if value.len() > max_len {
            return Err(too_large());
        }
        found = Some(value.into_owned());
    }
    match found {
        Some(value) if value.is_empty() => Ok(None),
        Some(value) if !is_b64token(&value) => Err(AuthError::invalid_request(format!("malformed {name} parameter"))),
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rejection::AuthErrorKind;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(HeaderName::try_from(*name).unwrap(), value.parse().unwrap());
        }
        map
    }

    fn extract(sources: &TokenSources, pairs: &[(&str, &str)]) -> Result<Option<String>, AuthError> {
        sources
            .extract(&headers(pairs), &Uri::from_static("/"))
            .map(|c| c.map(|c| c.expose().to_owned()))
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        let sources = TokenSources::default();
        for scheme in ["Bearer", "bearer", "BEARER"] {
            let value = format!("{scheme} abc.def.ghi");
            assert_eq!(
                extract(&sources, &[("authorization", &value)]).unwrap().as_deref(),
                Some("abc.def.ghi")
            );
        }
    }

    #[test]
    fn other_schemes_are_absent_not_errors() {
        let sources = TokenSources::default();
        assert_eq!(
            extract(&sources, &[("authorization", "Basic dXNlcjpwYXNz")]).unwrap(),
            None
        );
        assert_eq!(extract(&sources, &[]).unwrap(), None);
    }

    #[test]
    fn duplicate_authorization_headers_are_rejected() {
        let sources = TokenSources::default();
        let error = extract(
            &sources,
            &[("authorization", "Bearer a.b.c"), ("authorization", "Bearer d.e.f")],
        )
        .unwrap_err();
        assert_eq!(error.kind(), AuthErrorKind::InvalidRequest);
    }

    #[test]
    fn tokens_with_spaces_or_empty_are_rejected() {
        let sources = TokenSources::default();
        for value in ["Bearer a.b c", "Bearer ", "Bearer a,b", "Bearer a\"b"] {
            assert!(extract(&sources, &[("authorization", value)]).is_err(), "{value}");
        }
    }

    #[test]
    fn oversized_tokens_are_rejected_before_parsing() {
        let sources = TokenSources::default().max_len(10);
        let error = extract(
            &sources,
            &[("authorization", "Bearer aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")],
        )
        .unwrap_err();
        assert_eq!(error.kind(), AuthErrorKind::InvalidToken);
        assert_eq!(error.description(), "token too large");
    }

    #[test]
    fn sources_are_tried_in_order() {
        let sources = TokenSources::new([
            TokenSource::Header(HeaderName::from_static("x-token")),
            TokenSource::Cookie("session".into()),
        ]);
        assert_eq!(
            extract(
                &sources,
                &[("cookie", "a=1; session=from-cookie"), ("x-token", "from-header")]
            )
            .unwrap()
            .as_deref(),
            Some("from-header")
        );
        assert_eq!(
            extract(&sources, &[("cookie", "a=1; session=from-cookie")])
                .unwrap()
                .as_deref(),
            Some("from-cookie")
        );
        assert!(extract(&sources, &[("cookie", "session=a"), ("cookie", "session=b")]).is_err());
    }

    #[test]
    fn query_parameter_only_when_configured() {
        let uri = Uri::from_static("/x?access_token=abc.def&y=1");
        assert_eq!(TokenSources::default().extract(&HeaderMap::new(), &uri).unwrap(), None);
        let sources = TokenSources::default().with(TokenSource::Query("access_token".into()));
        assert_eq!(
            sources.extract(&HeaderMap::new(), &uri).unwrap().unwrap().expose(),
            "abc.def"
        );
    }

    #[test]
    fn debug_output_never_shows_the_credential() {
        let credential = Credential::new("secret-token-value", SourceKind::Bearer);
        assert!(!format!("{credential:?}").contains("secret-token-value"));
    }
}
