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
//!
//! # Token introspection (`introspection`)
//!
//! ```rust,no_run
//! use tower_authkit::introspection::IntrospectionLayer;
//! fn f() -> Result<(), tower_authkit::ConfigError> {
//! let auth = IntrospectionLayer::builder()
//!     .issuer("https://login.example.com")   // discovery's introspection_endpoint, or .endpoint(url)
//!     .client_credentials("orders-api", "s3cret")
//!     .audience("orders-api")
//!     .build()?;
//! Ok(())
//! }
//! ```
//!
//! `active: false` → 401; answers cached by token digest (60 s, never past `exp`),
//! inactive ones 5 s; upstream errors → 503 (unreachable) or 502 (bad answer), not cached.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, Method, StatusCode};
use serde_json::{Map, Value};
use url::Url;

use crate::error::ConfigError;
use crate::layer::{AuthFuture, AuthLayer, Authentication, Authenticator, RequestHead};
use crate::principal::{Principal, default_mapping};
use crate::rejection::AuthError;
use crate::token::{Credential, digest};
use crate::upstream::{
    Backoff, Endpoint, FetchError, FetchPolicy, Fetcher, RETRY_AFTER, Verdict, VerdictCache, check_issuer_url,
    parse_url,
};

/// The introspection preset of [`AuthLayer`].
pub type IntrospectionLayer = AuthLayer<IntrospectionAuthenticator>;

struct Inner {
    endpoint: Endpoint,
    fetcher: Fetcher,
    authorization: HeaderValue,
    audience: Option<String>,
    issuer: Option<String>,
    ttl: Duration,
    /// Active answers (never past `exp`) and inactive ones, by token digest.
    verdicts: VerdictCache<[u8; 32], Principal>,
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

/// The answer for a failed introspection call (the crate's one mapping).
fn failed(url: &Url, error: FetchError) -> AuthError {
    tracing::warn!(%url, %error, "token introspection failed");
    error.to_auth_error("token introspection", RETRY_AFTER)
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Inner {
    async fn authenticate(&self, credential: Credential) -> Result<Principal, AuthError> {
        let key = digest("introspection", credential.expose());
        let principal = self.verdicts.get(key, self.introspect(credential)).await?;
        // An entry may outlive `exp` by less than a second of cache timing; re-check.
        match principal.expires_at() {
            Some(exp) if exp <= SystemTime::now() => Err(AuthError::invalid_token("token expired")),
            _ => Ok(principal),
        }
    }

    async fn introspect(&self, credential: Credential) -> Result<Verdict<Principal>, AuthError> {
        let endpoint = self
            .endpoint
            .url(&self.fetcher)
            .await
            .map_err(|error| error.to_auth_error("token introspection", RETRY_AFTER))?;
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
            .exchange(Method::POST, &endpoint, &headers, Some(body.into_bytes()))
            .await
            .map_err(|error| failed(&endpoint, error))?;
        if status != StatusCode::OK {
            return Err(failed(&endpoint, FetchError::unexpected_status(status)));
        }
        let Ok(Value::Object(answer)) = serde_json::from_slice::<Value>(&response) else {
            return Err(failed(
                &endpoint,
                FetchError::Invalid("introspection answer is not a JSON object"),
            ));
        };
        if answer.get("active") != Some(&Value::Bool(true)) {
            return Ok(Verdict::Invalid(AuthError::invalid_token("token is not active")));
        }
        self.accept(answer)
    }

    /// Applies the optional checks to an active answer and sizes its cache life.
    fn accept(&self, answer: Map<String, Value>) -> Result<Verdict<Principal>, AuthError> {
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
        let mut builder = default_mapping("introspection", &answer, &audiences).subject(subject);
        if let Some(username) = text("username") {
            builder = builder.name(username);
        }
        Ok(Verdict::Valid {
            value: builder.claims(answer).build(),
            lifetime: Some(lifetime),
        })
    }
}

impl Authenticator for IntrospectionAuthenticator {
    type Future = AuthFuture;
    const NAME: &'static str = "introspection";

    /// Opaque tokens only: a JWT is verified locally by a JWT member of
    /// [`first_of`](crate::first_of), never sent here.
    fn recognizes(&self, credential: &Credential) -> bool {
        !credential.is_compact_jwt()
    }

    fn authenticate(&self, credential: Credential, _request: &RequestHead<'_>) -> Authentication<Self::Future> {
        let inner = Arc::clone(&self.inner);
        Authentication::Pending(AuthFuture::new(async move { inner.authenticate(credential).await }))
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
#[must_use = "a builder does nothing until it is built"]
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

    /// Timeout of each HTTP call to the upstream (default 5 s); the same
    /// name as every other builder's.
    pub fn http_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Checks the configuration and builds the layer.
    pub fn build(self) -> Result<IntrospectionLayer, ConfigError> {
        let (id, secret) = self.client.ok_or(ConfigError::Missing("client_credentials"))?;
        let endpoint = match (&self.endpoint, &self.issuer) {
            (Some(url), _) => Endpoint::Fixed(parse_url("endpoint", url)?),
            (None, Some(issuer)) => {
                check_issuer_url(issuer)?;
                Endpoint::discovered(issuer.clone(), "introspection_endpoint", Backoff::default())
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
            upstream: "introspection",
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
            verdicts: VerdictCache::new(self.ttl, self.negative_ttl, self.capacity),
        };
        Ok(AuthLayer::new(IntrospectionAuthenticator { inner: Arc::new(inner) }))
    }
}
