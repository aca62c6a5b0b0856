//! Does a flood of sign-ins starve other requests? Serves a router with a
//! public `/health` and a `/login` that checks an Argon2id password through
//! `SignIn`, then measures `/health` latency alone and while 20 clients sign
//! in as fast as they can. Prints median and p99 of each.
//!
//! ```sh
//! cargo bench -p tower-authkit-benches --bench login_flood
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::routing::{get, post};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower_authkit::session::SignIn;
use tower_authkit::session::store::{MemoryStore, SessionStore};

const FLOODERS: usize = 20;
const PROBES: usize = 200;

#[derive(Clone)]
struct App {
    sign_in: SignIn,
    hash: Arc<str>,
}

#[derive(serde::Deserialize)]
struct Login {
    password: String,
}

async fn login(State(app): State<App>, Query(login): Query<Login>) -> StatusCode {
    match app
        .sign_in
        .check("alice@example.com", None, &login.password, Some(&app.hash))
        .await
    {
        Ok(()) => StatusCode::NO_CONTENT,
        Err(_) => StatusCode::UNAUTHORIZED,
    }
}

type HttpClient = Client<HttpConnector, Body>;

async fn send(client: &HttpClient, request: Request<Body>) -> StatusCode {
    let response = tokio::time::timeout(Duration::from_secs(10), client.request(request))
        .await
        .expect("bounded")
        .expect("request");
    let status = response.status();
    let _ = response.into_body().collect().await;
    status
}

async fn probe(client: &HttpClient, base: &str) -> (Duration, Duration) {
    let mut latencies = Vec::with_capacity(PROBES);
    for _ in 0..PROBES {
        let started = Instant::now();
        let request = Request::get(format!("{base}/health")).body(Body::empty()).unwrap();
        assert_eq!(send(client, request).await, StatusCode::OK);
        latencies.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    latencies.sort();
    (latencies[PROBES / 2], latencies[PROBES * 99 / 100])
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new());
        let sign_in = SignIn::new(store).account_attempts(u64::MAX);
        let hash: Arc<str> = sign_in.passwords().hash("correct horse").await.unwrap().into();
        let app = Router::new()
            .route("/health", get(|| async { "ok" }))
            .route("/login", post(login))
            .with_state(App { sign_in, hash });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();

        let (median, p99) = probe(&client, &base).await;
        println!("/health alone:                median {median:?}, p99 {p99:?}");

        let stop = Arc::new(AtomicBool::new(false));
        let signed_in = Arc::new(AtomicUsize::new(0));
        let mut flooders = Vec::new();
        for _ in 0..FLOODERS {
            let (client, base, stop, signed_in) = (client.clone(), base.clone(), stop.clone(), signed_in.clone());
            flooders.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let request = Request::post(format!("{base}/login?password=correct%20horse"))
                        .body(Body::empty())
                        .unwrap();
                    if send(&client, request).await == StatusCode::NO_CONTENT {
                        signed_in.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let started = Instant::now();
        let (median, p99) = probe(&client, &base).await;
        let elapsed = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        for flooder in flooders {
            let _ = tokio::time::timeout(Duration::from_secs(30), flooder).await;
        }
        println!(
            "/health during {FLOODERS} sign-in loops: median {median:?}, p99 {p99:?} \
             ({} sign-ins completed, {:.1}/s)",
            signed_in.load(Ordering::Relaxed),
            signed_in.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64()
        );
    });
}
