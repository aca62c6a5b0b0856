//! Per-request cost of SessionLayer, side by side in one run: a request
//! carrying a valid session (handler reads the principal) against the same
//! router without the layer, on the memory store, and on SQLite and Redis
//! when asked for.
//!
//! ```sh
//! cargo bench -p tower-authkit-benches --bench session
//! # Redis too (a server on loopback):
//! AUTHKIT_BENCH_REDIS_URL=redis://127.0.0.1:6379 cargo bench -p tower-authkit-benches --bench session
//! ```
//! The peer comparison (tower-sessions + axum-login) lives in `benches/peer/`.

use std::hint::black_box;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use tower::ServiceExt;
use tower_authkit::Principal;
use tower_authkit::session::store::{MemoryStore, SessionStore};
use tower_authkit::session::{Session, SessionLayer};

fn router() -> Router {
    Router::new()
        .route(
            "/me",
            get(|p: Principal| async move { black_box(p.subject().len()).to_string() }),
        )
        .route(
            "/login",
            post(|session: Session| async move {
                session.login(
                    Principal::builder("session", "alice@example.com")
                        .roles(vec!["user".into()])
                        .build(),
                );
            }),
        )
}

fn bare() -> Router {
    Router::new().route(
        "/me",
        get(|| async { black_box("alice@example.com".len()).to_string() }),
    )
}

fn protected(store: Arc<dyn SessionStore>) -> Router {
    let layer = SessionLayer::builder()
        .key(b"benchmark signing key, at least 32 bytes long".to_vec())
        .shared_store(store)
        .build()
        .unwrap();
    router().layer(layer.public_path("/login"))
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

fn request(cookie: &str) -> Request<Body> {
    Request::get("/me")
        .header("cookie", cookie)
        .body(Body::empty())
        .unwrap()
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut stores: Vec<(&str, Arc<dyn SessionStore>)> = vec![("memory", Arc::new(MemoryStore::new()))];
    let dir = tempfile::tempdir().unwrap();
    stores.push((
        "sqlite",
        Arc::new(tower_authkit::session::store::SqliteStore::open(dir.path().join("bench.db")).unwrap()),
    ));
    if let Ok(url) = std::env::var("AUTHKIT_BENCH_REDIS_URL") {
        let _runtime = runtime.enter();
        stores.push((
            "redis",
            Arc::new(tower_authkit::session::store::RedisStore::new(&url).unwrap()),
        ));
    }
    let mut group = c.benchmark_group("session");
    let plain = bare();
    group.bench_function("router without the layer", |b| {
        b.to_async(&runtime).iter(|| async {
            let response = plain.clone().oneshot(request("authkit_session=x")).await.unwrap();
            assert_eq!(response.status(), 200);
        });
    });
    for (name, store) in stores {
        let app = protected(store);
        let cookie = runtime.block_on(sign_in(&app));
        group.bench_function(format!("valid session, {name} store"), |b| {
            b.to_async(&runtime).iter(|| async {
                let response = app.clone().oneshot(request(&cookie)).await.unwrap();
                assert_eq!(response.status(), 200);
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
