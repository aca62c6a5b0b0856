//! The shared pipeline through axum: modes, public paths, extractors,
//! SecurityContext, authorization layers, rendering hooks.

use crate::common;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use axum_test::TestServer;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use serde::Deserialize;
use tower_authkit::jwt::JwksAuthLayer;
use tower_authkit::{
    AuthError, Authorized, BoxFuture, Claims, Principal, Protocol, RecordedRejection, RequireGroup, RequireRole,
    RequireScope, RoleResolver, SecurityContext, policy, require_fn,
};
use tower_authkit_testing::{IdpFailure, TestIdp};

policy!(Admin = RequireRole::new("admin"));

#[derive(Deserialize)]
struct TenantClaims {
    tenant: String,
    seats: u32,
}

/// A service function far from the handler: reads the caller from the context.
fn who_is_calling() -> String {
    match SecurityContext::current().require() {
        Ok(principal) => format!(
            "{} (admin: {})",
            principal.subject(),
            SecurityContext::current().has_role("admin")
        ),
        Err(_) => "nobody".to_owned(),
    }
}

fn routes() -> Router {
    Router::new()
        .route("/me", get(|p: Principal| async move { p.subject().to_owned() }))
        .route(
            "/maybe",
            get(|p: Option<Principal>| async move { p.map_or("anonymous".to_owned(), |p| p.subject().to_owned()) }),
        )
        .route("/context", get(|| async { who_is_calling() }))
        .route(
            "/tenant",
            get(|Claims(c): Claims<TenantClaims>| async move { format!("{}:{}", c.tenant, c.seats) }),
        )
        .route(
            "/admin-extractor",
            get(|Authorized(p, _): Authorized<Admin>| async move { p.subject().to_owned() }),
        )
        .route(
            "/admin",
            get(|| async { "admin area" }).route_layer(RequireRole::new("admin")),
        )
        .route(
            "/team",
            get(|| async { "team area" }).route_layer(RequireGroup::any(["team-a", "team-b"])),
        )
        .route(
            "/reports",
            get(|| async { "reports" }).route_layer(RequireScope::all(["reports:read", "reports:list"])),
        )
        .route(
            "/corp",
            get(|| async { "corp" })
                .route_layer(require_fn(|p| p.email().is_some_and(|e| e.ends_with("@corp.example")))),
        )
        .route("/health", get(|| async { "ok" }))
}

async fn server(layer: JwksAuthLayer) -> TestServer {
    TestServer::new(routes().layer(layer)).unwrap()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test]
async fn required_mode_rejects_missing_tokens_with_a_bare_challenge() {
    let idp = TestIdp::start().await;
    let server = server(
        idp.auth_builder()
            .build()
            .unwrap()
            .realm("orders")
            .public_path("/health"),
    )
    .await;
    let response = server.get("/me").expect_failure().await;
    response.assert_status(StatusCode::UNAUTHORIZED);
    assert_eq!(response.header("www-authenticate"), "Bearer realm=\"orders\"");
    assert_eq!(response.json::<serde_json::Value>()["error"], "missing_token");
    // Public paths skip authentication.
    server.get("/health").await.assert_text("ok");
}

#[tokio::test]
async fn realm_and_protected_resource_compose_in_either_order() {
    use tower_authkit::resource::ProtectedResource;
    let idp = TestIdp::start().await;
    let resource = ProtectedResource::builder("https://api.example.com/mcp")
        .authorization_server(idp.issuer())
        .build()
        .unwrap();
    let realm_first = idp
        .auth_builder()
        .build()
        .unwrap()
        .realm("orders")
        .protected_resource(&resource);
    let resource_first = idp
        .auth_builder()
        .build()
        .unwrap()
        .protected_resource(&resource)
        .realm("orders");
    for layer in [realm_first, resource_first] {
        let response = server(layer).await.get("/me").expect_failure().await;
        let challenge = response.header("www-authenticate");
        let challenge = challenge.to_str().unwrap();
        assert!(challenge.contains("realm=\"orders\""), "{challenge}");
        assert!(
            challenge
                .contains("resource_metadata=\"https://api.example.com/.well-known/oauth-protected-resource/mcp\""),
            "{challenge}"
        );
    }
}

policy!(Editor = RequireRole::new("editor"));

#[tokio::test]
async fn requirements_can_differ_per_method_on_one_path() {
    use axum::handler::Handler;
    let idp = TestIdp::start().await;
    async fn create(Authorized(editor, _): Authorized<Editor>) -> String {
        format!("created by {}", editor.subject())
    }
    let app = Router::new()
        .route(
            "/articles",
            get((|| async { "articles" }).layer(RequireScope::new("articles:read"))).post(create),
        )
        .layer(idp.auth_builder().build().unwrap());
    let server = TestServer::new(app).unwrap();
    let reader = idp.token().sub("reader").scope("articles:read").sign();
    let editor = idp.token().sub("ed").roles(["editor"]).sign();
    let status = |response: axum_test::TestResponse| response.status_code();
    let get = |token: &str| server.get("/articles").authorization_bearer(token).expect_failure();
    assert_eq!(
        status(server.get("/articles").authorization_bearer(&reader).await),
        StatusCode::OK
    );
    assert_eq!(
        status(get(&editor).await),
        StatusCode::FORBIDDEN,
        "GET needs the scope, not the role"
    );
    let post = |token: &str| server.post("/articles").authorization_bearer(token);
    assert_eq!(
        status(post(&reader).expect_failure().await),
        StatusCode::FORBIDDEN,
        "POST needs the role"
    );
    assert_eq!(status(post(&editor).await), StatusCode::OK);
}

#[tokio::test]
async fn public_paths_and_predicates_skip_authentication() {
    let idp = TestIdp::start().await;
    let layer = idp
        .auth_builder()
        .build()
        .unwrap()
        .public_path("/health")
        .skip_if(|head| head.headers.contains_key("x-internal-probe"));
    let server = server(layer).await;
    server.get("/health").await.assert_text("ok");
    server
        .get("/context")
        .add_header("x-internal-probe", "1")
        .await
        .assert_text("nobody");
    server
        .get("/context")
        .expect_failure()
        .await
        .assert_status_unauthorized();
}

#[tokio::test]
async fn duplicate_authorization_headers_are_a_bad_request() {
    let idp = TestIdp::start().await;
    let app = routes().layer(idp.auth_builder().build().unwrap());
    let token = idp.token().sign();
    let request = Request::get("/me")
        .header("authorization", bearer(&token))
        .header("authorization", bearer(&token))
        .body(Body::empty())
        .unwrap();
    let reply = common::send(&app, request).await;
    assert_eq!(reply.status, 400);
    assert!(reply.challenge().contains("error=\"invalid_request\""), "{reply:?}");
}

#[tokio::test]
async fn roles_groups_scopes_and_predicates_give_403_or_200() {
    let idp = TestIdp::start().await;
    let server = server(idp.auth_builder().build().unwrap()).await;
    let user = idp
        .token()
        .sub("u1")
        .roles(["user"])
        .groups(["team-c"])
        .scope("reports:read")
        .sign();
    let admin = idp
        .token()
        .sub("a1")
        .roles(["admin"])
        .groups(["team-b"])
        .scope("reports:read reports:list")
        .email("a1@corp.example")
        .sign();
    // Roles, groups and predicates: 403 `forbidden`, naming what is missing
    // (no bearer challenge: the token itself is fine).
    for (path, description) in [
        ("/admin", "missing required role \"admin\""),
        ("/team", "missing required group: one of \"team-a\", \"team-b\""),
        ("/corp", "access denied"),
        ("/admin-extractor", "missing required role \"admin\""),
    ] {
        let denied = server.get(path).authorization(bearer(&user)).expect_failure().await;
        denied.assert_status_forbidden();
        let body: serde_json::Value = denied.json();
        assert_eq!(body["error"], "forbidden", "{path}");
        assert_eq!(body["error_description"], description, "{path}");
        assert!(denied.maybe_header("www-authenticate").is_none(), "{path}");
        server.get(path).authorization(bearer(&admin)).await.assert_status_ok();
    }
    // Scopes: 403 `insufficient_scope` with the RFC 6750 challenge.
    let denied = server
        .get("/reports")
        .authorization(bearer(&user))
        .expect_failure()
        .await;
    denied.assert_status_forbidden();
    assert!(
        denied
            .header("www-authenticate")
            .to_str()
            .unwrap()
            .contains("insufficient_scope")
    );
    server
        .get("/reports")
        .authorization(bearer(&admin))
        .await
        .assert_status_ok();
    let scope_denied = server
        .get("/reports")
        .authorization(bearer(&user))
        .expect_failure()
        .await;
    assert!(
        scope_denied
            .header("www-authenticate")
            .to_str()
            .unwrap()
            .contains("scope=\"reports:read reports:list\"")
    );
}

#[tokio::test]
async fn keycloak_roles_are_mapped() {
    let idp = TestIdp::start().await;
    let server = server(idp.auth_builder().build().unwrap()).await;
    let realm_admin = idp
        .token()
        .claim("realm_access", serde_json::json!({"roles": ["admin"]}))
        .sign();
    server
        .get("/admin")
        .authorization(bearer(&realm_admin))
        .await
        .assert_status_ok();
    let client_admin = idp
        .token()
        .claim(
            "resource_access",
            serde_json::json!({ idp.audience(): {"roles": ["admin"]}, "other": {"roles": ["x"]} }),
        )
        .sign();
    server
        .get("/admin")
        .authorization(bearer(&client_admin))
        .await
        .assert_status_ok();
    let other_client = idp
        .token()
        .claim("resource_access", serde_json::json!({"other": {"roles": ["admin"]}}))
        .sign();
    server
        .get("/admin")
        .authorization(bearer(&other_client))
        .expect_failure()
        .await
        .assert_status_forbidden();
}

#[tokio::test]
async fn security_context_is_readable_from_functions_the_handler_calls() {
    let idp = TestIdp::start().await;
    let server = server(idp.auth_builder().build().unwrap()).await;
    let token = idp.token().sub("carol").roles(["admin"]).sign();
    server
        .get("/context")
        .authorization(bearer(&token))
        .await
        .assert_text("carol (admin: true)");
    // Outside any request the context is empty.
    assert!(SecurityContext::current().principal().is_none());
}

#[tokio::test]
async fn typed_claims_are_deserialized() {
    let idp = TestIdp::start().await;
    let server = server(idp.auth_builder().build().unwrap()).await;
    let token = idp.token().claim("tenant", "acme").claim("seats", 12).sign();
    server
        .get("/tenant")
        .authorization(bearer(&token))
        .await
        .assert_text("acme:12");
    let missing = idp.token().sign();
    server
        .get("/tenant")
        .authorization(bearer(&missing))
        .expect_failure()
        .await
        .assert_status_unauthorized();
}

/// Optional authentication on `/maybe`: anonymous without a token, the
/// caller with a valid one, 401 for an invalid one (which it returns).
async fn optional_semantics_on_maybe(server: &TestServer, idp: &TestIdp) -> String {
    server.get("/maybe").await.assert_text("anonymous");
    server
        .get("/maybe")
        .authorization(bearer(&idp.token().sub("erin").sign()))
        .await
        .assert_text("erin");
    let expired = idp.token().expired_for(Duration::from_secs(600)).sign();
    server
        .get("/maybe")
        .authorization(bearer(&expired))
        .expect_failure()
        .await
        .assert_status_unauthorized();
    expired
}

#[tokio::test]
async fn optional_paths_of_a_required_layer_see_none_or_the_caller() {
    let idp = TestIdp::start().await;
    let server = server(idp.auth_builder().build().unwrap().optional_path("/maybe")).await;
    let expired = optional_semantics_on_maybe(&server, &idp).await;
    // Everywhere else the layer stays required.
    server.get("/me").expect_failure().await.assert_status_unauthorized();
    // With invalid_as_anonymous, an invalid token there is anonymous, but
    // still 401 on required paths.
    let lenient = self::server(
        idp.auth_builder()
            .build()
            .unwrap()
            .optional_prefix("/may")
            .invalid_as_anonymous(true),
    )
    .await;
    lenient
        .get("/maybe")
        .authorization(bearer(&expired))
        .await
        .assert_text("anonymous");
    lenient
        .get("/me")
        .authorization(bearer(&expired))
        .expect_failure()
        .await
        .assert_status_unauthorized();
    // A public path, by contrast, drops the identity even when it is sent.
    let public = self::server(idp.auth_builder().build().unwrap().public_path("/maybe")).await;
    public
        .get("/maybe")
        .authorization(bearer(&idp.token().sub("erin").sign()))
        .await
        .assert_text("anonymous");
}

#[tokio::test]
async fn optional_mode_lets_anonymous_requests_through() {
    let idp = TestIdp::start().await;
    let server = server(idp.auth_builder().build().unwrap().optional()).await;
    server.get("/me").expect_failure().await.assert_status_unauthorized();
    let expired = optional_semantics_on_maybe(&server, &idp).await;
    // An invalid token is anonymous only if the user opts in.
    let lenient = self::server(
        idp.auth_builder()
            .build()
            .unwrap()
            .optional()
            .invalid_as_anonymous(true),
    )
    .await;
    lenient
        .get("/maybe")
        .authorization(bearer(&expired))
        .await
        .assert_text("anonymous");
}

#[tokio::test]
async fn enrich_only_mode_records_the_outcome_for_extractors() {
    let idp = TestIdp::start().await;
    let app = routes()
        .route(
            "/outcome",
            get(|request: Request<Body>| async move {
                match request.extensions().get::<RecordedRejection>() {
                    Some(RecordedRejection(error)) => error.code().to_owned(),
                    None => "authenticated".to_owned(),
                }
            }),
        )
        .layer(idp.auth_builder().build().unwrap().enrich_only());
    let server = TestServer::new(app).unwrap();
    let expired = idp.token().expired_for(Duration::from_secs(600)).sign();
    server
        .get("/outcome")
        .authorization(bearer(&expired))
        .await
        .assert_text("invalid_token");
    server.get("/outcome").await.assert_text("missing_token");
    server
        .get("/outcome")
        .authorization(bearer(&idp.token().sign()))
        .await
        .assert_text("authenticated");
    // The extractors enforce what the layer recorded.
    let rejected = server.get("/me").authorization(bearer(&expired)).expect_failure().await;
    rejected.assert_status_unauthorized();
    assert!(
        rejected
            .header("www-authenticate")
            .to_str()
            .unwrap()
            .contains("token expired")
    );
    server
        .get("/maybe")
        .authorization(bearer(&expired))
        .await
        .assert_text("anonymous");
    server
        .get("/admin")
        .authorization(bearer(&expired))
        .expect_failure()
        .await
        .assert_status_unauthorized();
}

#[tokio::test]
async fn optional_principal_surfaces_upstream_failures() {
    let idp = TestIdp::start().await;
    idp.set_failure(IdpFailure::Error);
    let layer = idp
        .auth_builder()
        .key_cache(tower_authkit::jwt::KeyCache::default().http_retries(0))
        .build()
        .unwrap()
        .enrich_only();
    let server = server(layer).await;
    let response = server
        .get("/maybe")
        .authorization(bearer(&idp.token().sign()))
        .expect_failure()
        .await;
    // The provider answers 500: 502, as the upstream table says.
    response.assert_status(StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn custom_renderer_is_used_by_the_layer_and_inner_checks() {
    let idp = TestIdp::start().await;
    let renderer = |error: &AuthError, _protocol: Protocol| -> Response<Bytes> {
        let mut response = Response::new(Bytes::from(format!("custom {}", error.code())));
        *response.status_mut() = error.status();
        response
    };
    let server = server(idp.auth_builder().build().unwrap().renderer(renderer)).await;
    server
        .get("/me")
        .expect_failure()
        .await
        .assert_text("custom missing_token");
    let user = idp.token().sign();
    server
        .get("/admin")
        .authorization(bearer(&user))
        .expect_failure()
        .await
        .assert_text("custom forbidden");
}

struct FinanceRoles;

impl RoleResolver for FinanceRoles {
    fn resolve<'a>(&'a self, principal: &'a Principal) -> BoxFuture<'a, Result<Vec<String>, AuthError>> {
        Box::pin(async move {
            let mut roles = principal.roles().to_vec();
            if principal.claim("department").and_then(|d| d.as_str()) == Some("finance") {
                roles.push("admin".to_owned());
            }
            Ok(roles)
        })
    }
}

#[tokio::test]
async fn role_resolver_extends_the_mapping() {
    let idp = TestIdp::start().await;
    let server = server(idp.auth_builder().role_resolver(FinanceRoles).build().unwrap()).await;
    let finance = idp.token().claim("department", "finance").sign();
    server
        .get("/admin")
        .authorization(bearer(&finance))
        .await
        .assert_status_ok();
    let sales = idp.token().claim("department", "sales").sign();
    server
        .get("/admin")
        .authorization(bearer(&sales))
        .expect_failure()
        .await
        .assert_status_forbidden();
}

#[tokio::test]
async fn bad_input_never_yields_a_500() {
    let idp = TestIdp::start().await;
    let app = routes().layer(idp.auth_builder().build().unwrap());
    let nasty = [
        "Bearer",
        "Bearer  ",
        "Bearer a b",
        "bearer ..",
        "Bearer ...",
        "Bearer e30.e30.e30",
        "Bearer %%%.%%%.%%%",
        "Bearer eyJhbGciOiJSUzI1NiJ9.e30.AAAA",
        "Basic Zm9vOmJhcg==",
        "Bearer \u{7f}",
    ];
    for value in nasty {
        let Ok(request) = Request::get("/me").header("authorization", value).body(Body::empty()) else {
            continue;
        };
        let reply = common::send(&app, request).await;
        assert!(matches!(reply.status.as_u16(), 400 | 401), "{value:?} -> {reply:?}");
    }
    let request = Request::get("/me")
        .header("authorization", &b"Bearer \xff\xfe"[..])
        .body(Body::empty())
        .unwrap();
    assert_eq!(common::send(&app, request).await.status, 400);
}

#[tokio::test]
async fn outer_layers_read_why_a_request_was_refused_from_the_response() {
    let idp = TestIdp::start().await;
    // An access-log-like outer layer: names the refusal in a header.
    let why = |mut response: axum::response::Response| async move {
        let reason = response
            .extensions()
            .get::<AuthError>()
            .map(|error| format!("{} {}", error.code(), error.description()));
        if let Some(reason) = reason {
            response.headers_mut().insert("x-refused", reason.parse().unwrap());
        }
        response
    };
    let app = routes()
        .layer(idp.auth_builder().build().unwrap())
        .layer(axum::middleware::map_response(why));
    let server = TestServer::new(app).unwrap();
    let missing = server.get("/me").expect_failure().await;
    assert_eq!(missing.header("x-refused"), "missing_token authentication required");
    let user = idp.token().roles(["user"]).sign();
    let forbidden = server
        .get("/admin")
        .add_header("authorization", bearer(&user))
        .expect_failure()
        .await;
    forbidden.assert_status(StatusCode::FORBIDDEN);
    assert_eq!(
        forbidden.header("x-refused"),
        "forbidden missing required role \"admin\""
    );
    let ok = server.get("/me").add_header("authorization", bearer(&user)).await;
    assert!(ok.maybe_header("x-refused").is_none());
}
