//! The auth and authorization layers around a real tonic server, called by a
//! real tonic client over loopback.

use std::time::Duration;

use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Code, Request};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tower::ServiceBuilder;
use tower_authkit::RequireRole;
use tower_authkit_testing::{IdpFailure, TestIdp};

/// Starts a gRPC health service behind `JwksAuthLayer` + `RequireRole("admin")`.
async fn start_server(idp: &TestIdp) -> String {
    let auth = idp
        .auth_builder()
        .key_cache(
            tower_authkit::jwt::KeyCache::default()
                .http_retries(0)
                .retry_failed_fetch_after(Duration::from_millis(100)),
        )
        .build()
        .unwrap();
    let (_reporter, health) = tonic_health::server::health_reporter();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let layers = ServiceBuilder::new().layer(auth).layer(RequireRole::new("admin"));
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .layer(layers)
            .add_service(health)
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    url
}

async fn check(url: &str, token: Option<&str>) -> Result<(), tonic::Status> {
    let channel = tonic::transport::Channel::from_shared(url.to_owned())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = HealthClient::new(channel);
    let mut request = Request::new(HealthCheckRequest { service: String::new() });
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    client.check(request).await.map(|_| ())
}

#[tokio::test]
async fn grpc_statuses_for_missing_forbidden_and_allowed() {
    let idp = TestIdp::start().await;
    let url = start_server(&idp).await;

    let missing = check(&url, None).await.unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated);
    assert_eq!(missing.message(), "authentication required");

    let invalid = check(&url, Some(&idp.token().expired_for(Duration::from_secs(600)).sign()))
        .await
        .unwrap_err();
    assert_eq!(invalid.code(), Code::Unauthenticated);
    assert_eq!(invalid.message(), "token expired");

    let user = idp.token().roles(["user"]).sign();
    assert_eq!(
        check(&url, Some(&user)).await.unwrap_err().code(),
        Code::PermissionDenied
    );

    let admin = idp.token().roles(["admin"]).sign();
    check(&url, Some(&admin)).await.unwrap();
}

#[tokio::test]
async fn grpc_unavailable_when_keys_cannot_be_fetched() {
    let idp = TestIdp::start().await;
    idp.set_failure(IdpFailure::Error);
    let url = start_server(&idp).await;
    let admin = idp.token().roles(["admin"]).sign();
    let status = check(&url, Some(&admin)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
}
