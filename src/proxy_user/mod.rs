//! `ProxyUserLayer` (feature `proxy-user`): tokens validated by an upstream
//! auth proxy's `get-me` and `test-app-permission` endpoints.
//!
//! ```
//! use axum::{routing::get, Json, Router};
//! use tower_authkit::proxy_user::{CurrentUser, Permitted, ProxyUserLayer, ProxyUser};
//! use tower_authkit::proxy_permission;
//!
//! proxy_permission!(Audit = "audit");
//!
//! # fn main() -> Result<(), tower_authkit::ConfigError> {
//! let auth = ProxyUserLayer::builder()
//!     .allowed_hosts(["app.example.com"])   // derive https://app.example.com/_oxa_auth/... only for these
//!     .build()?;
//! let app: Router = Router::new()
//!     .route("/v1/me", get(|user: CurrentUser| async move { Json(ProxyUser::clone(&user)) }))
//!     .route("/v1/maybe", get(|user: Option<CurrentUser>| async move { user.is_some().to_string() }))
//!     .route("/v1/audit", get(|_: Permitted<Audit>| async { "audit log" }))
//!     .layer(auth);
//! # Ok(()) }
//! ```
//!
//! The layer only enriches by default: it records the user, or why there is
//! none, and extractors enforce — `CurrentUser` answers 401 for a missing or
//! invalid token and 502/503 when the upstream fails (the crate's one upstream
//! table); `Option<CurrentUser>` is `None` for missing/invalid and still
//! 502/503 on upstream failure; permission checks answer 403 when denied.
//! `.strict()` makes the layer itself reject.
//!
//! The upstream is never derived from an arbitrary `Host`: only allowlisted
//! hosts are used (and `X-Forwarded-Host` only when trusted), so a caller
//! cannot point validation at a server it controls.
//!
//! The builder never reads the environment by itself:
//! [`ProxyUserBuilder::from_env`] is the explicit way to honour
//! [`DEV_MODE_ENV`] and [`DEV_URL_ENV`].
//!
//! # Auth proxy users (`proxy-user`)
//!
//! Tokens (`Authorization: Bearer`, else the `OxaigenPlatformAuthAccessToken`
//! cookie) are validated by the proxy's `GET {base}/_oxa_auth/get-me`; permissions
//! by `POST {base}/_oxa_auth/test-app-permission/{name}`. The layer only enriches by
//! default; extractors enforce (`CurrentUser`: 401 missing/invalid, 502/503 upstream
//! failure; `Option<CurrentUser>`: `None` for missing/invalid, still 502/503;
//! `Permitted<P>` and `RequireProxyPermission`: 403 when denied). `.strict()` rejects
//! in the layer. Users are cached 30 s by SHA-256 of (upstream, token), permissions
//! 30 s, invalid tokens 5 s, 1024 entries each; concurrent requests for one token
//! share one call; upstream failures are never cached.
//!
//! The upstream base is, in order: `.upstream_url(..)`; dev mode
//! (`.dev_url(..)`, or `ProxyUserBuilder::from_env()` with
//! `AUTHKIT_PROXY_DEV_MODE=1` → `AUTHKIT_PROXY_DEV_URL`, default
//! `http://127.0.0.1:8765`); or `{scheme}://{host}` of the request **only** for
//! `.allowed_hosts([..])` (`X-Forwarded-Host` only with
//! `.trust_forwarded_headers(true)`). Other hosts get 400 without any upstream call:
//! deriving it from any `Host` would let a caller point validation at its own
//! server and sign in as anyone.
//!
//! ## Two terminals with the dev server
//!
//! ```sh
//! # terminal 1: every upstream this crate talks to, on 127.0.0.1:8765
//! cargo run -p tower-authkit-testing --bin authkit-dev-server
//!
//! # terminal 2: the example app, validating against the dev server
//! AUTHKIT_PROXY_DEV_MODE=1 AUTHKIT_BIND=127.0.0.1:8000 \
//!   cargo run --features proxy-user --example proxy_user_app
//!
//! # terminal 3 (or 2): the default valid token is mock-dev-token
//! curl -H 'Authorization: Bearer mock-dev-token' http://127.0.0.1:8000/v1/me
//! curl -H 'Authorization: Bearer mock-dev-token' http://127.0.0.1:8000/v1/audit
//! curl http://127.0.0.1:8000/v1/maybe-public
//! ```
//!
//! The dev server also serves OIDC discovery, `/jwks`, a client-credentials
//! `/token` endpoint (client `dev-client` / `dev-secret`), `/introspect`, a
//! Cloudflare Access team (`/cdn-cgi/access/*`) and a Pomerium route JWKS. It reads
//! `AUTHKIT_DEV_HOST`, `AUTHKIT_DEV_PORT` and the proxy mock's `AUTHKIT_DEV_*`
//! settings (tokens, cookies, user, roles, permissions; see `crates/authkit-testing/src/bin/authkit-dev-server.rs`).
//! Browser frontends on another origin can call it: CORS allows any origin by
//! default, or set `AUTHKIT_DEV_CORS_ORIGINS=http://localhost:5173` (a
//! comma-separated list) to allow exactly those, with cookies.

mod permission;
mod upstream;
mod user;

use std::sync::Arc;
use std::time::Duration;

pub use permission::{
    PermissionName, Permitted, ProxyPermissionService, RequireProxyPermission, is_valid_permission_name,
};
pub use user::{ProxyUser, UserWorkspace, WorkspaceGrant, WorkspacePermission, WorkspaceRole};

use crate::error::ConfigError;
use crate::layer::{AuthFuture, AuthLayer, Authentication, Authenticator, Mode, RequestHead};
use crate::principal::Principal;
use crate::rejection::AuthError;
use crate::token::{Credential, TokenSource, TokenSources};
use crate::upstream::{FetchPolicy, Fetcher, parse_url};
use upstream::{BaseSource, ProxyClient, ProxySettings};

const PROVIDER: &str = "proxy-user";
/// The cookie the auth proxy sets, by default.
pub const DEFAULT_COOKIE: &str = "OxaigenPlatformAuthAccessToken";
/// `1`/`true` routes every upstream call to [`DEV_URL_ENV`] (after an explicit override).
pub const DEV_MODE_ENV: &str = "AUTHKIT_PROXY_DEV_MODE";
/// The upstream in dev mode (default `http://127.0.0.1:8765`, the dev server).
pub const DEV_URL_ENV: &str = "AUTHKIT_PROXY_DEV_URL";

/// What a proxy-user principal carries for later permission checks. The
/// token stays in memory for the request (and the user cache) only.
#[derive(Clone)]
pub(crate) struct ProxySession {
    user: Arc<ProxyUser>,
    base: url::Url,
    credential: Credential,
    key: [u8; 32],
    /// Weak: cached principals live inside the client's cache.
    client: std::sync::Weak<ProxyClient>,
}

/// The authenticated user, from the principal a [`ProxyUserLayer`] resolved.
#[derive(Clone)]
pub struct CurrentUser {
    user: Arc<ProxyUser>,
    principal: Principal,
}

impl CurrentUser {
    /// Reads the user of a principal authenticated by [`ProxyUserLayer`].
    pub fn from_principal(principal: &Principal) -> Result<Self, AuthError> {
        let session = principal
            .attachment::<ProxySession>()
            .ok_or_else(|| AuthError::invalid_token("not a proxy-user identity"))?;
        Ok(Self {
            user: Arc::clone(&session.user),
            principal: principal.clone(),
        })
    }

    /// The normalized principal (roles and permissions mapped).
    pub fn principal(&self) -> &Principal {
        &self.principal
    }
}

impl std::ops::Deref for CurrentUser {
    type Target = ProxyUser;
    fn deref(&self) -> &ProxyUser {
        &self.user
    }
}

impl std::fmt::Debug for CurrentUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurrentUser")
            .field("id", &self.user.id)
            .field("email", &self.user.email)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "axum")]
mod extract {
    use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
    use http::request::Parts;

    use super::CurrentUser;
    use crate::extract::AuthRejection;
    use crate::layer::principal_in;
    use crate::principal::Principal;
    use crate::rejection::AuthErrorKind;

    /// 401 on a missing or invalid token, 502 when the upstream fails.
    impl<S: Send + Sync> FromRequestParts<S> for CurrentUser {
        type Rejection = AuthRejection;

        async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
            principal_in(&parts.extensions)
                .and_then(CurrentUser::from_principal)
                .map_err(|error| AuthRejection::new(parts, error))
        }
    }

    /// `None` on a missing or invalid token; still 502 when the upstream fails.
    impl<S: Send + Sync> OptionalFromRequestParts<S> for CurrentUser {
        type Rejection = AuthRejection;

        async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Option<Self>, Self::Rejection> {
            match <Principal as OptionalFromRequestParts<S>>::from_request_parts(parts, state).await? {
                None => Ok(None),
                Some(principal) => match CurrentUser::from_principal(&principal) {
                    Ok(user) => Ok(Some(user)),
                    Err(error) if error.kind() == AuthErrorKind::InvalidToken => Ok(None),
                    Err(error) => Err(AuthRejection::new(parts, error)),
                },
            }
        }
    }
}

/// The proxy-user preset of [`AuthLayer`].
pub type ProxyUserLayer = AuthLayer<ProxyUserAuthenticator>;

/// Validates tokens with the auth proxy. Cheap to clone.
#[derive(Clone)]
pub struct ProxyUserAuthenticator {
    client: Arc<ProxyClient>,
    base: Arc<BaseSource>,
}

impl std::fmt::Debug for ProxyUserAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyUserAuthenticator")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl ProxyUserAuthenticator {
    /// Closes the HTTP client and empties the caches (on shutdown). Later
    /// requests get 503.
    pub fn close(&self) {
        self.client.close();
    }
}

impl Authenticator for ProxyUserAuthenticator {
    type Future = AuthFuture;
    const NAME: &'static str = "proxy-user";

    fn authenticate(&self, credential: Credential, request: &RequestHead<'_>) -> Authentication<Self::Future> {
        let base = match self.base.resolve(request) {
            Ok(base) => base,
            Err(error) => return Authentication::Ready(Err(error)),
        };
        let client = Arc::clone(&self.client);
        Authentication::Pending(AuthFuture::new(async move { client.user(base, credential).await }))
    }
}

impl AuthLayer<ProxyUserAuthenticator> {
    /// Starts configuring a proxy-user layer.
    pub fn builder() -> ProxyUserBuilder {
        ProxyUserBuilder::default()
    }
}

/// Configures a [`ProxyUserLayer`].
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until it is built"]
pub struct ProxyUserBuilder {
    upstream_url: Option<String>,
    allowed_hosts: Vec<String>,
    scheme: String,
    trust_forwarded: bool,
    cookie: String,
    settings: ProxySettings,
    timeout: Duration,
    strict: bool,
    dev_url: Option<String>,
}

impl Default for ProxyUserBuilder {
    fn default() -> Self {
        Self {
            upstream_url: None,
            allowed_hosts: Vec::new(),
            scheme: "https".to_owned(),
            trust_forwarded: false,
            cookie: DEFAULT_COOKIE.to_owned(),
            settings: ProxySettings {
                me_path: "/_oxa_auth/get-me".to_owned(),
                permission_path: "/_oxa_auth/test-app-permission/".to_owned(),
                ttl: Duration::from_secs(30),
                negative_ttl: Duration::from_secs(5),
                capacity: 1024,
            },
            timeout: Duration::from_secs(5),
            strict: false,
            dev_url: None,
        }
    }
}

impl ProxyUserBuilder {
    /// The upstream base URL, used for every request (wins over dev mode and hosts).
    pub fn upstream_url(mut self, url: impl Into<String>) -> Self {
        self.upstream_url = Some(url.into());
        self
    }

    /// Hosts (`host` or `host:port`) whose own `/_oxa_auth/*` may validate
    /// their requests. Requests for other hosts are refused (400) without any call.
    pub fn allowed_hosts<I: IntoIterator<Item = S>, S: Into<String>>(mut self, hosts: I) -> Self {
        self.allowed_hosts = hosts.into_iter().map(|h| h.into().to_ascii_lowercase()).collect();
        self
    }

    /// Scheme for host-derived upstreams (default `https`; `http` only reaches loopback hosts).
    pub fn scheme(mut self, scheme: impl Into<String>) -> Self {
        self.scheme = scheme.into();
        self
    }

    /// Believe `X-Forwarded-Host` (only behind a proxy that sets it). Off by default.
    pub fn trust_forwarded_headers(mut self, trust: bool) -> Self {
        self.trust_forwarded = trust;
        self
    }

    /// The token cookie (default `OxaigenPlatformAuthAccessToken`).
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        self.cookie = name.into();
        self
    }

    /// The user-info path (default `/_oxa_auth/get-me`).
    pub fn me_path(mut self, path: impl Into<String>) -> Self {
        self.settings.me_path = path.into();
        self
    }

    /// The permission path prefix (default `/_oxa_auth/test-app-permission/`).
    pub fn permission_path(mut self, path: impl Into<String>) -> Self {
        self.settings.permission_path = path.into();
        self
    }

    /// How long users and permission answers are reused (default 30 s).
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.settings.ttl = ttl;
        self
    }

    /// How long an invalid token is answered without asking (default 5 s).
    pub fn negative_cache_ttl(mut self, ttl: Duration) -> Self {
        self.settings.negative_ttl = ttl;
        self
    }

    /// Entries per cache (default 1024).
    pub fn cache_capacity(mut self, entries: u64) -> Self {
        self.settings.capacity = entries;
        self
    }

    /// Timeout of each HTTP call to the upstream (default 5 s); the same
    /// name as every other builder's.
    pub fn http_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// A builder with the dev mode from the environment: when
    /// [`DEV_MODE_ENV`] is `1`/`true`/`yes`, every upstream call goes to
    /// [`DEV_URL_ENV`] (default `http://127.0.0.1:8765`, the dev server)
    /// unless [`upstream_url`](Self::upstream_url) is set.
    pub fn from_env() -> Self {
        let dev_mode = std::env::var(DEV_MODE_ENV)
            .is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"));
        let mut builder = Self::default();
        if dev_mode {
            let url = std::env::var(DEV_URL_ENV).unwrap_or_else(|_| "http://127.0.0.1:8765".to_owned());
            builder = builder.dev_url(url);
        }
        builder
    }

    /// Dev mode: validates every token at `url` (the dev server), unless
    /// [`upstream_url`](Self::upstream_url) is set; logged as a warning at
    /// build time. A later call replaces the URL.
    pub fn dev_url(mut self, url: impl Into<String>) -> Self {
        self.dev_url = Some(url.into());
        self
    }

    /// Reject in the layer (like the JWKS layer) instead of only enriching.
    pub fn strict(mut self) -> Self {
        self.strict = true;
        self
    }

    fn base(&self) -> Result<BaseSource, ConfigError> {
        if let Some(url) = &self.upstream_url {
            return Ok(BaseSource::Fixed(parse_url("upstream_url", url)?));
        }
        if let Some(url) = &self.dev_url {
            tracing::warn!(%url, "proxy-user dev mode: every token is validated by {url}");
            return Ok(BaseSource::Fixed(parse_url("dev_url", url)?));
        }
        if self.allowed_hosts.is_empty() {
            return Err(ConfigError::Missing("upstream_url or allowed_hosts"));
        }
        if !matches!(self.scheme.as_str(), "https" | "http") {
            return Err(ConfigError::Invalid {
                setting: "scheme",
                reason: "must be https or http".into(),
            });
        }
        Ok(BaseSource::FromHost {
            allowed: self.allowed_hosts.clone(),
            scheme: self.scheme.clone(),
            trust_forwarded: self.trust_forwarded,
        })
    }

    /// Checks the configuration and builds the layer.
    pub fn build(self) -> Result<ProxyUserLayer, ConfigError> {
        let base = self.base()?;
        let fetcher = Fetcher::new(FetchPolicy {
            upstream: "proxy-user",
            timeout: self.timeout,
            retries: 0,
            ..FetchPolicy::default()
        })?;
        let authenticator = ProxyUserAuthenticator {
            client: Arc::new(ProxyClient::new(fetcher, self.settings)),
            base: Arc::new(base),
        };
        let sources = TokenSources::new([TokenSource::Bearer, TokenSource::Cookie(self.cookie)]);
        let mode = if self.strict { Mode::Required } else { Mode::EnrichOnly };
        Ok(AuthLayer::new(authenticator).token_sources(sources).mode(mode))
    }
}
