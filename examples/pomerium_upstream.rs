//! A service upstream of Pomerium, trusting only verified assertions.
//!
//! ```sh
//! AUTHKIT_POMERIUM_AUDIENCE=app.example.com \
//! AUTHKIT_POMERIUM_JWKS_URL=https://app.example.com/.well-known/pomerium/jwks.json \
//!   cargo run --features pomerium --example pomerium_upstream
//! ```
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `AUTHKIT_POMERIUM_AUDIENCE` | the route host (`aud`, and `iss`) | required |
//! | `AUTHKIT_POMERIUM_JWKS_URL` | pinned JWKS URL | `https://<audience>/.well-known/pomerium/jwks.json` |
//! | `AUTHKIT_BIND` | listen address (port 0 = ephemeral) | `127.0.0.1:3000` |
//!
//! Routes: `GET /health` (public), `GET /me` → `{"sub","email","groups"}`,
//! `GET /team` (group `team-a`).

mod support;

use std::process::ExitCode;

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use support::required;
use tower_authkit::RequireGroup;
use tower_authkit::pomerium::{PomeriumAssertionLayer, PomeriumUser};

async fn me(user: PomeriumUser) -> Json<Value> {
    Json(json!({"sub": user.sub, "email": user.email, "groups": user.groups}))
}

fn app() -> Result<Router, String> {
    let mut builder = PomeriumAssertionLayer::builder().audience(required("AUTHKIT_POMERIUM_AUDIENCE")?);
    if let Ok(url) = std::env::var("AUTHKIT_POMERIUM_JWKS_URL") {
        builder = builder.jwks_url(url);
    }
    let auth = builder
        .build()
        .map_err(|e| format!("invalid configuration: {e}"))?
        .public_path("/health");
    Ok(Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/me", get(me))
        .route(
            "/team",
            get(|| async { Json(json!({"team": "team-a"})) }).route_layer(RequireGroup::new("team-a")),
        )
        .layer(auth))
}

#[tokio::main]
async fn main() -> ExitCode {
    support::serve("pomerium_upstream", app()).await
}
