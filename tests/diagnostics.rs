//! What a user sees when something is misconfigured or an upstream fails:
//! log lines that name the URL and the cause, configuration errors that name
//! the setting, and readiness that reports the real fetch error. Logs are
//! captured by one global subscriber; each test looks for its own URLs.

mod common;

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tower_authkit::Principal;
use tower_authkit::jwt::JwksAuthLayer;
use tower_authkit::jwt::KeyCache;
use tower_authkit_testing::{IdpFailure, TestIdp};

use common::Captured;

/// Everything logged so far by any test of this file.
fn logs() -> String {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    let captured = CAPTURED.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || writer.clone())
            .init();
        captured
    });
    String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned()
}

/// The log lines mentioning `needle`.
fn lines_with(needle: &str) -> Vec<String> {
    logs()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_owned)
        .collect()
}

fn app(layer: JwksAuthLayer) -> Router {
    Router::new()
        .route("/me", get(|p: Principal| async move { p.subject().to_owned() }))
        .layer(layer)
}

/// A server on loopback answering every path with `app`.
async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// One request through a layer reading keys from `jwks_url`; its status.
async fn try_keys_from(idp: &TestIdp, jwks_url: &str, timeout: Duration) -> u16 {
    let layer = idp
        .auth_builder()
        .jwks_url(jwks_url)
        .http_timeout(timeout)
        .key_cache(KeyCache::default().http_retries(0).prefetch(false))
        .build()
        .unwrap();
    common::get(&app(layer), "/me", Some(&idp.token().sign()))
        .await
        .status
        .as_u16()
}

#[tokio::test]
async fn key_fetch_warnings_name_the_url_the_cause_and_what_is_served() {
    logs();
    let idp = TestIdp::start().await;
    let bad = serve(
        Router::new()
            .route(
                "/500",
                get(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "oops") }),
            )
            .route("/html", get(|| async { "<html>not a key set</html>" }))
            .route("/huge", get(|| async { "x".repeat(2 * 1024 * 1024) }))
            .route(
                "/hang",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    ""
                }),
            ),
    )
    .await;
    let refused = format!("http://127.0.0.1:{}/jwks", closed_port());
    let cases = [
        (refused.clone(), 503, "connection refused"),
        (format!("http://{bad}/500"), 502, "answered HTTP status 500"),
        (format!("http://{bad}/html"), 502, "JWKS is not valid JSON"),
        (format!("http://{bad}/huge"), 502, "response body too large"),
        (format!("http://{bad}/hang"), 503, "timed out"),
        (
            "https://keys.nonexistent.invalid/jwks".to_owned(),
            503,
            "DNS lookup failed",
        ),
        // https to a server that speaks plain HTTP: the handshake fails.
        (format!("https://{bad}/500"), 503, "TLS failure"),
    ];
    for (url, status, cause) in &cases {
        assert_eq!(
            try_keys_from(&idp, url, Duration::from_millis(500)).await,
            *status,
            "{url}"
        );
        let lines = lines_with(&format!("url={url} "));
        assert!(
            lines
                .iter()
                .any(|l| l.contains(cause) && l.contains("no usable keys") && l.contains("WARN")),
            "{url}: wanted {cause:?} in {lines:#?}"
        );
    }

    // Keys known, then the provider fails: the warning says they are served.
    let layer = idp
        .auth_builder()
        .key_cache(KeyCache::default().max_age(Duration::from_millis(300)).http_retries(0))
        .build()
        .unwrap();
    let app = app(layer);
    assert_eq!(common::get(&app, "/me", Some(&idp.token().sign())).await.status, 200);
    idp.set_failure(IdpFailure::Error);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (reply, _) = common::get_until(&app, "/me", Some(&idp.token().sign()), 0, Duration::from_millis(600)).await;
    idp.set_failure(IdpFailure::None);
    assert_eq!(reply.status, 200, "stale keys keep serving");
    let lines = lines_with(&format!("url={}/jwks ", idp.issuer()));
    assert!(
        lines
            .iter()
            .any(|l| l.contains("answered HTTP status 500") && l.contains("serving the last good keys")),
        "{lines:#?}"
    );
}

#[tokio::test]
async fn an_issuer_mismatch_shows_both_issuers() {
    logs();
    let idp = TestIdp::start().await;
    let configured = format!("{}/", idp.issuer());
    let layer = JwksAuthLayer::builder()
        .issuer(&configured)
        .audience(idp.audience())
        .build()
        .unwrap();
    let reply = common::get(&app(layer), "/me", Some(&idp.token().sign())).await;
    assert_eq!(reply.status, 502);
    let wanted = format!(
        "issuer mismatch: expected \"{configured}\", the discovery document says \"{}\"",
        idp.issuer()
    );
    let lines = lines_with(&wanted);
    assert!(
        lines.iter().any(|l| l.contains("OpenID discovery failed")),
        "{wanted}: {:#?}",
        lines_with(idp.issuer())
    );
}

#[tokio::test]
async fn ready_waits_for_keys_or_reports_the_real_error() {
    let idp = TestIdp::start().await;
    let layer = idp
        .auth_builder()
        .key_cache(KeyCache::default().prefetch(false))
        .build()
        .unwrap();
    assert!(!layer.authenticator().is_ready());
    layer.authenticator().ready().await.unwrap();
    assert!(layer.authenticator().is_ready());

    let url = format!("http://127.0.0.1:{}/jwks", closed_port());
    let down = idp
        .auth_builder()
        .jwks_url(&url)
        .key_cache(KeyCache::default().http_retries(0))
        .build()
        .unwrap();
    let error = down.authenticator().ready().await.unwrap_err();
    assert_eq!(error.source(), url);
    assert_eq!(error.cause(), "connection refused");
    assert!(!down.authenticator().is_ready());
}

#[test]
fn configuration_errors_name_the_setting_and_the_problem() {
    let build = |issuer: &str| {
        JwksAuthLayer::builder()
            .issuer(issuer)
            .audience("api")
            .build()
            .unwrap_err()
    };
    assert_eq!(
        format!("{:?}", build("http://idp.example")),
        "issuer: http://idp.example — must be https except on loopback"
    );
    assert_eq!(
        format!("{:?}", build("ftp://idp.example")),
        "issuer: ftp://idp.example — unsupported scheme \"ftp\" (https, or http on loopback)"
    );
    assert!(format!("{:?}", build("not a url")).starts_with("issuer: \"not a url\" — not a URL"));
    let missing = JwksAuthLayer::builder()
        .issuer("https://idp.example")
        .build()
        .unwrap_err();
    assert_eq!(format!("{missing:?}"), "audience: required, but not set");
    let leeway = JwksAuthLayer::builder()
        .issuer("https://idp.example")
        .audience("api")
        .leeway(Duration::from_secs(301))
        .build()
        .unwrap_err();
    assert_eq!(format!("{leeway:?}"), "leeway: 301s — at most 300 s");
    let jwks = JwksAuthLayer::builder()
        .issuer("https://idp.example")
        .audience("api")
        .jwks_url("http://keys.example/jwks")
        .build()
        .unwrap_err();
    assert_eq!(
        jwks.to_string(),
        "jwks_url: http://keys.example/jwks — must be https except on loopback"
    );
}
