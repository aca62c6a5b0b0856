//! What routing by `iss` costs, side by side in one run: the same RS256
//! token through a single-issuer layer and through a set of two issuers
//! (the token from the second), cached and at first sight.
//!
//! ```sh
//! cargo bench -p tower-authkit-benches --bench issuers
//! ```

use std::hint::black_box;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use tower::ServiceExt;
use tower_authkit::jwt::JwksAuthLayer;
use tower_authkit_testing::TestIdp;

fn request(token: &str) -> Request<Body> {
    Request::get("/me")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap()
}

fn protected(layer: JwksAuthLayer) -> Router {
    Router::new().route("/me", get(|| async { "me" })).layer(layer)
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (first, second) = runtime.block_on(async { (TestIdp::start().await, TestIdp::start().await) });
    let layers = |cache: u64| {
        runtime.block_on(async {
            let single = tower_authkit::jwt::JwksAuthLayer::issuers()
                .issuer(second.auth_builder())
                .token_cache(cache)
                .build()
                .unwrap();
            let set = JwksAuthLayer::issuers()
                .issuer(first.auth_builder())
                .issuer(second.auth_builder())
                .token_cache(cache)
                .build()
                .unwrap();
            for layer in [&single, &set] {
                layer.authenticator().ready().await.unwrap();
            }
            (protected(single), protected(set))
        })
    };
    let token = second.token().sign();
    let plain = Router::new().route("/me", get(|| async { "me" }));
    for (group, cache) in [("issuers_cached", 10_000), ("issuers_first_sight", 0)] {
        let (single, set) = layers(cache);
        let mut group = c.benchmark_group(group);
        for (name, app) in [
            ("router without auth", &plain),
            ("one issuer", &single),
            ("two issuers", &set),
        ] {
            let ok = runtime.block_on(app.clone().oneshot(request(&token))).unwrap();
            assert_eq!(ok.status(), 200);
            group.bench_function(name, |b| {
                b.to_async(&runtime)
                    .iter(|| async { black_box(app.clone().oneshot(request(&token)).await.unwrap()) })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
