//! Server-side sessions behind signed opaque cookies (feature `session`).
//!
//! ```
//! use axum::{routing::{get, post}, Router};
//! use tower_authkit::session::{Session, SessionLayer};
//! use tower_authkit::session::store::MemoryStore;
//! use tower_authkit::{Principal, RequireRole};
//!
//! # fn main() -> Result<(), tower_authkit::ConfigError> {
//! let sessions = SessionLayer::builder()
//!     .key(b"a signing key of at least 32 bytes!".to_vec())
//!     .store(MemoryStore::new())
//!     .login_redirect("/login") // browsers without a session are sent here
//!     .build()?;
//!
//! let app: Router = Router::new()
//!     .route("/", get(|p: Principal| async move { format!("hello, {}", p.subject()) }))
//!     .route(
//!         "/admin",
//!         get(|| async { "admin" }).route_layer(RequireRole::new("admin")),
//!     )
//!     .route(
//!         "/login",
//!         post(|session: Session| async move {
//!             // ... check the password first (see `SignIn` and `Passwords`) ...
//!             session.login(Principal::builder("session", "alice").roles(vec!["admin".into()]).build());
//!             "signed in"
//!         }),
//!     )
//!     .route("/logout", post(|session: Session| async move { session.logout(); "bye" }))
//!     .layer(sessions.public_path("/login"));
//! # Ok(()) }
//! ```
//!
//! A session is one more [`Authenticator`](crate::Authenticator) of the one
//! pipeline: the cookie is the credential, the store record yields the
//! [`Principal`], so `Require*` layers, extractors and
//! [`SecurityContext`](crate::SecurityContext) work as with tokens. The
//! pipeline's response hook sets or clears the cookie, writes changed data
//! back (once, only when changed) and records activity (at most once per
//! `max(1 s, idle / 10)`).
//!
//! - The cookie holds a 256-bit random id signed with the `cookie` crate's
//!   signed jar; `HttpOnly`, `SameSite=Lax`, `Path=/`, `Secure` unless turned
//!   off. Oversized (> 4 KiB), unsigned or tampered cookies count as absent.
//!   One key signs, older keys still verify ([`SessionBuilder::old_key`]).
//! - Stores key records by the SHA-256 of the id. Idle timeout and absolute
//!   lifetime apply together (defaults 30 min, 8 h).
//! - [`Session::login`] always issues a new id (fixation defence),
//!   [`Session::rotate`] moves the session to a new id, [`Session::logout`]
//!   deletes it. [`SessionAdmin`] revokes one session or all of a user's.
//!   Stores never re-create a deleted record, so a revoke always wins over
//!   in-flight requests; write-backs are version-checked and merged per key.
//!   With [`SessionBuilder::credential_versions`], a password change
//!   ends the user's other sessions at their next request.
//! - No session: 401 with `WWW-Authenticate: Cookie realm="…"` (a cookie
//!   session names no token scheme, and `Require*` refusals further in add
//!   no `Bearer` challenge either; browsers, `Accept: text/html`, get a
//!   small HTML page rather than JSON), anonymous in optional mode, or for
//!   browsers with a [login path](SessionBuilder::login_redirect) a 303
//!   there, with no body.
//!   Store down: 503 + `Retry-After`, and the cookie is kept.
//! - **Unknown paths stay 404.** `Router::layer` also wraps the router's
//!   fallback, so under a required session layer an unknown path answers
//!   401 (or the redirect) before axum can say 404. Put the layer on the
//!   routes with `Router::route_layer` instead (it runs only when a route
//!   matched), and keep public routes outside it:
//!
//! ```
//! # use axum::{routing::get, Router};
//! # use tower_authkit::session::{SessionLayer, store::MemoryStore};
//! # fn app(sessions: SessionLayer) -> Router {
//! Router::new()
//!     .route("/account", get(|| async { "yours" }))
//!     .route_layer(sessions)                          // unknown paths: 404
//!     .route("/health", get(|| async { "ok" }))       // added after: not behind it
//! # }
//! ```
//!
//! # Sessions (`session`, `session-sqlite`, `session-redis`)
//!
//! ```rust,no_run
//! use std::sync::Arc;
//! use axum::{routing::{get, post}, Router};
//! use tower_authkit::cross_origin::CrossOriginLayer;
//! use tower_authkit::session::{store::RedisStore, Session, SessionLayer, SignIn};
//! use tower_authkit::{Principal, RequireRole};
//!
//! fn app() -> Result<Router, Box<dyn std::error::Error>> {
//! let store = Arc::new(RedisStore::new("redis://127.0.0.1:6379")?); // or MemoryStore, SqliteStore
//! let sessions = SessionLayer::builder()
//!     .key(std::env::var("SESSION_KEY")?.into_bytes())      // >= 32 bytes; .old_key(..) for rotation
//!     .shared_store(store.clone())
//!     .login_redirect("/login")                              // browsers without a session: 303
//!     .build()?;
//! let admin = sessions.authenticator().admin();              // revoke(handle), revoke_user(sub), list_user(sub)
//! let sign_in = SignIn::new(store);                          // 5 failures / account, 20 / client, per 15 min
//! let app = Router::new()
//!     .route("/", get(|p: Principal| async move { format!("hello, {}", p.subject()) }))
//!     .route("/admin", get(|| async { "admin" }).route_layer(RequireRole::new("admin")))
//!     .route("/login", post(|session: Session| async move {
//!         // sign_in.check(email, client, password, stored_hash).await? first
//!         session.login(Principal::builder("session", "alice@example.com").build());
//!     }))
//!     .route("/logout", post(|session: Session| async move { session.logout() }))
//!     .layer(sessions.public_path("/login"))
//!     .layer(CrossOriginLayer::new());
//! let _ = (admin, sign_in);
//! Ok(app)
//! }
//! ```
//!
//! - The cookie is a 256-bit random id signed with the `cookie` crate
//!   (`HttpOnly`, `SameSite=Lax`, `Path=/`, `Secure` unless `.secure(false)`),
//!   named `__Host-authkit_session` (so no sibling host or path can set one;
//!   `authkit_session` without `Secure`); stores only see the SHA-256 of the
//!   id. Oversized, unsigned or tampered cookies count as absent and are
//!   logged (without their value); of several cookies with the session's
//!   name, the validly signed one counts.
//! - Idle timeout and absolute lifetime together (30 min / 8 h); activity is
//!   recorded at most once per `max(1 s, idle/10)`, data written back once per
//!   request and only when changed, version-checked and merged per key.
//! - `login` always issues a new id (the session's data moves along only when
//!   the same subject signs in again; another user starts with just what that
//!   request wrote); `rotate` moves a session to a new id;
//!   revocations win over in-flight requests (no store write re-creates a
//!   deleted record). A `PrincipalLoader` re-reads your users every request.
//! - Store down: 503 + `Retry-After`, the cookie kept. `SignIn` counts attempts
//!   in the store (shared by replicas), reserving each one atomically *before*
//!   the password hash runs: with a limit of 5, a burst of 60 parallel guesses
//!   gets 5 checks and 55 answers of 429 + `Retry-After`. `Passwords` hashes
//!   with Argon2id off the runtime behind a concurrency cap.
//! - **Client addresses behind a proxy.** The per-client limit needs the real
//!   client, not your TLS proxy's address (or every user shares one counter
//!   and anyone can lock everyone out).
//!   `client_address::TrustedProxies` (`AUTHKIT_TRUSTED_PROXIES` in the
//!   examples: comma-separated IPs or CIDRs, default none) names your proxies:
//!   from them, the client is the right-most `X-Forwarded-For` address that is
//!   not itself a trusted proxy (a forged left-most entry changes nothing);
//!   from anyone else, forwarding headers are ignored:
//!   `let client = proxies.client(peer.ip(), &headers);`.
//! - Audit events go to `tracing` target `tower_authkit::audit`: sign-in
//!   success/failure, session created/rotated/signed out/revoked, access denied.
//! - `examples/session_portal.rs` is a complete server-rendered portal:
//!   `cargo run --example session_portal --features session-sqlite,session-redis -- --dev`.

mod admin;
mod audit;
mod authenticator;
mod handle;
mod id;
mod limit;
mod password;
mod record;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use crate::principal::BoxFuture;

pub use admin::{SessionAdmin, SessionInfo};
pub use authenticator::{SessionAuthenticator, local_path};
pub use handle::{Session, SessionDataError};
pub use id::{SessionCookie, SessionHandle};
pub use limit::{SignIn, SignInError};
pub use password::{PasswordCost, PasswordError, Passwords};
pub use record::{SessionRecord, StoredPrincipal, UnixMillis};
use store::{MemoryStore, SessionStore};

/// The cookie's `SameSite` attribute.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SameSite {
    /// Sent only with requests from this site.
    Strict,
    /// Also sent with top-level navigations from other sites (links), not
    /// with their sub-requests or form posts: the default.
    #[default]
    Lax,
    /// Sent with every request (needs `Secure`): only for cross-site embeds.
    None,
}

impl SameSite {
    pub(crate) fn to_cookie(self) -> cookie::SameSite {
        match self {
            SameSite::Strict => cookie::SameSite::Strict,
            SameSite::Lax => cookie::SameSite::Lax,
            SameSite::None => cookie::SameSite::None,
        }
    }
}

use authenticator::{Config, CookieSettings};
use id::CookieKeys;

use crate::error::ConfigError;
use crate::layer::AuthLayer;
use crate::principal::Principal;
use crate::rejection::AuthError;
use crate::token::{TokenSource, TokenSources};

/// The session preset of [`AuthLayer`]. Build it with [`SessionLayer::builder`].
pub type SessionLayer = AuthLayer<SessionAuthenticator>;

/// Rebuilds the principal from the application's own user records at every
/// request, so authorization is never stale: `Ok(None)` (user gone or
/// disabled) ends the session at that request.
pub trait PrincipalLoader: Send + Sync + 'static {
    /// The current principal for the one stored with the session.
    fn load<'a>(&'a self, stored: &'a Principal) -> BoxFuture<'a, Result<Option<Principal>, AuthError>>;
}

/// The current version of each user's credentials (a password change
/// counter, the hash's salt, a `password_changed_at`): a session started
/// under another version ends at its next request, so changing a password
/// signs the user out everywhere else. `Ok(None)`: the user is gone (the
/// session ends too).
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::{Arc, RwLock};
/// use tower_authkit::session::CredentialVersions;
/// use tower_authkit::{AuthError, BoxFuture};
///
/// /// Bumped by your "change password" handler.
/// struct PasswordChanges(Arc<RwLock<HashMap<String, u64>>>);
///
/// impl CredentialVersions for PasswordChanges {
///     fn current<'a>(&'a self, subject: &'a str) -> BoxFuture<'a, Result<Option<String>, AuthError>> {
///         let version = self.0.read().unwrap().get(subject).map(u64::to_string);
///         Box::pin(async move { Ok(version) })
///     }
/// }
/// ```
pub trait CredentialVersions: Send + Sync + 'static {
    /// `subject`'s credential version now.
    fn current<'a>(&'a self, subject: &'a str) -> BoxFuture<'a, Result<Option<String>, AuthError>>;
}

impl SessionAuthenticator {
    /// Revokes and lists sessions of this layer's store.
    pub fn admin(&self) -> SessionAdmin {
        SessionAdmin::new(Arc::clone(&self.config.store))
    }

    /// The store this layer uses.
    pub fn store(&self) -> Arc<dyn SessionStore> {
        Arc::clone(&self.config.store)
    }

    /// The session cookie's name (e.g. for a proxy that must never forward
    /// it, or let a service set a cookie of that name).
    pub fn cookie_name(&self) -> &str {
        &self.config.cookie.name
    }

    /// Starts a session of `principal` outside a request, in the store, and
    /// returns the cookie a browser would get for it: for flows that sign
    /// users in elsewhere (a link, a provider callback) and for tests (the
    /// test kit's `session_cookie`). Within a request, use
    /// [`Session::login`].
    pub async fn open_session(&self, principal: &Principal) -> Result<SessionCookie, AuthError> {
        let name = &self.config.cookie.name;
        let id = self.config.create_session(principal, serde_json::Map::new()).await?;
        Ok(SessionCookie::new(name.clone(), self.config.keys.sign(name, &id)))
    }

    /// The principal a request of session `handle` would get now, with the
    /// same checks (record present and live, the [`PrincipalLoader`]);
    /// `Ok(None)` once the session has ended. For connections that outlive
    /// their request, such as a proxied WebSocket, to re-check at intervals
    /// (this does not count as activity). Errors are the store's or the
    /// loader's, as a request would see them (503).
    pub async fn principal_of(&self, handle: &SessionHandle) -> Result<Option<Principal>, AuthError> {
        self.config.current(*handle).await
    }
}

impl AuthLayer<SessionAuthenticator> {
    /// Starts configuring a session layer.
    pub fn builder() -> SessionBuilder {
        SessionBuilder::default()
    }
}

/// The session cookie's default name for `Secure` cookies: the `__Host-`
/// prefix makes browsers refuse it unless it is `Secure`, host-only and
/// `Path=/`, so no sibling host or path can plant one.
pub const DEFAULT_SECURE_COOKIE: &str = "__Host-authkit_session";

/// The session cookie's default name when cookies are not `Secure`.
pub const DEFAULT_COOKIE: &str = "authkit_session";

/// Configures a [`SessionLayer`].
#[must_use = "a builder does nothing until it is built"]
pub struct SessionBuilder {
    key: Option<Vec<u8>>,
    old_keys: Vec<Vec<u8>>,
    store: Option<Arc<dyn SessionStore>>,
    cookie_name: Option<String>,
    same_site: SameSite,
    secure: bool,
    idle: Duration,
    absolute: Duration,
    loader: Option<Arc<dyn PrincipalLoader>>,
    versions: Option<Arc<dyn CredentialVersions>>,
    login_redirect: Option<String>,
}

impl std::fmt::Debug for SessionBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys are secrets: only their count is shown.
        f.debug_struct("SessionBuilder")
            .field("keys", &(usize::from(self.key.is_some()) + self.old_keys.len()))
            .field("cookie_name", &self.cookie_name)
            .field("secure", &self.secure)
            .field("idle", &self.idle)
            .field("absolute", &self.absolute)
            .finish_non_exhaustive()
    }
}

impl Default for SessionBuilder {
    fn default() -> Self {
        Self {
            key: None,
            old_keys: Vec::new(),
            store: None,
            cookie_name: None,
            same_site: SameSite::Lax,
            secure: true,
            idle: Duration::from_secs(30 * 60),
            absolute: Duration::from_secs(8 * 3600),
            loader: None,
            versions: None,
            login_redirect: None,
        }
    }
}

impl SessionBuilder {
    /// The key that signs cookies (required; at least 32 bytes, high entropy,
    /// used for nothing else).
    pub fn key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// A previous key: cookies it signed still verify (call again for more).
    pub fn old_key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.old_keys.push(key.into());
        self
    }

    /// Where sessions live (default: a new [`MemoryStore`]).
    pub fn store(mut self, store: impl SessionStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// A store shared with other code (e.g. an admin task).
    pub fn shared_store(mut self, store: Arc<dyn SessionStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The cookie's name. The default is `__Host-authkit_session` when the
    /// cookie is `Secure` (the default), so no other host or path can set or
    /// shadow it, and `authkit_session` otherwise (plain-http development).
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        self.cookie_name = Some(name.into());
        self
    }

    /// `SameSite` (default [`SameSite::Lax`]).
    pub fn same_site(mut self, same_site: SameSite) -> Self {
        self.same_site = same_site;
        self
    }

    /// Whether the cookie is `Secure` (default true). Turn it off only for
    /// local http development.
    pub fn secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// A session unused this long ends (default 30 min).
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle = idle;
        self
    }

    /// A session ends this long after sign-in, however active (default 8 h).
    pub fn absolute_timeout(mut self, absolute: Duration) -> Self {
        self.absolute = absolute;
        self
    }

    /// Rebuilds the principal from your user records at every request.
    pub fn principal_loader(mut self, loader: impl PrincipalLoader) -> Self {
        self.loader = Some(Arc::new(loader));
        self
    }

    /// Ends every session of a user whose credentials changed since it
    /// started: the version at sign-in is kept with the session and
    /// compared with `versions` at each request (one lookup per request,
    /// like a [`PrincipalLoader`]). A password change then signs the user out
    /// everywhere; sign in again in the request that changed it to keep
    /// that one browser signed in.
    pub fn credential_versions(mut self, versions: impl CredentialVersions) -> Self {
        self.versions = Some(Arc::new(versions));
        self
    }

    /// Browsers (requests accepting `text/html`) without a valid session get
    /// a 303 to `path?next=<the requested path>` instead of a 401.
    pub fn login_redirect(mut self, path: impl Into<String>) -> Self {
        self.login_redirect = Some(path.into());
        self
    }

    /// Checks the configuration and builds the layer: cookie-only, required
    /// mode (use `.optional()` on the layer for anonymous access), an ended
    /// session treated as no session.
    pub fn build(self) -> Result<SessionLayer, ConfigError> {
        let key = self.key.ok_or(ConfigError::Missing("key"))?;
        let keys = CookieKeys::new(&key, &self.old_keys)?;
        let cookie_name = self.cookie_name.unwrap_or_else(|| {
            if self.secure {
                DEFAULT_SECURE_COOKIE.to_owned()
            } else {
                DEFAULT_COOKIE.to_owned()
            }
        });
        if !self.secure && (cookie_name.starts_with("__Host-") || cookie_name.starts_with("__Secure-")) {
            return Err(ConfigError::Invalid {
                setting: "cookie_name",
                reason: "browsers refuse __Host- and __Secure- cookies that are not Secure".into(),
            });
        }
        if cookie_name.is_empty()
            || !cookie_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(ConfigError::Invalid {
                setting: "cookie_name",
                reason: "use letters, digits, `-`, `_` or `.`".into(),
            });
        }
        for (setting, value) in [("idle_timeout", self.idle), ("absolute_timeout", self.absolute)] {
            if value.is_zero() {
                return Err(ConfigError::Invalid {
                    setting,
                    reason: "must be positive".into(),
                });
            }
        }
        if let Some(path) = &self.login_redirect
            && local_path(path).is_none()
        {
            return Err(ConfigError::Invalid {
                setting: "login_redirect",
                reason: "must be a local path such as /login".into(),
            });
        }
        let store = self.store.unwrap_or_else(|| Arc::new(MemoryStore::new()));
        #[cfg(feature = "metrics")]
        let store: Arc<dyn SessionStore> = Arc::new(store::timed::Timed(store));
        // One source: the layer's and the one public paths use.
        let sources = TokenSources::new([TokenSource::Cookie(cookie_name.clone())]).allowing_duplicate_cookies();
        let config = Config {
            store,
            keys,
            cookie: CookieSettings {
                name: cookie_name,
                same_site: self.same_site,
                secure: self.secure,
            },
            idle: self.idle,
            absolute: self.absolute,
            loader: self.loader,
            versions: self.versions,
            login_redirect: self.login_redirect,
        };
        Ok(AuthLayer::new(SessionAuthenticator {
            config: Arc::new(config),
        })
        .token_sources(sources)
        .invalid_as_anonymous(true))
    }
}
