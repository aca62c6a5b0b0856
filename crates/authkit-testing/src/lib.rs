//! The test kit of `tower-authkit`: [`TestIdp`], an in-process OpenID
//! provider (and OAuth authorization server) on an ephemeral loopback port,
//! and a token builder; [`FakePomerium`] and [`ProxyMock`] for the other
//! upstreams; and the `authkit-dev-server` binary, which serves them all.
//! Its keys are public: never trust it outside tests and development.
//!
//! ```
//! use tower_authkit_testing::TestIdp;
//! use tower_authkit::jwt::Algorithm;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let idp = TestIdp::start().await;
//! let admin = idp.token().sub("u1").roles(["admin"]).sign();
//! let ec = idp.token().alg(Algorithm::ES256).scope("reports:read").sign();
//! let layer = idp.auth_builder().build().unwrap(); // issuer + audience preset
//! # let _ = (admin, ec, layer);
//! # }
//! ```

#![warn(missing_debug_implementations, unreachable_pub)]

mod authorization;
mod idp;
mod keys;
mod oauth;
mod pomerium_route;
mod proxy_mock;
#[cfg(feature = "sessions")]
pub mod sessions;
#[cfg(feature = "sessions")]
pub mod store_conformance;
mod token;

pub use idp::CorsOrigins;
pub use idp::{IdpFailure, TestIdp, TestIdpBuilder};
pub use oauth::{DEV_CLIENT_ID, DEV_CLIENT_SECRET};
pub use pomerium_route::FakePomerium;
pub use proxy_mock::ProxyMock;
pub use token::TokenBuilder;
