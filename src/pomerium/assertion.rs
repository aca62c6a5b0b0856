//! Upstream side (feature `pomerium`): verify the `X-Pomerium-Jwt-Assertion`
//! that Pomerium sends to the services behind it.
//!
//! ```
//! use axum::{routing::get, Router};
//! use tower_authkit::pomerium::{PomeriumAssertionLayer, PomeriumUser};
//! use tower_authkit_testing::TestIdp;
//! use tower_authkit::RequireGroup;
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let pomerium = TestIdp::start().await; // in production the JWKS URL is derived from the route host
//! let auth = PomeriumAssertionLayer::builder()
//!     .audience("app.example.com")                 // the route host
//!     .jwks_url(pomerium.pomerium_jwks_url())      // pinned, never taken from the token
//!     .build()
//!     .expect("valid configuration");
//!
//! let app = Router::new()
//!     .route("/team", get(|user: PomeriumUser| async move { user.email }).route_layer(RequireGroup::new("team-a")))
//!     .layer(auth);
//!
//! let assertion = pomerium.pomerium_assertion("app.example.com").groups(["team-a"]).sign();
//! let request = http::Request::get("/team")
//!     .header("x-pomerium-jwt-assertion", assertion)
//!     .body(axum::body::Body::empty())
//!     .unwrap();
//! assert_eq!(app.oneshot(request).await.unwrap().status(), 200);
//! # }
//! ```
//!
//! The assertion is verified against a pinned JWKS URL (default
//! `https://<route host>/.well-known/pomerium/jwks.json`), ES256 or RS256,
//! `aud` = the route host, `iss` = the host (or `https://<host>/`), `exp` with
//! a leeway of at most 60 s. Pomerium's `groups` become the principal's groups,
//! so [`RequireGroup`](crate::RequireGroup) works unchanged.

use std::time::Duration;

use http::HeaderName;
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::jwt::{Algorithm, ClaimsProfile, JwksAuthBuilder, JwksAuthenticator};
use crate::layer::{AuthFuture, AuthLayer, Authentication, Authenticator, RequestHead};
use crate::principal::{Principal, RawClaims, principal_from_claims};
use crate::rejection::AuthError;
use crate::token::{Credential, TokenSource, TokenSources};

/// The header Pomerium sends the assertion in.
pub const ASSERTION_HEADER: &str = "x-pomerium-jwt-assertion";
const PROVIDER: &str = "pomerium";
const MAX_LEEWAY: Duration = Duration::from_secs(60);

/// The Pomerium preset of [`AuthLayer`].
pub type PomeriumAssertionLayer = AuthLayer<PomeriumAssertionAuthenticator>;

/// The JWKS authenticator with Pomerium's claim rules.
#[derive(Clone, Debug)]
pub struct PomeriumAssertionAuthenticator(JwksAuthenticator);

impl PomeriumAssertionAuthenticator {
    /// Verifies an assertion outside the request pipeline.
    pub async fn verify(&self, assertion: &str) -> Result<PomeriumUser, AuthError> {
        PomeriumUser::from_principal(&self.0.verify(assertion).await?)
    }
}

impl Authenticator for PomeriumAssertionAuthenticator {
    type Future = AuthFuture;
    const NAME: &'static str = "pomerium";

    fn recognizes(&self, credential: &Credential) -> bool {
        credential.is_compact_jwt()
    }

    fn authenticate(&self, credential: Credential, _request: &RequestHead<'_>) -> Authentication<AuthFuture> {
        self.0.verify_credential(credential, None)
    }
}

/// The user Pomerium vouches for.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PomeriumUser {
    /// The user id.
    #[serde(default)]
    pub sub: String,
    /// Email address.
    #[serde(default)]
    pub email: String,
    /// The user (often the same as `sub`).
    #[serde(default)]
    pub user: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Group memberships.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Session id.
    #[serde(default)]
    pub sid: String,
    /// Assertion id.
    #[serde(default)]
    pub jti: String,
}

impl PomeriumUser {
    /// Reads the user of a principal authenticated by [`PomeriumAssertionLayer`].
    pub fn from_principal(principal: &Principal) -> Result<Self, AuthError> {
        if principal.provider() != PROVIDER {
            return Err(AuthError::invalid_token("not a Pomerium identity"));
        }
        principal.claims_as()
    }
}

struct PomeriumProfile;

impl ClaimsProfile for PomeriumProfile {
    fn principal(&self, claims: RawClaims, audiences: &[String]) -> Principal {
        principal_from_claims(PROVIDER, claims, audiences)
    }
}

/// Which `iss` Pomerium writes.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum IssuerFormat {
    /// The bare host (Pomerium's default).
    #[default]
    Host,
    /// `https://<host>/` (Pomerium's URI format).
    Uri,
    /// Exactly this string.
    Exact(String),
}

/// Configures a [`PomeriumAssertionLayer`].
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until it is built"]
pub struct PomeriumAssertionBuilder {
    /// Key-set and claim settings shared with every JWKS preset (one set of defaults).
    jwks: JwksAuthBuilder,
    audience: Option<String>,
    jwks_url: Option<String>,
    issuer: IssuerFormat,
    /// Kept here (not only in `jwks`) so `build` can check Pomerium's 60 s bound.
    leeway: Duration,
}

impl Default for PomeriumAssertionBuilder {
    fn default() -> Self {
        Self {
            jwks: JwksAuthBuilder::default().algorithms([Algorithm::ES256, Algorithm::RS256]),
            audience: None,
            jwks_url: None,
            issuer: IssuerFormat::Host,
            leeway: Duration::from_secs(30),
        }
    }
}

impl AuthLayer<PomeriumAssertionAuthenticator> {
    /// Starts configuring a Pomerium assertion layer.
    pub fn builder() -> PomeriumAssertionBuilder {
        PomeriumAssertionBuilder::default()
    }
}

impl PomeriumAssertionBuilder {
    /// The route host, e.g. `app.example.com`: `aud` must equal it.
    pub fn audience(mut self, route_host: impl Into<String>) -> Self {
        self.audience = Some(route_host.into());
        self
    }

    /// A pinned JWKS URL (default `https://<route host>/.well-known/pomerium/jwks.json`).
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.jwks_url = Some(url.into());
        self
    }

    /// Which `iss` to expect (default: the route host).
    pub fn issuer(mut self, format: IssuerFormat) -> Self {
        self.issuer = format;
        self
    }

    /// Clock-skew tolerance for `exp` (default 30 s, at most 60 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// How Pomerium's keys are fetched and kept; see [`KeyCache`](crate::jwt::KeyCache).
    pub fn key_cache(mut self, keys: crate::jwt::KeyCache) -> Self {
        self.jwks = self.jwks.key_cache(keys);
        self
    }

    /// Timeout of each key-set fetch; see [`JwksAuthBuilder::http_timeout`].
    pub fn http_timeout(mut self, timeout: Duration) -> Self {
        self.jwks = self.jwks.http_timeout(timeout);
        self
    }

    /// Checks the configuration and builds the layer.
    pub fn build(self) -> Result<PomeriumAssertionLayer, ConfigError> {
        let host = self
            .audience
            .filter(|a| !a.is_empty())
            .ok_or(ConfigError::Missing("audience"))?;
        if self.leeway > MAX_LEEWAY {
            return Err(ConfigError::Invalid {
                setting: "leeway",
                reason: "Pomerium assertions allow at most 60 s".into(),
            });
        }
        let issuer = match self.issuer {
            IssuerFormat::Host => host.clone(),
            IssuerFormat::Uri => format!("https://{host}/"),
            IssuerFormat::Exact(issuer) => issuer,
        };
        let jwks_url = self
            .jwks_url
            .unwrap_or_else(|| format!("https://{host}/.well-known/pomerium/jwks.json"));
        let authenticator = self
            .jwks
            .leeway(self.leeway)
            .issuer(issuer)
            .audience(host)
            .jwks_url(jwks_url)
            .profile(PomeriumProfile)
            .build_authenticator()?;
        Ok(
            AuthLayer::new(PomeriumAssertionAuthenticator(authenticator)).token_sources(TokenSources::new([
                TokenSource::Header(HeaderName::from_static(ASSERTION_HEADER)),
            ])),
        )
    }
}

#[cfg(feature = "axum")]
impl<S: Send + Sync> axum_core::extract::FromRequestParts<S> for PomeriumUser {
    type Rejection = crate::extract::AuthRejection;

    async fn from_request_parts(parts: &mut http::request::Parts, _state: &S) -> Result<Self, Self::Rejection> {
        crate::layer::principal_in(&parts.extensions)
            .and_then(PomeriumUser::from_principal)
            .map_err(|error| crate::extract::AuthRejection::new(parts, error))
    }
}
