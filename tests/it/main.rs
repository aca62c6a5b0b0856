//! The integration tests that need no process of their own: one binary
//! (one link), a module per capability. Tests that install process-wide
//! state (a tracing subscriber, a metrics recorder, an audit sink, an
//! environment variable) or run programs keep their own binaries.

#[path = "../common/mod.rs"]
mod common;

#[cfg(all(feature = "api-key", feature = "introspection"))]
mod any_of;
mod grpc;
#[cfg(feature = "introspection")]
mod introspection;
mod issuers;
mod jwks;
mod pipeline;
#[cfg(feature = "pomerium")]
mod pomerium;
#[cfg(feature = "proxy-user")]
mod proxy_user;
#[cfg(feature = "session")]
mod session_stores;
#[cfg(feature = "session")]
mod sign_in_recipe;
mod token_checks;
