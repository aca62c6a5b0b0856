//! ProxyUserLayer against the dev server's auth-proxy emulation (TestIdp),
//! which also counts upstream calls.

use crate::common;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use common::Reply;
use http::Request;
use serde_json::{Value, json};
use tower_authkit::proxy_permission;
use tower_authkit::proxy_user::{CurrentUser, Permitted, ProxyUserLayer, RequireProxyPermission};
use tower_authkit_testing::{IdpFailure, TestIdp};

proxy_permission!(Audit = "audit");
proxy_permission!(Delete = "delete");

const GOOD: &str = "mock-dev-token";
const FORBIDDEN: &str = "mock-forbidden-token";

fn app(layer: ProxyUserLayer) -> Router {
    Router::new()
        .route(
            "/v1/me",
            get(|user: CurrentUser| async move { axum::Json(json!({"email": user.email, "extra": user.extra})) }),
        )
        .route(
            "/v1/maybe",
            get(|user: Option<CurrentUser>| async move {
                user.and_then(|u| u.email.clone()).unwrap_or_else(|| "anonymous".into())
            }),
        )
        .route("/v1/audit", get(|_: Permitted<Audit>| async { "audit" }))
        .route("/v1/delete", get(|_: Permitted<Delete>| async { "delete" }))
        .route(
            "/v1/admin",
            get(|p: tower_authkit::Principal| async move { p.roles().join(",") })
                .route_layer(tower_authkit::RequireRole::new("admin")),
        )
        .route(
            "/v1/layer-audit",
            get(|| async { "layer audit" }).route_layer(RequireProxyPermission::new("audit").unwrap()),
        )
        .layer(layer)
}

fn layer(idp: &TestIdp) -> ProxyUserLayer {
    ProxyUserLayer::builder().upstream_url(idp.issuer()).build().unwrap()
}

async fn get_with(app: &Router, path: &str, token: Option<&str>) -> Reply {
    common::get(app, path, token).await
}

#[tokio::test]
async fn extractors_map_missing_invalid_denied_and_upstream_failures() {
    let idp = TestIdp::start().await;
    let app = app(layer(&idp));
    // CurrentUser: 401 missing/invalid, 200 valid (unknown fields kept).
    assert_eq!(get_with(&app, "/v1/me", None).await.status, 401);
    assert_eq!(get_with(&app, "/v1/me", Some("nope")).await.status, 401);
    let me = get_with(&app, "/v1/me", Some(GOOD)).await;
    assert_eq!(me.status, 200, "{me:?}");
    assert_eq!(me.json()["email"], "mock.user@example.com");
    assert_eq!(me.json()["extra"]["x_unmodelled_field"]["kept"], true);
    // Roles map onto the principal, so RequireRole works unchanged.
    assert_eq!(get_with(&app, "/v1/admin", Some(GOOD)).await.body, "admin");
    // Option<CurrentUser>: None for missing/invalid.
    assert_eq!(get_with(&app, "/v1/maybe", None).await.body, "anonymous");
    assert_eq!(get_with(&app, "/v1/maybe", Some("nope")).await.body, "anonymous");
    assert_eq!(
        get_with(&app, "/v1/maybe", Some(GOOD)).await.body,
        "mock.user@example.com"
    );
    // Permissions: extractor and layer forms.
    assert_eq!(get_with(&app, "/v1/audit", Some(GOOD)).await.status, 200);
    assert_eq!(get_with(&app, "/v1/layer-audit", Some(GOOD)).await.status, 200);
    assert_eq!(get_with(&app, "/v1/delete", Some(GOOD)).await.status, 403);
    assert_eq!(get_with(&app, "/v1/audit", Some(FORBIDDEN)).await.status, 403);
    assert_eq!(get_with(&app, "/v1/layer-audit", Some(FORBIDDEN)).await.status, 403);
    assert_eq!(get_with(&app, "/v1/audit", None).await.status, 401);
    assert_eq!(get_with(&app, "/v1/layer-audit", Some("nope")).await.status, 401);
}

#[tokio::test]
async fn an_unreachable_upstream_is_503_with_retry_after() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let app = app(ProxyUserLayer::builder()
        .upstream_url(format!("http://127.0.0.1:{port}"))
        .build()
        .unwrap());
    let reply = get_with(&app, "/v1/me", Some(GOOD)).await;
    assert_eq!(reply.status, 503, "{reply:?}");
    assert_eq!(reply.json()["error"], "temporarily_unavailable");
    assert_eq!(reply.headers["retry-after"], "1");
    // Repeats during the backoff say the time left.
    let again = get_with(&app, "/v1/me", Some(GOOD)).await;
    assert_eq!(again.status, 503);
    assert_eq!(again.headers["retry-after"], "1");
}

#[tokio::test]
async fn upstream_failures_are_502_and_damped_not_cached() {
    let idp = TestIdp::start().await;
    let app = app(layer(&idp));
    idp.set_failure(IdpFailure::Error);
    for path in ["/v1/me", "/v1/maybe", "/v1/audit", "/v1/layer-audit"] {
        let reply = get_with(&app, path, Some(GOOD)).await;
        assert_eq!(reply.status, 502, "{path}: {reply:?}");
        assert_eq!(reply.json()["error"], "upstream_error");
    }
    // While it keeps failing, the upstream is asked about once a second for
    // this token, not once per request.
    let calls = idp.proxy_me_calls();
    let (reply, sent) = common::get_until(&app, "/v1/me", Some(GOOD), 200, Duration::from_secs(2)).await;
    assert_eq!(reply.status, 502);
    let asked = idp.proxy_me_calls() - calls;
    assert!(
        sent > 40 && asked <= 3,
        "{sent} requests asked the upstream {asked} times"
    );
    // Once it answers again, the next attempt succeeds: failures were not
    // cached as verdicts, and the first request after recovery is served
    // within about a second.
    idp.set_failure(IdpFailure::None);
    let calls = idp.proxy_me_calls();
    let started = std::time::Instant::now();
    let (reply, _) = common::get_until(&app, "/v1/me", Some(GOOD), 200, Duration::from_secs(3)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(idp.proxy_me_calls(), calls + 1, "one call after recovery");
    // A permission answer that failed is asked again too, after its backoff.
    idp.set_failure(IdpFailure::Error);
    assert_eq!(get_with(&app, "/v1/audit", Some(GOOD)).await.status, 502);
    idp.set_failure(IdpFailure::None);
    let (reply, _) = common::get_until(&app, "/v1/audit", Some(GOOD), 200, Duration::from_secs(3)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
}

#[tokio::test]
async fn the_cookie_is_a_fallback_for_the_header() {
    let idp = TestIdp::start().await;
    let app = app(layer(&idp));
    let request = Request::get("/v1/me")
        .header("cookie", format!("theme=dark; OxaigenPlatformAuthAccessToken={GOOD}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(common::send(&app, request).await.status, 200);
    // The header wins over the cookie.
    let request = Request::get("/v1/me")
        .header("authorization", "Bearer nope")
        .header("cookie", format!("OxaigenPlatformAuthAccessToken={GOOD}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(common::send(&app, request).await.status, 401);
}

#[tokio::test]
async fn answers_are_cached_and_invalid_tokens_reasked_after_five_seconds() {
    let idp = TestIdp::start().await;
    let app = app(layer(&idp));
    assert_eq!(get_with(&app, "/v1/audit", Some(GOOD)).await.status, 200);
    assert_eq!(get_with(&app, "/v1/audit", Some(GOOD)).await.status, 200);
    assert_eq!(
        (idp.proxy_me_calls(), idp.proxy_permission_calls()),
        (1, 1),
        "second request served from cache"
    );
    // Invalid tokens: negative cache with the default 5 s.
    assert_eq!(get_with(&app, "/v1/me", Some("bad-token")).await.status, 401);
    assert_eq!(get_with(&app, "/v1/me", Some("bad-token")).await.status, 401);
    assert_eq!(idp.proxy_me_calls(), 2);
    tokio::time::sleep(Duration::from_millis(5300)).await;
    assert_eq!(get_with(&app, "/v1/me", Some("bad-token")).await.status, 401);
    assert_eq!(idp.proxy_me_calls(), 3, "asked again once the negative entry expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_for_a_new_token_share_one_call() {
    let idp = TestIdp::start().await;
    let app = app(layer(&idp));
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            get_with(&app, "/v1/me", Some(GOOD)).await.status
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
    assert_eq!(idp.proxy_me_calls(), 1);
}

async fn with_host(app: &Router, host: &str, forwarded: Option<&str>) -> Reply {
    let mut request = Request::get("/v1/me")
        .header("host", host)
        .header("authorization", format!("Bearer {GOOD}"));
    if let Some(forwarded) = forwarded {
        request = request.header("x-forwarded-host", forwarded);
    }
    common::send(app, request.body(Body::empty()).unwrap()).await
}

#[tokio::test]
async fn hosts_outside_the_allowlist_never_reach_the_network() {
    let idp = TestIdp::start().await;
    let allowed = idp.addr().to_string();
    let app = app(ProxyUserLayer::builder()
        .allowed_hosts([allowed.as_str()])
        .scheme("http")
        .build()
        .unwrap());
    // An attacker-controlled host: refused without any call.
    let evil = with_host(&app, "evil.example:8765", None).await;
    assert_eq!(evil.status, 400, "{evil:?}");
    assert_eq!(idp.proxy_me_calls(), 0);
    // X-Forwarded-Host is not believed unless trusted.
    assert_eq!(with_host(&app, &allowed, Some("evil.example")).await.status, 200);
    assert_eq!(idp.proxy_me_calls(), 1);
    let trusting = self::app(
        ProxyUserLayer::builder()
            .allowed_hosts([allowed.as_str()])
            .scheme("http")
            .trust_forwarded_headers(true)
            .build()
            .unwrap(),
    );
    assert_eq!(with_host(&trusting, &allowed, Some("evil.example")).await.status, 400);
    assert_eq!(with_host(&trusting, "evil.example", Some(&allowed)).await.status, 200);
    assert_eq!(idp.proxy_me_calls(), 2);
}

#[tokio::test]
async fn strict_mode_blocks_in_the_layer_with_grpc_statuses() {
    let idp = TestIdp::start().await;
    let strict = ProxyUserLayer::builder()
        .upstream_url(idp.issuer())
        .strict()
        .build()
        .unwrap();
    let app = Router::new().route("/any", get(|| async { "reached" })).layer(strict);
    assert_eq!(get_with(&app, "/any", None).await.status, 401);
    assert_eq!(get_with(&app, "/any", Some(GOOD)).await.body, "reached");
    let grpc = Request::post("/any")
        .header("content-type", "application/grpc")
        .body(Body::empty())
        .unwrap();
    let reply = common::send(&app, grpc).await;
    assert_eq!(
        (reply.status.as_u16(), reply.headers["grpc-status"].to_str().unwrap()),
        (200, "16")
    );
    // A token not cached yet, with the upstream down: UNAVAILABLE.
    idp.set_failure(IdpFailure::Error);
    let grpc = Request::post("/any")
        .header("content-type", "application/grpc")
        .header("authorization", format!("Bearer {FORBIDDEN}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(common::send(&app, grpc).await.headers["grpc-status"], "14");
}

#[tokio::test]
async fn close_shuts_the_client_down() {
    let idp = TestIdp::start().await;
    let layer = layer(&idp);
    let auth = layer.authenticator().clone();
    let app = app(layer);
    assert_eq!(get_with(&app, "/v1/me", Some(GOOD)).await.status, 200);
    auth.close();
    let reply = get_with(&app, "/v1/me", Some(GOOD)).await;
    assert_eq!(reply.status, 503, "{reply:?}");
    let _: Value = reply.json();
}
