//! A fake Pomerium route for client-side tests: the programmatic login
//! endpoint, a sign-in page that sends the browser back with a token, and a
//! protected app that redirects to `/.pomerium/sign_in` without a good token.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use base64::Engine as _;
use serde::Deserialize;

/// A Pomerium route on an ephemeral loopback port.
///
/// ```
/// use tower_authkit_testing::FakePomerium;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let route = FakePomerium::start().await;
/// let response = reqwest::Client::builder()
///     .redirect(reqwest::redirect::Policy::none())
///     .build()
///     .unwrap()
///     .get(route.url("/api"))
///     .send()
///     .await
///     .unwrap();
/// assert_eq!(response.status(), 302); // to /.pomerium/sign_in
/// # }
/// ```
pub struct FakePomerium {
    state: Arc<RouteState>,
    addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for FakePomerium {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakePomerium")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

struct RouteState {
    origin: String,
    valid: Mutex<HashSet<String>>,
    issued: AtomicU64,
    logins: AtomicUsize,
    sign_ins: AtomicUsize,
    app_requests: AtomicUsize,
    refuse_all: AtomicBool,
    answer_401: AtomicBool,
    token_ttl: Mutex<Duration>,
    sign_in_url: Mutex<Option<String>>,
}

impl FakePomerium {
    /// Protects an echo app: any method and path answers
    /// `200 <METHOD> <path> body=<body>`, except `/forbidden` (403).
    pub async fn start() -> FakePomerium {
        Self::start_with(Self::echo_app()).await
    }

    /// Protects `app` (e.g. tonic routes for gRPC through Pomerium). The
    /// server speaks HTTP/1.1 and, where the `http2` feature of axum is on,
    /// h2c.
    pub async fn start_with(app: Router) -> FakePomerium {
        Self::try_start_on(SocketAddr::from(([127, 0, 0, 1], 0)), app)
            .await
            .expect("bind the fake pomerium route")
    }

    /// Serves `app` behind the fake route on `addr` (the dev server uses it).
    pub async fn try_start_on(addr: SocketAddr, app: Router) -> std::io::Result<FakePomerium> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(RouteState {
            origin: format!("http://{addr}"),
            valid: Mutex::default(),
            issued: AtomicU64::new(0),
            logins: AtomicUsize::new(0),
            sign_ins: AtomicUsize::new(0),
            app_requests: AtomicUsize::new(0),
            refuse_all: AtomicBool::new(false),
            answer_401: AtomicBool::new(false),
            token_ttl: Mutex::new(Duration::from_secs(3600)),
            sign_in_url: Mutex::default(),
        });
        let protected = app.layer(middleware::from_fn_with_state(state.clone(), guard));
        let router = Router::new()
            .route("/.pomerium/api/v1/login", get(login))
            .route("/.pomerium/sign_in", get(sign_in))
            .with_state(state.clone())
            .fallback_service(protected);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(FakePomerium { state, addr, server })
    }

    /// The echo app [`start`](Self::start) protects.
    pub fn echo_app() -> Router {
        Router::new().fallback(any(echo))
    }

    /// `http://127.0.0.1:<port>`.
    pub fn origin(&self) -> &str {
        &self.state.origin
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `origin` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.state.origin)
    }

    /// Calls of the login endpoint (`/.pomerium/api/v1/login`).
    pub fn logins(&self) -> usize {
        self.state.logins.load(Ordering::SeqCst)
    }

    /// Tokens handed out by the sign-in page.
    pub fn sign_ins(&self) -> usize {
        self.state.sign_ins.load(Ordering::SeqCst)
    }

    /// Requests that reached the protected app (with a good token).
    pub fn app_requests(&self) -> usize {
        self.state.app_requests.load(Ordering::SeqCst)
    }

    /// Revokes every token issued so far.
    pub fn revoke_all(&self) {
        self.state.valid.lock().expect("not poisoned").clear();
    }

    /// When on, even good tokens are sent to sign in.
    pub fn refuse_all(&self, on: bool) {
        self.state.refuse_all.store(on, Ordering::SeqCst);
    }

    /// Answer 401 (an API-style route) instead of redirecting to sign-in.
    pub fn answer_401(&self, on: bool) {
        self.state.answer_401.store(on, Ordering::SeqCst);
    }

    /// Lifetime (`exp - iat`) of tokens issued from now on (default 1 h).
    pub fn token_ttl(&self, ttl: Duration) {
        *self.state.token_ttl.lock().expect("not poisoned") = ttl;
    }

    /// Makes the login endpoint return this body instead of its sign-in URL.
    pub fn sign_in_url(&self, body: impl Into<String>) {
        *self.state.sign_in_url.lock().expect("not poisoned") = Some(body.into());
    }

    /// Issues a good token directly (as if signed in elsewhere).
    pub fn issue_token(&self) -> String {
        self.state.issue()
    }

    /// An opener for `PomeriumAuthBuilder::opener` that plays the user: it
    /// loads the sign-in URL and follows the redirect back to the callback,
    /// on a task of the current runtime.
    pub fn auto_sign_in(&self) -> impl Fn(&str) -> std::io::Result<()> + Send + Sync + 'static {
        |url: &str| {
            let url = url.to_owned();
            let runtime = tokio::runtime::Handle::try_current().map_err(std::io::Error::other)?;
            runtime.spawn(async move {
                if let Err(error) = reqwest::get(&url).await {
                    tracing::warn!(%error, "fake user could not follow the sign-in URL");
                }
            });
            Ok(())
        }
    }
}

impl Drop for FakePomerium {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl RouteState {
    /// JWT-shaped like Pomerium's (only `exp` matters to clients); the
    /// signature is not real, the server checks its own list.
    fn issue(&self) -> String {
        let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let ttl = self.token_ttl.lock().expect("not poisoned").as_secs();
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = engine.encode(r#"{"alg":"ES256","typ":"JWT"}"#);
        let claims = serde_json::json!({ "sub": format!("user-{n}"), "iat": now, "exp": now + ttl, "jti": n });
        let token = format!(
            "{header}.{}.{}",
            engine.encode(claims.to_string()),
            engine.encode(format!("sig-{n}"))
        );
        self.valid.lock().expect("not poisoned").insert(token.clone());
        token
    }
}

#[derive(Deserialize)]
struct RedirectQuery {
    pomerium_redirect_uri: Option<String>,
}

async fn login(State(state): State<Arc<RouteState>>, Query(query): Query<RedirectQuery>) -> Response {
    state.logins.fetch_add(1, Ordering::SeqCst);
    let Some(redirect) = query
        .pomerium_redirect_uri
        .filter(|uri| uri.starts_with("http://127.0.0.1:"))
    else {
        return (StatusCode::BAD_REQUEST, "pomerium_redirect_uri must be a loopback URL").into_response();
    };
    let body = state
        .sign_in_url
        .lock()
        .expect("not poisoned")
        .clone()
        .unwrap_or_else(|| {
            let query: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("pomerium_redirect_uri", &redirect)
                .finish();
            format!("{}/.pomerium/sign_in?{query}", state.origin)
        });
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

/// The "user signed in" step: back to the client's listener with a token.
/// Without a redirect URI (a browser sent here by the app) it is just a page.
async fn sign_in(State(state): State<Arc<RouteState>>, Query(query): Query<RedirectQuery>) -> Response {
    let Some(redirect) = query
        .pomerium_redirect_uri
        .filter(|uri| uri.starts_with("http://127.0.0.1:"))
    else {
        return (StatusCode::OK, "sign in to continue").into_response();
    };
    state.sign_ins.fetch_add(1, Ordering::SeqCst);
    let token = state.issue();
    let separator = if redirect.contains('?') { '&' } else { '?' };
    let location = format!("{redirect}{separator}pomerium_jwt={token}");
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

async fn guard(State(state): State<Arc<RouteState>>, request: Request, next: Next) -> Response {
    let token = presented_token(request.headers());
    let good = token.is_some_and(|token| state.valid.lock().expect("not poisoned").contains(token));
    if good && !state.refuse_all.load(Ordering::SeqCst) {
        state.app_requests.fetch_add(1, Ordering::SeqCst);
        return next.run(request).await;
    }
    if state.answer_401.load(Ordering::SeqCst) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let location = format!("{}/.pomerium/sign_in", state.origin);
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

/// The three forms Pomerium accepts.
fn presented_token(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get("x-pomerium-authorization") {
        return value.to_str().ok();
    }
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value
        .strip_prefix("Pomerium ")
        .or_else(|| value.strip_prefix("Bearer Pomerium-"))
}

async fn echo(method: Method, uri: Uri, body: Bytes) -> Response {
    if uri.path() == "/forbidden" {
        return (StatusCode::FORBIDDEN, "not allowed").into_response();
    }
    let text = format!("{method} {} body={}", uri.path(), String::from_utf8_lossy(&body));
    Response::builder()
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::from(text))
        .expect("static parts")
}
