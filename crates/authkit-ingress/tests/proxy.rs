//! The ingress pieces against a real downstream HTTP server on loopback:
//! header hygiene end to end, limits, failures with correlation ids, and
//! redirect and cookie rewriting.

use std::net::SocketAddr;
use std::time::Duration;

use authkit_ingress::{
    Destination, Forwarded, Identity, Limits, ServiceProxy, Standing, WebSocketPolicy, is_websocket_upgrade,
};
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// A downstream service: echoes what it received, or misbehaves on request.
async fn downstream() -> SocketAddr {
    serve(
        Router::new()
            .route(
                "/base/echo",
                any(|headers: HeaderMap, body: axum::body::Bytes| async move {
                    let headers: serde_json::Map<String, Value> = headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or("?"))))
                        .collect();
                    axum::Json(json!({"headers": headers, "body_len": body.len()}))
                }),
            )
            .route(
                "/base/big/{bytes}",
                get(|Path(bytes): Path<usize>| async move { vec![b'x'; bytes] }),
            )
            .route(
                "/base/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "late"
                }),
            )
            .route(
                "/base/redirect",
                get(|State(origin): State<String>| async move {
                    (StatusCode::FOUND, [("location", format!("{origin}/base/next"))]).into_response()
                }),
            )
            .route(
                "/base/cookie",
                get(|| async { ([("set-cookie", "sid=downstream; Path=/; HttpOnly")], "ok") }),
            )
            .with_state(String::new()),
    )
    .await
}

/// The downstream again, knowing its own origin (for absolute redirects).
async fn downstream_with_origin() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route(
            "/base/redirect",
            get(|State(origin): State<String>| async move {
                (StatusCode::FOUND, [("location", format!("{origin}/base/next"))]).into_response()
            }),
        )
        .with_state(format!("http://{addr}"));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn ingress(destination: Destination, limits: Limits) -> Router {
    let proxy = ServiceProxy::new(limits);
    Router::new().route(
        "/s/{name}/{*rest}",
        any(move |request: Request<Body>| {
            let (proxy, destination) = (proxy.clone(), destination.clone());
            async move {
                let groups = vec!["staff".to_owned()];
                let identity = Identity {
                    user: "alice@example.com",
                    groups: &groups,
                };
                let forwarded = Forwarded {
                    client: "127.0.0.1".parse().unwrap(),
                    proto: "http",
                    host: Some("portal.test"),
                };
                let cookie = "authkit_session";
                if is_websocket_upgrade(&request) {
                    let policy = WebSocketPolicy::default();
                    let check = || async { Standing::Allowed };
                    return proxy
                        .forward_websocket(&destination, request, identity, forwarded, cookie, policy, check)
                        .await
                        .into_response();
                }
                proxy
                    .forward(&destination, request, identity, forwarded, cookie)
                    .await
                    .into_response()
            }
        }),
    )
}

async fn call(app: &Router, request: Request<Body>) -> (StatusCode, HeaderMap, Result<Vec<u8>, String>) {
    let response: Response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .map_err(|e| e.to_string());
    (status, headers, body)
}

fn destination(addr: SocketAddr) -> Destination {
    Destination::parse("wiki", &format!("http://{addr}/base/")).unwrap()
}

#[tokio::test]
async fn credentials_and_spoofed_identity_never_reach_the_service() {
    let app = ingress(destination(downstream().await), Limits::default());
    let request = Request::post("/s/wiki/echo?x=1")
        .header("authorization", "Bearer secret-token")
        .header("cookie", "authkit_session=SIGNED-SESSION; theme=dark")
        .header("x-authkit-user", "admin@example.com")
        .header("x-authkit-groups", "admins")
        .header("x-forwarded-for", "6.6.6.6")
        .header("connection", "x-hop")
        .header("x-hop", "1")
        .body(Body::from("hello"))
        .unwrap();
    let (status, _, body) = call(&app, request).await;
    assert_eq!(status, 200);
    let seen: Value = serde_json::from_slice(&body.unwrap()).unwrap();
    let headers = &seen["headers"];
    assert_eq!(headers["x-authkit-user"], "alice@example.com");
    assert_eq!(headers["x-authkit-groups"], "staff");
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(headers["x-forwarded-host"], "portal.test");
    assert_eq!(headers["cookie"], "theme=dark");
    assert!(headers.get("authorization").is_none());
    assert!(headers.get("x-hop").is_none());
    assert_eq!(seen["body_len"], 5, "the body is forwarded");
    let text = serde_json::to_string(&seen).unwrap();
    assert!(!text.contains("SIGNED-SESSION") && !text.contains("secret-token"));
}

#[tokio::test]
async fn bodies_over_the_limits_are_refused_or_cut_never_truncated_silently() {
    let limits = Limits {
        max_request_bytes: 1024,
        max_response_bytes: 64 * 1024,
        ..Limits::default()
    };
    let app = ingress(destination(downstream().await), limits);
    // Declared too large: 413 before anything is sent.
    let (status, _, _) = call(
        &app,
        Request::post("/s/wiki/echo")
            .body(Body::from(vec![b'a'; 4096]))
            .unwrap(),
    )
    .await;
    assert_eq!(status, 413);
    // Streamed (no length) and too large: 413 as well.
    let chunks = futures_util::stream::iter((0..8).map(|_| Ok::<_, std::io::Error>(vec![b'a'; 512])));
    let (status, _, _) = call(
        &app,
        Request::post("/s/wiki/echo").body(Body::from_stream(chunks)).unwrap(),
    )
    .await;
    assert_eq!(status, 413);
    // Within the limits: passes.
    let (status, _, body) = call(&app, Request::get("/s/wiki/big/60000").body(Body::empty()).unwrap()).await;
    assert_eq!((status.as_u16(), body.unwrap().len()), (200, 60000));
    // A response over the limit: the body fails instead of ending early.
    let (status, _, body) = call(&app, Request::get("/s/wiki/big/200000").body(Body::empty()).unwrap()).await;
    assert_eq!(status, 200, "the headers were already on their way");
    assert!(body.is_err(), "the body is cut with an error, not a short success");
}

#[tokio::test]
async fn unreachable_and_slow_services_are_502_and_504_with_a_correlation_id() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let refused = ingress(destination(closed), Limits::default());
    let (status, headers, body) = call(&refused, Request::get("/s/wiki/echo").body(Body::empty()).unwrap()).await;
    assert_eq!(status, 502);
    let id = headers["x-request-id"].to_str().unwrap().to_owned();
    let page = String::from_utf8(body.unwrap()).unwrap();
    assert!(page.contains(&id), "{page}");
    assert!(
        !page.contains("127.0.0.1") && !page.to_lowercase().contains("connect"),
        "no downstream details: {page}"
    );

    let slow = ingress(
        destination(downstream().await),
        Limits {
            timeout: Duration::from_millis(300),
            ..Limits::default()
        },
    );
    let started = std::time::Instant::now();
    let (status, headers, _) = call(&slow, Request::get("/s/wiki/slow").body(Body::empty()).unwrap()).await;
    assert_eq!(status, 504);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(headers["x-request-id"].len(), 16);
}

#[tokio::test]
async fn own_redirects_and_cookies_are_moved_under_the_service_prefix() {
    let app = ingress(destination(downstream_with_origin().await), Limits::default());
    let (status, headers, _) = call(&app, Request::get("/s/wiki/redirect").body(Body::empty()).unwrap()).await;
    assert_eq!(status, 302);
    assert_eq!(headers["location"], "/s/wiki/next");
    let app = ingress(destination(downstream().await), Limits::default());
    let (_, headers, _) = call(&app, Request::get("/s/wiki/cookie").body(Body::empty()).unwrap()).await;
    let cookie = headers["set-cookie"].to_str().unwrap();
    assert!(
        cookie.contains("sid=downstream") && cookie.contains("Path=/s/wiki/"),
        "{cookie}"
    );
}

fn upgrade(path: &str) -> Request<Body> {
    Request::get(path)
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("sec-websocket-extensions", "permessage-deflate; client_max_window_bits")
        .header("cookie", "authkit_session=SIGNED-SESSION")
        .header("x-authkit-user", "admin@example.com")
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn websocket_handshakes_get_the_same_hygiene_and_ask_for_no_extensions() {
    let app = ingress(destination(downstream().await), Limits::default());
    // The echo route is no WebSocket: its 200 comes back as a plain response.
    let (status, _, body) = call(&app, upgrade("/s/wiki/echo")).await;
    assert_eq!(status, StatusCode::OK);
    let seen: Value = serde_json::from_slice(&body.unwrap()).unwrap();
    let headers = &seen["headers"];
    assert_eq!(headers["connection"], "upgrade");
    assert_eq!(headers["upgrade"], "websocket");
    assert_eq!(headers["sec-websocket-key"], "dGhlIHNhbXBsZSBub25jZQ==");
    assert!(
        headers.get("sec-websocket-extensions").is_none(),
        "the relay offers no extensions"
    );
    assert_eq!(headers["x-authkit-user"], "alice@example.com");
    assert!(headers.get("cookie").is_none());
}

#[tokio::test]
async fn websocket_handshakes_to_an_unreachable_service_get_502_with_a_request_id() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let app = ingress(destination(addr), Limits::default());
    let (status, headers, body) = call(&app, upgrade("/s/wiki/ws")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    let id = headers["x-request-id"].to_str().unwrap();
    assert!(String::from_utf8(body.unwrap()).unwrap().contains(id));
}
