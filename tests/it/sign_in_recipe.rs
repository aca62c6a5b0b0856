//! The README's sign-in recipe and its test, as written there: password
//! sign-in with attempt limits on a session store, tested through the test
//! kit's browser with cheap hashing (well under 3 s in a debug build).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Form, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use tower_authkit::cross_origin::CrossOriginLayer;
use tower_authkit::session::store::MemoryStore;
use tower_authkit::session::{Session, SessionLayer, SignIn};
use tower_authkit::{AuthError, Principal};
use tower_authkit_testing::sessions::{browser, fast_passwords};

// --- the recipe ---

#[derive(serde::Deserialize)]
struct Credentials {
    email: String,
    password: String,
}

#[derive(Clone)]
struct Accounts {
    sign_in: SignIn,
    hashes: Arc<HashMap<String, String>>, // email → Argon2 hash; your user table
}

async fn login(
    State(accounts): State<Accounts>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    session: Session,
    Form(form): Form<Credentials>,
) -> Response {
    let hash = accounts.hashes.get(&form.email).map(String::as_str);
    match accounts
        .sign_in
        .check(&form.email, Some(peer.ip()), &form.password, hash)
        .await
    {
        Ok(()) => {
            session.login(Principal::builder("session", form.email).build());
            Redirect::to("/").into_response()
        }
        Err(refused) => AuthError::from(refused).into_response(), // 401, or 429 + Retry-After
    }
}

fn app(sessions: SessionLayer, accounts: Accounts) -> Router {
    Router::new()
        .route(
            "/",
            get(|me: Principal| async move { format!("hello, {}", me.subject()) }),
        )
        .route("/login", post(login))
        .route("/logout", post(|session: Session| async move { session.logout() }))
        .with_state(accounts)
        .layer(sessions.public_path("/login"))
        .layer(CrossOriginLayer::new()) // refuses cross-site form posts
}

// --- its test ---

#[tokio::test]
async fn users_sign_in_see_their_page_and_sign_out() {
    let passwords = fast_passwords(); // tests only: microseconds per hash
    let hashes = HashMap::from([("alice@example.com".to_owned(), passwords.hash("s3cret").await.unwrap())]);
    let store = Arc::new(MemoryStore::new());
    let sessions = SessionLayer::builder()
        .key(b"a test signing key of at least 32 bytes".to_vec())
        .shared_store(store.clone())
        .secure(false)
        .build()
        .unwrap();
    let sign_in = SignIn::new(store).with_passwords(passwords);
    let server = browser(app(
        sessions,
        Accounts {
            sign_in,
            hashes: Arc::new(hashes),
        },
    ));

    server.get("/").expect_failure().await.assert_status_unauthorized();
    let wrong = [("email", "alice@example.com"), ("password", "guess")];
    server
        .post("/login")
        .form(&wrong)
        .expect_failure()
        .await
        .assert_status_unauthorized();
    let right = [("email", "alice@example.com"), ("password", "s3cret")];
    server
        .post("/login")
        .form(&right)
        .await
        .assert_status(StatusCode::SEE_OTHER);
    server.get("/").await.assert_text("hello, alice@example.com");
    server.post("/logout").await;
    server.get("/").expect_failure().await.assert_status_unauthorized();
}
