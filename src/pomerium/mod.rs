//! Services *behind* Pomerium (feature `pomerium`): [`assertion`] verifies
//! the `X-Pomerium-Jwt-Assertion` Pomerium adds to every request
//! ([`PomeriumAssertionLayer`], [`PomeriumUser`]).
//!
//! Programs *calling* a Pomerium-protected route (browser sign-in, a tower
//! layer, a reqwest middleware, the `authkit-pomerium` CLI) use the
//! `tower-authkit-pomerium` crate of this workspace.
//!
//! # Pomerium
//!
//! ```rust,no_run
//! use axum::{routing::get, Router};
//! use tower_authkit::pomerium::{PomeriumAssertionLayer, PomeriumUser};
//! use tower_authkit::RequireGroup;
//!
//! fn app() -> Result<Router, tower_authkit::ConfigError> {
//! let auth = PomeriumAssertionLayer::builder()
//!     .audience("app.example.com") // the route host; JWKS pinned at https://app.example.com/.well-known/pomerium/jwks.json
//!     .build()?;
//! let app = Router::new()
//!     .route("/team", get(|user: PomeriumUser| async move { user.email }).route_layer(RequireGroup::new("team-a")))
//!     .layer(auth);
//! Ok(app)
//! }
//! ```
//!
//! The JWKS URL is pinned (never derived from the token), ES256 and RS256 are
//! accepted, `aud` must be the route host, `iss` the host (or `IssuerFormat::Uri`
//! for `https://<host>/`), and the leeway is at most 60 s.

pub mod assertion;

pub use assertion::{
    ASSERTION_HEADER, IssuerFormat, PomeriumAssertionAuthenticator, PomeriumAssertionBuilder, PomeriumAssertionLayer,
    PomeriumUser,
};
