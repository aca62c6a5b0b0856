//! The Pomerium assertion layer against the test kit's Pomerium route emulation.

use crate::common;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use common::Reply;
use http::Request;
use tower_authkit::jwt::Algorithm;
use tower_authkit::pomerium::{IssuerFormat, PomeriumAssertionLayer, PomeriumUser};
use tower_authkit::{ConfigError, RequireGroup};
use tower_authkit_testing::TestIdp;

const HOST: &str = "app.example.com";

fn app(layer: PomeriumAssertionLayer) -> Router {
    Router::new()
        .route(
            "/me",
            get(|user: PomeriumUser| async move { format!("{} {} {:?}", user.sub, user.email, user.groups) }),
        )
        .route(
            "/team",
            get(|| async { "team" }).route_layer(RequireGroup::new("team-a")),
        )
        .layer(layer)
}

fn layer(pomerium: &TestIdp) -> PomeriumAssertionLayer {
    PomeriumAssertionLayer::builder()
        .audience(HOST)
        .jwks_url(pomerium.pomerium_jwks_url())
        .build()
        .unwrap()
}

async fn call(app: &Router, path: &str, assertion: &str) -> Reply {
    let request = Request::get(path)
        .header("x-pomerium-jwt-assertion", assertion)
        .body(Body::empty())
        .unwrap();
    common::send(app, request).await
}

#[tokio::test]
async fn assertions_verify_with_es256_and_rs256() {
    let pomerium = TestIdp::start().await;
    let app = app(layer(&pomerium));
    for alg in [Algorithm::ES256, Algorithm::RS256] {
        let reply = call(
            &app,
            "/me",
            &pomerium.pomerium_assertion(HOST).alg(alg).groups(["g1"]).sign(),
        )
        .await;
        assert_eq!(reply.status, 200, "{alg}: {reply:?}");
        assert_eq!(reply.body, "user-123 user@example.com [\"g1\"]");
    }
    // Other algorithms are not Pomerium's.
    let eddsa = pomerium.pomerium_assertion(HOST).alg(Algorithm::EdDSA).sign();
    assert_eq!(call(&app, "/me", &eddsa).await.status, 401);
}

#[tokio::test]
async fn wrong_audience_issuer_expiry_or_key_is_401() {
    let pomerium = TestIdp::start().await;
    let app = app(layer(&pomerium));
    let cases = [
        (
            "wrong audience",
            pomerium.pomerium_assertion(HOST).audience("other.example.com").sign(),
        ),
        (
            "audience as an array without the host",
            pomerium.pomerium_assertion(HOST).audience(["other"]).sign(),
        ),
        (
            "wrong issuer",
            pomerium.pomerium_assertion(HOST).issuer("evil.example.com").sign(),
        ),
        (
            "expired past the leeway",
            pomerium
                .pomerium_assertion(HOST)
                .expired_for(Duration::from_secs(90))
                .sign(),
        ),
        ("foreign key", pomerium.pomerium_assertion(HOST).foreign_key().sign()),
    ];
    for (what, assertion) in cases {
        assert_eq!(call(&app, "/me", &assertion).await.status, 401, "{what}");
    }
    assert_eq!(common::get(&app, "/me", None).await.status, 401);
}

#[tokio::test]
async fn groups_drive_require_group() {
    let pomerium = TestIdp::start().await;
    let app = app(layer(&pomerium));
    assert_eq!(
        call(
            &app,
            "/team",
            &pomerium.pomerium_assertion(HOST).groups(["team-a"]).sign()
        )
        .await
        .status,
        200
    );
    assert_eq!(
        call(
            &app,
            "/team",
            &pomerium.pomerium_assertion(HOST).groups(["team-b"]).sign()
        )
        .await
        .status,
        403
    );
}

#[tokio::test]
async fn uri_issuer_format_and_leeway_bound() {
    let pomerium = TestIdp::start().await;
    let uri = PomeriumAssertionLayer::builder()
        .audience(HOST)
        .jwks_url(pomerium.pomerium_jwks_url())
        .issuer(IssuerFormat::Uri)
        .build()
        .unwrap();
    let app = app(uri);
    let assertion = pomerium
        .pomerium_assertion(HOST)
        .issuer(&format!("https://{HOST}/"))
        .sign();
    assert_eq!(call(&app, "/me", &assertion).await.status, 200);
    assert_eq!(
        call(&app, "/me", &pomerium.pomerium_assertion(HOST).sign())
            .await
            .status,
        401
    );
    let too_lenient = PomeriumAssertionLayer::builder()
        .audience(HOST)
        .leeway(Duration::from_secs(120))
        .build();
    assert!(matches!(
        too_lenient.unwrap_err(),
        ConfigError::Invalid { setting: "leeway", .. }
    ));
    assert_eq!(
        PomeriumAssertionLayer::builder().build().unwrap_err(),
        ConfigError::Missing("audience")
    );
}
