//! CfAccessLayer against the test kit's Cloudflare team emulation.

mod common;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use common::Reply;
use http::Request;
use tower_authkit::cloudflare::{
    CfAccess, CfAccessAssertion, CfAccessAuthenticator, CfAccessLayer, CfAccessUser, CfServiceToken,
};
use tower_authkit::{AuthError, ConfigError};
use tower_authkit_testing::TestIdp;

const AUD: &str = "4714c1358e65fe4b408ad6d432a5f878f08194bdb4752441fd56faefa9b2b6f2";

fn layer(team: &TestIdp) -> CfAccessLayer {
    CfAccessLayer::builder()
        .team_domain(team.cf_team_domain())
        .audience(AUD)
        .build()
        .unwrap()
}

fn app(layer: CfAccessLayer) -> Router {
    let auth: CfAccessAuthenticator = layer.authenticator().clone();
    Router::new()
        .route(
            "/kind",
            get(|who: CfAccess| async move { format!("{}:{}", who.kind(), who.email().unwrap_or("-")) }),
        )
        .route(
            "/user",
            get(|user: CfAccessUser| async move { format!("{} {:?}", user.email, user.country) }),
        )
        .route("/service", get(|svc: CfServiceToken| async move { svc.common_name }))
        .route(
            "/identity",
            get(move |assertion: CfAccessAssertion| async move {
                auth.identity(assertion.expose())
                    .await
                    .map(|identity| serde_json::to_string(&*identity).unwrap_or_default())
            }),
        )
        .layer(layer)
}

async fn with_header(app: &Router, path: &str, token: &str) -> Reply {
    let request = Request::get(path)
        .header("cf-access-jwt-assertion", token)
        .body(Body::empty())
        .unwrap();
    common::send(app, request).await
}

async fn with_cookie(app: &Router, path: &str, token: &str) -> Reply {
    let request = Request::get(path)
        .header("cookie", format!("theme=dark; CF_Authorization={token}"))
        .body(Body::empty())
        .unwrap();
    common::send(app, request).await
}

#[tokio::test]
async fn user_and_service_tokens_are_accepted_with_their_kind() {
    let team = TestIdp::start().await;
    let app = app(layer(&team));
    let user = with_header(&app, "/kind", &team.cf_user_token(AUD).sign()).await;
    assert_eq!(
        (user.status.as_u16(), user.body.as_str()),
        (200, "user:user@example.com")
    );
    let service = team.cf_service_token(AUD, "f00d").sign();
    let reply = with_header(&app, "/kind", &service).await;
    assert_eq!((reply.status.as_u16(), reply.body.as_str()), (200, "service:-"));
    assert_eq!(with_header(&app, "/service", &service).await.body, "f00d.access");
    // The typed extractors refuse the other kind.
    assert_eq!(with_header(&app, "/user", &service).await.status, 403);
    assert_eq!(
        with_header(&app, "/service", &team.cf_user_token(AUD).sign())
            .await
            .status,
        403
    );
    let user = with_header(&app, "/user", &team.cf_user_token(AUD).sign()).await;
    assert_eq!(user.body, "user@example.com Some(\"NL\")");
}

#[tokio::test]
async fn wrong_team_aud_org_type_expired_and_foreign_keys_are_401() {
    let team = TestIdp::start().await;
    let app = app(layer(&team));
    let cases = [
        (
            "wrong team issuer",
            team.cf_user_token(AUD)
                .issuer("https://other.cloudflareaccess.com")
                .sign(),
        ),
        ("wrong AUD tag", team.cf_user_token("0000").sign()),
        (
            "organization token",
            team.cf_user_token(AUD).claim("type", "org").sign(),
        ),
        (
            "expired",
            team.cf_user_token(AUD).expired_for(Duration::from_secs(120)).sign(),
        ),
        ("foreign key", team.cf_user_token(AUD).foreign_key().sign()),
        (
            "not RS256",
            team.cf_user_token(AUD).alg(tower_authkit::jwt::Algorithm::ES256).sign(),
        ),
    ];
    for (what, token) in cases {
        let reply = with_header(&app, "/kind", &token).await;
        assert_eq!(reply.status, 401, "{what}: {reply:?}");
    }
    assert_eq!(
        with_header(&app, "/kind", &team.cf_user_token(AUD).sign()).await.status,
        200
    );
    // Opting in accepts organization tokens.
    let org_ok = CfAccessLayer::builder()
        .team_domain(team.cf_team_domain())
        .audience(AUD)
        .allow_org_tokens(true)
        .build()
        .unwrap();
    let reply = with_header(
        &self::app(org_ok),
        "/kind",
        &team.cf_user_token(AUD).claim("type", "org").sign(),
    )
    .await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn header_is_preferred_over_cookie_and_cookie_alone_works() {
    let team = TestIdp::start().await;
    let app = app(layer(&team));
    let good = team.cf_user_token(AUD).sign();
    let expired = team.cf_user_token(AUD).expired_for(Duration::from_secs(120)).sign();
    assert_eq!(with_cookie(&app, "/kind", &good).await.status, 200);
    // A bad header with a good cookie: the header decides.
    let request = Request::get("/kind")
        .header("cf-access-jwt-assertion", &expired)
        .header("cookie", format!("CF_Authorization={good}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(common::send(&app, request).await.status, 401);
    // Two assertion headers are refused.
    let request = Request::get("/kind")
        .header("cf-access-jwt-assertion", &good)
        .header("cf-access-jwt-assertion", &good)
        .body(Body::empty())
        .unwrap();
    assert_eq!(common::send(&app, request).await.status, 400);
    assert_eq!(common::get(&app, "/kind", None).await.status, 401);
}

#[tokio::test]
async fn identity_is_parsed_keeping_unknown_fields_and_cached() {
    let team = TestIdp::start().await;
    let app = app(layer(&team));
    let token = team.cf_user_token(AUD).sign();
    let reply = with_header(&app, "/identity", &token).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let identity = reply.json();
    assert_eq!(identity["email"], "user@example.com");
    assert_eq!(identity["geo"]["country"], "NL");
    assert_eq!(identity["idp"]["type"], "onetimepin");
    assert_eq!(identity["x_unmodelled_field"]["kept"], true);
    assert_eq!(team.identity_fetches(), 1);
    assert_eq!(with_cookie(&app, "/identity", &token).await.status, 200);
    assert_eq!(team.identity_fetches(), 1, "the second lookup came from the cache");
    let other = team.cf_user_token(AUD).email("other@example.com").sign();
    assert_eq!(
        with_header(&app, "/identity", &other).await.json()["email"],
        "other@example.com"
    );
    assert_eq!(team.identity_fetches(), 2);
}

#[tokio::test]
async fn an_identity_service_that_does_not_answer_is_503_with_retry_after() {
    let team = TestIdp::start().await;
    let layer = CfAccessLayer::builder()
        .team_domain(team.cf_team_domain())
        .audience(AUD)
        .http_timeout(std::time::Duration::from_millis(300))
        .build()
        .unwrap();
    let auth = layer.authenticator().clone();
    let token = team.cf_user_token(AUD).sign();
    assert_eq!(auth.verify_email(&token).await.unwrap(), "user@example.com");
    team.set_failure(tower_authkit_testing::IdpFailure::Hang);
    let error = auth.identity(&token).await.unwrap_err();
    team.set_failure(tower_authkit_testing::IdpFailure::None);
    assert_eq!(error.status(), 503, "{error:?}");
    assert_eq!(error.retry_after(), Some(std::time::Duration::from_secs(1)));
}

#[tokio::test]
async fn identity_failures_are_upstream_errors_not_401() {
    let team = TestIdp::start().await;
    let layer = layer(&team);
    let auth = layer.authenticator().clone();
    // A token the team's get-identity refuses (no parsable claims): 502.
    let error: AuthError = auth.identity("not.a.token").await.unwrap_err();
    assert_eq!(error.status(), 502);
    // The team down: warm the keys, then fail the identity service.
    let token = team.cf_user_token(AUD).sign();
    assert_eq!(auth.verify_email(&token).await.unwrap(), "user@example.com");
    team.set_failure(tower_authkit_testing::IdpFailure::Error);
    let error = auth.identity(&token).await.unwrap_err();
    assert_eq!(error.status(), 502, "a 500 is a bad answer: {error:?}");
    // Damped while failing: the identity service is not asked per call.
    let before = team.identity_fetches();
    for _ in 0..20 {
        assert!(auth.identity(&token).await.is_err());
    }
    assert_eq!(team.identity_fetches(), before, "answered from the backoff");
    team.set_failure(tower_authkit_testing::IdpFailure::None);
    // Failures were not cached as verdicts: after the backoff (0.5 s) it is asked again.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(
        auth.identity(&token).await.unwrap().email.as_deref(),
        Some("user@example.com")
    );
}

#[tokio::test]
async fn verify_helpers_work_outside_requests() {
    let team = TestIdp::start().await;
    let auth = layer(&team).authenticator().clone();
    assert_eq!(
        auth.verify_email(&team.cf_user_token(AUD).sign()).await.unwrap(),
        "user@example.com"
    );
    let service = team.cf_service_token(AUD, "c1").sign();
    assert!(matches!(auth.verify(&service).await.unwrap(), CfAccess::Service(_)));
    assert_eq!(auth.verify_email(&service).await.unwrap_err().status(), 403);
}

#[tokio::test]
async fn dev_bypass_only_when_configured_and_refused_by_the_guard() {
    // Without dev_user a request without a token is rejected (covered above);
    // with it, every request is the fixed user, even without a token.
    let dev = CfAccessLayer::builder()
        .dev_user(CfAccessUser::new("dev-1", "dev@example.com"))
        .build()
        .unwrap();
    let app = app(dev);
    let reply = common::get(&app, "/kind", None).await;
    assert_eq!(
        (reply.status.as_u16(), reply.body.as_str()),
        (200, "user:dev@example.com")
    );
    // The environment guard refuses the bypass at build time.
    // SAFETY: this is the only test in this binary that reads or writes this variable.
    unsafe { std::env::set_var("AUTHKIT_DENY_DEV_BYPASS", "1") };
    let refused = CfAccessLayer::builder()
        .dev_user(CfAccessUser::new("dev-1", "dev@example.com"))
        .build();
    unsafe { std::env::remove_var("AUTHKIT_DENY_DEV_BYPASS") };
    assert!(matches!(
        refused.unwrap_err(),
        ConfigError::Invalid {
            setting: "dev_user",
            ..
        }
    ));
}
