//! tower-authkit against jwt-authorizer, side by side in one run.
//!
//! ```sh
//! cd benches/peer && cargo bench --bench peer
//! ```
//!
//! jwt-authorizer 0.15 runs on axum 0.7, tower-authkit on axum 0.8, so each is
//! measured with its own router and the same handler; each one's overhead is
//! its time minus its own router without auth.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use jwt_authorizer::{Authorizer, IntoLayer, JwtAuthorizer, Validation};
use tower::ServiceExt;
use tower_authkit_testing::TestIdp;

fn request08(token: &str) -> http::Request<axum::body::Body> {
    http::Request::get("/me")
        .header("authorization", format!("Bearer {token}"))
        .body(axum::body::Body::empty())
        .unwrap()
}

fn request07(token: &str) -> http::Request<axum07::body::Body> {
    http::Request::get("/me")
        .header("authorization", format!("Bearer {token}"))
        .body(axum07::body::Body::empty())
        .unwrap()
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let idp = runtime.block_on(TestIdp::start());
    let token = idp.token().sign();

    let router08 = || axum::Router::new().route("/me", axum::routing::get(|| async { "me" }));
    let router07 = || axum07::Router::new().route("/me", axum07::routing::get(|| async { "me" }));
    let ours_cached = runtime.block_on(async { router08().layer(idp.auth_builder().build().unwrap()) });
    let ours_uncached = runtime.block_on(async { router08().layer(tower_authkit::jwt::JwksAuthLayer::issuers().issuer(idp.auth_builder()).token_cache(0).build().unwrap()) });
    let theirs: Authorizer = runtime.block_on(async {
        JwtAuthorizer::from_jwks_url(&idp.jwks_url())
            .validation(Validation::new().iss(&[idp.issuer()]).aud(&[idp.audience()]))
            .build()
            .await
            .unwrap()
    });
    let theirs = router07().layer(theirs.into_layer());
    let plain08 = router08();
    let plain07 = router07();

    // Both accept the token before anything is measured.
    let status08 = |app: &axum::Router| runtime.block_on(app.clone().oneshot(request08(&token))).unwrap().status();
    assert_eq!(status08(&ours_cached), 200);
    assert_eq!(status08(&ours_uncached), 200);
    let their_status = runtime.block_on(theirs.clone().oneshot(request07(&token))).unwrap().status();
    assert_eq!(their_status, 200);

    let mut group = c.benchmark_group("peer");
    group.bench_function("axum 0.8 router without auth", |b| {
        b.to_async(&runtime).iter(|| async { black_box(plain08.clone().oneshot(request08(&token)).await.unwrap()) })
    });
    group.bench_function("tower-authkit RS256 repeated (token cache)", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(ours_cached.clone().oneshot(request08(&token)).await.unwrap()) })
    });
    group.bench_function("tower-authkit RS256 first sight", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(ours_uncached.clone().oneshot(request08(&token)).await.unwrap()) })
    });
    group.bench_function("axum 0.7 router without auth", |b| {
        b.to_async(&runtime).iter(|| async { black_box(plain07.clone().oneshot(request07(&token)).await.unwrap()) })
    });
    group.bench_function("jwt-authorizer RS256 (every request)", |b| {
        b.to_async(&runtime).iter(|| async { black_box(theirs.clone().oneshot(request07(&token)).await.unwrap()) })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
