//! Per-request cost of JwksAuthLayer, side by side in one run:
//! - repeated token (verified-token cache hit) vs the same router without auth;
//! - first sight (signature checked every time) vs a bare
//!   `jsonwebtoken::decode` of the same token, for RS256, ES256 and EdDSA;
//! - fresh tokens (a new `jti` each request, never seen before) with the
//!   token cache on and off: what the cache's insert costs a one-time token;
//! - rejections: garbage (`abc.def.ghi`) and an unknown `kid` inside the
//!   refetch cooldown, against the router without auth;
//! - memory per cached token: resident-set growth over 100 000 distinct
//!   tokens through a cache of the default capacity (printed, Linux only).
//!
//! ```sh
//! cargo bench -p tower-authkit-benches --bench verify
//! ```
//! The peer comparison (jwt-authorizer) lives in `benches/peer/`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use tower::ServiceExt;
use tower_authkit::Principal;
use tower_authkit::jwt::{Algorithm, JwksAuthLayer};
use tower_authkit_testing::TestIdp;

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

/// A single-threaded runtime (the benches drive one request at a time) and
/// a test provider on it.
fn runtime_and_provider() -> (tokio::runtime::Runtime, TestIdp) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let idp = runtime.block_on(TestIdp::start());
    (runtime, idp)
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
    let (runtime, idp) = runtime_and_provider();
    let plain = router();
    let cached = runtime.block_on(async { protected(idp.auth_builder().build().unwrap()) });
    let uncached = runtime.block_on(async {
        protected(
            tower_authkit::jwt::JwksAuthLayer::issuers()
                .issuer(idp.auth_builder())
                .token_cache(0)
                .build()
                .unwrap(),
        )
    });
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

/// Fresh RS256 tokens: each iteration verifies a token the layer has never
/// seen. Tokens are minted outside the timed loop.
fn fresh(c: &mut Criterion) {
    let (runtime, idp) = runtime_and_provider();
    let cached = runtime.block_on(async { protected(idp.auth_builder().build().unwrap()) });
    let uncached = runtime.block_on(async {
        protected(
            tower_authkit::jwt::JwksAuthLayer::issuers()
                .issuer(idp.auth_builder())
                .token_cache(0)
                .build()
                .unwrap(),
        )
    });
    // Warm the key sets.
    for app in [&cached, &uncached] {
        let response = runtime
            .block_on(app.clone().oneshot(request(Some(&idp.token().sign()))))
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let serial = std::sync::atomic::AtomicU64::new(0);
    let mint = |n: u64| -> Vec<String> {
        (0..n)
            .map(|_| {
                let jti = serial.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                idp.token().claim("jti", format!("fresh-{jti}")).sign()
            })
            .collect()
    };
    let mut group = c.benchmark_group("fresh_token");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for (name, app) in [("RS256, token cache on", &cached), ("RS256, token_cache(0)", &uncached)] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let tokens = mint(iters);
                let started = Instant::now();
                for token in &tokens {
                    let response = runtime.block_on(app.clone().oneshot(request(Some(token)))).unwrap();
                    assert_eq!(response.status(), 200);
                }
                started.elapsed()
            })
        });
    }
    group.finish();
}

/// Rejections that must stay cheap: garbage and an unknown `kid`.
fn rejections(c: &mut Criterion) {
    let (runtime, idp) = runtime_and_provider();
    let plain = router();
    let app = runtime.block_on(async { protected(idp.auth_builder().build().unwrap()) });
    let unknown_kid = idp.token().kid("no-such-key").sign();
    // Warm the keys and start the unknown-kid cooldown.
    for token in [idp.token().sign(), unknown_kid.clone()] {
        runtime.block_on(app.clone().oneshot(request(Some(&token)))).unwrap();
    }
    let mut group = c.benchmark_group("rejection");
    group.bench_function("router without auth", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(plain.clone().oneshot(request(Some("abc.def.ghi"))).await.unwrap()) })
    });
    group.bench_function("garbage abc.def.ghi", |b| {
        b.to_async(&runtime).iter(|| async {
            let response = app.clone().oneshot(request(Some("abc.def.ghi"))).await.unwrap();
            assert_eq!(response.status(), 401);
            black_box(response)
        })
    });
    group.bench_function("unknown kid inside the cooldown", |b| {
        b.to_async(&runtime).iter(|| async {
            let response = app.clone().oneshot(request(Some(&unknown_kid))).await.unwrap();
            assert_eq!(response.status(), 401);
            black_box(response)
        })
    });
    group.finish();
}

/// Resident set size in bytes (Linux), for the memory-per-token figure.
fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Memory per cached token: resident-set growth while 100 000 distinct
/// ES256 tokens pass through a cache of the default capacity (10 000), each
/// sent twice so it is admitted, divided by the entries the cache ends with.
/// The same requests first go through a layer with the cache off, so the
/// allocator's working set for requests is in place before the measured
/// passes. Then a second layer (the first one kept alive) behind a handler
/// that reads the raw claims, each token sent three times so the cached
/// principal is read and keeps its parsed claims.
/// ES256 so minting is quick; an entry does not hold the token, so its
/// size does not depend on the algorithm.
fn memory_per_token(_c: &mut Criterion) {
    // Not a criterion benchmark: honour the name filter by hand, so that
    // `cargo bench … -- repeated` does not run it too.
    let filters = name_filters();
    if !filters.is_empty()
        && !filters
            .iter()
            .any(|filter| "memory_per_token".contains(filter.as_str()))
    {
        return;
    }
    let (runtime, idp) = runtime_and_provider();
    const TOKENS: usize = 100_000;
    let tokens: Vec<String> = (0..TOKENS)
        .map(|i| idp.token().alg(Algorithm::ES256).claim("jti", format!("m-{i}")).sign())
        .collect();
    let send_all = |app: &Router, times: usize| {
        for token in &tokens {
            for _ in 0..times {
                runtime.block_on(app.clone().oneshot(request(Some(token)))).unwrap();
            }
        }
    };
    let build = |capacity: u64| {
        runtime.block_on(async {
            tower_authkit::jwt::JwksAuthLayer::issuers()
                .issuer(idp.auth_builder())
                .token_cache(capacity)
                .build()
                .unwrap()
        })
    };
    send_all(&protected(build(0)), 3);
    let reads_claims = Router::new().route(
        "/me",
        get(|principal: Principal| async move {
            principal
                .claims()
                .as_object()
                .map_or(0, |claims| claims.len())
                .to_string()
        }),
    );
    let mut kept = Vec::new();
    // Three requests for the handler that reads claims: the third is a hit,
    // served the cached principal, whose claims it then parses.
    let passes = [
        ("a handler that reads no claims", router(), 2),
        ("a handler that reads raw claims", reads_claims, 3),
    ];
    for (handler, app, times) in passes {
        let layer = build(10_000);
        let keys = layer.authenticator().clone();
        let Some(before) = rss_bytes() else {
            println!("memory_per_token: no /proc/self/statm here");
            return;
        };
        send_all(&app.layer(layer), times);
        let cached = keys.cached_tokens();
        let grown = rss_bytes().unwrap_or(before).saturating_sub(before);
        println!(
            "memory_per_token: {TOKENS} tokens, {cached} cached, RSS +{} KiB, {:.0} bytes per cached token ({}-byte tokens, {handler})",
            grown / 1024,
            grown as f64 / cached.max(1) as f64,
            tokens[0].len()
        );
        kept.push(keys);
    }
}

/// The benchmark-name filters on the command line (what is left once
/// criterion's options and their values are skipped).
fn name_filters() -> Vec<String> {
    const TAKE_A_VALUE: [&str; 14] = [
        "--warm-up-time",
        "--measurement-time",
        "--sample-size",
        "--nresamples",
        "--noise-threshold",
        "--confidence-level",
        "--significance-level",
        "--save-baseline",
        "--baseline",
        "--baseline-lenient",
        "--load-baseline",
        "--profile-time",
        "--color",
        "--plotting-backend",
    ];
    let mut filters = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if TAKE_A_VALUE.contains(&arg.as_str()) {
            args.next();
        } else if !arg.starts_with('-') {
            filters.push(arg);
        }
    }
    filters
}

criterion_group!(benches, bench, fresh, rejections, memory_per_token);
criterion_main!(benches);
