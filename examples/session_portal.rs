//! A small server-rendered sign-in portal on `SessionLayer`: the portal of
//! the `authkit-ingress` crate ([`authkit_ingress::portal`]) with a home page.
//!
//! ```sh
//! AUTHKIT_SESSION_KEY="$(head -c 48 /dev/urandom | base64)" \
//! AUTHKIT_DEMO_USERS='admin@example.com:admin-pass:admin,user@example.com:user-pass:user' \
//! AUTHKIT_SECURE_COOKIES=false \
//!   cargo run --example session_portal --features session-sqlite,session-redis
//! # or, with a random key and the two demo users above:
//! cargo run --example session_portal --features session-sqlite,session-redis -- --dev
//! ```
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `AUTHKIT_BIND` | listen address | `127.0.0.1:3000` |
//! | `AUTHKIT_SESSION_STORE` | `memory`, `sqlite:<path>` or `redis://host:port[/db]` | `memory` |
//! | `AUTHKIT_SESSION_KEY` | cookie signing key, at least 32 bytes | required unless `--dev` |
//! | `AUTHKIT_SESSION_OLD_KEYS` | previous keys, comma-separated, still accepted | none |
//! | `AUTHKIT_SECURE_COOKIES` | `Secure` cookie flag (the cookie is then `__Host-authkit_session`, else `authkit_session`) | `true` |
//! | `AUTHKIT_SESSION_IDLE` / `AUTHKIT_SESSION_ABSOLUTE` | seconds | 1800 / 28800 |
//! | `AUTHKIT_LOGIN_ATTEMPTS` | failed sign-ins per account per window | 5 |
//! | `AUTHKIT_LOGIN_CLIENT_ATTEMPTS` | failed sign-ins per client address per window | 20 |
//! | `AUTHKIT_LOGIN_WINDOW` | seconds | 900 |
//! | `AUTHKIT_TRUSTED_PROXIES` | your reverse proxies (comma-separated IPs or CIDRs): from them, the client is the right-most `X-Forwarded-For` address that is not a trusted proxy; from anyone else the header is ignored | none |
//! | `AUTHKIT_DEMO_USERS` | `email:password:role1\|role2,...` (Argon2-hashed at start) | none (`--dev`: two demo users) |
//!
//! Routes: `GET /health`, `GET|POST /login`, `POST /logout`, `GET /`,
//! `GET /me`, `GET /admin`, `GET /me/sessions`, `DELETE /me/sessions/{id}`
//! (or `POST /me/sessions/{id}/end` from an HTML form: 303 back to the list),
//! `POST /admin/revoke?email=E`, `POST /admin/disable?email=E`,
//! `POST /admin/enable?email=E`. Unsafe requests from other origins get 403.
//!
//! Disabling a user revokes their sessions in the store (so every instance
//! sharing it sees that at once) and refuses their sign-ins; the disabled
//! list itself lives in this process, like the demo users.

mod support;

use std::process::ExitCode;

use authkit_ingress::portal;
use axum::Router;
use axum::response::Html;
use axum::routing::get;
use tower_authkit::Principal;

async fn home(principal: Principal) -> Html<String> {
    let email = principal.email().unwrap_or(principal.subject());
    Html(format!(
        "<!doctype html><html><head><title>Portal</title></head><body>\
         <h1>Signed in</h1><p id=\"email\">{}</p>\
         <form method=\"post\" action=\"/logout\"><button type=\"submit\">Sign out</button></form></body></html>",
        portal::escape(email)
    ))
}

#[tokio::main]
async fn main() -> ExitCode {
    support::init_tracing();
    let dev = std::env::args().skip(1).any(|arg| arg == "--dev");
    let app = portal::Portal::from_env(dev)
        .await
        .map(|portal| portal.router(Router::new().route("/", get(home))));
    support::serve("session_portal", app).await
}
