//! The ingress's cost on loopback: the same request straight to a service
//! and through an in-process ingress (session cookie checked, group checked,
//! headers rewritten, body streamed by `ServiceProxy`), each driven by 32
//! concurrent connections for a fixed time, one after the other in one run.
//! More rows split the cost: the session layer answering by itself (no
//! forwarding), a bare hyper-util proxy (the floor of any proxy on this
//! client), and `ServiceProxy` forwarding without a session layer.
//! Prints p50 and p99 latency and requests per second of each.
//!
//! ```sh
//! cargo bench -p tower-authkit-benches --bench ingress
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use authkit_ingress::{Destination, Forwarded, Identity, Limits, ServiceProxy};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::IntoResponse;
use axum::routing::{any, get, post};
use http::StatusCode;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower::ServiceExt;
use tower_authkit::Principal;
use tower_authkit::session::{Session, SessionLayer};

const CONNECTIONS: usize = 32;
const DURATION: Duration = Duration::from_secs(5);

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[derive(Clone)]
struct Ingress {
    proxy: ServiceProxy,
    wiki: Arc<Destination>,
}

async fn enter(State(ingress): State<Ingress>, principal: Principal, request: Request) -> axum::response::Response {
    if !principal.has_group("staff") {
        return StatusCode::FORBIDDEN.into_response();
    }
    forward_as(&ingress, request, principal.subject(), principal.groups()).await
}

async fn forward_as(ingress: &Ingress, request: Request, user: &str, groups: &[String]) -> axum::response::Response {
    let identity = Identity { user, groups };
    let forwarded = Forwarded {
        client: "127.0.0.1".parse().unwrap(),
        proto: "http",
        host: None,
    };
    ingress
        .proxy
        .forward(&ingress.wiki, request, identity, forwarded, "authkit_session")
        .await
        .into_response()
}

/// The floor: what a bare hyper-util proxy (URI rewritten, nothing else:
/// no header hygiene, limits or timeout) costs on the same client.
async fn bare_forward(
    State((client, service)): State<(HttpClient, SocketAddr)>,
    request: Request,
) -> axum::response::Response {
    let (mut parts, body) = request.into_parts();
    let rest = parts.uri.path().trim_start_matches("/s/wiki/").to_owned();
    parts.uri = format!("http://{service}/app/{rest}").parse().unwrap();
    match client.request(http::Request::from_parts(parts, body)).await {
        Ok(response) => response.into_response(),
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}

/// `ServiceProxy` alone: a fixed identity, no session layer.
async fn enter_anonymous(State(ingress): State<Ingress>, request: Request) -> axum::response::Response {
    forward_as(&ingress, request, "alice", &["staff".to_owned()]).await
}

type HttpClient = Client<HttpConnector, Body>;

/// 32 loops of sequential requests for `DURATION`: (p50, p99, requests/s).
async fn drive(client: &HttpClient, url: String, cookie: Option<String>) -> (Duration, Duration, f64) {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let (client, url, cookie) = (client.clone(), url.clone(), cookie.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while started.elapsed() < DURATION {
                let mut request = http::Request::get(&url);
                if let Some(cookie) = &cookie {
                    request = request.header("cookie", cookie);
                }
                let sent = Instant::now();
                let response = client.request(request.body(Body::empty()).unwrap()).await.unwrap();
                assert_eq!(response.status(), 200);
                let _ = response.into_body().collect().await.unwrap();
                latencies.push(sent.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed();
    all.sort();
    (
        all[all.len() / 2],
        all[all.len() * 99 / 100],
        all.len() as f64 / elapsed.as_secs_f64(),
    )
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let service = serve(Router::new().route("/app/page", get(|| async { "a small page of the service" }))).await;
        let sessions_layer = SessionLayer::builder()
            .key(b"benchmark signing key, at least 32 bytes long".to_vec())
            .secure(false)
            .build()
            .unwrap();
        let ingress = Ingress {
            proxy: ServiceProxy::new(Limits::default()),
            wiki: Arc::new(Destination::parse("wiki", &format!("http://{service}/app/")).unwrap()),
        };
        let app = Router::new()
            .route("/s/wiki/{*rest}", any(enter))
            .with_state(ingress)
            .route(
                "/login",
                post(|session: Session| async move {
                    session.login(
                        Principal::builder("session", "alice")
                            .groups(vec!["staff".into()])
                            .build(),
                    );
                }),
            )
            .layer(sessions_layer.clone().public_path("/login"));
        let response = app
            .clone()
            .oneshot(http::Request::post("/login").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let cookie = response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let ingress = serve(app).await;
        let sessions_only = serve(
            Router::new()
                .route(
                    "/s/wiki/page",
                    get(|principal: Principal| async move {
                        if principal.has_group("staff") {
                            "a small page of the service".into_response()
                        } else {
                            StatusCode::FORBIDDEN.into_response()
                        }
                    }),
                )
                .layer(sessions_layer.clone()),
        )
        .await;
        let proxy_only = serve(
            Router::new()
                .route("/s/wiki/{*rest}", any(enter_anonymous))
                .with_state(Ingress {
                    proxy: ServiceProxy::new(Limits::default()),
                    wiki: Arc::new(Destination::parse("wiki", &format!("http://{service}/app/")).unwrap()),
                }),
        )
        .await;
        let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
        let bare = serve(
            Router::new()
                .route("/s/wiki/{*rest}", any(bare_forward))
                .with_state((Client::builder(TokioExecutor::new()).build_http(), service)),
        )
        .await;

        let direct = drive(&client, format!("http://{service}/app/page"), None).await;
        let rows = [
            ("direct", direct),
            (
                "session layer only",
                drive(
                    &client,
                    format!("http://{sessions_only}/s/wiki/page"),
                    Some(cookie.clone()),
                )
                .await,
            ),
            (
                "bare hyper-util proxy (floor)",
                drive(&client, format!("http://{bare}/s/wiki/page"), None).await,
            ),
            (
                "ServiceProxy only",
                drive(&client, format!("http://{proxy_only}/s/wiki/page"), None).await,
            ),
            (
                "through the ingress",
                drive(&client, format!("http://{ingress}/s/wiki/page"), Some(cookie)).await,
            ),
        ];
        println!("| | p50 | p99 | req/s | added p50 | % of direct |");
        println!("|---|---|---|---|---|---|");
        for (name, (p50, p99, rps)) in rows {
            println!(
                "| {name} | {p50:?} | {p99:?} | {rps:.0} | {:?} | {:.0} % |",
                p50.saturating_sub(direct.0),
                100.0 * rps / direct.2
            );
        }
    });
}
