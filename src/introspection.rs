//! RFC 7662 token introspection (feature `introspection`): opaque (or any)
//! access tokens checked by the authorization server.
//!
//! ```
//! use axum::{routing::get, Router};
//! use tower_authkit::introspection::IntrospectionLayer;
//! use tower_authkit::Principal;
//!
//! # fn main() -> Result<(), tower_authkit::ConfigError> {
//! let auth = IntrospectionLayer::builder()
//!     .endpoint("https://login.example.com/oauth2/introspect") // or .issuer(..) for discovery
//!     .client_credentials("orders-api", "s3cret")
//!     .audience("orders-api")                                // optional check
//!     .build()?;
//! let app: Router = Router::new()
//!     .route("/me", get(|p: Principal| async move { p.subject().to_owned() }))
//!     .layer(auth);
//! # Ok(()) }
//! ```
//!
//! `active: false` is 401; `active: true` becomes a principal from `sub`
//! (else `username`, else `client_id`), `scope`, `aud`, `iss`, `exp`. Answers
//! are cached by token digest, never past `exp`; inactive tokens for a short
//! time; upstream errors give 503 and are not cached.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, Method, StatusCode};
use moka::Expiry;
use moka::future::Cache;
use serde_json::{Map, Value};
use tokio::sync::OnceCell;
use url::Url;

use crate::backoff::{Backoff, FailureDamper};
use crate::error::ConfigError;
use crate::fetch::{FetchPolicy, Fetcher, check_url, discover_document, parse_url};
use crate::layer::{AuthLayer, Authentication, Authenticator, RequestHead};
use crate::principal::{BoxFuture, Principal, mapped};
use crate::rejection::AuthError;
use crate::token::{Credential, digest};

/// The introspection preset of [`AuthLayer`].
pub type IntrospectionLayer = AuthLayer<IntrospectionAuthenticator>;

/// A cached answer and how long it may live (never past the token's `exp`).
#[derive(Clone)]
struct Cached {
    principal: Principal,
    lifetime: Duration,
}

struct PerEntry;

impl Expiry<[u8; 32], Cached> for PerEntry {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        value: &Cached,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.lifetime)
    }
}

enum Endpoint {
    Fixed(Url),
    Discovered {
        issuer: String,
        url: OnceCell<Url>,
        /// When discovery last failed: no new attempt for [`DISCOVERY_BACKOFF`],
        /// so an outage does not turn every request into a discovery fetch.
        failed_at: std::sync::Mutex<Option<std::time::Instant>>,
    },
}

const DISCOVERY_BACKOFF: Duration = Duration::from_secs(5);

struct Inner {
    endpoint: Endpoint,
    fetcher: Fetcher,
    authorization: HeaderValue,
    audience: Option<String>,
    issuer: Option<String>,
    ttl: Duration,
    active: Cache<[u8; 32], Cached>,
    inactive: Cache<[u8; 32], ()>,
    /// While the endpoint fails for a token, its last error is answered again.
    failures: FailureDamper<[u8; 32]>,
}

/// Checks tokens at an RFC 7662 introspection endpoint. Cheap to clone.
#[derive(Clone)]
pub struct IntrospectionAuthenticator {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for IntrospectionAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntrospectionAuthenticator").finish_non_exhaustive()
    }
}

fn unavailable() -> AuthError {
    AuthError::unavailable("token introspection unavailable", Duration::from_secs(5))
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Inner {
    async fn endpoint(&self) -> Result<&Url, AuthError> {
        match &self.endpoint {
            Endpoint::Fixed(url) => Ok(url),
            Endpoint::Discovered { issuer, url, failed_at } => {
                if let Some(url) = url.get() {
                    return Ok(url);
                }
                let recent_failure = failed_at
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .is_some_and(|at| at.elapsed() < DISCOVERY_BACKOFF);
                if recent_failure {
                    return Err(unavailable());
                }
                url.get_or_try_init(|| discover_document(&self.fetcher, issuer, "introspection_endpoint"))
                    .await
                    .map_err(|error| {
                        tracing::warn!(%error, "introspection endpoint discovery failed");
                        *failed_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(std::time::Instant::now());
                        unavailable()
                    })
            }
        }
    }

    async fn authenticate(&self, credential: Credential) -> Result<Principal, AuthError> {
        let key = digest("introspection", credential.expose());
        if self.inactive.contains_key(&key) {
            return Err(AuthError::invalid_token("token is not active"));
        }
        self.failures.check(&key)?;
        let introspect = async {
            let outcome = self.introspect(credential, key).await;
            self.failures.record(&key, &outcome);
            outcome
        };
        let cached = self
            .active
            .try_get_with(key, introspect)
            .await
            .map_err(|error| (*error).clone())?;
        // An entry may outlive `exp` by less than a second of cache timing; re-check.
        match cached.principal.expires_at() {
            Some(exp) if exp <= SystemTime::now() => Err(AuthError::invalid_token("token expired")),
            _ => Ok(cached.principal),
        }
    }

    async fn introspect(&self, credential: Credential, key: [u8; 32]) -> Result<Cached, AuthError> {
        let endpoint = self.endpoint().await?;
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("token", credential.expose())
            .append_pair("token_type_hint", "access_token")
            .finish();
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, self.authorization.clone());
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        let (status, response) = self
            .fetcher
            .exchange(Method::POST, endpoint, &headers, Some(body.into_bytes()))
            .await
            .map_err(|error| {
                tracing::warn!(%error, "token introspection failed");
                unavailable()
            })?;
        if status != StatusCode::OK {
            tracing::warn!(
                status = status.as_u16(),
                "introspection endpoint answered with an error"
            );
            return Err(unavailable());
        }
        let Ok(Value::Object(answer)) = serde_json::from_slice::<Value>(&response) else {
            tracing::warn!("introspection endpoint returned an unusable body");
            return Err(unavailable());
        };
        if answer.get("active") != Some(&Value::Bool(true)) {
            self.inactive.insert(key, ()).await;
            return Err(AuthError::invalid_token("token is not active"));
        }
        self.accept(answer)
    }

    /// Applies the optional checks to an active answer and sizes its cache life.
    fn accept(&self, answer: Map<String, Value>) -> Result<Cached, AuthError> {
        let exp = match answer.get("exp") {
            None => None,
            Some(value) => Some(
                value
                    .as_f64()
                    .ok_or_else(|| AuthError::invalid_token("malformed time claim"))?,
            ),
        };
        let remaining = exp.map(|exp| exp - now_secs());
        if remaining.is_some_and(|r| r <= 0.0) {
            return Err(AuthError::invalid_token("token expired"));
        }
        if let Some(issuer) = &self.issuer
            && answer.get("iss").and_then(Value::as_str) != Some(issuer)
        {
            return Err(AuthError::invalid_token("wrong token issuer"));
        }
        if let Some(audience) = &self.audience {
            let matches = match answer.get("aud") {
                Some(Value::String(aud)) => aud == audience,
                Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(audience)),
                _ => false,
            };
            if !matches {
                return Err(AuthError::invalid_token("wrong token audience"));
            }
        }
        let lifetime = remaining.map_or(self.ttl, |r| self.ttl.min(Duration::from_secs_f64(r)));
        let text = |name: &str| answer.get(name).and_then(Value::as_str).map(str::to_owned);
        let subject = text("sub")
            .or_else(|| text("username"))
            .or_else(|| text("client_id"))
            .unwrap_or_default();
        let audiences: Vec<String> = self.audience.iter().cloned().collect();
        let mut builder = mapped("introspection", &answer, &audiences).subject(subject);
        if let Some(username) = text("username") {
            builder = builder.name(username);
        }
        Ok(Cached {
            principal: builder.claims(answer).build(),
            lifetime,
        })
    }
}

impl Authenticator for IntrospectionAuthenticator {
    type Future = BoxFuture<'static, Result<Principal, AuthError>>;

    fn authenticate(&self, credential: Credential, _request: &RequestHead<'_>) -> Authentication<Self::Future> {
        let inner = Arc::clone(&self.inner);
        Authentication::Pending(Box::pin(async move { inner.authenticate(credential).await }))
    }
}

impl IntrospectionAuthenticator {
    /// Introspects `token` outside the request pipeline.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        self.inner
            .authenticate(Credential::new(token, crate::token::SourceKind::Bearer))
            .await
    }
}

impl AuthLayer<IntrospectionAuthenticator> {
    /// Starts configuring an introspection layer.
    pub fn builder() -> IntrospectionBuilder {
        IntrospectionBuilder::default()
    }
}

/// Configures an [`IntrospectionLayer`].
#[derive(Clone)]
pub struct IntrospectionBuilder {
    endpoint: Option<String>,
    issuer: Option<String>,
    client: Option<(String, String)>,
    audience: Option<String>,
    check_issuer: bool,
    ttl: Duration,
    negative_ttl: Duration,
    capacity: u64,
    timeout: Duration,
}

impl std::fmt::Debug for IntrospectionBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntrospectionBuilder")
            .field("endpoint", &self.endpoint)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client.as_ref().map(|(id, _)| id))
            .finish_non_exhaustive()
    }
}

impl Default for IntrospectionBuilder {
    fn default() -> Self {
        Self {
            endpoint: None,
            issuer: None,
            client: None,
            audience: None,
            check_issuer: false,
            ttl: Duration::from_secs(60),
            negative_ttl: Duration::from_secs(5),
            capacity: 10_000,
            timeout: Duration::from_secs(5),
        }
    }
}

impl IntrospectionBuilder {
    /// The introspection endpoint.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// The issuer: without [`endpoint`](Self::endpoint), its discovery
    /// document's `introspection_endpoint` is used (found on first use).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Client authentication (HTTP Basic), required.
    pub fn client_credentials(mut self, client_id: impl Into<String>, secret: impl Into<String>) -> Self {
        self.client = Some((client_id.into(), secret.into()));
        self
    }

    /// Requires `aud` (string or array) to contain `audience`.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// Requires `iss` to equal the configured issuer exactly.
    pub fn check_issuer(mut self, check: bool) -> Self {
        self.check_issuer = check;
        self
    }

    /// How long an active answer is reused (default 60 s, never past `exp`).
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// How long an inactive answer is reused (default 5 s).
    pub fn negative_cache_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// Upstream timeout (default 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Checks the configuration and builds the layer.
    pub fn build(self) -> Result<IntrospectionLayer, ConfigError> {
        let (id, secret) = self.client.ok_or(ConfigError::Missing("client_credentials"))?;
        let endpoint = match (&self.endpoint, &self.issuer) {
            (Some(url), _) => Endpoint::Fixed(parse_url("endpoint", url)?),
            (None, Some(issuer)) => {
                let discovery = crate::fetch::discovery_url(issuer).map_err(|e| ConfigError::Invalid {
                    setting: "issuer",
                    reason: e.to_string(),
                })?;
                check_url(&discovery)?;
                Endpoint::Discovered {
                    issuer: issuer.clone(),
                    url: OnceCell::new(),
                    failed_at: std::sync::Mutex::new(None),
                }
            }
            (None, None) => return Err(ConfigError::Missing("endpoint or issuer")),
        };
        if self.check_issuer && self.issuer.is_none() {
            return Err(ConfigError::Missing("issuer"));
        }
        // RFC 6749 §2.3.1: form-encode id and secret before Basic encoding.
        let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let basic = STANDARD.encode(format!("{}:{}", encode(&id), encode(&secret)));
        let mut authorization = HeaderValue::try_from(format!("Basic {basic}")).map_err(|_| ConfigError::Invalid {
            setting: "client_credentials",
            reason: "not representable in a header".into(),
        })?;
        authorization.set_sensitive(true);
        let fetcher = Fetcher::new(FetchPolicy {
            timeout: self.timeout,
            retries: 0,
            ..FetchPolicy::default()
        })?;
        let inner = Inner {
            endpoint,
            fetcher,
            authorization,
            audience: self.audience,
            issuer: self.issuer.filter(|_| self.check_issuer),
            ttl: self.ttl,
            active: Cache::builder()
                .max_capacity(self.capacity)
                .expire_after(PerEntry)
                .build(),
            inactive: Cache::builder()
                .max_capacity(self.capacity)
                .time_to_live(self.negative_ttl)
                .build(),
            failures: FailureDamper::new(Backoff::default(), self.capacity),
        };
        Ok(AuthLayer::new(IntrospectionAuthenticator { inner: Arc::new(inner) }))
    }
}
