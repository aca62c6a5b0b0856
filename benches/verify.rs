//! Per-request cost of JwksAuthLayer, side by side with the same router
//! without auth and with a bare `jsonwebtoken::decode` of the same token.
//!
//! ```sh
//! cargo bench --bench verify
//! ```

use std::hint::black_box;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use tower::ServiceExt;
use tower_authkit::testing::TestIdp;
use tower_authkit::{Algorithm, Principal};

fn request(token: Option<&str>) -> Request<Body> {
    let mut request = Request::get("/me");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    request.body(Body::empty()).unwrap()
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let idp = runtime.block_on(TestIdp::start());
    let plain: Router = Router::new().route("/me", get(|| async { "me" }));
    let protected: Router = Router::new()
        .route("/me", get(|p: Principal| async move { p.subject().len().to_string() }))
        .layer(runtime.block_on(async { idp.auth_builder().build().unwrap() }));

    let mut group = c.benchmark_group("router");
    group.bench_function("no auth", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(plain.clone().oneshot(request(None)).await.unwrap()) })
    });
    for alg in [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA] {
        let token = idp.token().alg(alg).sign();
        // Warm the key cache once; every iteration then verifies the signature.
        let warm = runtime
            .block_on(protected.clone().oneshot(request(Some(&token))))
            .unwrap();
        assert_eq!(warm.status(), 200);
        group.bench_function(format!("JwksAuthLayer {alg}"), |b| {
            b.to_async(&runtime).iter(|| async {
                let response = protected.clone().oneshot(request(Some(&token))).await.unwrap();
                black_box(response)
            })
        });
    }
    group.finish();

    // A bare jsonwebtoken::decode of the same RS256 token, key parsed from the JWK.
    let token = idp.token().sign();
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(idp.jwks()["keys"][0].clone()).unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_issuer(&[idp.issuer()]);
    validation.set_audience(&[idp.audience()]);
    c.bench_function("jsonwebtoken::decode RS256", |b| {
        b.iter(|| black_box(jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation).unwrap()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
