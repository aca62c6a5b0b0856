//! An app behind Cloudflare Access.
//!
//! ```sh
//! AUTHKIT_CF_TEAM_DOMAIN=https://acme.cloudflareaccess.com AUTHKIT_CF_AUD=<aud tag> \
//!   cargo run --features cloudflare --example cloudflare_access
//! ```
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `AUTHKIT_CF_TEAM_DOMAIN` | team domain URL (http only on loopback) | required |
//! | `AUTHKIT_CF_AUD` | application AUD tags, comma-separated | required |
//! | `AUTHKIT_BIND` | listen address (port 0 = ephemeral) | `127.0.0.1:3000` |
//!
//! Routes: `GET /health` (public), `GET /me` → `{"sub","email","country","kind"}`,
//! `GET /identity` → the caller's `get-identity` profile.

mod support;

use std::process::ExitCode;

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use support::{required, required_list};
use tower_authkit::AuthError;
use tower_authkit::cloudflare::{CfAccess, CfAccessAssertion, CfAccessLayer, CfIdentity};

async fn me(who: CfAccess) -> Json<Value> {
    let (sub, email, country) = match &who {
        CfAccess::User(user) => (user.sub.as_str(), Some(user.email.as_str()), user.country.as_deref()),
        CfAccess::Service(service) => (service.common_name.as_str(), None, None),
    };
    Json(json!({"sub": sub, "email": email, "country": country, "kind": who.kind()}))
}

fn app() -> Result<Router, String> {
    let mut builder = CfAccessLayer::builder().team_domain(required("AUTHKIT_CF_TEAM_DOMAIN")?);
    for aud in required_list("AUTHKIT_CF_AUD")? {
        builder = builder.audience(aud);
    }
    let auth = builder
        .build()
        .map_err(|e| format!("invalid configuration: {e}"))?
        .public_path("/health");
    let verifier = auth.authenticator().clone();
    let identity = move |assertion: CfAccessAssertion| async move {
        let identity = verifier.identity(assertion.expose()).await?;
        Ok::<Json<CfIdentity>, AuthError>(Json(CfIdentity::clone(&identity)))
    };
    Ok(Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/me", get(me))
        .route("/identity", get(identity))
        .layer(auth))
}

#[tokio::main]
async fn main() -> ExitCode {
    support::serve("cloudflare_access", app()).await
}
