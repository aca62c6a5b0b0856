//! `first_of`: several authenticators on one layer, chosen by the
//! credential's shape, with rejections that name the member and outages
//! that never hide another member's success.

use crate::common;

use axum::Router;
use axum::routing::get;
use serde_json::json;
use tower_authkit::api_key::ApiKeys;
use tower_authkit::introspection::IntrospectionLayer;
use tower_authkit::{AuthLayer, Authenticator, Principal, first_of};
use tower_authkit_testing::{DEV_CLIENT_ID, DEV_CLIENT_SECRET, TestIdp};

fn app<A: Authenticator>(authenticator: A) -> Router {
    Router::new()
        .route(
            "/me",
            get(|p: Principal| async move { format!("{} via {}", p.subject(), p.provider()) }),
        )
        .layer(AuthLayer::new(authenticator))
}

fn jwt(idp: &TestIdp) -> tower_authkit::jwt::JwksAuthenticator {
    idp.auth_builder().build().unwrap().authenticator().clone()
}

fn introspection(endpoint: String) -> tower_authkit::introspection::IntrospectionAuthenticator {
    IntrospectionLayer::builder()
        .endpoint(endpoint)
        .client_credentials(DEV_CLIENT_ID, DEV_CLIENT_SECRET)
        .build()
        .unwrap()
        .authenticator()
        .clone()
}

fn description(reply: &common::Reply) -> String {
    reply.json()["error_description"].as_str().unwrap_or("").to_owned()
}

#[tokio::test]
async fn jwts_and_api_keys_share_a_layer_and_refusals_name_the_member() {
    let idp = TestIdp::start().await;
    let keys = ApiKeys::new()
        .prefix("ak_")
        .key("ak_live_one", Principal::builder("api-key", "billing-job").build());
    let app = app(first_of(jwt(&idp), keys));
    let reply = common::get(&app, "/me", Some(&idp.token().sub("alice").sign())).await;
    assert_eq!((reply.status.as_u16(), reply.body.as_str()), (200, "alice via jwks"));
    let fetches = idp.jwks_fetches();
    let reply = common::get(&app, "/me", Some("ak_live_one")).await;
    assert_eq!(
        (reply.status.as_u16(), reply.body.as_str()),
        (200, "billing-job via api-key")
    );
    let reply = common::get(&app, "/me", Some("ak_live_two")).await;
    assert_eq!(
        (reply.status.as_u16(), description(&reply)),
        (401, "api-key: unknown API key".into())
    );
    let expired = idp.token().expired_for(std::time::Duration::from_secs(600)).sign();
    let reply = common::get(&app, "/me", Some(&expired)).await;
    assert_eq!(
        (reply.status.as_u16(), description(&reply)),
        (401, "jwks: token expired".into())
    );
    let reply = common::get(&app, "/me", Some("neither-a-jwt-nor-a-key")).await;
    assert_eq!(
        (reply.status.as_u16(), description(&reply)),
        (401, "unrecognized credential".into())
    );
    assert_eq!(idp.jwks_fetches(), fetches, "API keys never cost a key fetch");
}

#[tokio::test]
async fn jwts_are_verified_locally_and_only_opaque_tokens_are_introspected() {
    let idp = TestIdp::start().await;
    let app = app(first_of(
        jwt(&idp),
        introspection(format!("{}/introspect", idp.issuer())),
    ));
    let reply = common::get(&app, "/me", Some(&idp.token().sub("alice").sign())).await;
    assert_eq!((reply.status.as_u16(), reply.body.as_str()), (200, "alice via jwks"));
    // A bad JWT is refused by the key set, not sent upstream.
    let forged = idp.token().foreign_key().sign();
    let reply = common::get(&app, "/me", Some(&forged)).await;
    assert_eq!(reply.status, 401, "{reply:?}");
    assert!(description(&reply).starts_with("jwks: "), "{reply:?}");
    assert_eq!(idp.introspections(), 0, "no JWT reached introspection");
    let revoked = idp.issue_opaque_token(json!({"sub": "other"}));
    idp.revoke(&revoked);
    let opaque = idp.issue_opaque_token(json!({"sub": "svc"}));
    let reply = common::get(&app, "/me", Some(&opaque)).await;
    assert_eq!(
        (reply.status.as_u16(), reply.body.as_str()),
        (200, "svc via introspection")
    );
    let reply = common::get(&app, "/me", Some(&revoked)).await;
    assert_eq!(reply.status, 401, "{reply:?}");
    assert!(description(&reply).starts_with("introspection: "), "{reply:?}");
}

#[tokio::test]
async fn an_outage_of_one_member_never_hides_another_members_success() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = format!("http://{}/introspect", closed.local_addr().unwrap());
    drop(closed);
    // Both take opaque tokens: introspection (down) first, then API keys.
    let keys = ApiKeys::new().key("plain-key", Principal::builder("api-key", "cron").build());
    let app = app(first_of(introspection(down), keys));
    let reply = common::get(&app, "/me", Some("plain-key")).await;
    assert_eq!((reply.status.as_u16(), reply.body.as_str()), (200, "cron via api-key"));
    // Neither accepts it: the outage is answered (retry), not a 401.
    let reply = common::get(&app, "/me", Some("unknown-key")).await;
    assert_eq!(reply.status, 503, "{reply:?}");
    assert!(reply.headers.contains_key("retry-after"), "{reply:?}");
    assert!(description(&reply).starts_with("introspection: "), "{reply:?}");
}
