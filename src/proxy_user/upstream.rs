//! Where the auth proxy is, and the calls to it (with their caches).

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use http::header::{AUTHORIZATION, HOST, HeaderValue};
use http::{HeaderMap, Method, StatusCode};
use moka::future::Cache;
use serde_json::{Map, Value};
use url::Url;

use super::ProxySession;
use super::user::ProxyUser;
use crate::backoff::{Backoff, FailureDamper};
use crate::fetch::{FetchError, Fetcher, check_url};
use crate::layer::RequestHead;
use crate::principal::Principal;
use crate::rejection::AuthError;
use crate::token::{Credential, digest};

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
        check_url(&url).map_err(|_| AuthError::invalid_request("auth upstream must be https"))?;
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
    users: Cache<[u8; 32], Principal>,
    invalid: Cache<[u8; 32], ()>,
    permissions: Cache<([u8; 32], Arc<str>), bool>,
    /// While the upstream fails for a token (or a token's permission), its
    /// last error is answered again instead of asking per request.
    user_failures: FailureDamper<[u8; 32]>,
    permission_failures: FailureDamper<([u8; 32], Arc<str>)>,
}

fn upstream_failed(error: FetchError) -> AuthError {
    tracing::warn!(%error, "auth proxy call failed");
    AuthError::bad_gateway("auth upstream unavailable")
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
            users: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(settings.ttl)
                .build(),
            invalid: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(settings.negative_ttl)
                .build(),
            permissions: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(settings.ttl)
                .build(),
            user_failures: FailureDamper::new(Backoff::default(), capacity),
            permission_failures: FailureDamper::new(Backoff::default(), capacity),
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
        self.users.invalidate_all();
        self.invalid.invalidate_all();
        self.permissions.invalidate_all();
    }

    /// The user behind `credential` at `base`; concurrent calls for one token
    /// share one upstream request.
    pub(crate) async fn user(self: &Arc<Self>, base: Url, credential: Credential) -> Result<Principal, AuthError> {
        let key = digest(base.as_str(), credential.expose());
        if self.invalid.contains_key(&key) {
            return Err(AuthError::invalid_token("invalid token"));
        }
        self.user_failures.check(&key)?;
        let fetch = async {
            let outcome = self.fetch_user(base, credential, key).await;
            self.user_failures.record(&key, &outcome);
            outcome
        };
        self.users
            .try_get_with(key, fetch)
            .await
            .map_err(|error| (*error).clone())
    }

    async fn fetch_user(
        self: &Arc<Self>,
        base: Url,
        credential: Credential,
        key: [u8; 32],
    ) -> Result<Principal, AuthError> {
        let url = base
            .join(&self.settings.me_path)
            .map_err(|_| AuthError::bad_gateway("malformed auth upstream URL"))?;
        let headers = bearer(&credential)?;
        let (status, body) = self
            .fetcher()?
            .exchange(Method::GET, &url, &headers, None)
            .await
            .map_err(upstream_failed)?;
        match status {
            StatusCode::OK => {
                let raw: Map<String, Value> = serde_json::from_slice(&body)
                    .map_err(|_| AuthError::bad_gateway("auth upstream returned an unusable user"))?;
                let user: ProxyUser = serde_json::from_value(Value::Object(raw.clone()))
                    .map_err(|_| AuthError::bad_gateway("auth upstream returned an unusable user"))?;
                let session = ProxySession {
                    user: Arc::new(user.clone()),
                    base,
                    credential,
                    key,
                    client: Arc::downgrade(self),
                };
                Ok(user.into_principal(raw, session))
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                self.invalid.insert(key, ()).await;
                Err(AuthError::invalid_token("invalid token"))
            }
            other => {
                tracing::warn!(status = other.as_u16(), "auth proxy get-me answered with an error");
                Err(AuthError::bad_gateway("auth upstream failed"))
            }
        }
    }

    /// Whether the session's user has `permission` (validated by the caller).
    pub(crate) async fn permission(&self, session: &ProxySession, permission: &Arc<str>) -> Result<bool, AuthError> {
        let key = (session.key, Arc::clone(permission));
        self.permission_failures.check(&key)?;
        let fetch = async {
            let outcome = self.fetch_permission(session, permission).await;
            self.permission_failures.record(&key, &outcome);
            outcome
        };
        self.permissions
            .try_get_with(key.clone(), fetch)
            .await
            .map_err(|error| (*error).clone())
    }

    async fn fetch_permission(&self, session: &ProxySession, permission: &str) -> Result<bool, AuthError> {
        let url = session
            .base
            .join(&format!("{}{permission}", self.settings.permission_path))
            .map_err(|_| AuthError::bad_gateway("malformed auth upstream URL"))?;
        let headers = bearer(&session.credential)?;
        let (status, _) = self
            .fetcher()?
            .exchange(Method::POST, &url, &headers, Some(Vec::new()))
            .await
            .map_err(upstream_failed)?;
        match status {
            StatusCode::OK => Ok(true),
            StatusCode::FORBIDDEN => Ok(false),
            StatusCode::UNAUTHORIZED => Err(AuthError::invalid_token("invalid token")),
            other => {
                tracing::warn!(
                    status = other.as_u16(),
                    "auth proxy permission check answered with an error"
                );
                Err(AuthError::bad_gateway("auth upstream failed"))
            }
        }
    }
}
