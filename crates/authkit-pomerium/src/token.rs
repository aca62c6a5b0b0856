//! The route a token belongs to, and the token itself.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use http::HeaderValue;

use tower_authkit::__private::is_b64token;
use tower_authkit::__private::is_loopback_host;

/// Tokens this close to `exp` are treated as expired: a request sent with one
/// could be refused in flight.
pub(crate) const EXPIRY_MARGIN: Duration = Duration::from_secs(60);
/// Larger callback values are refused rather than stored and sent.
const MAX_TOKEN_LEN: usize = 16 * 1024;

/// A Pomerium route, identified the way tokens are scoped: scheme, host and
/// port (`https://app.example.com` and `https://app.example.com:8443` are
/// different routes).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Route {
    https: bool,
    host: String,
    port: u16,
}

impl Route {
    /// The route of a request URL, or `None` when it has no usable host or an
    /// unknown scheme (such requests are passed through untouched).
    pub(crate) fn new(scheme: &str, host: &str, port: Option<u16>) -> Option<Self> {
        let https = match scheme.to_ascii_lowercase().as_str() {
            "https" => true,
            "http" => false,
            _ => return None,
        };
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if host.is_empty() {
            return None;
        }
        let port = port.unwrap_or(if https { 443 } else { 80 });
        Some(Self { https, host, port })
    }

    pub(crate) fn from_uri(uri: &http::Uri) -> Option<Self> {
        Self::new(uri.scheme_str()?, uri.host()?, uri.port_u16())
    }

    pub(crate) fn from_url(url: &url::Url) -> Option<Self> {
        Self::new(url.scheme(), url.host_str()?, url.port())
    }

    /// The host without brackets or port, as matched against
    /// `authenticated_domains`.
    pub(crate) fn host(&self) -> &str {
        &self.host
    }

    /// `https://host[:port]`.
    pub(crate) fn origin(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        let default_port = if self.https { 443 } else { 80 };
        if self.port == default_port {
            format!("{scheme}://{}", self.host)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }

    /// The cache key (and file name stem): `host_port`, with `https` implied
    /// and plain http marked, since the two never share a token.
    pub(crate) fn key(&self) -> String {
        let scheme = if self.https { "" } else { "http_" };
        format!("{scheme}{}_{}", self.host, self.port)
    }

    /// Tokens travel over https only, except to loopback hosts.
    pub(crate) fn is_secure(&self) -> bool {
        self.https || is_loopback_host(&self.host)
    }

    /// Whether `domains` covers this host: equal, or a subdomain of one.
    pub(crate) fn within(&self, domains: &[String]) -> bool {
        domains.iter().any(|domain| {
            self.host == *domain
                || (self.host.len() > domain.len()
                    && self.host.ends_with(domain.as_str())
                    && self.host.as_bytes()[self.host.len() - domain.len() - 1] == b'.')
        })
    }
}

/// A Pomerium token. Opaque to us except for `exp`, which is read without
/// verification only to drop expired tokens early.
#[derive(Clone)]
pub(crate) struct Token {
    raw: Arc<str>,
    header: HeaderValue,
    expires_at: Option<SystemTime>,
}

impl Token {
    /// Accepts an RFC 6750 `b64token` (what a JWT is) of at most 16 KiB.
    pub(crate) fn parse(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        if raw.len() > MAX_TOKEN_LEN || !is_b64token(raw) {
            return None;
        }
        let mut header = HeaderValue::from_str(&format!("Pomerium {raw}")).ok()?;
        header.set_sensitive(true);
        Some(Self {
            raw: Arc::from(raw),
            header,
            expires_at: unverified_expiry(raw),
        })
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.raw
    }

    /// `Authorization: Pomerium <jwt>`, marked sensitive.
    pub(crate) fn authorization(&self) -> &HeaderValue {
        &self.header
    }

    /// False once `exp` is past or less than a minute away. Tokens without a
    /// readable `exp` stay usable until the server refuses them.
    pub(crate) fn is_fresh(&self, now: SystemTime) -> bool {
        self.expires_at.is_none_or(|exp| exp > now + EXPIRY_MARGIN)
    }
}

impl PartialEq for Token {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("value", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

fn unverified_expiry(raw: &str) -> Option<SystemTime> {
    let payload = raw.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let exp = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()?
        .get("exp")?
        .as_f64()?;
    (exp.is_finite() && exp >= 0.0).then(|| UNIX_EPOCH + Duration::from_secs_f64(exp.min(u32::MAX as f64 * 4.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt_with(payload: &str) -> String {
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!("{}.{}.sig", engine.encode(r#"{"alg":"ES256"}"#), engine.encode(payload))
    }

    #[test]
    fn subdomains_match_but_lookalikes_do_not() {
        let domains = vec!["example.com".to_owned()];
        let route = |host: &str| Route::new("https", host, None).unwrap();
        assert!(route("example.com").within(&domains));
        assert!(route("App.Example.com.").within(&domains));
        assert!(route("a.b.example.com").within(&domains));
        assert!(!route("badexample.com").within(&domains));
        assert!(!route("example.com.evil.net").within(&domains));
        assert!(!route("com").within(&domains));
    }

    #[test]
    fn routes_differ_by_port_and_scheme() {
        let a = Route::new("https", "app.example.com", None).unwrap();
        let b = Route::new("https", "app.example.com", Some(443)).unwrap();
        let c = Route::new("https", "app.example.com", Some(8443)).unwrap();
        let d = Route::new("http", "app.example.com", Some(443)).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(b, d);
        assert_eq!(a.origin(), "https://app.example.com");
        assert_eq!(c.origin(), "https://app.example.com:8443");
        assert!(Route::new("ftp", "x", None).is_none());
    }

    #[test]
    fn plain_http_is_secure_only_on_loopback() {
        assert!(Route::new("http", "127.0.0.1", Some(8080)).unwrap().is_secure());
        assert!(Route::new("http", "[::1]", Some(8080)).unwrap().is_secure());
        assert!(Route::new("http", "localhost", None).unwrap().is_secure());
        assert!(!Route::new("http", "app.example.com", None).unwrap().is_secure());
        assert!(Route::new("https", "app.example.com", None).unwrap().is_secure());
    }

    #[test]
    fn expiry_is_read_without_verification() {
        let now = SystemTime::now();
        let secs = now.duration_since(UNIX_EPOCH).unwrap().as_secs();
        let fresh = Token::parse(&jwt_with(&format!(r#"{{"exp":{}}}"#, secs + 3600))).unwrap();
        let closing = Token::parse(&jwt_with(&format!(r#"{{"exp":{}}}"#, secs + 30))).unwrap();
        let past = Token::parse(&jwt_with(&format!(r#"{{"exp":{}}}"#, secs - 10))).unwrap();
        let opaque = Token::parse("opaque-token").unwrap();
        assert!(fresh.is_fresh(now));
        assert!(!closing.is_fresh(now), "within the 60 s margin");
        assert!(!past.is_fresh(now));
        assert!(opaque.is_fresh(now), "no readable exp: the server decides");
    }

    #[test]
    fn odd_values_are_not_tokens_and_debug_hides_them() {
        for bad in ["", "a b", "tok\r\nx", "é", &"a".repeat(MAX_TOKEN_LEN + 1)] {
            assert!(Token::parse(bad).is_none(), "{bad:?}");
        }
        let token = Token::parse("secret.value.here").unwrap();
        assert!(!format!("{token:?}").contains("secret"));
        assert!(token.authorization().is_sensitive());
        assert_eq!(token.authorization(), "Pomerium secret.value.here");
    }
}
