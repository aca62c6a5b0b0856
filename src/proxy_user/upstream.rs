//! Where the auth proxy is, and the calls to it (with their caches).

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use http::header::{AUTHORIZATION, HOST, HeaderValue};
use http::{HeaderMap, Method, StatusCode};
use serde_json::{Map, Value};
use url::Url;

use super::ProxySession;
use super::user::ProxyUser;
use crate::layer::RequestHead;
use crate::principal::Principal;
use crate::rejection::AuthError;
use crate::token::{Credential, digest};
use crate::upstream::{FetchError, Fetcher, RETRY_AFTER, Verdict, VerdictCache, check_url};

/// How the upstream base URL is chosen for a request.
#[derive(Clone, Debug)]
pub(crate) enum BaseSource {
    /// An explicit override, or the dev-mode URL.
    Fixed(Url),
    /// `{scheme}://{host}` from the request, only for allowlisted hosts.
    FromHost {
        allowed: Vec<String>,
        scheme: String,
        trust_forwarded: bool,
    },
}

impl BaseSource {
    /// The base URL for this request, or a rejection that never reaches the
    /// network: a host outside the allowlist must not be called.
    pub(crate) fn resolve(&self, head: &RequestHead<'_>) -> Result<Url, AuthError> {
        let (allowed, scheme, trust_forwarded) = match self {
            BaseSource::Fixed(url) => return Ok(url.clone()),
            BaseSource::FromHost {
                allowed,
                scheme,
                trust_forwarded,
            } => (allowed, scheme, *trust_forwarded),
        };
        let forwarded = trust_forwarded
            .then(|| head.headers.get("x-forwarded-host"))
            .flatten()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim);
        let host = forwarded
            .or_else(|| head.headers.get(HOST).and_then(|v| v.to_str().ok()))
            .or_else(|| head.uri.authority().map(|a| a.as_str()))
            .map(str::to_ascii_lowercase)
            .ok_or_else(|| AuthError::invalid_request("request has no host"))?;
        if !allowed.contains(&host) {
            tracing::warn!(host = %host, "refusing to derive the auth upstream from a host outside the allowlist");
            return Err(AuthError::invalid_request("host is not served by this auth proxy"));
        }
        let url =
            Url::parse(&format!("{scheme}://{host}")).map_err(|_| AuthError::invalid_request("malformed host"))?;
        check_url("host", &url).map_err(|_| AuthError::invalid_request("auth upstream must be https"))?;
        Ok(url)
    }
}

/// Cache and call settings.
#[derive(Clone, Debug)]
pub(crate) struct ProxySettings {
    pub(crate) me_path: String,
    pub(crate) permission_path: String,
    pub(crate) ttl: Duration,
    pub(crate) negative_ttl: Duration,
    pub(crate) capacity: u64,
}

/// Calls the auth proxy; caches users, permissions and invalid tokens by
/// digest (never the raw token). Upstream failures are never cached.
pub(crate) struct ProxyClient {
    fetcher: ArcSwapOption<Fetcher>,
    settings: ProxySettings,
    users: VerdictCache<[u8; 32], Principal>,
    permissions: VerdictCache<([u8; 32], Arc<str>), bool>,
}

/// The answer for a failed call (the crate's one mapping), logged with the URL.
fn upstream_failed(url: &Url, error: FetchError) -> AuthError {
    tracing::warn!(%url, %error, "auth proxy call failed");
    error.to_auth_error("auth upstream", RETRY_AFTER)
}

fn bearer(credential: &Credential) -> Result<HeaderMap, AuthError> {
    let mut value = HeaderValue::try_from(format!("Bearer {}", credential.expose()))
        .map_err(|_| AuthError::invalid_request("malformed token"))?;
    value.set_sensitive(true);
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, value);
    Ok(headers)
}

impl ProxyClient {
    pub(crate) fn new(fetcher: Fetcher, settings: ProxySettings) -> Self {
        let capacity = settings.capacity;
        Self {
            fetcher: ArcSwapOption::from_pointee(fetcher),
            users: VerdictCache::new(settings.ttl, settings.negative_ttl, capacity),
            // 403 is a verdict (`false`); a 401 is passed on, not cached.
            permissions: VerdictCache::new(settings.ttl, settings.ttl, capacity),
            settings,
        }
    }

    fn fetcher(&self) -> Result<Arc<Fetcher>, AuthError> {
        self.fetcher
            .load_full()
            .ok_or_else(|| AuthError::unavailable("auth client is shut down", Duration::from_secs(30)))
    }

    /// Drops the HTTP client (its connection pool) and every cache entry.
    pub(crate) fn close(&self) {
        self.fetcher.store(None);
        self.users.clear();
        self.permissions.clear();
    }

    /// The user behind `credential` at `base`; concurrent calls for one token
    /// share one upstream request.
    pub(crate) async fn user(self: &Arc<Self>, base: Url, credential: Credential) -> Result<Principal, AuthError> {
        let key = digest(base.as_str(), credential.expose());
        self.users.get(key, self.fetch_user(base, credential, key)).await
    }

    async fn fetch_user(
        self: &Arc<Self>,
        base: Url,
        credential: Credential,
        key: [u8; 32],
    ) -> Result<Verdict<Principal>, AuthError> {
        let url = base
            .join(&self.settings.me_path)
            .map_err(|_| upstream_failed(&base, FetchError::Invalid("malformed auth upstream URL")))?;
        let headers = bearer(&credential)?;
        let (status, body) = self
            .fetcher()?
            .exchange(Method::GET, &url, &headers, None)
            .await
            .map_err(|error| upstream_failed(&url, error))?;
        match status {
            StatusCode::OK => {
                let unusable = || upstream_failed(&url, FetchError::Invalid("get-me answer is not a user object"));
                let raw: Map<String, Value> = serde_json::from_slice(&body).map_err(|_| unusable())?;
                let user: ProxyUser = serde_json::from_value(Value::Object(raw.clone())).map_err(|_| unusable())?;
                let session = ProxySession {
                    user: Arc::new(user.clone()),
                    base,
                    credential,
                    key,
                    client: Arc::downgrade(self),
                };
                Ok(Verdict::valid(user.into_principal(raw, session)))
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Ok(Verdict::Invalid(AuthError::invalid_token("invalid token")))
            }
            other => Err(upstream_failed(&url, FetchError::unexpected_status(other))),
        }
    }

    /// Whether the session's user has `permission` (validated by the caller).
    pub(crate) async fn permission(&self, session: &ProxySession, permission: &Arc<str>) -> Result<bool, AuthError> {
        let key = (session.key, Arc::clone(permission));
        self.permissions
            .get(key, self.fetch_permission(session, permission))
            .await
    }

    async fn fetch_permission(&self, session: &ProxySession, permission: &str) -> Result<Verdict<bool>, AuthError> {
        let url = session
            .base
            .join(&format!("{}{permission}", self.settings.permission_path))
            .map_err(|_| upstream_failed(&session.base, FetchError::Invalid("malformed auth upstream URL")))?;
        let headers = bearer(&session.credential)?;
        let (status, _) = self
            .fetcher()?
            .exchange(Method::POST, &url, &headers, Some(Vec::new()))
            .await
            .map_err(|error| upstream_failed(&url, error))?;
        match status {
            StatusCode::OK => Ok(Verdict::valid(true)),
            StatusCode::FORBIDDEN => Ok(Verdict::valid(false)),
            StatusCode::UNAUTHORIZED => Err(AuthError::invalid_token("invalid token")),
            other => Err(upstream_failed(&url, FetchError::unexpected_status(other))),
        }
    }
}
