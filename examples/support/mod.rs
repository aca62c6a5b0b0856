//! What the runnable examples share: logging from `RUST_LOG`, reading
//! settings from the environment, and serving an app with the readiness line
//! tests wait for, until SIGTERM or Ctrl-C. One copy serves the examples and
//! the `authkit-ingress` binary: it lives in that crate.
#![allow(unused_imports)]

pub use authkit_ingress::server::{init_tracing, serve, serve_bound};
pub use authkit_ingress::settings::{list, required, required_list};
