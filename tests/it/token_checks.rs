//! Per-issuer token checks: the RFC 9068 access-token profile, maximum
//! lifetime, required claims, subject matcher, custom claim checks.

use crate::common;

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tower_authkit::Principal;
use tower_authkit::jwt::{JwksAuthBuilder, JwksAuthLayer, TenantIssuers};
use tower_authkit_testing::{TestIdp, TokenBuilder};

fn app(layer: JwksAuthLayer) -> Router {
    Router::new()
        .route("/me", get(|p: Principal| async move { p.subject().to_owned() }))
        .layer(layer)
}

async fn status_and_description(app: &Router, token: &str) -> (u16, String) {
    let reply = common::get(app, "/me", Some(token)).await;
    let description = reply.json()["error_description"].as_str().unwrap_or("").to_owned();
    (reply.status.as_u16(), description)
}

/// What an RFC 9068 access token carries beyond TestIdp's defaults.
fn access_token(builder: TokenBuilder) -> TokenBuilder {
    builder
        .header("typ", "at+jwt")
        .claim("client_id", "web")
        .claim("jti", "j-1")
}

fn with(idp: &TestIdp, settings: impl FnOnce(JwksAuthBuilder) -> JwksAuthBuilder) -> Router {
    app(settings(idp.auth_builder()).build().unwrap())
}

#[tokio::test]
async fn the_access_token_profile_requires_at_jwt_and_refuses_id_tokens() {
    let idp = TestIdp::start().await;
    let app = with(&idp, JwksAuthBuilder::access_token_profile);
    for typ in ["at+jwt", "application/AT+JWT"] {
        let token = access_token(idp.token()).header("typ", typ).sign();
        assert_eq!(status_and_description(&app, &token).await.0, 200, "{typ}");
    }
    // An ID token: typ JWT, no client_id.
    let id_token = idp.token().claim("nonce", "n").sign();
    let (status, description) = status_and_description(&app, &id_token).await;
    assert_eq!(status, 401);
    assert!(
        description.contains("an ID token is not an access token"),
        "{description}"
    );
    let no_client = idp.token().header("typ", "at+jwt").claim("jti", "j").sign();
    assert_eq!(
        status_and_description(&app, &no_client).await,
        (401, "access token lacks the client_id claim".to_owned())
    );
    // Off by default: the same ID token passes a default layer.
    assert_eq!(status_and_description(&with(&idp, |b| b), &id_token).await.0, 200);
}

#[tokio::test]
async fn lifetime_required_claims_subject_and_custom_checks_refuse_with_their_reason() {
    let idp = TestIdp::start().await;
    let app = with(&idp, |builder| {
        builder
            .max_lifetime(Duration::from_secs(600))
            .required_claims(["jti", "client_id"])
            .subject_matches(|sub| sub.starts_with("svc-"))
            .claim_check(|claims| match claims.get("tier").and_then(|v| v.as_str()) {
                Some("gold") => Ok(()),
                _ => Err("tier must be gold".into()),
            })
    });
    let good = || {
        idp.token()
            .sub("svc-orders")
            .claim("jti", "j")
            .claim("client_id", "c")
            .claim("tier", "gold")
            .expires_in(Duration::from_secs(300))
    };
    assert_eq!(status_and_description(&app, &good().sign()).await.0, 200);
    let cases = [
        (
            good().expires_in(Duration::from_secs(3600)).sign(),
            "token lifetime too long",
        ),
        (
            good().without_claim("iat").sign(),
            "token lifetime unknown: iat and exp are required",
        ),
        (
            good().without_claim("client_id").sign(),
            "token lacks the client_id claim",
        ),
        (good().sub("alice").sign(), "token subject not allowed"),
        (good().claim("tier", "silver").sign(), "tier must be gold"),
    ];
    for (token, reason) in cases {
        assert_eq!(status_and_description(&app, &token).await, (401, reason.to_owned()));
    }
}

#[tokio::test]
async fn entra_style_tenants_check_that_tid_matches_the_issuer() {
    let idp = TestIdp::start().await;
    let settings = JwksAuthLayer::builder().audience("api").claim_check(|claims| {
        let iss = claims.get("iss").and_then(|v| v.as_str()).unwrap_or("");
        let tid = claims.get("tid").and_then(|v| v.as_str()).unwrap_or("");
        match iss.rsplit_once("/t/") {
            Some((_, tenant)) if !tid.is_empty() && tid == tenant => Ok(()),
            _ => Err("tid does not match the issuer".into()),
        }
    });
    let app = app(JwksAuthLayer::issuers()
        .tenants(TenantIssuers::new(idp.tenant_pattern(), settings).any_tenant())
        .build()
        .unwrap());
    let token = |tid: &str| {
        idp.token()
            .issuer(&idp.tenant_issuer("contoso"))
            .audience("api")
            .claim("tid", tid)
            .sign()
    };
    assert_eq!(status_and_description(&app, &token("contoso")).await.0, 200);
    assert_eq!(
        status_and_description(&app, &token("fabrikam")).await,
        (401, "tid does not match the issuer".to_owned())
    );
}
