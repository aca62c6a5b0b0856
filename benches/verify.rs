//! Per-request cost of JwksAuthLayer, side by side in one run:
//! - repeated token (verified-token cache hit) vs the same router without auth;
//! - first sight (signature checked every time) vs a bare
//!   `jsonwebtoken::decode` of the same token, for RS256, ES256 and EdDSA.
//!
//! ```sh
//! cargo bench -p tower-authkit-benches --bench verify
//! ```
//! The peer comparison (jwt-authorizer) lives in `benches/peer/`.

use std::hint::black_box;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use tower::ServiceExt;
use tower_authkit::testing::TestIdp;
use tower_authkit::{Algorithm, JwksAuthLayer};

fn request(token: Option<&str>) -> Request<Body> {
    let mut request = Request::get("/me");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    request.body(Body::empty()).unwrap()
}

/// The same handler with and without the layer, so the difference is the layer.
fn router() -> Router {
    Router::new().route("/me", get(|| async { "me" }))
}

fn protected(layer: JwksAuthLayer) -> Router {
    router().layer(layer)
}

fn bare_decode(idp: &TestIdp, alg: Algorithm, token: &str) -> impl Fn() {
    let kid = jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
    let jwks = idp.jwks();
    let jwk_json = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap()
        .clone();
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk_json).unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
    let jwt_alg: jsonwebtoken::Algorithm = alg.as_str().parse().unwrap();
    let mut validation = jsonwebtoken::Validation::new(jwt_alg);
    validation.set_issuer(&[idp.issuer()]);
    validation.set_audience(&[idp.audience()]);
    let token = token.to_owned();
    move || {
        black_box(jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation).unwrap());
    }
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let idp = runtime.block_on(TestIdp::start());
    let plain = router();
    let cached = runtime.block_on(async { protected(idp.auth_builder().build().unwrap()) });
    let uncached = runtime.block_on(async { protected(idp.auth_builder().token_cache(0).build().unwrap()) });
    let call = |app: &Router, token: Option<&str>| {
        let response = runtime.block_on(app.clone().oneshot(request(token))).unwrap();
        assert_eq!(response.status(), 200);
    };

    let rs256 = idp.token().sign();
    call(&cached, Some(&rs256));
    let mut repeated = c.benchmark_group("repeated");
    // The same request (with its Authorization header) to both routers.
    repeated.bench_function("router without auth", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(plain.clone().oneshot(request(Some(&rs256))).await.unwrap()) })
    });
    repeated.bench_function("JwksAuthLayer RS256 (token cache)", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(cached.clone().oneshot(request(Some(&rs256))).await.unwrap()) })
    });
    repeated.finish();

    let mut first = c.benchmark_group("first_sight");
    for alg in [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA] {
        let token = idp.token().alg(alg).sign();
        call(&uncached, Some(&token));
        first.bench_function(format!("JwksAuthLayer {alg}"), |b| {
            b.to_async(&runtime)
                .iter(|| async { black_box(uncached.clone().oneshot(request(Some(&token))).await.unwrap()) })
        });
        let decode = bare_decode(&idp, alg, &token);
        first.bench_function(format!("jsonwebtoken::decode {alg}"), |b| b.iter(&decode));
    }
    first.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
