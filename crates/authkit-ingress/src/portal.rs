//! The sign-in portal `authkit-ingress serve` (and the repository's
//! `session_portal` example) serve: users from `AUTHKIT_DEMO_USERS`, the
//! session store from `AUTHKIT_SESSION_STORE`, sign-in with limits,
//! sign-out, `/me`, `/me/sessions`, and the admin routes.
//!
//! ```no_run
//! # async fn run() -> Result<(), String> {
//! use axum::Router;
//! use axum::routing::get;
//!
//! let portal = authkit_ingress::portal::Portal::from_env(false).await?;
//! let app: Router = portal.router(Router::new().route("/", get(|| async { "signed in" })));
//! # let _ = app; Ok(()) }
//! ```

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::settings::{flag, number, required};
use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};
use tower_authkit::client_address::TrustedProxies;
use tower_authkit::cross_origin::CrossOriginLayer;
use tower_authkit::session::store::{MemoryStore, SessionStore};
use tower_authkit::session::store::{RedisStore, SqliteStore};
use tower_authkit::session::{PrincipalLoader, Session, SessionHandle, SessionLayer, SignIn, SignInError, local_path};
use tower_authkit::{AuthError, Principal, RequireRole};

const DEV_USERS: &str = "admin@example.com:admin-pass:admin,user@example.com:user-pass:user";

struct User {
    hash: String,
    roles: Vec<String>,
    groups: Vec<String>,
}

/// The portal's user table: demo users from the environment.
#[derive(Default)]
pub struct Users {
    users: RwLock<HashMap<String, User>>,
    disabled: RwLock<HashSet<String>>,
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Password hashes stay out of logs.
        let count = self.users.read().map_or(0, |users| users.len());
        f.debug_struct("Users").field("count", &count).finish_non_exhaustive()
    }
}

impl Users {
    fn is_disabled(&self, email: &str) -> bool {
        self.disabled.read().unwrap_or_else(|p| p.into_inner()).contains(email)
    }

    fn hash(&self, email: &str) -> Option<String> {
        let users = self.users.read().unwrap_or_else(|p| p.into_inner());
        users
            .get(email)
            .filter(|_| !self.is_disabled(email))
            .map(|u| u.hash.clone())
    }

    /// The current principal of `email`: roles and groups as they are now;
    /// `None` when unknown or disabled.
    pub fn principal(&self, email: &str) -> Option<Principal> {
        let users = self.users.read().unwrap_or_else(|p| p.into_inner());
        let user = users.get(email)?;
        (!self.is_disabled(email)).then(|| {
            Principal::builder("session", email)
                .email(email)
                .roles(user.roles.clone())
                .groups(user.groups.clone())
                .build()
        })
    }

    /// Replaces `email`'s groups; `false` for an unknown user.
    pub fn set_groups(&self, email: &str, groups: Vec<String>) -> bool {
        let mut users = self.users.write().unwrap_or_else(|p| p.into_inner());
        match users.get_mut(email) {
            Some(user) => {
                user.groups = groups;
                true
            }
            None => false,
        }
    }
}

/// Every request re-reads the user: disabled or removed users lose access at
/// their next request, and role changes apply at once.
struct CurrentUsers(Arc<Users>);

impl PrincipalLoader for CurrentUsers {
    fn load<'a>(&'a self, stored: &'a Principal) -> BoxFuture<'a, Result<Option<Principal>, AuthError>> {
        Box::pin(async move { Ok(self.0.principal(stored.subject())) })
    }
}

/// What the portal's handlers share (the state of the router
/// [`Portal::router`] takes).
#[derive(Clone, Debug)]
pub struct App {
    /// The user table.
    pub users: Arc<Users>,
    sign_in: SignIn,
    /// Revokes sessions (the admin routes).
    pub admin: tower_authkit::session::SessionAdmin,
    /// Re-checks sessions outside requests (the ingress's WebSockets).
    pub sessions: tower_authkit::session::SessionAuthenticator,
    /// `AUTHKIT_TRUSTED_PROXIES`: whose `X-Forwarded-For` names the client.
    pub proxies: Arc<TrustedProxies>,
}

fn store() -> Result<Arc<dyn SessionStore>, String> {
    let spec = std::env::var("AUTHKIT_SESSION_STORE").unwrap_or_else(|_| "memory".to_owned());
    let spec = spec.trim();
    if spec == "memory" {
        return Ok(Arc::new(MemoryStore::new()));
    }
    if let Some(path) = spec.strip_prefix("sqlite:") {
        let store = SqliteStore::open(path).map_err(|e| format!("AUTHKIT_SESSION_STORE: {e}"))?;
        store.spawn_sweeper(Duration::from_secs(60));
        return Ok(Arc::new(store));
    }
    if spec.starts_with("redis://") {
        return Ok(Arc::new(
            RedisStore::new(spec).map_err(|e| format!("AUTHKIT_SESSION_STORE: {e}"))?,
        ));
    }
    Err(format!(
        "AUTHKIT_SESSION_STORE must be memory, sqlite:<path> or redis://host:port, got {spec:?}"
    ))
}

fn signing_key(dev: bool) -> Result<Vec<u8>, String> {
    match std::env::var("AUTHKIT_SESSION_KEY") {
        Ok(key) if key.len() >= 32 => Ok(key.into_bytes()),
        Ok(_) => Err("AUTHKIT_SESSION_KEY must be at least 32 bytes".to_owned()),
        Err(_) if dev => {
            eprintln!("session_portal: --dev: using a random AUTHKIT_SESSION_KEY (sessions end at restart)");
            let mut key = [0u8; 48];
            getrandom::fill(&mut key).map_err(|e| e.to_string())?;
            Ok(key.iter().map(|b| format!("{b:02x}")).collect::<String>().into_bytes())
        }
        Err(_) => required("AUTHKIT_SESSION_KEY").map(String::into_bytes),
    }
}

async fn demo_users(sign_in: &SignIn, dev: bool) -> Result<Users, String> {
    let spec = match std::env::var("AUTHKIT_DEMO_USERS") {
        Ok(spec) => spec,
        Err(_) if dev => {
            eprintln!("session_portal: --dev: demo users admin@example.com / admin-pass, user@example.com / user-pass");
            DEV_USERS.to_owned()
        }
        Err(_) => String::new(),
    };
    let mut users = HashMap::new();
    let list = |field: Option<&str>| -> Vec<String> {
        field
            .unwrap_or("")
            .split('|')
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
            .collect()
    };
    for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let mut parts = entry.splitn(4, ':');
        let (Some(email), Some(password)) = (parts.next(), parts.next()) else {
            return Err("AUTHKIT_DEMO_USERS entries are email:password:roles[:groups] (|-separated)".to_owned());
        };
        let roles = list(parts.next());
        let groups = list(parts.next());
        let hash = sign_in.passwords().hash(password).await.map_err(|e| e.to_string())?;
        users.insert(email.trim().to_ascii_lowercase(), User { hash, roles, groups });
    }
    Ok(Users {
        users: RwLock::new(users),
        disabled: RwLock::default(),
    })
}

/// The sign-in portal: sessions, sign-in limits, admin routes.
#[derive(Debug)]
pub struct Portal {
    /// What its handlers share; add routes of your own with it as state.
    pub state: App,
    sessions: SessionLayer,
}

impl Portal {
    /// Everything from the environment (see the examples' docs).
    pub async fn from_env(dev: bool) -> Result<Portal, String> {
        let store = store()?;
        let mut sessions = SessionLayer::builder()
            .key(signing_key(dev)?)
            .shared_store(Arc::clone(&store))
            .secure(flag("AUTHKIT_SECURE_COOKIES", true)?)
            .idle_timeout(Duration::from_secs(number("AUTHKIT_SESSION_IDLE", 1800)?))
            .absolute_timeout(Duration::from_secs(number("AUTHKIT_SESSION_ABSOLUTE", 28800)?))
            .login_redirect("/login");
        if let Ok(old) = std::env::var("AUTHKIT_SESSION_OLD_KEYS") {
            for key in old.split(',').map(str::trim).filter(|k| !k.is_empty()) {
                sessions = sessions.old_key(key.as_bytes().to_vec());
            }
        }
        let sign_in = SignIn::new(store.clone())
            .account_attempts(number("AUTHKIT_LOGIN_ATTEMPTS", 5)?)
            .client_attempts(number("AUTHKIT_LOGIN_CLIENT_ATTEMPTS", 20)?)
            .window(Duration::from_secs(number("AUTHKIT_LOGIN_WINDOW", 900)?));
        let users = Arc::new(demo_users(&sign_in, dev).await?);
        let proxies = std::env::var("AUTHKIT_TRUSTED_PROXIES")
            .unwrap_or_default()
            .parse::<TrustedProxies>()
            .map_err(|e| format!("AUTHKIT_TRUSTED_PROXIES: {e}"))?;
        let sessions = sessions
            .principal_loader(CurrentUsers(Arc::clone(&users)))
            .build()
            .map_err(|e| format!("invalid configuration: {e}"))?;
        let state = App {
            users,
            sign_in,
            admin: sessions.authenticator().admin(),
            sessions: sessions.authenticator().clone(),
            proxies: Arc::new(proxies),
        };
        Ok(Portal { state, sessions })
    }

    /// The portal's routes plus `app`'s, behind the session layer (public:
    /// `/health`, `/login`, `/logout`) and the cross-origin layer.
    pub fn router(self, app: Router<App>) -> Router {
        let sessions = self.sessions;
        let state = self.state;
        let admin_routes = Router::new()
            .route("/admin", get(|| async { Json(json!({"admin": true})) }))
            .route("/admin/revoke", post(revoke))
            .route("/admin/disable", post(disable))
            .route("/admin/enable", post(enable))
            .route_layer(RequireRole::new("admin"));
        Router::new()
            .route("/health", get(|| async { "ok" }))
            .route("/login", get(login_page).post(login))
            .route("/logout", post(logout))
            .route("/me", get(me))
            .route("/me/sessions", get(my_sessions))
            .route("/me/sessions/{id}", delete(end_my_session))
            .route("/me/sessions/{id}/end", post(end_my_session_from_a_form))
            .merge(admin_routes)
            .merge(app)
            .with_state(state)
            .layer(
                sessions
                    .public_path("/health")
                    .public_path("/login")
                    .public_path("/logout"),
            )
            .layer(CrossOriginLayer::new())
    }
}

/// `text` escaped for HTML text and attribute values.
pub fn escape(text: &str) -> String {
    // One rule for the core's error pages and the portal's.
    tower_authkit::__private::escape_html(text)
}

fn form(next: &str, message: Option<&str>) -> Html<String> {
    let message = message.map_or(String::new(), |m| format!("<p class=\"error\">{}</p>", escape(m)));
    Html(format!(
        "<!doctype html><html><head><title>Sign in</title></head><body><h1>Sign in</h1>{message}\
         <form method=\"post\" action=\"/login\">\
         <label>Email <input type=\"email\" name=\"email\" id=\"email\" autocomplete=\"username\" required></label>\
         <label>Password <input type=\"password\" name=\"password\" id=\"password\" autocomplete=\"current-password\" required></label>\
         <input type=\"hidden\" name=\"next\" value=\"{}\">\
         <button type=\"submit\" id=\"submit\">Sign in</button></form></body></html>",
        escape(next)
    ))
}

#[derive(Deserialize)]
struct Next {
    next: Option<String>,
}

async fn login_page(Query(query): Query<Next>) -> Html<String> {
    let next = query.next.as_deref().and_then(local_path).unwrap_or("/");
    form(next, None)
}

#[derive(Deserialize)]
struct Credentials {
    email: String,
    password: String,
    next: Option<String>,
}

async fn login(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    session: Session,
    Form(credentials): Form<Credentials>,
) -> Response {
    let email = credentials.email.trim().to_ascii_lowercase();
    let next = credentials
        .next
        .as_deref()
        .and_then(local_path)
        .unwrap_or("/")
        .to_owned();
    let client = Some(app.proxies.client(peer.ip(), &headers));
    // A disabled user is checked like an unknown one: same cost, same answer.
    let hash = app.users.hash(&email);
    match app
        .sign_in
        .check(&email, client, &credentials.password, hash.as_deref())
        .await
    {
        Ok(()) => match app.users.principal(&email) {
            Some(principal) => {
                session.login(principal);
                Redirect::to(&next).into_response()
            }
            None => (
                StatusCode::UNAUTHORIZED,
                form(&next, Some("Invalid email or password.")),
            )
                .into_response(),
        },
        Err(SignInError::Invalid) => (
            StatusCode::UNAUTHORIZED,
            form(&next, Some("Invalid email or password.")),
        )
            .into_response(),
        Err(SignInError::Limited { retry_after }) => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, retry_after.as_secs().max(1).to_string())],
            form(&next, Some("Too many failed sign-ins. Try again later.")),
        )
            .into_response(),
        // Unavailable, and whatever a later version adds: try again.
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1".to_owned())],
            "sign-in is unavailable, try again",
        )
            .into_response(),
    }
}

async fn logout(session: Session) -> Redirect {
    session.logout();
    Redirect::to("/login")
}

async fn me(principal: Principal) -> Json<Value> {
    Json(json!({
        "sub": principal.subject(),
        "email": principal.email(),
        "roles": principal.roles(),
    }))
}

fn unix(time: std::time::SystemTime) -> u64 {
    time.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn store_down(error: impl std::fmt::Display) -> Response {
    tracing::warn!(%error, "session store unavailable");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "1")],
        Json(json!({"error": "temporarily_unavailable"})),
    )
        .into_response()
}

async fn my_sessions(State(app): State<App>, principal: Principal, session: Session) -> Response {
    let current = session.handle();
    match app.admin.list_user(principal.subject()).await {
        Ok(sessions) => Json(
            sessions
                .into_iter()
                .map(|s| {
                    json!({
                        "id": s.handle.to_hex(),
                        "created_at": unix(s.created_at),
                        "last_seen_at": unix(s.last_seen_at),
                        "current": Some(s.handle) == current,
                    })
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(error) => store_down(error),
    }
}

/// `POST /me/sessions/{id}/end`: the same for an HTML form (which cannot
/// send `DELETE`), then back to the listing.
async fn end_my_session_from_a_form(state: State<App>, principal: Principal, id: Path<String>) -> Response {
    let ended = end_my_session(state, principal, id).await;
    if ended.status() == StatusCode::NO_CONTENT {
        Redirect::to("/me/sessions").into_response()
    } else {
        ended
    }
}

async fn end_my_session(State(app): State<App>, principal: Principal, Path(id): Path<String>) -> Response {
    let Some(handle) = SessionHandle::from_hex(&id) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    // Owner-scoped: another user's handle ends nothing (404, like an unknown one).
    match app.admin.revoke(principal.subject(), &handle).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => StatusCode::NOT_FOUND.into_response(),
        Err(error) => store_down(error),
    }
}

#[derive(Deserialize)]
struct Email {
    email: String,
}

async fn revoke(State(app): State<App>, Query(target): Query<Email>) -> Response {
    match app.admin.revoke_user(&target.email.trim().to_ascii_lowercase()).await {
        Ok(count) => Json(json!({"revoked": count})).into_response(),
        Err(error) => store_down(error),
    }
}

async fn disable(State(app): State<App>, Query(target): Query<Email>) -> Response {
    let email = target.email.trim().to_ascii_lowercase();
    app.users
        .disabled
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .insert(email.clone());
    // Sessions end in the store too, so other instances stop them at once.
    match app.admin.revoke_user(&email).await {
        Ok(count) => Json(json!({"disabled": email, "revoked": count})).into_response(),
        Err(error) => store_down(error),
    }
}

async fn enable(State(app): State<App>, Query(target): Query<Email>) -> Json<Value> {
    let email = target.email.trim().to_ascii_lowercase();
    app.users
        .disabled
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&email);
    Json(json!({"enabled": email}))
}
