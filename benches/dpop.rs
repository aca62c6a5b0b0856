//! What DPoP costs on a cached token, side by side in one run: the same
//! bound token as `DPoP` with a fresh proof per request (ES256, proofs
//! minted outside the timed loop: each has a new `jti`), against an
//! unbound token as `Bearer` through the same layer, and the router
//! without auth.
//!
//! ```sh
//! cargo bench -p tower-authkit-benches --bench dpop
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use sha2::{Digest, Sha256};
use tower::ServiceExt;
use tower_authkit::jwt::dpop::Dpop;
use tower_authkit_testing::TestIdp;

fn request(scheme: &str, token: &str, proof: Option<&str>) -> Request<Body> {
    let mut request = Request::get("/me").header("authorization", format!("{scheme} {token}"));
    if let Some(proof) = proof {
        request = request.header("dpop", proof);
    }
    request.body(Body::empty()).unwrap()
}

/// RFC 7638 thumbprint of a P-256 public JWK.
fn thumbprint(jwk: &serde_json::Value) -> String {
    let canonical = format!(
        r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
        jwk["crv"].as_str().unwrap(),
        jwk["x"].as_str().unwrap(),
        jwk["y"].as_str().unwrap()
    );
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let idp = runtime.block_on(TestIdp::start());
    // The proof key: the provider's P-256 test key (any key would do).
    let jwks = idp.jwks();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == "ec-1")
        .unwrap()
        .clone();
    let public: serde_json::Value = serde_json::json!({"kty": "EC", "crv": jwk["crv"], "x": jwk["x"], "y": jwk["y"]});
    let signing = jsonwebtoken::EncodingKey::from_ec_pem(idp.private_key_pem("ec-1").unwrap().as_bytes()).unwrap();
    let app = runtime.block_on(async {
        let layer = idp
            .auth_builder()
            .dpop(Dpop::allowed("https://api.example"))
            .build()
            .unwrap();
        layer.authenticator().ready().await.unwrap();
        Router::new().route("/me", get(|| async { "me" })).layer(layer)
    });
    let plain = Router::new().route("/me", get(|| async { "me" }));
    let bound = idp
        .token()
        .claim("cnf", serde_json::json!({"jkt": thumbprint(&public)}))
        .sign();
    let bearer = idp.token().sign();
    let ath = URL_SAFE_NO_PAD.encode(Sha256::digest(bound.as_bytes()));
    let serial = std::sync::atomic::AtomicU64::new(0);
    let mint = |n: u64| -> Vec<String> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.typ = Some("dpop+jwt".into());
        header.jwk = Some(serde_json::from_value(public.clone()).unwrap());
        (0..n)
            .map(|_| {
                let jti = serial.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let claims = serde_json::json!({"htm": "GET", "htu": "https://api.example/me", "iat": now, "jti": format!("p-{jti}"), "ath": ath});
                jsonwebtoken::encode(&header, &claims, &signing).unwrap()
            })
            .collect()
    };
    // Warm: the bound token enters the cache (second sight), then hits.
    for proof in mint(3) {
        let response = runtime
            .block_on(app.clone().oneshot(request("DPoP", &bound, Some(&proof))))
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    for _ in 0..3 {
        let response = runtime
            .block_on(app.clone().oneshot(request("Bearer", &bearer, None)))
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let mut group = c.benchmark_group("dpop_cached_token");
    group.bench_function("router without auth", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(plain.clone().oneshot(request("Bearer", &bearer, None)).await.unwrap()) })
    });
    group.bench_function("Bearer", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(app.clone().oneshot(request("Bearer", &bearer, None)).await.unwrap()) })
    });
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    group.bench_function("DPoP (ES256 proof per request)", |b| {
        b.iter_custom(|iters| {
            let proofs = mint(iters);
            let started = Instant::now();
            for proof in &proofs {
                let response = runtime
                    .block_on(app.clone().oneshot(request("DPoP", &bound, Some(proof))))
                    .unwrap();
                assert_eq!(response.status(), 200);
            }
            started.elapsed()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
