//! The main demo: an in-process OpenID provider and a protected axum app.
//!
//! ```sh
//! cargo run --example quickstart
//! ```
//!
//! Walks through: no token → 401, user token → 200 with the subject, user on
//! the admin route → 403, admin → 200. Exits non-zero if any step surprises.

mod support;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use tower_authkit::{Principal, RequireRole};
use tower_authkit_testing::TestIdp;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    support::init_tracing();
    // 1. A provider: in production, your Keycloak / Auth0 / Entra issuer URL.
    let idp = TestIdp::start().await;
    println!("test provider at {}", idp.issuer());

    // 2. The app: every route needs a valid token; /admin also needs role `admin`.
    let auth = idp.auth_builder().build()?;
    let app = Router::new()
        .route(
            "/me",
            get(|p: Principal| async move { format!("hello, {}", p.subject()) }),
        )
        .route(
            "/admin",
            get(|| async { "admin area" }).route_layer(RequireRole::new("admin")),
        )
        .layer(auth);

    // 3. Requests.
    let user = idp.token().sub("alice").roles(["user"]).sign();
    let admin = idp.token().sub("bob").roles(["admin"]).sign();
    let steps = [
        ("no token", "/me", None, StatusCode::UNAUTHORIZED),
        ("user token", "/me", Some(&user), StatusCode::OK),
        ("user on /admin", "/admin", Some(&user), StatusCode::FORBIDDEN),
        ("admin on /admin", "/admin", Some(&admin), StatusCode::OK),
    ];
    let mut surprises = 0;
    for (step, path, token, expected) in steps {
        let mut request = Request::get(path);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = app.clone().oneshot(request.body(Body::empty())?).await?;
        let status = response.status();
        let challenge = response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .map(|v| format!(" [WWW-Authenticate: {v}]"))
            .unwrap_or_default();
        let body = String::from_utf8_lossy(&response.into_body().collect().await?.to_bytes()).into_owned();
        let mark = if status == expected { "ok " } else { "BAD" };
        println!("{mark} {step:<16} GET {path:<7} -> {status} {body}{challenge}");
        if status != expected {
            surprises += 1;
        }
    }
    if surprises > 0 {
        return Err(format!("{surprises} step(s) did not give the expected status").into());
    }
    println!("all steps behaved as expected");
    Ok(())
}
