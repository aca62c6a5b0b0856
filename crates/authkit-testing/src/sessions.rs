//! Signed-in browsers for tests of session apps (feature `sessions`):
//! cheap password hashing, a session cookie for any principal against any
//! store, and an axum-test client that keeps cookies like a browser.
//!
//! ```
//! use axum::{routing::get, Router};
//! use tower_authkit::session::{SessionLayer, store::MemoryStore};
//! use tower_authkit::Principal;
//! use tower_authkit_testing::sessions::{browser, session_cookie};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let sessions = SessionLayer::builder()
//!     .key(b"a test signing key of at least 32 bytes".to_vec())
//!     .store(MemoryStore::new())
//!     .secure(false)
//!     .build()
//!     .unwrap();
//! let authenticator = sessions.authenticator().clone();
//! let app = Router::new()
//!     .route("/me", get(|me: Principal| async move { me.subject().to_owned() }))
//!     .layer(sessions);
//!
//! let server = browser(app);
//! let alice = Principal::builder("session", "alice").roles(vec!["editor".into()]).build();
//! let cookie = session_cookie(&authenticator, &alice).await;
//! server.get("/me").add_header("cookie", cookie).await.assert_text("alice");
//! server.get("/me").expect_failure().await.assert_status_unauthorized();
//! # }
//! ```

use std::net::SocketAddr;

use axum::Router;
use axum::extract::connect_info::MockConnectInfo;
use axum_test::TestServer;
use tower_authkit::Principal;
use tower_authkit::session::{PasswordCost, Passwords, SessionAuthenticator};

/// The client address [`browser`] requests come from.
pub const BROWSER_ADDRESS: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 40_000);

/// Argon2id at the lowest cost it allows (8 KiB, one pass): hashing takes
/// microseconds even in a debug build. For tests only, never production:
/// give it to [`SignIn::with_passwords`](tower_authkit::session::SignIn::with_passwords)
/// and hash your test users' passwords with it. The hashes it makes verify
/// under any cost (the cost is read from the hash).
pub fn fast_passwords() -> Passwords {
    let lowest = PasswordCost::new(8, 1).expect("Argon2's lowest cost");
    Passwords::new(1, lowest)
}

/// A `Cookie` header value (`name=value`) for a new session of `principal`
/// in `sessions`' store, whatever the store: what a browser holds after
/// signing in. Panics when the store fails (a test failure).
pub async fn session_cookie(sessions: &SessionAuthenticator, principal: &Principal) -> String {
    let cookie = sessions.open_session(principal).await.expect("the session store works");
    cookie.header_value()
}

/// An axum-test server for `app` that behaves like a browser: it keeps
/// the cookies responses set (a sign-in's session cookie, a sign-out's
/// removal) and sends them back, and requests come from
/// [`BROWSER_ADDRESS`], so handlers that read `ConnectInfo<SocketAddr>`
/// (sign-in limits per client) work without a real socket.
pub fn browser(app: Router) -> TestServer {
    let app = app.layer(MockConnectInfo(BROWSER_ADDRESS));
    TestServer::builder()
        .save_cookies()
        .build(app)
        .expect("an axum router always makes a test server")
}
