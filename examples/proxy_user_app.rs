//! An app behind an auth proxy that validates tokens (`/_oxa_auth/get-me`).
//!
//! Two terminals, with the dev server as the proxy:
//!
//! ```sh
//! cargo run -p tower-authkit-testing --bin authkit-dev-server            # terminal 1
//! AUTHKIT_PROXY_URL=http://127.0.0.1:8765 AUTHKIT_BIND=127.0.0.1:8000 \
//!   cargo run --features proxy-user --example proxy_user_app           # terminal 2
//! curl -H 'Authorization: Bearer mock-dev-token' http://127.0.0.1:8000/v1/me
//! ```
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `AUTHKIT_PROXY_URL` | upstream base URL | unset: derived from the request host |
//! | `AUTHKIT_PROXY_ALLOWED_HOSTS` | hosts (`host[:port]`, comma-separated) whose own proxy may be used when `AUTHKIT_PROXY_URL` is unset | required then |
//! | `AUTHKIT_PROXY_SCHEME` | scheme for host-derived upstreams | `https` |
//! | `AUTHKIT_BIND` | listen address (port 0 = ephemeral) | `127.0.0.1:3000` |
//!
//! `AUTHKIT_PROXY_DEV_MODE=1` (with optional `AUTHKIT_PROXY_DEV_URL`) also
//! routes validation to the dev server when `AUTHKIT_PROXY_URL` is unset.
//!
//! Routes: `GET /health` (public), `GET /v1/me` → the user JSON,
//! `GET /v1/maybe-public` → `{"signed_in", "email"}`, `GET /v1/audit` needs
//! permission `audit`.

mod support;

use std::process::ExitCode;

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use tower_authkit::proxy_permission;
use tower_authkit::proxy_user::{CurrentUser, Permitted, ProxyUser, ProxyUserBuilder};

proxy_permission!(Audit = "audit");

async fn me(user: CurrentUser) -> Json<ProxyUser> {
    Json(ProxyUser::clone(&user))
}

async fn maybe_public(user: Option<CurrentUser>) -> Json<Value> {
    match user {
        Some(user) => Json(json!({"signed_in": true, "email": user.email})),
        None => Json(json!({"signed_in": false, "email": null})),
    }
}

async fn audit(Permitted(user, _): Permitted<Audit>) -> Json<Value> {
    Json(json!({"audit_log": [{"hello": "world"}], "by": user.email}))
}

fn app() -> Result<Router, String> {
    // Honours AUTHKIT_PROXY_DEV_MODE / AUTHKIT_PROXY_DEV_URL.
    let mut builder = ProxyUserBuilder::from_env();
    match std::env::var("AUTHKIT_PROXY_URL").ok().filter(|v| !v.trim().is_empty()) {
        Some(url) => builder = builder.upstream_url(url),
        None => {
            // Dev mode (if set) wins over hosts inside the builder.
            if let Ok(hosts) = support::required_list("AUTHKIT_PROXY_ALLOWED_HOSTS") {
                builder = builder.allowed_hosts(hosts);
            }
            if let Ok(scheme) = std::env::var("AUTHKIT_PROXY_SCHEME") {
                builder = builder.scheme(scheme);
            }
        }
    }
    let auth = builder.build().map_err(|e| format!("invalid configuration: {e}"))?;
    Ok(Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/v1/me", get(me))
        .route("/v1/maybe-public", get(maybe_public))
        .route("/v1/audit", get(audit))
        .layer(auth))
}

#[tokio::main]
async fn main() -> ExitCode {
    support::serve("proxy_user_app", app()).await
}
