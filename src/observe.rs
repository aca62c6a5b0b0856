//! What the crate reports about its work: one `debug` event per
//! authentication (target `tower_authkit::authentication`, fields
//! `provider`, `outcome`, `reason`, and `issuer` or `description`; an
//! authentication that waits on I/O runs in a `debug` span `authenticate`
//! with `provider`, which that event and the upstream's logs sit in), and
//! with the
//! `metrics` feature, counters and histograms through the
//! [`metrics`](https://docs.rs/metrics) facade, so any exporter
//! (Prometheus, OpenTelemetry, StatsD) plugs in.
//!
//! Labels are a fixed, documented set: names of providers and upstreams,
//! outcome words and error codes, issuers as configured (a tenant pattern,
//! never a tenant an attacker made up). Never a subject, token, key or
//! free text.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `authkit_authentications_total` | counter | `provider` (`jwks`, `cloudflare`, `pomerium`, `proxy-user`, `introspection`, `session`, `api-key`, `any-of`, `custom`), `outcome` (`authenticated`, `rejected`), `reason` (`none` or the error code: `missing_token`, `invalid_token`, `invalid_request`, `insufficient_scope`, `forbidden`, `too_many_requests`, `upstream_error`, `temporarily_unavailable`, `insufficient_user_authentication`, `invalid_dpop_proof`, `use_dpop_nonce`) |
//! | `authkit_key_set_fetches_total` | counter | `issuer` (as configured; a tenant pattern for its tenants), `result` (`ok`, `error`) |
//! | `authkit_token_cache_lookups_total` | counter | `result` (`hit`, `miss`) |
//! | `authkit_token_cache_entries` | gauge | — (set on each insert) |
//! | `authkit_upstream_request_duration_seconds` | histogram | `upstream` (`jwks`, `proxy-user`, `introspection`, `cloudflare-identity`), `result` (`ok`, `status`, `unreachable`, `too_large`) |
//! | `authkit_session_store_duration_seconds` | histogram | `operation` (`create`, `load`, `touch`, `save`, `rekey`, `delete`, `delete_user`, `list_user`, `count_failure`, `forgive`, `failures`, `reset_counter`), `result` (`ok`, `error`) |
//!
//! Install the recorder before the first request; handles are not kept, so
//! a recorder installed later is used from then on.
//!
//! # Exporting
//!
//! ```rust,no_run
//! use axum::{routing::get, Router};
//!
//! fn metrics_route() -> Result<Router, Box<dyn std::error::Error>> {
//!     // Install the recorder before serving, then expose what it gathers.
//!     let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;
//!     Ok(Router::new().route("/metrics", get(move || std::future::ready(prometheus.render()))))
//! }
//! ```
//!
//! `cargo run --example resource_server --features metrics` serves it at
//! `/metrics`.

use crate::principal::Principal;
use crate::rejection::AuthError;

/// An authentication settled (the one place every provider passes).
/// `provider` names the layer's authenticator, for refusals; a success
/// names the principal's own provider.
pub(crate) fn authentication(provider: &'static str, outcome: &Result<Principal, AuthError>) {
    let (provider, outcome_word, reason) = match outcome {
        Ok(principal) => (principal.provider(), "authenticated", "none"),
        Err(error) => (provider, "rejected", error.code()),
    };
    match outcome {
        Ok(principal) => tracing::debug!(
            target: "tower_authkit::authentication",
            provider,
            outcome = outcome_word,
            reason,
            issuer = principal.issuer().unwrap_or(""),
            "authenticated"
        ),
        Err(error) => tracing::debug!(
            target: "tower_authkit::authentication",
            provider,
            outcome = outcome_word,
            reason,
            description = error.description(),
            "rejected"
        ),
    }
    #[cfg(feature = "metrics")]
    metrics::counter!(
        "authkit_authentications_total",
        "provider" => provider,
        "outcome" => outcome_word,
        "reason" => reason
    )
    .increment(1);
}

/// A key-set fetch finished.
#[cfg_attr(not(feature = "jwks"), allow(dead_code))]
pub(crate) fn key_set_fetch(issuer: &str, ok: bool) {
    #[cfg(feature = "metrics")]
    metrics::counter!(
        "authkit_key_set_fetches_total",
        "issuer" => issuer.to_owned(),
        "result" => if ok { "ok" } else { "error" }
    )
    .increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (issuer, ok);
}

/// A verified-token cache lookup.
#[cfg_attr(not(feature = "jwks"), allow(dead_code))]
#[inline]
pub(crate) fn token_cache_lookup(hit: bool) {
    #[cfg(feature = "metrics")]
    metrics::counter!("authkit_token_cache_lookups_total", "result" => if hit { "hit" } else { "miss" }).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = hit;
}

/// The verified-token cache's size after an insert (only called with the
/// feature on: counting the entries takes each shard's lock).
#[cfg(feature = "metrics")]
#[cfg_attr(not(feature = "jwks"), allow(dead_code))]
pub(crate) fn token_cache_entries(entries: u64) {
    metrics::gauge!("authkit_token_cache_entries").set(entries as f64);
}

/// One upstream HTTP exchange and how it ended.
#[cfg_attr(not(feature = "http-client"), allow(dead_code))]
pub(crate) fn upstream_request(upstream: &'static str, result: &'static str, took: std::time::Duration) {
    #[cfg(feature = "metrics")]
    metrics::histogram!(
        "authkit_upstream_request_duration_seconds",
        "upstream" => upstream,
        "result" => result
    )
    .record(took.as_secs_f64());
    #[cfg(not(feature = "metrics"))]
    let _ = (upstream, result, took);
}

/// One session-store call (the layer's store is wrapped when the feature is on).
#[cfg(all(feature = "metrics", feature = "session"))]
pub(crate) fn session_store(operation: &'static str, ok: bool, took: std::time::Duration) {
    metrics::histogram!(
        "authkit_session_store_duration_seconds",
        "operation" => operation,
        "result" => if ok { "ok" } else { "error" }
    )
    .record(took.as_secs_f64());
}
