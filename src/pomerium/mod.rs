//! Services *behind* Pomerium (feature `pomerium`): [`assertion`] verifies
//! the `X-Pomerium-Jwt-Assertion` Pomerium adds to every request
//! ([`PomeriumAssertionLayer`], [`PomeriumUser`]).
//!
//! Programs *calling* a Pomerium-protected route (browser sign-in, a tower
//! layer, a reqwest middleware, the `authkit-pomerium` CLI) use the
//! `tower-authkit-pomerium` crate of this workspace.

pub mod assertion;

pub use assertion::{
    ASSERTION_HEADER, IssuerFormat, PomeriumAssertionLayer, PomeriumAuthenticator, PomeriumBuilder, PomeriumUser,
};
