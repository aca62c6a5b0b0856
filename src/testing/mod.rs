//! Test kit (feature `testing`): [`TestIdp`], an in-process OpenID provider
//! on an ephemeral loopback port, and a token builder.
//!
//! ```
//! use tower_authkit::testing::TestIdp;
//! use tower_authkit::Algorithm;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let idp = TestIdp::start().await;
//! let admin = idp.token().sub("u1").roles(["admin"]).sign();
//! let ec = idp.token().alg(Algorithm::ES256).scope("reports:read").sign();
//! let layer = idp.auth_builder().build().unwrap(); // issuer + audience preset
//! # let _ = (admin, ec, layer);
//! # }
//! ```

mod authorization;
mod idp;
mod keys;
mod oauth;
mod pomerium_route;
mod proxy_mock;
mod token;

#[cfg(feature = "dev-server")]
pub use idp::CorsOrigins;
pub use idp::{IdpFailure, TestIdp, TestIdpBuilder};
pub use oauth::{DEV_CLIENT_ID, DEV_CLIENT_SECRET};
pub use pomerium_route::FakePomerium;
pub use proxy_mock::ProxyMock;
pub use token::TokenBuilder;
