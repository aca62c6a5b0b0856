//! tower-authkit's SessionLayer against tower-sessions + axum-login, side by
//! side in one run, on the same work: a signed session cookie, a session
//! holding a signed-in user, a handler reading that user.
//!
//! ```sh
//! cd benches/peer && cargo bench --bench sessions
//! # Redis too (both stores on the same server):
//! AUTHKIT_BENCH_REDIS_URL=redis://127.0.0.1:6379 cargo bench --bench sessions
//! ```
//!
//! axum-login loads the user from its backend on every request
//! (`AuthnBackend::get_user`, here a map lookup); tower-authkit reads the
//! principal stored with the session, and is also measured with a
//! `PrincipalLoader` doing the same map lookup.

use std::collections::HashMap;
use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use axum_login::{AuthManagerLayerBuilder, AuthSession, AuthUser, AuthnBackend, UserId};
use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::future::BoxFuture;
use http::Request;
use tower::ServiceExt;
use tower_authkit::session::{PrincipalLoader, Session, SessionLayer};
use tower_authkit::session::store::{MemoryStore, SessionStore};
use tower_authkit::{AuthError, Principal};
use tower_sessions::cookie::Key;
use tower_sessions::{SessionManagerLayer, SessionStore as PeerStore};

const EMAIL: &str = "alice@example.com";

#[derive(Clone, Debug)]
struct User {
    id: i64,
    email: String,
    auth_hash: Vec<u8>,
}

impl AuthUser for User {
    type Id = i64;
    fn id(&self) -> i64 {
        self.id
    }
    fn session_auth_hash(&self) -> &[u8] {
        &self.auth_hash
    }
}

#[derive(Clone)]
struct Backend(Arc<HashMap<i64, User>>);

impl AuthnBackend for Backend {
    type User = User;
    type Credentials = i64;
    type Error = Infallible;

    async fn authenticate(&self, id: i64) -> Result<Option<User>, Infallible> {
        Ok(self.0.get(&id).cloned())
    }

    async fn get_user(&self, id: &UserId<Self>) -> Result<Option<User>, Infallible> {
        Ok(self.0.get(id).cloned())
    }
}

fn users() -> Arc<HashMap<i64, User>> {
    Arc::new(HashMap::from([(
        1,
        User {
            id: 1,
            email: EMAIL.to_owned(),
            auth_hash: b"password hash stand-in".to_vec(),
        },
    )]))
}

fn peer<S: PeerStore + Clone>(store: S) -> Router {
    let sessions = SessionManagerLayer::new(store)
        .with_secure(false)
        .with_signed(Key::generate());
    let auth = AuthManagerLayerBuilder::new(Backend(users()), sessions).build();
    Router::new()
        .route(
            "/me",
            get(|auth: AuthSession<Backend>| async move { black_box(auth.user.map(|u| u.email.len()).unwrap_or(0)).to_string() }),
        )
        .route(
            "/login",
            post(|mut auth: AuthSession<Backend>| async move {
                let user = auth.authenticate(1).await.unwrap().unwrap();
                auth.login(&user).await.unwrap();
            }),
        )
        .layer(auth)
}

/// The same user-map lookup axum-login's backend does.
struct MapLoader(Arc<HashMap<i64, User>>);

impl PrincipalLoader for MapLoader {
    fn load<'a>(&'a self, stored: &'a Principal) -> BoxFuture<'a, Result<Option<Principal>, AuthError>> {
        Box::pin(async move {
            Ok(self
                .0
                .values()
                .find(|u| u.email == stored.subject())
                .map(|u| Principal::builder("session", u.email.clone()).build()))
        })
    }
}

fn ours(store: Arc<dyn SessionStore>, loader: bool) -> Router {
    let mut builder = SessionLayer::builder()
        .key(b"benchmark signing key, at least 32 bytes long".to_vec())
        .shared_store(store)
        .secure(false);
    if loader {
        builder = builder.principal_loader(MapLoader(users()));
    }
    Router::new()
        .route("/me", get(|p: Principal| async move { black_box(p.subject().len()).to_string() }))
        .route(
            "/login",
            post(|session: Session| async move {
                session.login(Principal::builder("session", EMAIL).build());
            }),
        )
        .layer(builder.build().unwrap().public_path("/login"))
}

async fn sign_in(app: &Router) -> String {
    let response = app
        .clone()
        .oneshot(Request::post("/login").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let set = response.headers()["set-cookie"].to_str().unwrap();
    set.split(';').next().unwrap().to_owned()
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut apps: Vec<(String, Router)> = vec![
        ("tower-authkit, memory".into(), ours(Arc::new(MemoryStore::new()), false)),
        ("tower-authkit + loader, memory".into(), ours(Arc::new(MemoryStore::new()), true)),
        ("tower-sessions + axum-login, memory".into(), peer(tower_sessions::MemoryStore::default())),
    ];
    if let Ok(url) = std::env::var("AUTHKIT_BENCH_REDIS_URL") {
        let theirs = runtime.block_on(async {
            use tower_sessions_redis_store::fred::prelude::*;
            let pool = Pool::new(Config::from_url(&url).unwrap(), None, None, None, 1).unwrap();
            let _ = pool.connect();
            pool.wait_for_connect().await.unwrap();
            tower_sessions_redis_store::RedisStore::new(pool)
        });
        let _runtime = runtime.enter();
        let store = tower_authkit::session::store::RedisStore::new(&url).unwrap();
        apps.push(("tower-authkit, redis".into(), ours(Arc::new(store.clone()), false)));
        apps.push(("tower-authkit + loader, redis".into(), ours(Arc::new(store), true)));
        apps.push(("tower-sessions + axum-login, redis".into(), peer(theirs)));
    }
    let bare = Router::new().route("/me", get(|| async { black_box(EMAIL.len()).to_string() }));
    let mut group = c.benchmark_group("sessions");
    group.bench_function("router without sessions", |b| {
        b.to_async(&runtime).iter(|| async {
            let request = Request::get("/me").header("cookie", "id=x").body(Body::empty()).unwrap();
            assert_eq!(bare.clone().oneshot(request).await.unwrap().status(), 200);
        });
    });
    for (name, app) in apps {
        let cookie = runtime.block_on(sign_in(&app));
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter(|| async {
                let request = Request::get("/me").header("cookie", &cookie).body(Body::empty()).unwrap();
                let response = app.clone().oneshot(request).await.unwrap();
                assert_eq!(response.status(), 200);
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
