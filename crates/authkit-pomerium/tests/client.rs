//! Pomerium client: sign-in, re-authentication, scope, cache and the three
//! client integrations (hyper via the tower layer, tonic, reqwest), against
//! the test kit's fake Pomerium route; plus one sign-in in headless Chromium.

use std::convert::Infallible;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http::{Request, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_authkit_pomerium::{
    BlockingPomeriumClient, PomeriumClient, PomeriumClientError, PomeriumClientLayer, PomeriumClientMiddleware,
    PomeriumClientService,
};
use tower_authkit_testing::FakePomerium;

type HyperClient<B> = PomeriumClientService<Client<hyper_util::client::legacy::connect::HttpConnector, B>>;

fn auth_for(route: &FakePomerium) -> PomeriumClient {
    PomeriumClient::builder().opener(route.auto_sign_in()).build().unwrap()
}

fn hyper_client<B>(auth: &PomeriumClient) -> HyperClient<B>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
{
    let client = Client::builder(TokioExecutor::new()).build_http::<B>();
    ServiceBuilder::new().layer(auth.layer()).service(client)
}

async fn send(
    client: &mut HyperClient<Full<Bytes>>,
    method: &str,
    url: &str,
    body: &str,
) -> Result<(StatusCode, String), PomeriumClientError> {
    let request = Request::builder()
        .method(method)
        .uri(url)
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let response = client.ready().await?.call(request).await?;
    let status = response.status();
    let text = response.into_body().collect().await.unwrap().to_bytes();
    Ok((status, String::from_utf8_lossy(&text).into_owned()))
}

#[tokio::test]
async fn first_request_signs_in_and_later_ones_reuse_the_token() {
    let route = FakePomerium::start().await;
    let auth = auth_for(&route);
    let mut client = hyper_client(&auth);

    let (status, body) = send(&mut client, "GET", &route.url("/hello"), "").await.unwrap();
    assert_eq!((status, body.as_str()), (StatusCode::OK, "GET /hello body="));
    assert_eq!((route.logins(), route.sign_ins()), (1, 1));

    let (status, _) = send(&mut client, "GET", &route.url("/again"), "").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(route.logins(), 1, "token reused");
}

#[tokio::test]
async fn concurrent_requests_share_one_sign_in() {
    let route = FakePomerium::start().await;
    let auth = auth_for(&route);
    let client = hyper_client::<Full<Bytes>>(&auth);
    let requests = (0..8).map(|i| {
        let mut client = client.clone();
        let url = route.url(&format!("/item/{i}"));
        async move { send(&mut client, "GET", &url, "").await }
    });
    let results = futures_util::future::join_all(requests).await;
    for result in results {
        assert_eq!(result.unwrap().0, StatusCode::OK);
    }
    assert_eq!((route.logins(), route.sign_ins()), (1, 1));
    assert_eq!(route.app_requests(), 8);
}

#[tokio::test]
async fn revoked_token_signs_in_again_and_replays_the_request() {
    let route = FakePomerium::start().await;
    let auth = auth_for(&route);
    let mut client = hyper_client(&auth);
    send(&mut client, "POST", &route.url("/items"), "first").await.unwrap();

    route.revoke_all();
    let (status, body) = send(&mut client, "POST", &route.url("/items"), "second").await.unwrap();
    assert_eq!((status, body.as_str()), (StatusCode::OK, "POST /items body=second"));
    assert_eq!(route.logins(), 2);
    assert_eq!(route.app_requests(), 2, "the refused attempt never reached the app");
}

#[tokio::test]
async fn a_401_also_signs_in_again() {
    let route = FakePomerium::start().await;
    route.answer_401(true);
    let auth = auth_for(&route);
    let mut client = hyper_client(&auth);
    send(&mut client, "GET", &route.url("/api"), "").await.unwrap();
    route.revoke_all();
    let (status, _) = send(&mut client, "PUT", &route.url("/api"), "x").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(route.logins(), 2);
}

#[tokio::test]
async fn replays_at_most_once() {
    let route = FakePomerium::start().await;
    let auth = auth_for(&route);
    let mut client = hyper_client(&auth);
    send(&mut client, "GET", &route.url("/"), "").await.unwrap();

    route.refuse_all(true);
    let (status, _) = send(&mut client, "GET", &route.url("/"), "").await.unwrap();
    assert_eq!(
        status,
        StatusCode::FOUND,
        "the second refusal is handed back, not retried"
    );
    assert_eq!(
        route.logins(),
        2,
        "one sign-in for the request, one for its single replay"
    );
}

#[tokio::test]
async fn forbidden_keeps_the_token() {
    let route = FakePomerium::start().await;
    let auth = auth_for(&route);
    let mut client = hyper_client(&auth);
    let (status, _) = send(&mut client, "GET", &route.url("/forbidden"), "").await.unwrap();
    assert_eq!(status, StatusCode::FORBIDDEN);
    send(&mut client, "GET", &route.url("/ok"), "").await.unwrap();
    assert_eq!(route.logins(), 1);
}

#[tokio::test]
async fn streaming_body_is_not_replayed_and_says_so() {
    type Streaming = BoxBody<Bytes, Infallible>;
    fn streaming(text: &'static str) -> Streaming {
        let chunks = stream::iter([Ok::<_, Infallible>(http_body::Frame::data(Bytes::from_static(
            text.as_bytes(),
        )))]);
        StreamBody::new(chunks).boxed()
    }
    let route = FakePomerium::start().await;
    let auth = auth_for(&route);
    let mut client = hyper_client::<Streaming>(&auth);
    let upload = |text| Request::post(route.url("/upload")).body(streaming(text)).unwrap();

    let response = client.ready().await.unwrap().call(upload("one")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "no re-auth needed: streams are fine");

    route.revoke_all();
    let error = client.ready().await.unwrap().call(upload("two")).await.unwrap_err();
    assert!(matches!(error, PomeriumClientError::BodyNotReplayable), "{error:?}");
    assert!(error.to_string().contains("cannot be replayed"), "{error}");
    assert_eq!(route.app_requests(), 1);
    assert_eq!(route.logins(), 1, "no sign-in for a request that cannot be retried");

    let response = client.ready().await.unwrap().call(upload("three")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "sending again signs in again");
    assert_eq!(route.logins(), 2);
}

#[tokio::test]
async fn hosts_outside_authenticated_domains_get_no_token() {
    let route = FakePomerium::start().await;
    let auth = PomeriumClient::builder()
        .authenticated_domains(["localhost"])
        .opener(route.auto_sign_in())
        .build()
        .unwrap();
    let mut client = hyper_client(&auth);

    let by_ip = format!("http://127.0.0.1:{}/x", route.addr().port());
    let (status, _) = send(&mut client, "GET", &by_ip, "").await.unwrap();
    assert_eq!(
        status,
        StatusCode::FOUND,
        "passed through untouched: no token, no sign-in"
    );
    assert_eq!(route.logins(), 0);

    let by_name = format!("http://localhost:{}/x", route.addr().port());
    let (status, _) = send(&mut client, "GET", &by_name, "").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(route.logins(), 1);
    let (status, _) = send(&mut client, "GET", &by_ip, "").await.unwrap();
    assert_eq!(status, StatusCode::FOUND, "the token stays with its host");
}

#[tokio::test]
async fn disk_cache_serves_the_next_client_and_drops_tokens_near_expiry() {
    let route = FakePomerium::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("pomerium");
    let cached = || {
        PomeriumClient::builder()
            .cache_dir(&cache_dir)
            .opener(route.auto_sign_in())
            .build()
            .unwrap()
    };
    send(&mut hyper_client(&cached()), "GET", &route.url("/"), "")
        .await
        .unwrap();
    send(&mut hyper_client(&cached()), "GET", &route.url("/"), "")
        .await
        .unwrap();
    assert_eq!(route.logins(), 1, "the second client read the token from disk");

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let file = std::fs::read_dir(&cache_dir).unwrap().next().unwrap().unwrap().path();
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(
            std::fs::metadata(&cache_dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }

    route.revoke_all();
    route.token_ttl(Duration::from_secs(30)); // inside the 60 s margin
    send(&mut hyper_client(&cached()), "GET", &route.url("/"), "")
        .await
        .unwrap();
    assert_eq!(route.logins(), 2, "the revoked cached token was replaced");
    send(&mut hyper_client(&cached()), "GET", &route.url("/"), "")
        .await
        .unwrap();
    assert_eq!(
        route.logins(),
        3,
        "a cached token expiring within 60 s is dropped, not used"
    );
}

#[tokio::test]
async fn a_refused_token_is_replaced_by_one_another_client_cached() {
    let route = FakePomerium::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cached = || {
        PomeriumClient::builder()
            .cache_dir(dir.path())
            .opener(route.auto_sign_in())
            .build()
            .unwrap()
    };
    let (mut first, mut second) = (hyper_client(&cached()), hyper_client(&cached()));
    send(&mut first, "GET", &route.url("/"), "").await.unwrap();
    send(&mut second, "GET", &route.url("/"), "").await.unwrap();
    assert_eq!(route.logins(), 1, "both hold the same token");

    route.revoke_all();
    send(&mut first, "GET", &route.url("/"), "").await.unwrap(); // signs in again, caches
    let (status, _) = send(&mut second, "POST", &route.url("/"), "x").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        route.logins(),
        2,
        "the second client took the first one's new token from disk"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn symlinked_cache_dir_is_refused() {
    let route = FakePomerium::start().await;
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    std::fs::create_dir(&real).unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let auth = PomeriumClient::builder()
        .cache_dir(&link)
        .opener(route.auto_sign_in())
        .build()
        .unwrap();
    let error = send(&mut hyper_client(&auth), "GET", &route.url("/"), "")
        .await
        .unwrap_err();
    assert!(matches!(error, PomeriumClientError::Cache(_)), "{error:?}");
    assert!(error.to_string().contains("symlink"), "{error}");
    assert_eq!(route.logins(), 0);
}

#[tokio::test]
async fn sign_in_timeout_is_a_clear_error() {
    let route = FakePomerium::start().await;
    let opened = Arc::new(AtomicUsize::new(0));
    let seen = opened.clone();
    let auth = PomeriumClient::builder()
        .opener(move |_| {
            seen.fetch_add(1, Ordering::SeqCst);
            Ok(()) // the user never signs in
        })
        .login_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let error = send(&mut hyper_client(&auth), "GET", &route.url("/"), "")
        .await
        .unwrap_err();
    assert!(matches!(error, PomeriumClientError::LoginTimeout(_)), "{error:?}");
    assert_eq!(error.to_string(), "sign-in did not complete within 300ms");
    assert_eq!(opened.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_opener_that_panics_ends_the_sign_in_at_once() {
    let route = FakePomerium::start().await;
    let auth = PomeriumClient::builder()
        .opener(|_| panic!("the opener broke"))
        .login_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let error = tokio::time::timeout(
        Duration::from_secs(10),
        send(&mut hyper_client(&auth), "GET", &route.url("/"), ""),
    )
    .await
    .expect("the sign-in did not wait for a callback nobody can send")
    .unwrap_err();
    assert!(matches!(error, PomeriumClientError::SignInNotShown(_)), "{error:?}");
    assert_eq!(error.to_string(), "could not show the sign-in URL: the opener panicked");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(route.sign_ins(), 0);
}

#[tokio::test]
async fn a_non_https_sign_in_url_is_never_opened() {
    let route = FakePomerium::start().await;
    route.sign_in_url("http://authenticate.example.com/.pomerium/sign_in");
    let opened = Arc::new(AtomicUsize::new(0));
    let seen = opened.clone();
    let auth = PomeriumClient::builder()
        .opener(move |_| {
            seen.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .build()
        .unwrap();
    let error = send(&mut hyper_client(&auth), "GET", &route.url("/"), "")
        .await
        .unwrap_err();
    assert!(matches!(error, PomeriumClientError::BadSignInUrl { .. }), "{error:?}");
    assert_eq!(opened.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn grpc_through_pomerium_with_a_tonic_channel() {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let grpc = tonic::service::Routes::new(health).into_axum_router();
    let route = FakePomerium::start_with(grpc).await;
    let auth = auth_for(&route);

    let channel = tonic::transport::Endpoint::from_shared(route.origin().to_owned())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let layer = PomeriumClientLayer::with_origin(auth, route.origin()).unwrap();
    let mut health = HealthClient::new(ServiceBuilder::new().layer(layer).service(channel));
    let check = || tonic::Request::new(HealthCheckRequest { service: String::new() });

    let status = health.check(check()).await.unwrap().into_inner().status;
    assert_eq!(status, ServingStatus::Serving as i32);
    assert_eq!(route.logins(), 1);

    // gRPC bodies are streams: after a revocation the call fails clearly and
    // the next one signs in again.
    route.revoke_all();
    let error = health.check(check()).await.unwrap_err();
    assert!(error.message().contains("cannot be replayed"), "{error:?}");
    let status = health.check(check()).await.unwrap().into_inner().status;
    assert_eq!(status, ServingStatus::Serving as i32);
    assert_eq!(route.logins(), 2);
}

#[tokio::test]
async fn reqwest_middleware_signs_in_and_replays_after_a_followed_redirect() {
    let route = FakePomerium::start().await;
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new()) // follows redirects
        .with(PomeriumClientMiddleware::new(auth_for(&route)))
        .build();
    let response = client.post(route.url("/notes")).body("a").send().await.unwrap();
    assert_eq!(response.text().await.unwrap(), "POST /notes body=a");

    route.revoke_all();
    let response = client.post(route.url("/notes")).body("b").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "POST /notes body=b");
    assert_eq!(route.logins(), 2);
}

#[test]
fn blocking_client_signs_in_without_an_async_caller() {
    let server = tokio::runtime::Runtime::new().unwrap();
    let route = server.block_on(FakePomerium::start());
    let auth = BlockingPomeriumClient::new(auth_for(&route)).unwrap();
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let response = auth
        .execute(&client, client.get(route.url("/sync")).build().unwrap())
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().unwrap(), "GET /sync body=");
    route.revoke_all();
    let request = client.put(route.url("/sync")).body("again").build().unwrap();
    assert_eq!(
        auth.execute(&client, request).unwrap().text().unwrap(),
        "PUT /sync body=again"
    );
    assert_eq!(route.logins(), 2);

    let header = auth.authorization(&route.url("/").parse().unwrap()).unwrap().unwrap();
    assert!(header.to_str().unwrap().starts_with("Pomerium "));
    assert!(header.is_sensitive());
}

#[tokio::test]
async fn blocking_client_refuses_async_callers() {
    let auth = BlockingPomeriumClient::new(PomeriumClient::builder().build().unwrap()).unwrap();
    let error = auth
        .authorization(&"https://app.example.com/".parse().unwrap())
        .unwrap_err();
    assert!(matches!(error, PomeriumClientError::AsyncContext));
    std::mem::forget(auth); // a runtime cannot be dropped inside another
}

/// The whole flow in a real browser: headless Chromium loads the sign-in
/// URL, follows the redirect to our listener and renders its page.
#[tokio::test]
async fn headless_chromium_completes_the_sign_in() {
    let chromium = std::env::var("AUTHKIT_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "{chromium} not found: install it with `apt-get install -y chromium` (scripts/test.sh does)"
    );
    let route = FakePomerium::start().await;
    let profile = tempfile::tempdir().unwrap();
    let profile_dir = profile.path().to_owned();
    let (dom_tx, dom_rx) = std::sync::mpsc::channel::<String>();
    let dom_tx = std::sync::Mutex::new(dom_tx);
    let auth = PomeriumClient::builder()
        .opener(move |url| {
            let output = Command::new(&chromium)
                .args([
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--timeout=20000",
                ])
                .arg(format!("--user-data-dir={}", profile_dir.display()))
                .arg("--dump-dom")
                .arg(url)
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output()?;
            let _ = dom_tx
                .lock()
                .unwrap()
                .send(String::from_utf8_lossy(&output.stdout).into_owned());
            Ok(())
        })
        .login_timeout(Duration::from_secs(60))
        .build()
        .unwrap();

    let (status, body) = send(&mut hyper_client(&auth), "GET", &route.url("/browser"), "")
        .await
        .unwrap();
    assert_eq!((status, body.as_str()), (StatusCode::OK, "GET /browser body="));
    assert_eq!(route.sign_ins(), 1);
    let dom = tokio::task::spawn_blocking(move || dom_rx.recv_timeout(Duration::from_secs(30)))
        .await
        .unwrap()
        .expect("chromium exits after loading the page");
    assert!(dom.contains("Signed in, you can close this window."), "{dom}");
}

/// A Pomerium route over TLS offering HTTP/2 by ALPN, behind a private CA
/// (tests/fixtures/tls, made by scripts/gen_tls_fixtures.sh). Records the
/// HTTP version of each login request.
mod tls_route {
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::extract::{Query, State};
    use axum::http::{HeaderMap, StatusCode, Version, header};
    use axum::response::{IntoResponse, Response};
    use axum::routing::get;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::service::TowerToHyperService;
    use tokio_rustls::TlsAcceptor;
    use tokio_rustls::rustls::{self, pki_types::pem::PemObject};

    pub const CA: &[u8] = include_bytes!("fixtures/tls/ca.pem");
    const TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ0bHMifQ.c2ln";

    #[derive(Clone)]
    struct Route {
        origin: String,
        login_versions: Arc<Mutex<Vec<Version>>>,
    }

    pub async fn start() -> (String, Arc<Mutex<Vec<Version>>>) {
        let certs = rustls::pki_types::CertificateDer::pem_slice_iter(include_bytes!("fixtures/tls/localhost.pem"))
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key =
            rustls::pki_types::PrivateKeyDer::from_pem_slice(include_bytes!("fixtures/tls/localhost.key")).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let route = Route {
            origin: format!("https://127.0.0.1:{}", listener.local_addr().unwrap().port()),
            login_versions: Arc::default(),
        };
        let versions = route.login_versions.clone();
        let origin = route.origin.clone();
        let app = Router::new()
            .route("/.pomerium/api/v1/login", get(login))
            .route("/.pomerium/sign_in", get(sign_in))
            .fallback(protected)
            .with_state(route);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else { return };
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app))
                        .await;
                });
            }
        });
        (origin, versions)
    }

    async fn login(
        State(route): State<Route>,
        version: Version,
        Query(query): Query<std::collections::HashMap<String, String>>,
    ) -> String {
        route.login_versions.lock().unwrap().push(version);
        let back = form_urlencoded::Serializer::new(String::new())
            .append_pair("pomerium_redirect_uri", &query["pomerium_redirect_uri"])
            .finish();
        format!("{}/.pomerium/sign_in?{back}", route.origin)
    }

    async fn sign_in(Query(query): Query<std::collections::HashMap<String, String>>) -> Response {
        let location = format!("{}?pomerium_jwt={TOKEN}", query["pomerium_redirect_uri"]);
        (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
    }

    async fn protected(State(route): State<Route>, version: Version, headers: HeaderMap) -> Response {
        if headers
            .get(header::AUTHORIZATION)
            .is_some_and(|v| v == format!("Pomerium {TOKEN}").as_str())
        {
            format!("{version:?}").into_response()
        } else {
            let location = format!("{}/.pomerium/sign_in", route.origin);
            (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
        }
    }
}

#[tokio::test]
async fn login_uses_http2_when_the_route_offers_it() {
    let (origin, login_versions) = tls_route::start().await;
    let ca = reqwest::Certificate::from_pem(tls_route::CA).unwrap();
    let trusting = reqwest::Client::builder().tls_certs_merge([ca]).build().unwrap();
    let user = trusting.clone();
    let auth = PomeriumClient::builder()
        .root_certificate(tls_route::CA)
        .opener(move |url| {
            let (user, url) = (user.clone(), url.to_owned());
            tokio::runtime::Handle::current().spawn(async move { user.get(url).send().await });
            Ok(())
        })
        .build()
        .unwrap();
    let client = reqwest_middleware::ClientBuilder::new(trusting)
        .with(PomeriumClientMiddleware::new(auth))
        .build();

    let response = client.get(format!("{origin}/api")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "HTTP/2.0");
    assert_eq!(*login_versions.lock().unwrap(), [http::Version::HTTP_2]);
}

#[tokio::test]
async fn an_untrusted_route_certificate_fails_the_login_clearly() {
    let (origin, login_versions) = tls_route::start().await;
    let auth = PomeriumClient::builder().opener(|_| Ok(())).build().unwrap(); // no private CA
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(PomeriumClientMiddleware::new(auth))
        .build();
    let error = client.get(format!("{origin}/api")).send().await.unwrap_err();
    assert!(
        error
            .to_string()
            .ends_with("login endpoint of 127.0.0.1 failed: TLS failure: certificate not trusted or invalid"),
        "{error}"
    );
    assert!(login_versions.lock().unwrap().is_empty());
}
