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
//! Routes: `GET /health` (public), `GET /me`, `GET /admin` (role `admin`),
//! `GET /team` (group `team-a`), `GET /reports` (scope `reports:read`).

use std::process::ExitCode;
use std::time::Duration;

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use tower_authkit::{JwksAuthLayer, Principal, RequireGroup, RequireRole, RequireScope};

fn required(name: &str) -> Result<String, String> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| format!("missing required environment variable {name}"))
}

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
    for audience in required("AUTHKIT_AUDIENCE")?
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
    {
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
        .map(|layer| layer.public_path("/health"))
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

fn app(auth: JwksAuthLayer) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/me", get(me))
        .route(
            "/admin",
            get(|| async { Json(json!({"admin": true})) }).route_layer(RequireRole::new("admin")),
        )
        .route(
            "/team",
            get(|| async { Json(json!({"team": "team-a"})) })
                .route_layer(RequireGroup::new("team-a")),
        )
        .route(
            "/reports",
            get(|| async { Json(json!({"reports": []})) })
                .route_layer(RequireScope::new("reports:read")),
        )
        .layer(auth)
}

#[tokio::main]
async fn main() -> ExitCode {
    let auth = match auth_layer() {
        Ok(auth) => auth,
        Err(message) => {
            eprintln!("resource_server: {message}");
            return ExitCode::from(2);
        }
    };
    let bind = std::env::var("AUTHKIT_BIND").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let listener = match tokio::net::TcpListener::bind(&bind).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("resource_server: cannot bind {bind}: {e}");
            return ExitCode::from(1);
        }
    };
    let addr = match listener.local_addr() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("resource_server: {e}");
            return ExitCode::from(1);
        }
    };
    println!("listening on http://{addr}");
    if let Err(e) = axum::serve(listener, app(auth)).await {
        eprintln!("resource_server: {e}");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
