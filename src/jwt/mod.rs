//! `JwksAuthLayer`: JWT bearer tokens verified against an OpenID provider's JWKS.
//!
//! ```
//! use axum::{routing::get, Router};
//! use tower_authkit::{Principal, RequireRole};
//! use tower_authkit::jwt::JwksAuthLayer;
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
//!
//! # Configuration (`JwksAuthLayer::builder()`)
//!
//! | setting | default | notes |
//! |---|---|---|
//! | `issuer` | required | compared exactly with `iss` and discovery's `issuer` (a trailing slash matters) |
//! | `audience` | required | repeatable; `aud` (string or array) must contain one; `disable_audience_check()` to opt out |
//! | `jwks_url` | discovery | pins the key URL; https only, http allowed on loopback |
//! | `algorithms` | RS256/384/512, PS256/384/512, ES256/384, EdDSA | `none` and `HS*` are never accepted |
//! | `leeway` | 30 s | for `exp` and `nbf` |
//! | `key_cache` | [`KeyCache::default()`] | how keys are fetched and kept: `max_age` 10 min (refreshed in the background at ¾ of it), `refresh_cooldown` 30 s (one unknown-`kid` refetch per cooldown), `max_staleness` 24 h (stale-while-revalidate past `max_age`), `max_key_wait` 2 s (then 503 + `Retry-After`, the fetch goes on), `retry_failed_fetch_after` / `max_retry_backoff` 0.5 s / 1 s, `http_retries` 2, `prefetch` on |
//! | `http_timeout` | 5 s | per attempt; 100 ms doubling backoff between retries; bodies capped at 1 MiB |
//! | `dpop` | off | a [`dpop::Dpop`] value: allowed or required, the public URL, window, replay cache, server nonces |
//! | `role_resolver` | none | async hook that replaces or extends roles |
//! | `access_token_profile()` | off | RFC 9068: `typ` `at+jwt` and its mandatory claims required; ID tokens refused. Off by default because many providers still mint `typ: JWT` |
//! | `max_lifetime` / `required_claims` / `subject_matches` / `claim_check` | none | cheap checks on every verified token: `exp` − `iat` bound, claims that must be present, a predicate on `sub`, your own closure over the claims (its `Err` message is the 401's description) |
//! | layer: `token_cache` | 10 000 | on [`JwksAuthLayer::issuers`] (one issuer or many): verified tokens remembered (keyed digest, ~0.7 KiB each; admitted on second sight); 0 turns it off |
//! | layer: token sources | `Authorization: Bearer` | named header, cookie, query (opt-in) via `token_sources` / `allow_query_token`; 16 KiB limit |
//!
//! Default claim mapping: roles from `roles` (array or space-separated),
//! `realm_access.roles` and `resource_access.<audience>.roles` (Keycloak); groups
//! from `groups`; scopes from `scope` and `scp`; permissions from `permissions`.
//!
//! # Readiness
//!
//! Keys are fetched in the background at start-up. To fail fast, or to answer a
//! readiness probe:
//!
//! ```rust,no_run
//! use axum::{http::StatusCode, routing::get, Router};
//! use tower_authkit::jwt::JwksAuthLayer;
//!
//! async fn run() -> Result<(), Box<dyn std::error::Error>> {
//!     let auth = JwksAuthLayer::builder().issuer("https://login.example.com").audience("api").build()?;
//!     auth.authenticator().ready().await?; // waits for keys, or the real cause ("connection refused", ...)
//!     let keys = auth.authenticator().clone();
//!     let app: Router = Router::new()
//!         .route("/ready", get(move || async move {
//!             if keys.is_ready() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }
//!         }))
//!         .layer(auth.public_path("/ready"));
//!     let _ = app;
//!     Ok(())
//! }
//! ```
//!
//! # Security notes
//!
//! - RFC 8725 rules are fixed: an explicit algorithm allowlist; the key decides the
//!   algorithm (its `alg`, else its `kty`/`crv`) and the token must match it; keys
//!   come only from the configured key set (`jwk`, `jku`, `x5u`, `x5c` headers are
//!   ignored and never fetched); `crit` is rejected; `exp` is required; `iss` must
//!   match exactly; malformed claim types (`"exp": "…"`) are rejected.
//! - Unusable JWKS entries (`use: enc`, `oct`, unknown curves) are skipped, never fatal.
//! - A provider that is down or hanging gives 503 + `Retry-After` within
//!   `max_key_wait`, one that answers unusably 502 (never 401 or 500); known keys keep working without waiting.
//!   Unknown `kid`s cannot amplify load on the provider (cooldown), and a failing
//!   upstream (key set, user-info, introspection, identity) is asked at most
//!   about once a second per token while it fails.
//! - Malformed requests get 400 (`invalid_request`), bad tokens 401, and no input
//!   produces a 500 or a panic. Tokens never appear in logs, errors or `Debug` output.
//! - Redirects are not followed on key fetches.

mod algorithm;
mod authenticator;
mod builder;
mod checks;
pub mod dpop;
mod dpop_settings;
mod issuers;
mod jwk;
mod key_cache;
mod keys;
#[cfg(feature = "dpop-redis")]
mod replay_redis;
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
