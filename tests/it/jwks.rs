//! JwksAuthLayer against the in-process TestIdp: discovery, algorithms,
//! RFC 8725 rejections, rotation, single-flight fetches, resilience.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::Reply;
use serde_json::json;
use tower_authkit::Principal;
use tower_authkit::jwt::KeyCache;
use tower_authkit::jwt::{Algorithm, JwksAuthLayer};
use tower_authkit_testing::{IdpFailure, TestIdp};

fn app(layer: JwksAuthLayer) -> Router {
    Router::new()
        .route("/me", get(|p: Principal| async move { p.subject().to_owned() }))
        .layer(layer)
}

fn assert_invalid_token(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 401, "{what}: {reply:?}");
    assert!(
        reply.challenge().contains("error=\"invalid_token\""),
        "{what}: {reply:?}"
    );
    assert_eq!(reply.json()["error"], "invalid_token", "{what}");
}

#[tokio::test]
async fn discovery_finds_the_keys_and_tokens_are_accepted() {
    let idp = TestIdp::start().await;
    let app = app(idp.auth_builder().build().unwrap());
    let reply = common::get(&app, "/me", Some(&idp.token().sub("alice").sign())).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body, "alice");
    assert_eq!(idp.discovery_fetches(), 1);
    assert_eq!(idp.jwks_fetches(), 1);
}

#[tokio::test]
async fn discovery_issuer_must_match_exactly() {
    let idp = TestIdp::start().await;
    // A trailing slash is a different issuer: the discovery document is not used.
    let layer = JwksAuthLayer::builder()
        .issuer(format!("{}/", idp.issuer()))
        .audience(idp.audience())
        .build()
        .unwrap();
    let reply = common::get(&app(layer), "/me", Some(&idp.token().sign())).await;
    assert_eq!(reply.status, 502, "an answer we cannot use: {reply:?}");
    assert_eq!(
        idp.jwks_fetches(),
        0,
        "keys must not be fetched from a mismatched document"
    );
}

#[tokio::test]
async fn every_asymmetric_algorithm_is_accepted() {
    let idp = TestIdp::start().await;
    let app = app(idp.auth_builder().build().unwrap());
    for alg in [
        Algorithm::RS256,
        Algorithm::PS256,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ] {
        let reply = common::get(&app, "/me", Some(&idp.token().alg(alg).sign())).await;
        assert_eq!(reply.status, 200, "{alg}: {reply:?}");
    }
}

#[tokio::test]
async fn pinned_jwks_url_skips_discovery() {
    let idp = TestIdp::start().await;
    let layer = idp.auth_builder().jwks_url(idp.jwks_url()).build().unwrap();
    let reply = common::get(&app(layer), "/me", Some(&idp.token().sign())).await;
    assert_eq!(reply.status, 200);
    assert_eq!(idp.discovery_fetches(), 0);
}

fn b64(value: serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

fn claims(idp: &TestIdp) -> serde_json::Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    json!({"iss": idp.issuer(), "aud": idp.audience(), "sub": "mallory", "exp": now + 600, "roles": ["admin"]})
}

#[tokio::test]
async fn forged_and_invalid_tokens_are_rejected() {
    let idp = TestIdp::start().await;
    let app = app(idp.auth_builder().build().unwrap());
    let valid = idp.token().sign();
    let (header, _, signature) = {
        let mut parts = valid.split('.');
        (
            parts.next().unwrap().to_owned(),
            parts.next().unwrap().to_owned(),
            parts.next().unwrap().to_owned(),
        )
    };

    // alg=none, signed with nothing.
    let none = format!("{}.{}.", b64(json!({"alg": "none", "kid": "rsa-1"})), b64(claims(&idp)));
    // HS256 keyed with the RSA public key: the classic confusion attack.
    let public_n = idp.jwks()["keys"][0]["n"].as_str().unwrap().to_owned();
    let mut hs_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs_header.kid = Some("rsa-1".into());
    let hs256 = jsonwebtoken::encode(
        &hs_header,
        &claims(&idp),
        &jsonwebtoken::EncodingKey::from_secret(public_n.as_bytes()),
    )
    .unwrap();
    // The payload swapped for one with more privileges, signature kept.
    let tampered = format!("{header}.{}.{signature}", b64(claims(&idp)));
    let empty_signature = format!("{header}.{}.", b64(claims(&idp)));

    let cases = [
        ("alg none", none),
        ("HS256 with the public key", hs256),
        ("foreign key with a known kid", idp.token().foreign_key().sign()),
        ("tampered payload", tampered),
        ("empty signature", empty_signature),
        ("expired", idp.token().expired_for(Duration::from_secs(120)).sign()),
        (
            "not yet valid",
            idp.token().not_before_in(Duration::from_secs(120)).sign(),
        ),
        ("wrong issuer", idp.token().issuer("https://evil.example").sign()),
        (
            "issuer with trailing slash",
            idp.token().issuer(&format!("{}/", idp.issuer())).sign(),
        ),
        ("wrong audience", idp.token().audience("other-api").sign()),
        ("missing exp", idp.token().without_claim("exp").sign()),
        ("exp as a string", idp.token().claim("exp", "9999999999").sign()),
        ("crit header", idp.token().header("crit", ["exp"]).sign()),
        (
            "algorithm not the key's",
            idp.token().alg(Algorithm::PS256).kid("rsa-1").sign(),
        ),
        ("garbage", "not-a-jwt".to_owned()),
        ("JWE-shaped", "a.b.c.d.e".to_owned()),
    ];
    for (what, token) in cases {
        assert_invalid_token(&common::get(&app, "/me", Some(&token)).await, what);
    }
    // A known kid on a valid token still works afterwards.
    assert_eq!(common::get(&app, "/me", Some(&valid)).await.status, 200);
}

/// A loopback listener that counts connections: proves a URL was never fetched.
async fn connection_counter() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&count);
    tokio::spawn(async move {
        while let Ok((_socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    (url, count)
}

#[tokio::test]
async fn header_embedded_keys_are_ignored_and_never_fetched() {
    let idp = TestIdp::start().await;
    let app = app(idp.auth_builder().build().unwrap());
    let (jku, connections) = connection_counter().await;
    // The attacker's own key, published in the token itself.
    let attacker_jwk = json!({"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "attacker"});
    let embedded_jwk = idp
        .token()
        .foreign_key()
        .kid("attacker")
        .header("jwk", &attacker_jwk)
        .sign();
    let jku_token = idp.token().foreign_key().kid("attacker").header("jku", &jku).sign();
    let x5u_token = idp.token().foreign_key().header("x5u", &jku).sign();
    for (what, token) in [("jwk", embedded_jwk), ("jku", jku_token), ("x5u", x5u_token)] {
        assert_invalid_token(&common::get(&app, "/me", Some(&token)).await, what);
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(connections.load(Ordering::SeqCst), 0, "a header URL was fetched");
}

#[tokio::test]
async fn rotated_key_is_accepted_on_first_sight_with_one_fetch() {
    let idp = TestIdp::start().await;
    let app = app(idp
        .auth_builder()
        .key_cache(KeyCache::default().refresh_cooldown(Duration::from_secs(60)))
        .build()
        .unwrap());
    assert_eq!(common::get(&app, "/me", Some(&idp.token().sign())).await.status, 200);
    assert_eq!(idp.jwks_fetches(), 1);
    let new_kid = idp.rotate();
    let token = idp.token().sign();
    assert!(token.len() > 10 && idp.kids().contains(&new_kid));
    assert_eq!(common::get(&app, "/me", Some(&token)).await.status, 200);
    assert_eq!(idp.jwks_fetches(), 2, "exactly one refetch for the new kid");
    // And the new key stays cached.
    assert_eq!(common::get(&app, "/me", Some(&idp.token().sign())).await.status, 200);
    assert_eq!(idp.jwks_fetches(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_cold_requests_share_one_fetch() {
    let idp = TestIdp::start().await;
    let app = app(idp
        .auth_builder()
        .key_cache(KeyCache::default().prefetch(false))
        .build()
        .unwrap());
    let token = idp.token().sign();
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (app, token) = (app.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            common::get(&app, "/me", Some(&token)).await.status
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
    assert_eq!(idp.discovery_fetches(), 1);
    assert_eq!(idp.jwks_fetches(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_kids_inside_the_cooldown_cause_at_most_one_fetch() {
    let idp = TestIdp::start().await;
    let app = app(idp
        .auth_builder()
        .key_cache(KeyCache::default().refresh_cooldown(Duration::from_secs(60)))
        .build()
        .unwrap());
    assert_eq!(common::get(&app, "/me", Some(&idp.token().sign())).await.status, 200);
    let before = idp.jwks_fetches();
    let mut tasks = Vec::new();
    for i in 0..500 {
        let app = app.clone();
        let token = idp.token().foreign_key().kid(&format!("unknown-{i}")).sign();
        tasks.push(tokio::spawn(async move {
            common::get(&app, "/me", Some(&token)).await.status
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 401);
    }
    assert!(
        idp.jwks_fetches() - before <= 1,
        "{} fetches",
        idp.jwks_fetches() - before
    );
}

fn fast_failing(idp: &TestIdp) -> tower_authkit::jwt::JwksAuthBuilder {
    idp.auth_builder()
        .http_timeout(Duration::from_millis(300))
        .key_cache(fast_failing_keys())
}

fn fast_failing_keys() -> KeyCache {
    KeyCache::default()
        .http_retries(0)
        .retry_failed_fetch_after(Duration::from_millis(200))
}

/// Waits (bounded) until the provider has seen more than `count` key fetches.
/// Requests to the provider: key sets and discovery documents (a
/// scheduled refresh re-reads discovery first).
fn provider_fetches(idp: &TestIdp) -> usize {
    idp.jwks_fetches() + idp.discovery_fetches()
}

async fn fetches_beyond(idp: &TestIdp, count: usize) -> bool {
    for _ in 0..200 {
        if provider_fetches(idp) > count {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test]
async fn known_keys_outlive_max_age_while_the_provider_is_down() {
    let idp = TestIdp::start().await;
    // The token cache off: this exercises the key cache's own fallback.
    let issuer = fast_failing(&idp).key_cache(fast_failing_keys().max_age(Duration::from_millis(300)));
    let app = app(JwksAuthLayer::issuers().issuer(issuer).token_cache(0).build().unwrap());
    let token = idp.token().sign();
    assert_eq!(common::get(&app, "/me", Some(&token)).await.status, 200);
    for failure in [IdpFailure::Error, IdpFailure::Hang] {
        idp.set_failure(failure);
        tokio::time::sleep(Duration::from_millis(400)).await;
        let fetches = provider_fetches(&idp);
        let reply = common::get(&app, "/me", Some(&token)).await;
        assert_eq!(reply.status, 200, "{failure:?}: {reply:?}");
        assert!(
            fetches_beyond(&idp, fetches).await,
            "{failure:?}: a background refresh was attempted"
        );
    }
    idp.set_failure(IdpFailure::None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_with_usable_keys_never_wait_for_a_hanging_provider() {
    let idp = TestIdp::start().await;
    // Default HTTP timeout (5 s, 2 retries): a hanging fetch lasts ~15 s.
    let issuer = idp
        .auth_builder()
        .key_cache(KeyCache::default().max_age(Duration::from_millis(200)));
    let app = app(JwksAuthLayer::issuers().issuer(issuer).token_cache(0).build().unwrap());
    assert_eq!(common::get(&app, "/me", Some(&idp.token().sign())).await.status, 200);
    idp.set_failure(IdpFailure::Hang);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // New tokens each time (signed before the clock starts), past max_age.
    let tokens: Vec<String> = (0..40).map(|i| idp.token().sub(&format!("user-{i}")).sign()).collect();
    let mut slowest = Duration::ZERO;
    for token in &tokens {
        let started = std::time::Instant::now();
        let reply = common::get(&app, "/me", Some(token)).await;
        slowest = slowest.max(started.elapsed());
        assert_eq!(reply.status, 200, "{reply:?}");
    }
    assert!(
        slowest < Duration::from_millis(100),
        "a request with usable keys waited {slowest:?} for the provider"
    );
    assert!(fetches_beyond(&idp, 2).await, "a background refresh is running");
    idp.set_failure(IdpFailure::None);
}

#[tokio::test]
async fn a_cold_start_with_a_hanging_provider_answers_503_within_the_bound() {
    let idp = TestIdp::start().await;
    idp.set_failure(IdpFailure::Hang);
    let app = app(idp.auth_builder().build().unwrap());
    let token = idp.token().sign();
    // The default bound is 2 s.
    let started = std::time::Instant::now();
    let reply = common::get(&app, "/me", Some(&token)).await;
    let waited = started.elapsed();
    assert_eq!(reply.status, 503, "{reply:?}");
    assert_eq!(reply.headers["retry-after"], "1");
    assert!(
        waited >= Duration::from_millis(1900) && waited < Duration::from_secs(4),
        "waited {waited:?}"
    );
    // A shorter configured bound is honoured too.
    let app = app_with_wait(&idp, Duration::from_millis(300));
    let started = std::time::Instant::now();
    assert_eq!(common::get(&app, "/me", Some(&token)).await.status, 503);
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    // The fetch went on: once the provider answers, keys arrive.
    idp.set_failure(IdpFailure::None);
    let mut status = http::StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..100 {
        status = common::get(&app, "/me", Some(&token)).await.status;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, 200);
}

fn app_with_wait(idp: &TestIdp, wait: Duration) -> Router {
    app(idp
        .auth_builder()
        .key_cache(KeyCache::default().max_key_wait(wait))
        .build()
        .unwrap())
}

#[tokio::test]
async fn provider_failing_at_start_gives_502_then_recovers() {
    let idp = TestIdp::start().await;
    idp.set_failure(IdpFailure::Error);
    let app = app(fast_failing(&idp).build().unwrap());
    let token = idp.token().sign();
    // The provider answers 500: a bad answer, 502 (no Retry-After).
    let reply = common::get(&app, "/me", Some(&token)).await;
    assert_eq!(reply.status, 502, "{reply:?}");
    assert_eq!(reply.json()["error"], "upstream_error");
    idp.set_failure(IdpFailure::None);
    // Bounded wait for recovery: the failure backoff starts at 200 ms.
    let mut status = reply.status;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        status = common::get(&app, "/me", Some(&token)).await.status;
        if status == 200 {
            break;
        }
        assert_eq!(status, 502);
    }
    assert_eq!(status, 200, "recovered once the provider answered");
}

#[tokio::test]
async fn an_unreachable_provider_is_503_with_retry_after() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let idp = TestIdp::start().await;
    let layer = idp
        .auth_builder()
        .jwks_url(format!("http://127.0.0.1:{port}/jwks"))
        .key_cache(KeyCache::default().http_retries(0))
        .build()
        .unwrap();
    let reply = common::get(&app(layer), "/me", Some(&idp.token().sign())).await;
    assert_eq!(reply.status, 503, "{reply:?}");
    assert_eq!(reply.json()["error"], "temporarily_unavailable");
    assert_eq!(reply.headers["retry-after"], "1");
}

#[tokio::test]
async fn after_a_long_outage_the_first_request_is_served_within_about_a_second() {
    let idp = TestIdp::start().await;
    idp.set_failure(IdpFailure::Error);
    // Default backoff (0.5 s doubling, capped at 1 s); quick failing attempts.
    let app = app(idp
        .auth_builder()
        .key_cache(KeyCache::default().http_retries(0))
        .build()
        .unwrap());
    let token = idp.token().sign();
    // 3 s of outage with steady traffic: the provider is asked about once a
    // second, not once per request.
    let outage = std::time::Instant::now();
    let mut requests = 0;
    while outage.elapsed() < Duration::from_secs(3) {
        assert_eq!(common::get(&app, "/me", Some(&token)).await.status, 502);
        requests += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let asked = idp.jwks_fetches() + idp.discovery_fetches();
    assert!(
        requests > 50 && asked <= 6,
        "{requests} requests, provider asked {asked} times"
    );
    idp.set_failure(IdpFailure::None);
    let recovered = std::time::Instant::now();
    let mut status = http::StatusCode::SERVICE_UNAVAILABLE;
    while status != 200 && recovered.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        status = common::get(&app, "/me", Some(&token)).await.status;
    }
    assert_eq!(status, 200);
    assert!(
        recovered.elapsed() < Duration::from_millis(1500),
        "recovery took {:?}",
        recovered.elapsed()
    );
}

#[tokio::test]
async fn oversized_tokens_are_rejected_before_parsing() {
    let idp = TestIdp::start().await;
    let app = app(idp.auth_builder().build().unwrap());
    let huge = "a".repeat(17 * 1024);
    let reply = common::get(&app, "/me", Some(&huge)).await;
    assert_invalid_token(&reply, "oversized");
    assert_eq!(reply.json()["error_description"], "token too large");
}

#[tokio::test]
async fn keys_are_refreshed_ahead_of_expiry_without_making_requests_wait() {
    let idp = TestIdp::start().await;
    let app = app(idp
        .auth_builder()
        .key_cache(KeyCache::default().max_age(Duration::from_millis(400)))
        .build()
        .unwrap());
    let token = idp.token().sign();
    assert_eq!(common::get(&app, "/me", Some(&token)).await.status, 200);
    assert_eq!(idp.jwks_fetches(), 1);
    // Past three quarters of max_age, with the provider hanging: the request is
    // served from the current keys while a refresh runs in the background.
    tokio::time::sleep(Duration::from_millis(320)).await;
    idp.set_failure(IdpFailure::Hang);
    let started = std::time::Instant::now();
    assert_eq!(common::get(&app, "/me", Some(&token)).await.status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the request waited for the refresh"
    );
    idp.set_failure(IdpFailure::None);
    let mut fetches = idp.jwks_fetches();
    for _ in 0..100 {
        if fetches >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        fetches = idp.jwks_fetches();
    }
    assert!(fetches >= 2, "a background refresh reached the provider");
}

#[tokio::test]
async fn kidless_tokens_need_exactly_one_fitting_key() {
    let idp = TestIdp::start().await;
    let app = app(idp
        .auth_builder()
        .key_cache(KeyCache::default().refresh_cooldown(Duration::from_millis(1)))
        .build()
        .unwrap());
    // One RS256 key published: a token without kid can only mean that one.
    let reply = common::get(&app, "/me", Some(&idp.token().without_kid().sign())).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    // Two RS256 keys after a rotation: ambiguous, rejected.
    idp.rotate();
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(common::get(&app, "/me", Some(&idp.token().sign())).await.status, 200);
    assert_invalid_token(
        &common::get(&app, "/me", Some(&idp.token().without_kid().sign())).await,
        "ambiguous kid-less",
    );
}

#[tokio::test]
async fn oversized_key_sets_are_refused() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks", listener.local_addr().unwrap());
    let huge = format!("{{\"keys\": [], \"padding\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let server = Router::new().route(
        "/jwks",
        get(move || {
            let body = huge.clone();
            async move { body }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, server).await.unwrap() });
    let idp = TestIdp::start().await;
    let layer = idp
        .auth_builder()
        .jwks_url(url)
        .key_cache(KeyCache::default().http_retries(0))
        .build()
        .unwrap();
    let reply = common::get(&app(layer), "/me", Some(&idp.token().sign())).await;
    assert_eq!(reply.status, 502, "{reply:?}");
}

#[tokio::test]
async fn repeated_tokens_come_from_the_cache_until_their_key_leaves() {
    let idp = TestIdp::start().await;
    let layer = idp
        .auth_builder()
        .key_cache(KeyCache::default().refresh_cooldown(Duration::from_millis(1)))
        .build()
        .unwrap();
    let auth = layer.authenticator().clone();
    let app = app(layer);
    let old = idp.token().sub("old").sign();
    assert_eq!(common::get(&app, "/me", Some(&old)).await.status, 200);
    assert_eq!(common::get(&app, "/me", Some(&old)).await.status, 200);
    assert_eq!(auth.cached_tokens(), 1);
    // The provider rotates and retires the old key; a new-kid token refetches.
    idp.rotate();
    idp.retire("rsa-1");
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(common::get(&app, "/me", Some(&idp.token().sign())).await.status, 200);
    assert_invalid_token(
        &common::get(&app, "/me", Some(&old)).await,
        "cached token whose key left",
    );
}

#[tokio::test]
async fn cached_tokens_never_outlive_exp() {
    let idp = TestIdp::start().await;
    let app = app(idp.auth_builder().leeway(Duration::ZERO).build().unwrap());
    let token = idp.token().expires_in(Duration::from_secs(2)).sign();
    // Twice: tokens enter the cache on their second verification.
    assert_eq!(common::get(&app, "/me", Some(&token)).await.status, 200);
    assert_eq!(common::get(&app, "/me", Some(&token)).await.status, 200);
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_invalid_token(&common::get(&app, "/me", Some(&token)).await, "expired while cached");
}

#[tokio::test]
async fn one_time_tokens_never_fill_the_cache_and_a_hot_token_gets_in_on_second_sight() {
    let idp = TestIdp::start().await;
    let layer = JwksAuthLayer::issuers()
        .issuer(idp.auth_builder())
        .token_cache(50)
        .build()
        .unwrap();
    let auth = layer.authenticator().clone();
    let app = app(layer);
    // 200 one-time tokens (a new jti each): verified, never cached.
    for i in 0..200 {
        let token = idp.token().claim("jti", format!("once-{i}")).sign();
        assert_eq!(common::get(&app, "/me", Some(&token)).await.status, 200);
    }
    assert_eq!(auth.cached_tokens(), 0, "one-time tokens pay no insert");
    // A hot token: verified on its first and second request, cached on the
    // second, served from the cache from the third on.
    let hot = idp.token().sub("hot").sign();
    assert_eq!(common::get(&app, "/me", Some(&hot)).await.status, 200);
    assert_eq!(auth.cached_tokens(), 0);
    assert_eq!(common::get(&app, "/me", Some(&hot)).await.status, 200);
    assert_eq!(auth.cached_tokens(), 1);
    assert_eq!(common::get(&app, "/me", Some(&hot)).await.status, 200);
    assert_eq!(auth.cached_tokens(), 1);
}

/// Counts full verifications: the resolver runs once per verification,
/// never on a cache hit.
#[derive(Clone, Default)]
struct CountingResolver(Arc<AtomicUsize>);

impl tower_authkit::RoleResolver for CountingResolver {
    fn resolve<'a>(
        &'a self,
        principal: &'a Principal,
    ) -> tower_authkit::BoxFuture<'a, Result<Vec<String>, tower_authkit::AuthError>> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move { Ok(principal.roles().to_vec()) })
    }
}

#[tokio::test]
async fn a_hot_token_is_served_from_a_full_cache_from_its_third_request() {
    let idp = TestIdp::start().await;
    let verifications = CountingResolver::default();
    let layer = JwksAuthLayer::issuers()
        .issuer(idp.auth_builder().role_resolver(verifications.clone()))
        .token_cache(64)
        .build()
        .unwrap();
    let auth = layer.authenticator().clone();
    let app = app(layer);
    // Fill the cache well past its capacity with tokens each seen twice
    // (admitted, then never used again), and one-time tokens in between.
    for i in 0..300 {
        let twice = idp.token().sub(&format!("twice-{i}")).sign();
        assert_eq!(common::get(&app, "/me", Some(&twice)).await.status, 200);
        assert_eq!(common::get(&app, "/me", Some(&twice)).await.status, 200);
        let once = idp.token().sub(&format!("once-{i}")).sign();
        assert_eq!(common::get(&app, "/me", Some(&once)).await.status, 200);
    }
    assert!(
        auth.cached_tokens() >= 32,
        "the cache is full: {}",
        auth.cached_tokens()
    );
    let hot = idp.token().sub("hot").sign();
    let before = verifications.0.load(Ordering::SeqCst);
    for _ in 0..20 {
        assert_eq!(common::get(&app, "/me", Some(&hot)).await.status, 200);
    }
    assert_eq!(
        verifications.0.load(Ordering::SeqCst) - before,
        2,
        "verified on the first and second request only"
    );
    // And it stays while the flood of twice-seen tokens goes on.
    for i in 0..300 {
        let twice = idp.token().sub(&format!("later-{i}")).sign();
        assert_eq!(common::get(&app, "/me", Some(&twice)).await.status, 200);
        assert_eq!(common::get(&app, "/me", Some(&twice)).await.status, 200);
        assert_eq!(common::get(&app, "/me", Some(&hot)).await.status, 200);
    }
    assert_eq!(
        verifications.0.load(Ordering::SeqCst) - before,
        2 + 2 * 300,
        "the hot token was never verified again"
    );
}

#[tokio::test]
async fn the_token_cache_stays_bounded_and_can_be_turned_off() {
    let idp = TestIdp::start().await;
    let bounded = JwksAuthLayer::issuers()
        .issuer(idp.auth_builder())
        .token_cache(50)
        .build()
        .unwrap();
    let auth = bounded.authenticator().clone();
    let app = app(bounded);
    for i in 0..300 {
        let token = idp.token().sub(&format!("user-{i}")).sign();
        // Twice each, so every one is admitted and the bound is what holds.
        assert_eq!(common::get(&app, "/me", Some(&token)).await.status, 200);
        assert_eq!(common::get(&app, "/me", Some(&token)).await.status, 200);
    }
    assert!(auth.cached_tokens() <= 50, "{} cached", auth.cached_tokens());
    assert!(auth.cached_tokens() > 0, "repeated tokens are cached");
    // Rejected tokens (unknown kids, bad signatures) are never cached.
    let before = auth.cached_tokens();
    for i in 0..200 {
        let token = idp.token().foreign_key().kid(&format!("flood-{i}")).sign();
        assert_eq!(common::get(&app, "/me", Some(&token)).await.status, 401);
    }
    assert!(auth.cached_tokens() <= before);
    let off = JwksAuthLayer::issuers()
        .issuer(idp.auth_builder())
        .token_cache(0)
        .build()
        .unwrap();
    let auth = off.authenticator().clone();
    let app = self::app(off);
    assert_eq!(common::get(&app, "/me", Some(&idp.token().sign())).await.status, 200);
    assert_eq!(auth.cached_tokens(), 0);
}

/// Waits (bounded) until `done` holds, without sending any request.
async fn idle_until(what: &str, done: impl Fn() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(10), "{what} never happened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_idle_service_refreshes_its_keys_in_the_background() {
    let idp = TestIdp::start().await;
    let layer = idp
        .auth_builder()
        .key_cache(KeyCache::default().max_age(Duration::from_secs(1)))
        .build()
        .unwrap();
    let app = app(layer);
    assert_eq!(common::get(&app, "/me", Some(&idp.token().sign())).await.status, 200);
    assert_eq!(idp.jwks_fetches(), 1);
    // The provider rotates while no request comes.
    let kid = idp.rotate();
    idp.retire("rsa-1");
    idle_until("a background refresh", || idp.jwks_fetches() >= 2).await;
    // The new key is known already: the request does not fetch, or wait.
    let fetched = idp.jwks_fetches();
    let token = idp.token().sign();
    assert!(token.len() > 10 && idp.kids().contains(&kid));
    assert_eq!(common::get(&app, "/me", Some(&token)).await.status, 200);
    assert_eq!(
        idp.jwks_fetches(),
        fetched,
        "served with the keys refreshed in the background"
    );
}

#[tokio::test]
async fn a_moved_jwks_uri_is_followed_at_the_next_refresh() {
    let idp = TestIdp::start().await;
    let layer = idp
        .auth_builder()
        .key_cache(KeyCache::default().max_age(Duration::from_secs(1)))
        .build()
        .unwrap();
    let app = app(layer);
    assert_eq!(common::get(&app, "/me", Some(&idp.token().sign())).await.status, 200);
    assert_eq!(idp.discovery_fetches(), 1);
    idp.move_jwks_uri("v2");
    idp.rotate();
    idp.retire("rsa-1");
    idle_until("a re-discovery", || idp.discovery_fetches() >= 2).await;
    let fetched = idp.jwks_fetches();
    idle_until("a fetch from the new place", || idp.jwks_fetches() > fetched).await;
    let reply = common::get(&app, "/me", Some(&idp.token().sign())).await;
    assert_eq!(reply.status, 200, "keys from the moved jwks_uri: {reply:?}");
}
