//! `CfAccessLayer`: Cloudflare Access application tokens (feature `cloudflare`).
//!
//! ```
//! use axum::{routing::get, Json, Router};
//! use tower_authkit::cloudflare::{CfAccess, CfAccessLayer};
//! use tower_authkit_testing::TestIdp;
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let team = TestIdp::start().await; // in production: .team("acme")
//! let auth = CfAccessLayer::builder()
//!     .team_domain(team.cf_team_domain())
//!     .audience("4714c1358e65fe4b408ad6d432a5f878f08194bdb4752441fd56faefa9b2b6f2")
//!     .build()
//!     .expect("valid configuration");
//!
//! let app = Router::new()
//!     .route("/me", get(|who: CfAccess| async move { who.kind() }))
//!     .layer(auth);
//!
//! let token = team.cf_user_token("4714c1358e65fe4b408ad6d432a5f878f08194bdb4752441fd56faefa9b2b6f2").sign();
//! let request = http::Request::get("/me")
//!     .header("cf-access-jwt-assertion", token)
//!     .body(axum::body::Body::empty())
//!     .unwrap();
//! assert_eq!(app.oneshot(request).await.unwrap().status(), 200);
//! # }
//! ```
//!
//! The token comes from the `Cf-Access-Jwt-Assertion` header, else the
//! `CF_Authorization` cookie. Keys come from `{team}/cdn-cgi/access/certs`
//! through the crate's one JWKS key set (same cache, rotation and resilience
//! as [`JwksAuthLayer`](crate::jwt::JwksAuthLayer)); `iss` must be the team domain,
//! `aud` must contain a configured application AUD tag, RS256 only.
//!
//! # Cloudflare Access
//!
//! ```rust,no_run
//! use axum::{routing::get, Json, Router};
//! use tower_authkit::cloudflare::{CfAccess, CfAccessLayer};
//!
//! fn app() -> Result<Router, tower_authkit::ConfigError> {
//! let auth = CfAccessLayer::builder()
//!     .team("acme")                       // https://acme.cloudflareaccess.com
//!     .audience("<application AUD tag>")  // repeatable
//!     .build()?;
//! let verifier = auth.authenticator().clone(); // verify(), verify_email(), identity()
//! let app = Router::new()
//!     .route("/me", get(|who: CfAccess| async move { format!("{} {:?}", who.kind(), who.email()) }))
//!     .layer(auth);
//! Ok(app)
//! }
//! ```
//!
//! Tokens come from `Cf-Access-Jwt-Assertion`, else the `CF_Authorization` cookie;
//! keys from `{team}/cdn-cgi/access/certs` through the same key cache as
//! `JwksAuthLayer` (fresh 10 min, refreshed ahead; leeway 30 s). `type: org` tokens
//! are refused unless `.allow_org_tokens(true)`. `CfAccessUser` and `CfServiceToken`
//! extractors answer 403 for the other kind. `.dev_user(..)` skips verification for
//! local development (warns at build and first use; refused when
//! `AUTHKIT_DENY_DEV_BYPASS=1`). `get-identity` failures are 502/503, never 401.

mod client;
mod identity;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::HeaderName;

pub use client::{CfGeo, CfIdentity, CfIdentityClient, CfIdentityProvider};
pub use identity::{CfAccess, CfAccessUser, CfServiceToken};

use crate::error::ConfigError;
use crate::jwt::{Algorithm, JwksAuthBuilder, JwksAuthenticator};
use crate::layer::{AuthFuture, AuthLayer, Authentication, Authenticator, RequestHead};
use crate::principal::Principal;
use crate::rejection::AuthError;
use crate::token::{Credential, SourceKind, TokenSource, TokenSources};
use crate::upstream::{FetchPolicy, Fetcher, parse_url};

/// The header Cloudflare Access puts the application token in.
pub const ASSERTION_HEADER: &str = "cf-access-jwt-assertion";
/// The cookie Cloudflare Access sets in browsers.
pub const AUTHORIZATION_COOKIE: &str = "CF_Authorization";
/// Setting this environment variable to `1` or `true` makes builders refuse
/// [`CfAccessBuilder::dev_user`].
pub const DENY_DEV_BYPASS_ENV: &str = "AUTHKIT_DENY_DEV_BYPASS";

/// The Cloudflare Access preset of [`AuthLayer`].
pub type CfAccessLayer = AuthLayer<CfAccessAuthenticator>;

fn token_sources() -> TokenSources {
    TokenSources::new([
        TokenSource::Header(HeaderName::from_static(ASSERTION_HEADER)),
        TokenSource::Cookie(AUTHORIZATION_COOKIE.to_owned()),
    ])
}

/// Verifies Cloudflare Access application tokens; also looks identities up.
#[derive(Clone, Debug)]
pub struct CfAccessAuthenticator {
    verifier: Option<JwksAuthenticator>,
    identity: Option<CfIdentityClient>,
    dev: Option<Arc<DevBypass>>,
}

#[derive(Debug)]
struct DevBypass {
    principal: Principal,
    warned: AtomicBool,
}

impl DevBypass {
    fn principal(&self) -> Principal {
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                subject = self.principal.subject(),
                "Cloudflare Access dev bypass in use: requests are NOT verified"
            );
        }
        self.principal.clone()
    }
}

impl Authenticator for CfAccessAuthenticator {
    type Future = AuthFuture;
    const NAME: &'static str = "cloudflare";

    fn recognizes(&self, credential: &Credential) -> bool {
        credential.is_compact_jwt()
    }

    fn authenticate(&self, credential: Credential, _request: &RequestHead<'_>) -> Authentication<AuthFuture> {
        match (&self.dev, &self.verifier) {
            (Some(dev), _) => Authentication::Ready(Ok(dev.principal())),
            (None, Some(verifier)) => verifier.verify_credential(credential, None),
            (None, None) => Authentication::Ready(Err(AuthError::invalid_token("no verifier configured"))),
        }
    }

    fn without_credential(&self, _request: &RequestHead<'_>) -> Option<Authentication<AuthFuture>> {
        self.dev.as_ref().map(|dev| Authentication::Ready(Ok(dev.principal())))
    }
}

impl CfAccessAuthenticator {
    /// Verifies `token` and returns who it speaks for.
    pub async fn verify(&self, token: &str) -> Result<CfAccess, AuthError> {
        let principal = match (&self.dev, &self.verifier) {
            (Some(dev), _) => dev.principal(),
            (None, Some(verifier)) => {
                verifier
                    .verify_credential(Credential::new(token, SourceKind::Header), None)
                    .outcome()
                    .await?
            }
            (None, None) => return Err(AuthError::invalid_token("no verifier configured")),
        };
        CfAccess::from_principal(&principal)
    }

    /// Verifies `token` and returns the user's email; service tokens have none (403).
    pub async fn verify_email(&self, token: &str) -> Result<String, AuthError> {
        match self.verify(token).await? {
            CfAccess::User(user) => Ok(user.email),
            CfAccess::Service(_) => Err(AuthError::forbidden("service tokens have no email")),
        }
    }

    /// The full identity behind `token`, from `get-identity` (cached briefly).
    /// In dev-bypass mode there is no team to ask: 503.
    pub async fn identity(&self, token: &str) -> Result<Arc<CfIdentity>, AuthError> {
        match &self.identity {
            Some(client) => client.get(token).await,
            None => Err(AuthError::unavailable(
                "no Cloudflare team configured",
                Duration::from_secs(60),
            )),
        }
    }
}

impl AuthLayer<CfAccessAuthenticator> {
    /// Starts configuring a Cloudflare Access layer.
    pub fn builder() -> CfAccessBuilder {
        CfAccessBuilder::default()
    }
}

/// Configures a [`CfAccessLayer`].
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until it is built"]
pub struct CfAccessBuilder {
    /// Key-set and claim settings shared with every JWKS preset (one set of defaults).
    jwks: JwksAuthBuilder,
    team_domain: Option<String>,
    audiences: Vec<String>,
    allow_org_tokens: bool,
    http_timeout: Duration,
    identity_ttl: Duration,
    identity_capacity: u64,
    dev_user: Option<CfAccessUser>,
}

impl Default for CfAccessBuilder {
    fn default() -> Self {
        Self {
            jwks: JwksAuthBuilder::default().algorithms([Algorithm::RS256]),
            team_domain: None,
            audiences: Vec::new(),
            allow_org_tokens: false,
            http_timeout: Duration::from_secs(5),
            identity_ttl: Duration::from_secs(60),
            identity_capacity: 10_000,
            dev_user: None,
        }
    }
}

impl CfAccessBuilder {
    /// The team name: `acme` means `https://acme.cloudflareaccess.com`.
    pub fn team(self, team: &str) -> Self {
        self.team_domain(format!("https://{team}.cloudflareaccess.com"))
    }

    /// The team domain as a URL, e.g. `https://acme.cloudflareaccess.com`
    /// (http is accepted only on loopback, for tests).
    pub fn team_domain(mut self, domain: impl Into<String>) -> Self {
        self.team_domain = Some(domain.into().trim_end_matches('/').to_owned());
        self
    }

    /// An application AUD tag; call again to accept several.
    pub fn audience(mut self, aud_tag: impl Into<String>) -> Self {
        self.audiences.push(aud_tag.into());
        self
    }

    /// Accepts `type: org` tokens (organization-wide, not application tokens).
    /// Off by default.
    pub fn allow_org_tokens(mut self, allow: bool) -> Self {
        self.allow_org_tokens = allow;
        self
    }

    /// Clock-skew tolerance (default 30 s, at most `jwt::MAX_LEEWAY`).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.jwks = self.jwks.leeway(leeway);
        self
    }

    /// How the team's keys are fetched and kept; see [`KeyCache`](crate::jwt::KeyCache).
    pub fn key_cache(mut self, keys: crate::jwt::KeyCache) -> Self {
        self.jwks = self.jwks.key_cache(keys);
        self
    }

    /// Timeout of each HTTP call to the team, key sets and `get-identity`
    /// alike (default 5 s).
    pub fn http_timeout(mut self, timeout: Duration) -> Self {
        self.http_timeout = timeout;
        self
    }

    /// How long a `get-identity` answer is reused for the same token (default 60 s).
    pub fn identity_cache_ttl(mut self, ttl: Duration) -> Self {
        self.identity_ttl = ttl;
        self
    }

    /// Development only: skip verification and treat every request as `user`.
    /// Logs a warning at build time and on first use; refused when
    /// [`DENY_DEV_BYPASS_ENV`] is set. Team and audience become optional.
    pub fn dev_user(mut self, user: CfAccessUser) -> Self {
        self.dev_user = Some(user);
        self
    }

    /// Checks the configuration and builds the layer.
    pub fn build(self) -> Result<CfAccessLayer, ConfigError> {
        let dev = match self.dev_user.as_ref() {
            None => None,
            Some(user) => {
                let denied = std::env::var(DENY_DEV_BYPASS_ENV)
                    .is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"));
                if denied {
                    return Err(ConfigError::Invalid {
                        setting: "dev_user",
                        reason: format!("the dev bypass is refused because {DENY_DEV_BYPASS_ENV} is set"),
                    });
                }
                tracing::warn!(email = %user.email, "Cloudflare Access dev bypass configured: tokens will NOT be verified");
                Some(Arc::new(DevBypass {
                    principal: CfAccess::dev_principal(user),
                    warned: AtomicBool::new(false),
                }))
            }
        };
        let (verifier, identity) = match (&self.team_domain, &dev) {
            (None, Some(_)) => (None, None),
            (None, None) => return Err(ConfigError::Missing("team")),
            (Some(team), _) => {
                let (verifier, identity) = self.verifier(team)?;
                (Some(verifier), Some(identity))
            }
        };
        Ok(AuthLayer::new(CfAccessAuthenticator {
            verifier,
            identity,
            dev,
        })
        .token_sources(token_sources()))
    }

    fn verifier(&self, team: &str) -> Result<(JwksAuthenticator, CfIdentityClient), ConfigError> {
        parse_url("team_domain", team)?;
        if self.audiences.is_empty() {
            return Err(ConfigError::Missing("audience"));
        }
        let mut jwks = self
            .jwks
            .clone()
            .issuer(team)
            .jwks_url(format!("{team}/cdn-cgi/access/certs"))
            .http_timeout(self.http_timeout)
            .profile(identity::CfAccessProfile {
                allow_org_tokens: self.allow_org_tokens,
            });
        for audience in &self.audiences {
            jwks = jwks.audience(audience);
        }
        let verifier = jwks.build_authenticator()?;
        let identity_url = parse_url("team_domain", &format!("{team}/cdn-cgi/access/get-identity"))?;
        let fetcher = Fetcher::new(FetchPolicy {
            upstream: "cloudflare-identity",
            timeout: self.http_timeout,
            retries: 1,
            ..FetchPolicy::default()
        })?;
        let identity = CfIdentityClient::new(fetcher, identity_url, self.identity_ttl, self.identity_capacity);
        Ok((verifier, identity))
    }
}

/// The raw Cloudflare Access token of the request, for calls such as
/// [`CfAccessAuthenticator::identity`]. Its `Debug` output is redacted.
#[derive(Clone)]
pub struct CfAccessAssertion(Credential);

impl CfAccessAssertion {
    /// The token. Never log it.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

impl std::fmt::Debug for CfAccessAssertion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("CfAccessAssertion").field(&self.0).finish()
    }
}

#[cfg(feature = "axum")]
impl<S: Send + Sync> axum_core::extract::FromRequestParts<S> for CfAccessAssertion {
    type Rejection = crate::extract::AuthRejection;

    async fn from_request_parts(parts: &mut http::request::Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match token_sources().extract(&parts.headers, &parts.uri) {
            Ok(Some(credential)) => Ok(CfAccessAssertion(credential)),
            Ok(None) => Err(crate::extract::AuthRejection::new(
                parts,
                AuthError::missing_credentials(),
            )),
            Err(error) => Err(crate::extract::AuthRejection::new(parts, error)),
        }
    }
}

// Building needs a crypto backend; backend-less builds are covered in crypto::tests.
#[cfg(all(test, any(feature = "aws-lc-rs", feature = "rust-crypto")))]
mod tests {
    use super::*;

    #[test]
    fn configuration_errors_fail_fast() {
        assert_eq!(
            CfAccessLayer::builder().audience("a").build().unwrap_err(),
            ConfigError::Missing("team")
        );
        assert_eq!(
            CfAccessLayer::builder().team("acme").build().unwrap_err(),
            ConfigError::Missing("audience")
        );
        let insecure = CfAccessLayer::builder()
            .team_domain("http://acme.example")
            .audience("a")
            .build();
        assert!(matches!(insecure.unwrap_err(), ConfigError::InsecureUrl { .. }));
        assert!(CfAccessLayer::builder().team("acme").audience("a").build().is_ok());
    }
}
