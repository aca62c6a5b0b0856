//! Every server-to-server call the crate makes (key sets, discovery,
//! user-info and permission checks, introspection, identity lookups), and
//! what a request is answered when one fails. One mapping serves every
//! provider, so the same outage gets the same answer whichever layer meets
//! it:
//!
//! (The table of answers is in the `rejection` module's docs, "When an
//! upstream fails": one copy, where users read it.)
//!
//! While an upstream keeps failing for a key, the failure is answered again
//! from a backoff ([`backoff`]) instead of asking once per request. The
//! session store is not an HTTP upstream but follows the same rule: store
//! down is 503 with `Retry-After: 1`.
//!
//! - `fetch`: the HTTP client (timeouts, retries for idempotent GETs, body
//!   cap, no redirects, https except on loopback) and [`FetchError`].
//! - `discovery`: an endpoint found through OpenID discovery once, with
//!   failures backed off (JWKS and introspection).
//! - `verdicts`: the positive / negative verdict cache with single flight
//!   and damped failures (Cloudflare identity, proxy-user, introspection).

// Each provider uses its part of this module; builds with only some of
// them enabled leave the rest unused.
#![cfg_attr(
    not(all(
        feature = "jwks",
        feature = "proxy-user",
        feature = "introspection",
        feature = "cloudflare"
    )),
    allow(dead_code, unused_imports)
)]

pub(crate) mod backoff;

/// `Retry-After` of a first 503 for an unreachable upstream: about the first
/// backoff step (repeats during the backoff say the time left).
#[cfg(feature = "http-client")]
pub(crate) const RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);
#[cfg(feature = "http-client")]
mod discovery;
// Reachable from `__private` only (the satellite crates): not documented API.
#[cfg(feature = "http-client")]
#[allow(missing_docs)]
pub(crate) mod fetch;
#[cfg(any(feature = "proxy-user", feature = "introspection", feature = "cloudflare"))]
mod verdicts;

#[cfg(any(feature = "proxy-user", feature = "introspection", feature = "cloudflare"))]
pub(crate) use backoff::FailureDamper;
pub(crate) use backoff::{Backoff, FailureState, retry_after};
#[cfg(feature = "http-client")]
pub(crate) use discovery::Endpoint;
#[cfg(feature = "http-client")]
pub(crate) use fetch::*;
#[cfg(any(feature = "proxy-user", feature = "introspection", feature = "cloudflare"))]
pub(crate) use verdicts::{Verdict, VerdictCache};
