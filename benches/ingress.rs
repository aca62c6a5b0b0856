//! The ingress's cost on loopback: the same request straight to a service
//! and through an in-process ingress (session cookie checked, group checked,
//! headers rewritten, body streamed by `ServiceProxy`), each driven by 32
//! concurrent connections for a fixed time, one after the other in one run.
//! Prints p50 and p99 latency and requests per second of both.
//!
//! ```sh
//! cargo bench --bench ingress --features ingress,session
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::IntoResponse;
use axum::routing::{any, get, post};
use http::StatusCode;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower::ServiceExt;
use tower_authkit::Principal;
use tower_authkit::ingress::{Destination, Forwarded, Identity, Limits, ServiceProxy};
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

async fn enter(
    State(ingress): State<Ingress>,
    principal: Principal,
    Path(rest): Path<String>,
    request: Request,
) -> axum::response::Response {
    if !principal.has_group("staff") {
        return StatusCode::FORBIDDEN.into_response();
    }
    ingress
        .proxy
        .forward(
            &ingress.wiki,
            &rest,
            request,
            Identity {
                user: principal.subject(),
                groups: principal.groups(),
            },
            Forwarded {
                client: "127.0.0.1".parse().unwrap(),
                proto: "http",
                host: None,
            },
            "authkit_session",
        )
        .await
        .into_response()
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
        let sessions = SessionLayer::builder()
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
            .layer(sessions.public_path("/login"));
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
        let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();

        let (p50, p99, rps) = drive(&client, format!("http://{service}/app/page"), None).await;
        println!("direct:          p50 {p50:?}, p99 {p99:?}, {rps:.0} req/s");
        let (ip50, ip99, irps) = drive(&client, format!("http://{ingress}/s/wiki/page"), Some(cookie)).await;
        println!("through ingress: p50 {ip50:?}, p99 {ip99:?}, {irps:.0} req/s");
        println!(
            "added: p50 {:?}, p99 {:?}; throughput {:.0} % of direct",
            ip50.saturating_sub(p50),
            ip99.saturating_sub(p99),
            100.0 * irps / rps
        );
    });
}
