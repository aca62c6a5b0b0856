//! Several issuers on one JwksAuthLayer: routing by `iss`, no key shared
//! across issuers, unknown issuers refused before any fetch, tenant
//! patterns under a flood, readiness over every issuer.

use crate::common;

use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use tower_authkit::Principal;
use tower_authkit::jwt::KeyCache;
use tower_authkit::jwt::{JwksAuthLayer, TenantIssuers};
use tower_authkit_testing::{IdpFailure, TestIdp};

fn app(layer: JwksAuthLayer) -> Router {
    Router::new()
        .route(
            "/me",
            get(|p: Principal| async move { format!("{} from {}", p.subject(), p.issuer().unwrap_or("?")) }),
        )
        .layer(layer)
}

/// Two providers with different keys: `b` rotated to its second RSA key
/// and retired the first, which `a` still uses.
async fn two_providers() -> (TestIdp, TestIdp) {
    let (a, b) = (TestIdp::start().await, TestIdp::start().await);
    b.rotate();
    b.retire("rsa-1");
    (a, b)
}

fn two_issuer_layer(a: &TestIdp, b: &TestIdp) -> JwksAuthLayer {
    JwksAuthLayer::issuers()
        .issuer(JwksAuthLayer::builder().issuer(a.issuer()).audience("api-a"))
        .issuer(JwksAuthLayer::builder().issuer(b.issuer()).audience("api-b"))
        .build()
        .unwrap()
}

fn fetches(idps: &[&TestIdp]) -> usize {
    idps.iter()
        .map(|idp| idp.jwks_fetches() + idp.discovery_fetches())
        .sum()
}

#[tokio::test]
async fn each_issuer_accepts_its_own_tokens_for_its_own_audience() {
    let (a, b) = two_providers().await;
    let app = app(two_issuer_layer(&a, &b));
    let from_a = common::get(&app, "/me", Some(&a.token().sub("alice").audience("api-a").sign())).await;
    assert_eq!(from_a.status, 200, "{from_a:?}");
    assert_eq!(from_a.body, format!("alice from {}", a.issuer()));
    let from_b = common::get(&app, "/me", Some(&b.token().sub("bob").audience("api-b").sign())).await;
    assert_eq!(from_b.status, 200, "{from_b:?}");
    assert_eq!(from_b.body, format!("bob from {}", b.issuer()));
    // Each issuer's audience is its own.
    for (idp, audience) in [(&a, "api-b"), (&b, "api-a")] {
        let reply = common::get(&app, "/me", Some(&idp.token().audience(audience).sign())).await;
        assert_eq!(reply.status, 401, "{reply:?}");
        assert!(reply.challenge().contains("invalid_token"), "{reply:?}");
    }
}

#[tokio::test]
async fn a_key_of_one_issuer_never_verifies_a_token_that_names_another() {
    let (a, b) = two_providers().await;
    let app = app(two_issuer_layer(&a, &b));
    // Sanity: b's key verifies b's tokens.
    let own = b.token().audience("api-b").sign();
    assert_eq!(common::get(&app, "/me", Some(&own)).await.status, 200);
    // Claims of issuer a, signed with b's key under b's kid: a's key set has
    // no such key, and b's is never asked.
    let cross = b.token().issuer(a.issuer()).audience("api-a").sign();
    let reply = common::get(&app, "/me", Some(&cross)).await;
    assert_eq!(reply.status, 401, "{reply:?}");
    // The same, under the kid a uses (a different key there): bad signature.
    let cross_kid = b.token().issuer(a.issuer()).audience("api-a").kid("rsa-1").sign();
    let reply = common::get(&app, "/me", Some(&cross_kid)).await;
    assert_eq!(reply.status, 401, "{reply:?}");
    assert!(reply.body.contains("invalid signature"), "{reply:?}");
    // a's own token, re-signed claims and all, still works.
    let genuine = a.token().audience("api-a").sign();
    assert_eq!(common::get(&app, "/me", Some(&genuine)).await.status, 200);
}

#[tokio::test]
async fn an_unknown_issuer_is_refused_before_anything_is_fetched() {
    let (a, b) = two_providers().await;
    let stranger = TestIdp::start().await;
    let layer = JwksAuthLayer::issuers()
        .issuer(
            JwksAuthLayer::builder()
                .issuer(a.issuer())
                .audience("api-a")
                .key_cache(KeyCache::default().prefetch(false)),
        )
        .issuer(
            JwksAuthLayer::builder()
                .issuer(b.issuer())
                .audience("api-b")
                .key_cache(KeyCache::default().prefetch(false)),
        )
        .build()
        .unwrap();
    let app = app(layer);
    let tokens = [
        stranger.token().audience("api-a").sign(),
        a.token().issuer(&format!("{}/", a.issuer())).audience("api-a").sign(),
        a.token().without_claim("iss").audience("api-a").sign(),
    ];
    for token in &tokens {
        let reply = common::get(&app, "/me", Some(token)).await;
        assert_eq!(reply.status, 401, "{reply:?}");
        assert!(
            reply.body.contains("token issuer is not trusted") || reply.body.contains("token has no issuer"),
            "{reply:?}"
        );
    }
    assert_eq!(fetches(&[&a, &b, &stranger]), 0, "nothing was fetched");
}

#[tokio::test]
async fn readiness_covers_every_issuer() {
    let (a, b) = two_providers().await;
    b.set_failure(IdpFailure::Error);
    let layer = JwksAuthLayer::issuers()
        .issuer(JwksAuthLayer::builder().issuer(a.issuer()).audience("api-a"))
        .issuer(
            JwksAuthLayer::builder().issuer(b.issuer()).audience("api-b").key_cache(
                KeyCache::default()
                    .http_retries(0)
                    .retry_failed_fetch_after(Duration::from_millis(20)),
            ),
        )
        .build()
        .unwrap();
    let auth = layer.authenticator().clone();
    let failed = auth.ready().await.unwrap_err();
    assert!(failed.source().contains(b.issuer()), "{failed}");
    assert!(!auth.is_ready(), "b has no keys");
    b.set_failure(IdpFailure::None);
    let started = Instant::now();
    while auth.ready().await.is_err() && started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(auth.is_ready(), "both issuers have keys");
}

#[tokio::test]
async fn listed_tenants_are_discovered_on_first_sight_and_others_refused() {
    let idp = TestIdp::start().await;
    let layer = JwksAuthLayer::issuers()
        .tenants(
            TenantIssuers::new(idp.tenant_pattern(), JwksAuthLayer::builder().audience("api"))
                .allow(["acme", "globex"]),
        )
        .build()
        .unwrap();
    let app = app(layer);
    for tenant in ["acme", "globex"] {
        let token = idp.token().issuer(&idp.tenant_issuer(tenant)).audience("api").sign();
        let reply = common::get(&app, "/me", Some(&token)).await;
        assert_eq!(reply.status, 200, "{tenant}: {reply:?}");
        assert_eq!(reply.body, format!("test-user from {}", idp.tenant_issuer(tenant)));
    }
    let discovered = idp.discovery_fetches();
    assert_eq!(discovered, 2, "one discovery per tenant");
    let unlisted = idp.token().issuer(&idp.tenant_issuer("initech")).audience("api").sign();
    let reply = common::get(&app, "/me", Some(&unlisted)).await;
    assert_eq!(reply.status, 401, "{reply:?}");
    assert_eq!(
        idp.discovery_fetches(),
        discovered,
        "an unlisted tenant fetches nothing"
    );
}

#[tokio::test]
async fn a_flood_of_made_up_tenants_causes_bounded_discoveries_and_memory() {
    let idp = TestIdp::start().await;
    let cooldown = Duration::from_millis(200);
    let layer = JwksAuthLayer::issuers()
        .tenants(
            TenantIssuers::new(idp.tenant_pattern(), JwksAuthLayer::builder().audience("api"))
                .any_tenant()
                .max_issuers(10)
                .new_issuer_cooldown(cooldown),
        )
        .build()
        .unwrap();
    let auth = layer.authenticator().clone();
    let app = app(layer);
    let real = idp.token().issuer(&idp.tenant_issuer("real")).audience("api").sign();
    assert_eq!(common::get(&app, "/me", Some(&real)).await.status, 200);
    let before = idp.discovery_fetches();
    // 1 000 made-up tenants (signed by a key the provider never published),
    // signed first: the flood itself is what is timed.
    let tokens: Vec<String> = (0..1_000)
        .map(|i| {
            idp.token()
                .issuer(&idp.tenant_issuer(&format!("made-up-{i}")))
                .audience("api")
                .foreign_key()
                .sign()
        })
        .collect();
    let started = Instant::now();
    let mut admitted = 0;
    for token in &tokens {
        let reply = common::get(&app, "/me", Some(token)).await;
        match reply.status.as_u16() {
            // Admitted (discovered), then refused: the key is foreign.
            401 => admitted += 1,
            503 => assert!(reply.headers.contains_key("retry-after"), "{reply:?}"),
            _ => panic!("{reply:?}"),
        }
    }
    let elapsed = started.elapsed();
    let discoveries = idp.discovery_fetches() - before;
    // However slow the machine, one admission (and discovery) per cooldown.
    let bound = (elapsed.as_millis() / cooldown.as_millis()) as usize + 1;
    assert!(
        discoveries <= bound,
        "{discoveries} discoveries in {elapsed:?}: at most one per cooldown ({bound})"
    );
    assert!(
        admitted <= bound,
        "{admitted} tenants admitted in {elapsed:?}: at most one per cooldown ({bound})"
    );
    assert!(auth.issuer_count() <= 10, "bounded: {}", auth.issuer_count());
    // The known tenant is still served (kept, or re-admitted after a cooldown).
    tokio::time::sleep(cooldown).await;
    assert_eq!(common::get(&app, "/me", Some(&real)).await.status, 200);
}
