//! `JwksAuthLayer`: JWT bearer tokens verified against an OpenID provider's JWKS.
//!
//! ```
//! use axum::{routing::get, Router};
//! use tower_authkit::{JwksAuthLayer, Principal, RequireRole};
//! use tower_authkit_testing::TestIdp;
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let idp = TestIdp::start().await; // a real provider in production
//! let auth = JwksAuthLayer::builder()
//!     .issuer(idp.issuer())          // discovery at {issuer}/.well-known/openid-configuration
//!     .audience(idp.audience())
//!     .build()
//!     .expect("valid configuration");
//!
//! let app = Router::new()
//!     .route("/admin", get(|| async { "welcome" }).route_layer(RequireRole::new("admin")))
//!     .route("/me", get(|p: Principal| async move { p.subject().to_owned() }))
//!     .layer(auth);
//!
//! let token = idp.token().sub("alice").roles(["admin"]).sign();
//! let request = http::Request::get("/admin")
//!     .header("authorization", format!("Bearer {token}"))
//!     .body(axum::body::Body::empty())
//!     .unwrap();
//! assert_eq!(app.oneshot(request).await.unwrap().status(), 200);
//! # }
//! ```
//!
//! Security rules (RFC 8725) are fixed, not options: an explicit algorithm
//! allowlist, the key decides the algorithm, keys only from the configured key
//! set (`jwk`/`jku`/`x5u`/`x5c` headers are ignored, never fetched), `crit`
//! rejected, `exp` required, exact `iss`, https key URLs except on loopback.

mod algorithm;
mod authenticator;
mod builder;
mod checks;
pub mod dpop;
mod dpop_settings;
pub mod issuers;
mod jwk;
mod key_cache;
mod keys;
#[cfg(feature = "dpop-redis")]
pub mod replay_redis;
mod token_cache;
mod verify;

pub use algorithm::Algorithm;
#[cfg(any(feature = "cloudflare", feature = "pomerium"))]
pub(crate) use authenticator::ClaimsProfile;

/// The JWS parser, for the fuzzers.
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_parse(token: &str, allowed: algorithm::AlgorithmSet) -> Result<(), crate::AuthError> {
    verify::parse(token, allowed).and_then(|jws| jws.claims().map(|_| ()))
}

/// The JWKS parser, for the fuzzers.
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_jwks(body: &[u8]) {
    let _ = jwk::KeySet::parse(body, algorithm::Algorithm::ALL.into_iter().collect(), 0);
}
pub use authenticator::{JwksAuthLayer, JwksAuthenticator, KeysNotReady};
pub use builder::{JwksAuthBuilder, MAX_LEEWAY};
pub use issuers::{IssuerSetBuilder, TenantIssuers};
pub use key_cache::KeyCache;
#[cfg(feature = "dpop-redis")]
pub use replay_redis::RedisReplayCache;
