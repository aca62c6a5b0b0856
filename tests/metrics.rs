//! Metrics through the `metrics` facade and the authentication events,
//! after a scripted mix of requests: the counts, and no secret in any
//! label or event field. One test: the recorder and subscriber are global.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tower_authkit::Principal;
use tower_authkit::jwt::JwksAuthLayer;
use tower_authkit_testing::TestIdp;

use common::Captured;

/// `name{label=value,...}` → value, for counters, gauges and histogram sample counts.
fn snapshot(snapshotter: &metrics_util::debugging::Snapshotter) -> HashMap<String, f64> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let (_, key) = key.into_parts();
            let mut labels: Vec<String> = key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
            labels.sort();
            let name = format!("{}{{{}}}", key.name(), labels.join(","));
            let value = match value {
                DebugValue::Counter(n) => n as f64,
                DebugValue::Gauge(g) => g.into_inner(),
                DebugValue::Histogram(samples) => samples.len() as f64,
            };
            (name, value)
        })
        .collect()
}

#[tokio::test]
async fn a_scripted_mix_of_requests_is_counted_with_fixed_labels_and_no_secrets() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().expect("the only recorder of this test binary");
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .init();

    let idp = TestIdp::start().await;
    let layer = idp.auth_builder().build().unwrap();
    layer.authenticator().ready().await.unwrap();
    let app = Router::new()
        .route("/me", get(|p: Principal| async move { p.subject().to_owned() }))
        .layer::<JwksAuthLayer>(layer);
    let valid = idp.token().sub("secret-subject-7").sign();
    let expired = idp.token().expired_for(Duration::from_secs(600)).sign();
    let script: [(Option<&str>, u16); 6] = [
        (Some(&valid), 200),
        (Some(&valid), 200), // admitted to the cache
        (Some(&valid), 200), // a hit
        (Some(&expired), 401),
        (Some("abc.def.ghi"), 401),
        (None, 401),
    ];
    for (token, status) in script {
        assert_eq!(common::get(&app, "/me", token).await.status, status);
    }

    let metrics = snapshot(&snapshotter);
    let issuer = idp.issuer();
    let expected = [
        (
            "authkit_authentications_total{outcome=authenticated,provider=jwks,reason=none}".to_owned(),
            3.0,
        ),
        (
            "authkit_authentications_total{outcome=rejected,provider=jwks,reason=invalid_token}".to_owned(),
            2.0,
        ),
        (
            "authkit_authentications_total{outcome=rejected,provider=jwks,reason=missing_token}".to_owned(),
            1.0,
        ),
        ("authkit_token_cache_lookups_total{result=hit}".to_owned(), 1.0),
        ("authkit_token_cache_lookups_total{result=miss}".to_owned(), 4.0),
        ("authkit_token_cache_entries{}".to_owned(), 1.0),
        (
            format!("authkit_key_set_fetches_total{{issuer={issuer},result=ok}}"),
            1.0,
        ),
        // Discovery, then the key set.
        (
            "authkit_upstream_request_duration_seconds{result=ok,upstream=jwks}".to_owned(),
            2.0,
        ),
    ];
    for (name, value) in &expected {
        assert_eq!(metrics.get(name), Some(value), "{name} in {metrics:#?}");
    }
    assert_eq!(metrics.len(), expected.len(), "no other series: {metrics:#?}");

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("provider=\"jwks\" outcome=\"authenticated\" reason=\"none\""),
        "{logs}"
    );
    assert!(logs.contains("outcome=\"rejected\" reason=\"invalid_token\""), "{logs}");
    for secret in [valid.as_str(), expired.as_str(), "secret-subject-7"] {
        assert!(!logs.contains(secret), "a token or subject in the logs");
        assert!(
            metrics.keys().all(|name| !name.contains(secret)),
            "a token or subject in a label"
        );
    }
}
