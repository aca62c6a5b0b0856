//! RFC 7662 introspection against the test provider's `/introspect`.

use crate::common;

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use serde_json::json;
use tower_authkit::Principal;
use tower_authkit::introspection::IntrospectionLayer;
use tower_authkit_testing::{DEV_CLIENT_ID, DEV_CLIENT_SECRET, IdpFailure, TestIdp};

fn app(layer: IntrospectionLayer) -> Router {
    Router::new()
        .route(
            "/me",
            get(|p: Principal| async move { format!("{} {:?}", p.subject(), p.scopes()) }),
        )
        .layer(layer)
}

fn layer(idp: &TestIdp) -> IntrospectionLayer {
    IntrospectionLayer::builder()
        .endpoint(format!("{}/introspect", idp.issuer()))
        .client_credentials(DEV_CLIENT_ID, DEV_CLIENT_SECRET)
        .build()
        .unwrap()
}

#[tokio::test]
async fn active_tokens_become_principals_and_are_cached() {
    let idp = TestIdp::start().await;
    let app = app(layer(&idp));
    let token = idp.issue_opaque_token(json!({"sub": "u1", "scope": "read write"}));
    let reply = common::get(&app, "/me", Some(&token)).await;
    assert_eq!(
        (reply.status.as_u16(), reply.body.as_str()),
        (200, "u1 [\"read\", \"write\"]")
    );
    assert_eq!(common::get(&app, "/me", Some(&token)).await.status, 200);
    assert_eq!(idp.introspections(), 1, "the second request used the cache");
}

#[tokio::test]
async fn inactive_and_expired_tokens_are_401() {
    let idp = TestIdp::start().await;
    let app = app(layer(&idp));
    let reply = common::get(&app, "/me", Some("never-issued")).await;
    assert_eq!(reply.status, 401);
    assert!(reply.challenge().contains("invalid_token"));
    let expired = idp.issue_opaque_token(json!({"sub": "u1", "exp": 1_000_000_000}));
    assert_eq!(common::get(&app, "/me", Some(&expired)).await.status, 401);
    // Cached, but never past exp.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let short = idp.issue_opaque_token(json!({"sub": "u2", "exp": now + 2}));
    assert_eq!(common::get(&app, "/me", Some(&short)).await.status, 200);
    let calls = idp.introspections();
    assert_eq!(common::get(&app, "/me", Some(&short)).await.status, 200);
    assert_eq!(idp.introspections(), calls);
    tokio::time::sleep(Duration::from_millis(2600)).await;
    assert_eq!(common::get(&app, "/me", Some(&short)).await.status, 401);
}

#[tokio::test]
async fn upstream_failures_follow_the_one_table_and_are_not_cached() {
    let idp = TestIdp::start().await;
    let app = app(layer(&idp));
    let token = idp.issue_opaque_token(json!({"sub": "u1"}));
    // The endpoint answers 500: a bad answer, 502.
    idp.set_failure(IdpFailure::Error);
    let reply = common::get(&app, "/me", Some(&token)).await;
    assert_eq!(reply.status, 502, "{reply:?}");
    // Damped while failing: about one introspection a second for this token.
    let before = idp.introspections();
    let (reply, sent) = common::get_until(&app, "/me", Some(&token), 200, Duration::from_secs(2)).await;
    assert_eq!(reply.status, 502);
    let asked = idp.introspections() - before;
    assert!(sent > 40 && asked <= 3, "{sent} requests, {asked} introspections");
    idp.set_failure(IdpFailure::None);
    let (reply, _) = common::get_until(&app, "/me", Some(&token), 200, Duration::from_secs(3)).await;
    assert_eq!(reply.status, 200, "recovered: the failure was not cached as a verdict");
    // Wrong client credentials are an upstream problem, not the caller's.
    let wrong_client = IntrospectionLayer::builder()
        .endpoint(format!("{}/introspect", idp.issuer()))
        .client_credentials(DEV_CLIENT_ID, "wrong")
        .build()
        .unwrap();
    assert_eq!(
        common::get(&self::app(wrong_client), "/me", Some(&token)).await.status,
        502
    );
    // No answer at all (timeout): unreachable, 503 with Retry-After.
    idp.set_failure(IdpFailure::Hang);
    let impatient = IntrospectionLayer::builder()
        .endpoint(format!("{}/introspect", idp.issuer()))
        .client_credentials(DEV_CLIENT_ID, DEV_CLIENT_SECRET)
        .http_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let reply = common::get(&self::app(impatient), "/me", Some(&token)).await;
    assert_eq!(reply.status, 503, "{reply:?}");
    assert_eq!(reply.headers["retry-after"], "1");
    idp.set_failure(IdpFailure::None);
}

#[tokio::test]
async fn an_unreachable_endpoint_is_503_with_retry_after() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let app = app(IntrospectionLayer::builder()
        .endpoint(format!("http://127.0.0.1:{port}/introspect"))
        .client_credentials(DEV_CLIENT_ID, DEV_CLIENT_SECRET)
        .build()
        .unwrap());
    let reply = common::get(&app, "/me", Some("any-token")).await;
    assert_eq!(reply.status, 503, "{reply:?}");
    assert_eq!(reply.headers["retry-after"], "1");
    assert!(reply.body.contains("token introspection unreachable"), "{}", reply.body);
}

#[tokio::test]
async fn discovery_audience_and_client_credentials_tokens() {
    let idp = TestIdp::start().await;
    let discovered = IntrospectionLayer::builder()
        .issuer(idp.issuer())
        .check_issuer(true)
        .client_credentials(DEV_CLIENT_ID, DEV_CLIENT_SECRET)
        .audience(idp.audience())
        .build()
        .unwrap();
    let app = app(discovered);
    // A JWT access token from the client-credentials grant.
    let response = reqwest::Client::new()
        .post(format!("{}/token", idp.issuer()))
        .basic_auth(DEV_CLIENT_ID, Some(DEV_CLIENT_SECRET))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&scope=reports%3Aread")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = serde_json::from_str(&response.text().await.unwrap()).unwrap_or_default();
    let access_token = body["access_token"].as_str().unwrap_or_default().to_owned();
    let reply = common::get(&app, "/me", Some(&access_token)).await;
    assert_eq!(
        (reply.status.as_u16(), reply.body.as_str()),
        (200, "dev-client [\"reports:read\"]")
    );
    // Audience and issuer checks.
    let other_aud = idp.issue_opaque_token(json!({"sub": "u1", "aud": "other-api"}));
    assert_eq!(common::get(&app, "/me", Some(&other_aud)).await.status, 401);
    let other_iss = idp.issue_opaque_token(json!({"sub": "u1", "aud": idp.audience(), "iss": "https://evil.example"}));
    assert_eq!(common::get(&app, "/me", Some(&other_iss)).await.status, 401);
    let good = idp.issue_opaque_token(json!({"sub": "u1", "aud": [idp.audience()]}));
    assert_eq!(common::get(&app, "/me", Some(&good)).await.status, 200);
}

#[tokio::test]
async fn discovery_failures_back_off_instead_of_refetching_per_request() {
    let idp = TestIdp::start().await;
    idp.set_failure(IdpFailure::Error);
    let app = app(IntrospectionLayer::builder()
        .issuer(idp.issuer())
        .client_credentials(DEV_CLIENT_ID, DEV_CLIENT_SECRET)
        .build()
        .unwrap());
    // A discovery document answered with 500 is a bad answer: 502, and
    // discovery is retried about once per backoff step, not per request.
    let (reply, sent) = common::get_until(&app, "/me", Some("any-token"), 200, Duration::from_secs(1)).await;
    assert_eq!(reply.status, 502, "{reply:?}");
    let fetches = idp.discovery_fetches();
    assert!(
        sent > 20 && fetches <= 3,
        "{sent} requests, {fetches} discovery fetches"
    );
}
