//! Pomerium, on both sides of the proxy.
//!
//! - [`assertion`] (feature `pomerium`): services *behind* Pomerium verify the
//!   `X-Pomerium-Jwt-Assertion` it adds to every request
//!   ([`PomeriumAssertionLayer`], [`PomeriumUser`]).
//! - [`client`] (feature `pomerium-client`): programs *calling* a
//!   Pomerium-protected route sign the user in through the browser and send
//!   `Authorization: Pomerium <jwt>` (a tower layer for hyper and tonic, a
//!   reqwest middleware, a blocking helper, and the `authkit-pomerium` CLI).

#[cfg(feature = "pomerium")]
pub mod assertion;
#[cfg(feature = "pomerium-client")]
pub mod client;

#[cfg(feature = "pomerium")]
pub use assertion::{
    ASSERTION_HEADER, IssuerFormat, PomeriumAssertionLayer, PomeriumAuthenticator, PomeriumBuilder, PomeriumUser,
};
