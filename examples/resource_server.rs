//! A protected API configured from the environment.
//!
//! ```sh
//! AUTHKIT_ISSUER=https://login.example.com/realms/main AUTHKIT_AUDIENCE=orders-api \
//!   cargo run --example resource_server
//! ```
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `AUTHKIT_ISSUER` | expected `iss`; discovery base | required |
//! | `AUTHKIT_AUDIENCE` | accepted `aud` (comma-separated for several) | required |
//! | `AUTHKIT_JWKS_URL` | pinned JWKS URL (skips discovery) | discovery |
//! | `AUTHKIT_JWKS_TTL` | seconds keys stay fresh | 600 |
//! | `AUTHKIT_REFRESH_COOLDOWN` | seconds between unknown-kid refetches | 30 |
//! | `AUTHKIT_BIND` | listen address (port 0 = ephemeral) | `127.0.0.1:3000` |
//!
//! Routes: `GET /health` (public, liveness), `GET /ready` (public,
//! readiness: 200 once signing keys are loaded, else 503 with the reason),
//! `GET /me`, `GET /admin` (role `admin`), `GET /team` (group `team-a`),
//! `GET /reports` (scope `reports:read`).

mod support;

use std::process::ExitCode;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use support::{required, required_list};
use tower_authkit::jwt::JwksAuthenticator;
use tower_authkit::{JwksAuthLayer, Principal, RequireGroup, RequireRole, RequireScope};

fn seconds(name: &str) -> Result<Option<Duration>, String> {
    match std::env::var(name) {
        Err(_) => Ok(None),
        Ok(value) => value
            .trim()
            .parse::<u64>()
            .map(|s| Some(Duration::from_secs(s)))
            .map_err(|_| format!("{name} must be a whole number of seconds, got {value:?}")),
    }
}

fn auth_layer() -> Result<JwksAuthLayer, String> {
    let mut builder = JwksAuthLayer::builder().issuer(required("AUTHKIT_ISSUER")?);
    for audience in required_list("AUTHKIT_AUDIENCE")? {
        builder = builder.audience(audience);
    }
    if let Ok(url) = std::env::var("AUTHKIT_JWKS_URL") {
        builder = builder.jwks_url(url);
    }
    if let Some(ttl) = seconds("AUTHKIT_JWKS_TTL")? {
        builder = builder.max_age(ttl);
    }
    if let Some(cooldown) = seconds("AUTHKIT_REFRESH_COOLDOWN")? {
        builder = builder.refresh_cooldown(cooldown);
    }
    builder
        .build()
        .map(|layer| layer.public_path("/health").public_path("/ready"))
        .map_err(|e| format!("invalid configuration: {e}"))
}

async fn me(principal: Principal) -> Json<Value> {
    Json(json!({
        "sub": principal.subject(),
        "email": principal.email(),
        "roles": principal.roles(),
        "groups": principal.groups(),
        "scopes": principal.scopes(),
    }))
}

/// Ready once keys are loaded. A probe that finds none asks for them (one
/// shared fetch) and answers with the real reason when that fails.
async fn ready(State(keys): State<JwksAuthenticator>) -> Response {
    if keys.is_ready() {
        return "ready".into_response();
    }
    match keys.ready().await {
        Ok(()) => "ready".into_response(),
        Err(error) => (StatusCode::SERVICE_UNAVAILABLE, error.to_string()).into_response(),
    }
}

fn app() -> Result<Router, String> {
    let auth = auth_layer()?;
    Ok(Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/ready", get(ready).with_state(auth.authenticator().clone()))
        .route("/me", get(me))
        .route(
            "/admin",
            get(|| async { Json(json!({"admin": true})) }).route_layer(RequireRole::new("admin")),
        )
        .route(
            "/team",
            get(|| async { Json(json!({"team": "team-a"})) }).route_layer(RequireGroup::new("team-a")),
        )
        .route(
            "/reports",
            get(|| async { Json(json!({"reports": []})) }).route_layer(RequireScope::new("reports:read")),
        )
        .layer(auth))
}

#[tokio::main]
async fn main() -> ExitCode {
    support::serve("resource_server", app()).await
}
