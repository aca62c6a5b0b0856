//! Composable Tower layers that authenticate and authorize HTTP and gRPC
//! requests, for axum and tonic. Every layer runs one pipeline: it reads a
//! credential, asks its authenticator, puts the [`Principal`] in the
//! request's extensions (and the request's [`SecurityContext`]), or answers
//! with an [`AuthError`] rendered for HTTP (RFC 6750) or gRPC.
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use tower_authkit::{Principal, RequireRole};
//! use tower_authkit::jwt::JwksAuthLayer;
//!
//! # fn app() -> Result<Router, tower_authkit::ConfigError> {
//! let auth = JwksAuthLayer::builder()
//!     .issuer("https://login.example.com/realms/main")
//!     .audience("orders-api")
//!     .build()?;
//! let app = Router::new()
//!     .route("/me", get(|me: Principal| async move { me.subject().to_owned() }))
//!     .route("/admin", get(|| async { "admin" }).route_layer(RequireRole::new("admin")))
//!     .layer(auth);
//! # Ok(app) }
//! ```
//!
//! # Module map
//!
//! The pipeline and what every provider shares, at the root (one import
//! path each; the guides are on the types): [`AuthLayer`] and
//! [`Authenticator`] (modes, token sources, tonic, several layers, serving
//! notes), [`TokenSources`] (where credentials are read from),
//! [`Principal`], the requirements [`RequireRole`], [`RequireGroup`],
//! [`RequireScope`], [`RequirePermission`], [`require_fn`] and
//! [`RequireAuthContext`] (step-up, RFC 9470) under [`Requirement`],
//! extractors ([`Authorized`], [`Claims`]; feature `axum`),
//! [`SecurityContext`], [`AuthError`] (the table of statuses and codes, and
//! what an upstream failure answers) and [`first_of`] (several
//! authenticators on one layer).
//!
//! Providers, each in its module with its settings:
//!
//! | module | what | feature |
//! |---|---|---|
//! | [`jwt`] | `JwksAuthLayer`: JWTs from OpenID providers; several issuers, tenants, DPoP | `jwks` (default) |
//! | `cloudflare` | `CfAccessLayer`: Cloudflare Access | `cloudflare` |
//! | `pomerium` | `PomeriumAssertionLayer`: the assertion Pomerium sends upstream | `pomerium` |
//! | `proxy_user` | `ProxyUserLayer`: users from an auth proxy's user-info endpoint | `proxy-user` |
//! | `introspection` | `IntrospectionLayer`: RFC 7662 | `introspection` |
//! | `api_key` | `ApiKeys`: static API keys | `api-key` |
//! | `session` | `SessionLayer`, `SignIn`, stores | `session`, `session-sqlite`, `session-redis` |
//!
//! Every provider follows one scheme: `FooLayer` is `AuthLayer<FooAuthenticator>`,
//! configured by `FooLayer::builder()`, a `FooBuilder` (`JwksAuthLayer`,
//! `JwksAuthBuilder`, `JwksAuthenticator`; `SessionLayer`, `SessionBuilder`,
//! `SessionAuthenticator`; …), and checks its settings in `build()`.
//!
//! Around them, in modules: `resource` (RFC 9728 protected-resource
//! metadata, MCP servers), [`cross_origin`] (cross-site request refusal for
//! cookie sessions), [`client_address`] (trusted proxies), [`audit`]
//! (sign-in and session events), [`observe`] (log fields and metrics).
//!
//! The test kit (`TestIdp`, the dev server), the ingress and the Pomerium
//! client are crates of their own: `tower-authkit-testing`,
//! `authkit-ingress`, `tower-authkit-pomerium`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![warn(missing_debug_implementations, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod any_of;
#[cfg(feature = "api-key")]
pub mod api_key;
pub mod audit;
mod authz;
pub mod client_address;
#[cfg(feature = "cloudflare")]
pub mod cloudflare;
mod context;
pub mod cross_origin;
mod crypto;
mod error;
#[cfg(feature = "axum")]
mod extract;
#[cfg(all(feature = "fuzzing", feature = "jwks"))]
#[doc(hidden)]
pub mod fuzzing;
#[cfg(any(feature = "session", feature = "dpop-redis"))]
mod hex;
#[cfg(feature = "introspection")]
pub mod introspection;
#[cfg(feature = "jwks")]
pub mod jwt;
mod layer;
pub mod observe;
#[cfg(feature = "pomerium")]
pub mod pomerium;
mod principal;
#[cfg(feature = "proxy-user")]
pub mod proxy_user;
#[cfg(any(feature = "session-redis", feature = "dpop-redis"))]
mod redis_connection;
mod rejection;
#[cfg(feature = "http-client")]
pub mod resource;
#[cfg(feature = "session")]
pub mod session;
mod step_up;
mod token;
mod upstream;

// The README's examples compile as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// Internals the satellite crates of this workspace (`tower-authkit-pomerium`)
/// share with this one, so there is one copy of each rule. Not a public API:
/// no stability promise, not documented.
#[doc(hidden)]
pub mod __private {
    pub use crate::cross_origin::normalized_origin;
    pub use crate::crypto::ensure_provider;
    pub use crate::rejection::escape_html;
    pub use crate::token::is_b64token;

    /// A WebSocket opening handshake (the ingress relays them).
    pub fn is_websocket_handshake(method: &http::Method, headers: &http::HeaderMap) -> bool {
        crate::cross_origin::is_websocket_handshake(method, headers)
    }

    /// jsonwebtoken's name for `alg` (the test kit signs with it).
    #[cfg(feature = "jwks")]
    pub fn jsonwebtoken_algorithm(alg: crate::jwt::Algorithm) -> jsonwebtoken::Algorithm {
        alg.to_jsonwebtoken()
    }
    #[cfg(feature = "http-client")]
    pub use crate::upstream::fetch::{FetchError, FetchPolicy, Fetcher, check_url, is_loopback_host};
}

pub use any_of::{AnyOf, first_of};
pub use authz::{
    Policy, RequireFn, RequireFuture, RequireGroup, RequirePermission, RequireRole, RequireScope, RequireService,
    Requirement, require_fn,
};
pub use context::SecurityContext;
pub use crypto::install_crypto_provider;
pub use error::ConfigError;
#[cfg(feature = "axum")]
pub use extract::{AuthRejection, Authorized, Claims};
pub use layer::{
    AuthBody, AuthFuture, AuthLayer, AuthService, Authentication, Authenticator, Finish, GuardFuture, Mode,
    RecordedRejection, RequestHead, ResponseFuture, ResponseHook, Settled,
};
pub use principal::{BoxFuture, Principal, PrincipalBuilder, RawClaims, RoleResolver, principal_from_claims};
pub use rejection::{AuthError, AuthErrorKind, DefaultRenderer, Protocol, Renderer};
pub use step_up::RequireAuthContext;
pub use token::{Credential, DEFAULT_MAX_TOKEN_LEN, SourceKind, TokenSource, TokenSources};
