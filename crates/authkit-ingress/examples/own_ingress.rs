//! The README's "build your own" ingress, as written there (a test checks
//! the README holds this file verbatim, and runs it):
//! `SESSION_KEY=... WIKI_URL=http://127.0.0.1:9001/ cargo run -p authkit-ingress --example own_ingress`.

use authkit_ingress::{Destination, Forwarded, Identity, is_websocket_upgrade};
use authkit_ingress::{Limits, ServiceProxy, Standing, WebSocketPolicy};
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{any, get};
use axum::{Router, http::StatusCode};
use std::net::SocketAddr;
use tower_authkit::Principal;
use tower_authkit::cross_origin::CrossOriginLayer;
use tower_authkit::session::store::MemoryStore;
use tower_authkit::session::{Session, SessionAuthenticator, SessionLayer};

const STAFF: &str = "staff";

#[derive(Clone)]
struct Ingress {
    proxy: ServiceProxy,
    wiki: Destination,
    sessions: SessionAuthenticator,
}

async fn enter(
    State(ingress): State<Ingress>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    principal: Principal,
    session: Session,
    request: Request,
) -> Response {
    if !principal.has_group(STAFF) {
        return StatusCode::FORBIDDEN.into_response();
    }
    let Some(handle) = session.handle() else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let user = principal.email().unwrap_or(principal.subject()).to_owned();
    let identity = Identity {
        user: &user,
        groups: principal.groups(),
    }; // X-Authkit-User, -Groups
    // Behind a reverse proxy of yours, take the client from `TrustedProxies` instead.
    let forwarded = Forwarded {
        client: peer.ip(),
        proto: "https",
        host: None,
    };
    let (proxy, wiki, cookie) = (&ingress.proxy, &ingress.wiki, ingress.sessions.cookie_name());
    if !is_websocket_upgrade(&request) {
        // The raw path after /s/wiki goes on byte for byte; `..`, %2F, %5C … get 400.
        return proxy
            .forward(wiki, request, identity, forwarded, cookie)
            .await
            .into_response();
    }
    let sessions = ingress.sessions.clone();
    let check = move || {
        let sessions = sessions.clone();
        async move {
            match sessions.principal_of(&handle).await {
                Ok(Some(now)) if now.has_group(STAFF) => Standing::Allowed,
                Ok(_) => Standing::Ended, // revoked, signed out, expired, left the group: 1008
                Err(_) => Standing::Unknown, // store down: 1013 after a grace period
            }
        }
    };
    let policy = WebSocketPolicy::default(); // check every 5 s, close after 1 h
    proxy
        .forward_websocket(wiki, request, identity, forwarded, cookie, policy, check)
        .await
        .into_response()
}

/// The page the session layer sends signed-out browsers to; a real one checks
/// a password with `SignIn` (see the `portal` module) before `session.login`.
async fn login_page() -> Html<&'static str> {
    Html(r#"<form method="post" action="/login"><button>Sign in as alice</button></form>"#)
}

async fn login(session: Session) -> Redirect {
    session.login(
        Principal::builder("session", "alice@example.com")
            .groups(vec![STAFF.into()])
            .build(),
    );
    Redirect::to("/s/wiki/")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let key = std::env::var("SESSION_KEY").map_err(|_| "set SESSION_KEY to at least 32 random bytes")?;
    let wiki = std::env::var("WIKI_URL").unwrap_or_else(|_| "http://10.0.0.7:8080/".into());
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:8080".into());
    let sessions = SessionLayer::builder()
        .key(key.into_bytes())
        .store(MemoryStore::new()) // RedisStore for several replicas
        .login_redirect("/login")
        .build()?;
    let ingress = Ingress {
        proxy: ServiceProxy::new(Limits::default()), // 413, cut responses, 502, 504; never retries
        wiki: Destination::parse("wiki", &wiki)?,    // internal hosts only
        sessions: sessions.authenticator().clone(),
    };
    let app = Router::new()
        .route("/s/wiki", get(|| async { Redirect::permanent("/s/wiki/") }))
        .route("/s/wiki/", any(enter))
        .route("/s/wiki/{*rest}", any(enter))
        .with_state(ingress)
        .route("/login", get(login_page).post(login))
        .layer(sessions.public_path("/login"))
        .layer(CrossOriginLayer::new()); // also refuses cross-site WebSocket handshakes
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await?;
    Ok(())
}
