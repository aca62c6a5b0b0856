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

mod idp;
mod keys;
mod token;

pub use idp::{IdpFailure, TestIdp};
pub use token::TokenBuilder;
