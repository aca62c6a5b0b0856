//! Server-to-server HTTP for every authenticator that calls out (key sets,
//! discovery, identity lookups, user-info, introspection): one client per
//! layer, a timeout per attempt, a small retry with backoff for idempotent
//! GETs, a body size cap, no redirects, and https-only URLs (http allowed on
//! loopback).

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use url::Url;

use crate::error::ConfigError;
use crate::rejection::AuthError;

/// Why a fetch failed. Shown in logs; never contains credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchError {
    /// No answer: DNS, connect, timeout, TLS (the cause, for the log).
    Unreachable(&'static str),
    /// An answer with this status where success was needed.
    Status(u16),
    TooLarge,
    /// An answer we cannot use (what is wrong with it).
    Invalid(&'static str),
    IssuerMismatch {
        expected: String,
        actual: Option<String>,
    },
    InsecureUrl,
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Unreachable(cause) => f.write_str(cause),
            FetchError::Status(code) => write!(f, "answered HTTP status {code}"),
            FetchError::TooLarge => write!(f, "response body too large"),
            FetchError::Invalid(reason) => f.write_str(reason),
            FetchError::IssuerMismatch { expected, actual } => match actual {
                Some(actual) => write!(
                    f,
                    "issuer mismatch: expected {expected:?}, the discovery document says {actual:?}"
                ),
                None => write!(
                    f,
                    "issuer mismatch: expected {expected:?}, the discovery document names none"
                ),
            },
            FetchError::InsecureUrl => write!(f, "discovered endpoint is not https (or loopback http)"),
        }
    }
}

impl FetchError {
    /// Whether another attempt could succeed.
    fn is_transient(&self) -> bool {
        match self {
            FetchError::Status(code) => *code >= 500 || *code == 429 || *code == 408,
            FetchError::Unreachable(_) => true,
            _ => false,
        }
    }

    /// What a request that needed this call is answered: the crate's one
    /// mapping (see the [module docs](super)). `upstream` names the service
    /// in the response ("signing keys", "token introspection", ...);
    /// `retry_after` is used for 503s.
    pub(crate) fn to_auth_error(&self, upstream: &'static str, retry_after: Duration) -> AuthError {
        match self {
            FetchError::Unreachable(_) => AuthError::unavailable(format!("{upstream} unreachable"), retry_after),
            _ => AuthError::bad_gateway(format!("{upstream} gave an unusable answer")),
        }
    }

    /// The answer for an unexpected status from an upstream that answered.
    pub(crate) fn unexpected_status(status: http::StatusCode) -> Self {
        FetchError::Status(status.as_u16())
    }
}

/// Accepts https URLs, and http only for loopback hosts; `setting` names
/// the configuration that gave the URL in the error.
pub fn check_url(setting: &'static str, url: &Url) -> Result<(), ConfigError> {
    let loopback = url.host_str().is_some_and(is_loopback_host);
    match url.scheme() {
        "https" if url.host().is_some() => Ok(()),
        "http" if loopback => Ok(()),
        "http" | "https" => Err(ConfigError::InsecureUrl {
            setting,
            url: url.to_string(),
        }),
        other => Err(ConfigError::Invalid {
            setting,
            reason: format!("{url} — unsupported scheme {other:?} (https, or http on loopback)"),
        }),
    }
}

/// Checks an issuer as configured: a URL, https (http only on loopback).
/// Errors quote the issuer as given.
pub(crate) fn check_issuer_url(issuer: &str) -> Result<(), ConfigError> {
    let url = Url::parse(issuer).map_err(|e| ConfigError::Invalid {
        setting: "issuer",
        reason: format!("{issuer:?} — not a URL: {e}"),
    })?;
    discovery_url(issuer).map_err(|e| ConfigError::Invalid {
        setting: "issuer",
        reason: format!("{issuer:?} — no discovery URL: {e}"),
    })?;
    check_url("issuer", &url).map_err(|error| match error {
        ConfigError::InsecureUrl { setting, .. } => ConfigError::InsecureUrl {
            setting,
            url: issuer.to_owned(),
        },
        ConfigError::Invalid { setting, .. } => ConfigError::Invalid {
            setting,
            reason: format!(
                "{issuer} — unsupported scheme {:?} (https, or http on loopback)",
                url.scheme()
            ),
        },
        other => other,
    })
}

/// `localhost`, or a loopback IP (IPv6 with or without brackets): the only
/// hosts plain http is allowed to.
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost") || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Parses and checks a configured URL.
pub(crate) fn parse_url(setting: &'static str, raw: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(raw).map_err(|e| ConfigError::Invalid {
        setting,
        reason: format!("{raw:?} — {e}"),
    })?;
    check_url(setting, &url)?;
    Ok(url)
}

#[derive(Clone, Debug)]
pub struct FetchPolicy {
    pub timeout: Duration,
    pub retries: u32,
    pub backoff: Duration,
    pub max_body: usize,
    /// Extra trusted CA certificates (PEM), on top of the system's roots.
    pub extra_roots_pem: Vec<Vec<u8>>,
    /// What this client talks to, for metrics (`jwks`, `introspection`, …).
    pub upstream: &'static str,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            retries: 2,
            backoff: Duration::from_millis(100),
            max_body: 1024 * 1024,
            extra_roots_pem: Vec::new(),
            upstream: "jwks",
        }
    }
}

/// Fetches small JSON documents.
#[derive(Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    policy: FetchPolicy,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("upstream", &self.policy.upstream)
            .field("timeout", &self.policy.timeout)
            .finish_non_exhaustive()
    }
}

impl Fetcher {
    pub fn new(policy: FetchPolicy) -> Result<Self, ConfigError> {
        let mut roots = Vec::new();
        for pem in &policy.extra_roots_pem {
            let bundle = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| ConfigError::Invalid {
                setting: "root_certificate",
                reason: e.to_string(),
            })?;
            if bundle.is_empty() {
                return Err(ConfigError::Invalid {
                    setting: "root_certificate",
                    reason: "no PEM certificate found".to_owned(),
                });
            }
            roots.extend(bundle);
        }
        let client = reqwest::Client::builder()
            .tls_certs_merge(roots)
            .timeout(policy.timeout)
            .connect_timeout(policy.timeout)
            // Redirects could lead a key fetch to an unchecked URL.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tower-authkit/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConfigError::Invalid {
                setting: "http client",
                reason: e.to_string(),
            })?;
        Ok(Self { client, policy })
    }

    /// GETs `url`, retrying transient failures, and returns the body.
    pub(crate) async fn get(&self, url: &Url) -> Result<Vec<u8>, FetchError> {
        self.get_with(url, &http::HeaderMap::new()).await
    }

    /// GETs `url` with extra request headers (never logged).
    pub async fn get_with(&self, url: &Url, headers: &http::HeaderMap) -> Result<Vec<u8>, FetchError> {
        let mut attempt = 0;
        loop {
            match self.get_once(url, headers).await {
                Ok(body) => return Ok(body),
                Err(error) if error.is_transient() && attempt < self.policy.retries => {
                    attempt += 1;
                    tracing::debug!(%url, %error, attempt, "retrying fetch");
                    tokio::time::sleep(self.policy.backoff * 2u32.pow(attempt - 1)).await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    async fn get_once(&self, url: &Url, headers: &http::HeaderMap) -> Result<Vec<u8>, FetchError> {
        let (status, body) = self.exchange(http::Method::GET, url, headers, None).await?;
        if !status.is_success() {
            return Err(FetchError::Status(status.as_u16()));
        }
        Ok(body)
    }

    /// One request, no retry: the status and the (size-capped) body, whatever
    /// the status. Callers that must tell 401 from 403 from 5xx use this.
    pub(crate) async fn exchange(
        &self,
        method: http::Method,
        url: &Url,
        headers: &http::HeaderMap,
        body: Option<Vec<u8>>,
    ) -> Result<(http::StatusCode, Vec<u8>), FetchError> {
        let started = std::time::Instant::now();
        let answer = self.exchange_unobserved(method, url, headers, body).await;
        let result = match &answer {
            Ok((status, _)) if status.is_success() => "ok",
            Ok(_) => "status",
            Err(FetchError::TooLarge) => "too_large",
            Err(_) => "unreachable",
        };
        crate::observe::upstream_request(self.policy.upstream, result, started.elapsed());
        answer
    }

    async fn exchange_unobserved(
        &self,
        method: http::Method,
        url: &Url,
        headers: &http::HeaderMap,
        body: Option<Vec<u8>>,
    ) -> Result<(http::StatusCode, Vec<u8>), FetchError> {
        let mut request = self
            .client
            .request(method, url.clone())
            .header(http::header::ACCEPT, "application/json")
            .headers(headers.clone());
        if let Some(body) = body {
            request = request.body(body);
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| FetchError::Unreachable(transport_cause(&e)))?;
        let status = response.status();
        let max = self.policy.max_body;
        if response.content_length().is_some_and(|len| len > max as u64) {
            return Err(FetchError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| FetchError::Unreachable(transport_cause(&e)))?
        {
            if body.len() + chunk.len() > max {
                return Err(FetchError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, body))
    }
}

/// The cause of a failed request, in words a user can act on.
fn transport_cause(error: &reqwest::Error) -> &'static str {
    // The real cause sits deep in the source chain (rustls' verdict, the
    // resolver's or the socket's error); "connection failed" alone would
    // send people looking at the network instead of their CA or DNS.
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        // An io::Error's `source` skips the error it wraps; look at that too.
        let wrapped = cause
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            .and_then(|inner| inner.downcast_ref::<std::io::Error>());
        for io in [cause.downcast_ref::<std::io::Error>(), wrapped].into_iter().flatten() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return "connection refused",
                std::io::ErrorKind::ConnectionReset => return "connection reset",
                std::io::ErrorKind::TimedOut => return "timed out",
                // rustls reports a broken handshake as invalid data.
                std::io::ErrorKind::InvalidData if !io.to_string().contains("certificate") => {
                    return "TLS failure: handshake failed (does the server speak https?)";
                }
                _ => {}
            }
        }
        let text = cause.to_string();
        if text.contains("certificate") {
            return "TLS failure: certificate not trusted or invalid";
        }
        if text.contains("alert") {
            return "TLS failure: the server refused the handshake";
        }
        if text.contains("dns error") || text.contains("failed to lookup address") {
            return "DNS lookup failed";
        }
        source = cause.source();
    }
    if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else {
        "request failed before an answer"
    }
}

/// Fetches `{issuer}/.well-known/openid-configuration` and returns the
/// endpoint named `field` (`jwks_uri`, `introspection_endpoint`, ...), after
/// checking the document names exactly our issuer and the endpoint is https
/// (or loopback http).
pub(crate) async fn discover_document(fetcher: &Fetcher, issuer: &str, field: &'static str) -> Result<Url, FetchError> {
    let url = discovery_url(issuer).map_err(|_| FetchError::Invalid("issuer is not a URL"))?;
    let body = fetcher.get(&url).await?;
    let document: serde_json::Value =
        serde_json::from_slice(&body).map_err(|_| FetchError::Invalid("discovery document is not JSON"))?;
    let named = document.get("issuer").and_then(serde_json::Value::as_str);
    if named != Some(issuer) {
        return Err(FetchError::IssuerMismatch {
            expected: issuer.to_owned(),
            actual: named.map(str::to_owned),
        });
    }
    let endpoint = document
        .get(field)
        .and_then(serde_json::Value::as_str)
        .ok_or(FetchError::Invalid("discovery document lacks a needed endpoint"))?;
    let endpoint = Url::parse(endpoint).map_err(|_| FetchError::Invalid("malformed endpoint URL in discovery"))?;
    check_url(field, &endpoint).map_err(|_| FetchError::InsecureUrl)?;
    Ok(endpoint)
}

pub(crate) fn discovery_url(issuer: &str) -> Result<Url, url::ParseError> {
    Url::parse(&format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_everywhere_except_loopback() {
        for ok in [
            "https://idp.example/jwks",
            "http://127.0.0.1:8080/jwks",
            "http://[::1]/jwks",
            "http://localhost/x",
            "http://127.1.2.3/x",
        ] {
            assert!(parse_url("jwks_url", ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://idp.example/jwks",
            "http://10.0.0.1/jwks",
            "ftp://idp.example/x",
            "file:///etc/passwd",
            "not a url",
        ] {
            assert!(parse_url("jwks_url", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn discovery_url_keeps_the_issuer_path() {
        assert_eq!(
            discovery_url("https://idp.example/realms/a/").unwrap().as_str(),
            "https://idp.example/realms/a/.well-known/openid-configuration"
        );
    }
}
