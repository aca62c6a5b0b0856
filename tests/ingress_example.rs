//! `authkit-ingress serve` (the ingress crate's binary) as an operator runs it: start-up refusals, group checks
//! re-evaluated per request, identity headers, the portal's routes, and
//! WebSockets (relayed, closed when access ends), from a client and from a
//! real browser.

mod process;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ws::{self, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::Html;
use axum::routing::{any, get};
use futures_util::{SinkExt, StreamExt};
use process::visitor::Visitor;
use process::webdriver::Browser;
use process::{Running, start_ingress, workspace_binary};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const KEY: &str = "ingress test key: long enough for the session layer";
const USERS: &str = "admin@example.com:admin-pass:admin:staff,user@example.com:user-pass::guests";

/// A page that opens a WebSocket back to its own service (`ws`, relative)
/// and shows what the service says: first whom it sees, then the echo.
const CHAT_PAGE: &str = r#"<!doctype html><html><body><p id="status">connecting</p><p id="echo"></p>
<script>
const url = new URL("ws", location.href);
url.protocol = url.protocol.replace("http", "ws");
const socket = new WebSocket(url);
let first = true;
socket.onopen = () => { document.getElementById("status").textContent = "open"; };
socket.onmessage = (event) => {
  if (first) { first = false; socket.send("hello from " + event.data); return; }
  document.getElementById("echo").textContent = event.data;
};
socket.onclose = (event) => { document.getElementById("status").textContent = "closed " + event.code; };
</script></body></html>"#;

/// A downstream: `/app/ws` is a WebSocket that first sends the
/// `X-Authkit-User` it was opened with, then echoes; `/app/chat` the page
/// above; anything else echoes the request's path and headers as JSON.
async fn echo() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route(
            "/app/ws",
            get(|upgrade: WebSocketUpgrade, headers: HeaderMap| async move {
                let user = headers
                    .get("x-authkit-user")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("nobody")
                    .to_owned();
                upgrade.on_upgrade(move |mut socket| async move {
                    if socket.send(ws::Message::Text(user.into())).await.is_err() {
                        return;
                    }
                    while let Some(Ok(message)) = socket.recv().await {
                        let echo = matches!(message, ws::Message::Text(_) | ws::Message::Binary(_));
                        if echo && socket.send(message).await.is_err() {
                            return;
                        }
                    }
                })
            }),
        )
        .route("/app/chat", get(|| async { Html(CHAT_PAGE) }))
        .fallback(any(|uri: axum::http::Uri, headers: HeaderMap| async move {
            let headers: serde_json::Map<String, Value> = headers
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or("?"))))
                .collect();
            axum::Json(json!({"path": uri.to_string(), "headers": headers}))
        }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens `path` of the ingress at `base` as a WebSocket with `cookie` (and
/// `Origin: base`, as a browser on the portal's pages would send); the
/// refusal's status when the handshake is refused.
async fn open(base: &str, path: &str, cookie: Option<String>, origin: Option<&str>) -> Result<Socket, u16> {
    let url = format!("{}{path}", base.replacen("http://", "ws://", 1));
    let mut request = url.into_client_request().unwrap();
    if let Some(cookie) = cookie {
        request.headers_mut().insert("cookie", cookie.parse().unwrap());
    }
    request
        .headers_mut()
        .insert("origin", origin.unwrap_or(base).parse().unwrap());
    match tokio::time::timeout(Duration::from_secs(10), tokio_tungstenite::connect_async(request)).await {
        Ok(Ok((socket, _))) => Ok(socket),
        Ok(Err(tungstenite::Error::Http(response))) => Err(response.status().as_u16()),
        Ok(Err(error)) => panic!("{path}: {error}"),
        Err(_) => panic!("{path}: no handshake answer within 10 s"),
    }
}

/// The next text message, within 10 s.
async fn next_text(socket: &mut Socket) -> String {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await {
            Ok(Some(Ok(tungstenite::Message::Text(text)))) => return text.to_string(),
            Ok(Some(Ok(tungstenite::Message::Ping(_) | tungstenite::Message::Pong(_)))) => continue,
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

/// Waits up to `within` for the close frame; its code, and how long it took.
async fn closed(socket: &mut Socket, within: Duration) -> (Option<u16>, Duration) {
    let began = Instant::now();
    let code = tokio::time::timeout(within, async {
        while let Some(message) = socket.next().await {
            match message {
                Ok(tungstenite::Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
        None
    })
    .await
    .unwrap_or_else(|_| panic!("not closed within {within:?}"));
    (code, began.elapsed())
}

/// Within one check interval (5 s) and some slack for a loaded machine.
const CLOSE_BOUND: Duration = Duration::from_secs(8);

#[test]
fn public_or_unsafe_destinations_stop_the_program_naming_the_service() {
    for services in [
        "wiki=https://example.com/|staff",
        "wiki=http://user:pw@127.0.0.1:9/|staff",
        "wiki=http://127.0.0.1:9/?q=1|staff",
    ] {
        let output = Command::new(workspace_binary("authkit-ingress"))
            .arg("serve")
            .env("AUTHKIT_BIND", "127.0.0.1:0")
            .env("AUTHKIT_SESSION_KEY", KEY)
            .env("AUTHKIT_INGRESS_SERVICES", services)
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert!(!output.status.success(), "{services}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("\"wiki\""), "{services}: {stderr}");
    }
}

#[tokio::test]
async fn users_enter_services_by_group_with_the_identity_asserted_downstream() {
    let downstream = echo().await;
    let services = format!("wiki=http://{downstream}/app/|staff");
    let (_ingress, base) = start_ingress(&[
        ("AUTHKIT_SESSION_KEY", KEY),
        ("AUTHKIT_DEMO_USERS", USERS),
        ("AUTHKIT_SECURE_COOKIES", "false"),
        ("AUTHKIT_INGRESS_SERVICES", services.as_str()),
    ]);
    let anonymous = Visitor::new(&base);
    let html = anonymous
        .send("GET", "/s/wiki/page", None, &[("accept", "text/html")])
        .await;
    assert_eq!((html.status, html.location()), (303, "/login?next=%2Fs%2Fwiki%2Fpage"));
    assert_eq!(anonymous.get("/s/wiki/page").await.status, 401);

    let admin = Visitor::new(&base);
    assert_eq!(admin.login("admin@example.com", "admin-pass").await.status, 303);
    let home = admin.get("/").await;
    assert!(home.body.contains("href=\"/s/wiki/\""), "{}", home.body);
    assert_eq!(admin.get("/s/wiki").await.status, 308);
    assert_eq!(admin.get("/s/nowhere/").await.status, 404);
    let page = admin
        .send(
            "GET",
            "/s/wiki/docs/a?x=1",
            None,
            &[
                ("x-authkit-user", "root@example.com"),
                ("authorization", "Bearer t0ken"),
            ],
        )
        .await;
    assert_eq!(page.status, 200, "{page:?}");
    let seen = page.json();
    assert_eq!(seen["path"], "/app/docs/a?x=1");
    assert_eq!(seen["headers"]["x-authkit-user"], "admin@example.com");
    assert_eq!(seen["headers"]["x-authkit-groups"], "staff");
    assert!(seen["headers"].get("authorization").is_none());
    assert!(
        seen["headers"].get("cookie").is_none(),
        "the session cookie stays at the ingress"
    );

    // Not in the group: 403; once the admin adds the group, the next request enters.
    let user = Visitor::new(&base);
    user.login("user@example.com", "user-pass").await;
    assert!(!user.get("/").await.body.contains("/s/wiki/"));
    assert_eq!(user.get("/s/wiki/").await.status, 403);
    let changed = admin
        .send(
            "POST",
            "/admin/groups?email=user@example.com&groups=guests|staff",
            None,
            &[],
        )
        .await;
    assert_eq!(changed.status, 200, "{changed:?}");
    assert_eq!(user.get("/s/wiki/").await.status, 200);
    assert_eq!(
        user.send("POST", "/admin/groups?email=user@example.com&groups=", None, &[])
            .await
            .status,
        403
    );
    // And removed again: refused at the next request.
    admin
        .send("POST", "/admin/groups?email=user@example.com&groups=guests", None, &[])
        .await;
    assert_eq!(user.get("/s/wiki/").await.status, 403);
    // A revoke ends entry too.
    admin
        .send("POST", "/admin/revoke?email=admin@example.com", None, &[])
        .await;
    assert_eq!(admin.get("/s/wiki/").await.status, 401);
}

fn ingress(downstream: SocketAddr, extra: &[(&str, &str)]) -> (Running, String) {
    let services = format!("wiki=http://{downstream}/app/|staff");
    let mut envs = vec![
        ("AUTHKIT_SESSION_KEY", KEY),
        ("AUTHKIT_DEMO_USERS", USERS),
        ("AUTHKIT_SECURE_COOKIES", "false"),
        ("AUTHKIT_INGRESS_SERVICES", services.as_str()),
    ];
    envs.extend_from_slice(extra);
    start_ingress(&envs)
}

#[tokio::test]
async fn websockets_pass_the_same_checks_and_relay_both_ways() {
    let (_ingress, base) = ingress(echo().await, &[]);
    assert_eq!(open(&base, "/s/wiki/ws", None, None).await.err(), Some(401));
    let user = Visitor::new(&base);
    user.login("user@example.com", "user-pass").await;
    assert_eq!(
        open(&base, "/s/wiki/ws", user.cookie(), None).await.err(),
        Some(403),
        "not in staff"
    );
    let admin = Visitor::new(&base);
    admin.login("admin@example.com", "admin-pass").await;
    assert_eq!(
        open(&base, "/s/wiki/ws", admin.cookie(), Some("https://evil.example"))
            .await
            .err(),
        Some(403),
        "cross-site WebSocket hijacking"
    );
    assert_eq!(
        open(&base, "/s/nowhere/ws", admin.cookie(), None).await.err(),
        Some(404)
    );

    let mut socket = open(&base, "/s/wiki/ws", admin.cookie(), None).await.unwrap();
    assert_eq!(
        next_text(&mut socket).await,
        "admin@example.com",
        "the identity header reached the service"
    );
    for i in 0..3 {
        socket
            .send(tungstenite::Message::text(format!("message {i}")))
            .await
            .unwrap();
        assert_eq!(next_text(&mut socket).await, format!("message {i}"));
    }
    socket
        .send(tungstenite::Message::binary(vec![0u8, 159, 146, 150]))
        .await
        .unwrap();
    match tokio::time::timeout(Duration::from_secs(10), socket.next()).await {
        Ok(Some(Ok(tungstenite::Message::Binary(bytes)))) => assert_eq!(&bytes[..], &[0u8, 159, 146, 150]),
        other => panic!("{other:?}"),
    }
    socket.close(None).await.unwrap();
}

#[tokio::test]
async fn websockets_close_with_1008_when_access_ends() {
    let (_ingress, base) = ingress(echo().await, &[]);
    let admin = Visitor::new(&base);
    admin.login("admin@example.com", "admin-pass").await;
    let user = Visitor::new(&base);
    user.login("user@example.com", "user-pass").await;
    admin
        .send("POST", "/admin/groups?email=user@example.com&groups=staff", None, &[])
        .await;
    // Four connections, each ended a different way, all within one check interval.
    let revoked = Visitor::new(&base);
    revoked.login("admin@example.com", "admin-pass").await;
    let signed_out = Visitor::new(&base);
    signed_out.login("admin@example.com", "admin-pass").await;
    let disabled = Visitor::new(&base);
    disabled.login("user@example.com", "user-pass").await;
    let mut sockets = Vec::new();
    for visitor in [&user, &revoked, &signed_out, &disabled] {
        let mut socket = open(&base, "/s/wiki/ws", visitor.cookie(), None).await.unwrap();
        next_text(&mut socket).await;
        sockets.push(socket);
    }
    let [
        mut moved,
        mut revoked_socket,
        mut signed_out_socket,
        mut disabled_socket,
    ] = <[Socket; 4]>::try_from(sockets).ok().unwrap();

    // Moved out of the service's groups: closed although the session lives.
    admin
        .send("POST", "/admin/groups?email=user@example.com&groups=guests", None, &[])
        .await;
    let (code, took) = closed(&mut moved, CLOSE_BOUND).await;
    assert_eq!(code, Some(1008), "group removed, after {took:?}");

    signed_out.send("POST", "/logout", None, &[]).await;
    let (code, took) = closed(&mut signed_out_socket, CLOSE_BOUND).await;
    assert_eq!(code, Some(1008), "signed out, after {took:?}");

    admin
        .send("POST", "/admin/disable?email=user@example.com", None, &[])
        .await;
    let (code, took) = closed(&mut disabled_socket, CLOSE_BOUND).await;
    assert_eq!(code, Some(1008), "user disabled, after {took:?}");

    // Last, as it ends the admin's own session too.
    admin
        .send("POST", "/admin/revoke?email=admin@example.com", None, &[])
        .await;
    let (code, took) = closed(&mut revoked_socket, CLOSE_BOUND).await;
    assert_eq!(code, Some(1008), "revoked, after {took:?}");
}

#[tokio::test]
async fn websockets_close_at_their_lifetime() {
    let (_ingress, base) = ingress(echo().await, &[("AUTHKIT_INGRESS_WS_LIFETIME", "2")]);
    let admin = Visitor::new(&base);
    admin.login("admin@example.com", "admin-pass").await;
    let mut socket = open(&base, "/s/wiki/ws", admin.cookie(), None).await.unwrap();
    next_text(&mut socket).await;
    let (code, took) = closed(&mut socket, Duration::from_secs(10)).await;
    assert_eq!(code, Some(1008));
    assert!(took >= Duration::from_millis(1500), "closed early: {took:?}");
}

#[tokio::test]
async fn websockets_close_when_the_session_expires() {
    // A relayed WebSocket is not activity: the idle session expires under it.
    let (_ingress, base) = ingress(echo().await, &[("AUTHKIT_SESSION_IDLE", "2")]);
    let admin = Visitor::new(&base);
    admin.login("admin@example.com", "admin-pass").await;
    let mut socket = open(&base, "/s/wiki/ws", admin.cookie(), None).await.unwrap();
    next_text(&mut socket).await;
    let (code, took) = closed(&mut socket, Duration::from_secs(12)).await;
    assert_eq!(code, Some(1008), "after {took:?}");
    assert_eq!(admin.get("/s/wiki/page").await.status, 401, "the session is gone too");
}

/// The Redis the test script started.
fn redis_url() -> String {
    std::env::var("AUTHKIT_TEST_REDIS_URL")
        .expect("AUTHKIT_TEST_REDIS_URL is not set: scripts/test.sh starts a redis-server and sets it")
}

#[tokio::test]
async fn replicas_sharing_redis_share_sessions_and_close_websockets_on_revoke() {
    let downstream = echo().await;
    let url = redis_url();
    let shared = [("AUTHKIT_SESSION_STORE", url.as_str())];
    let (_a, base_a) = ingress(downstream, &shared);
    let (_b, base_b) = ingress(downstream, &shared);
    let on_a = Visitor::new(&base_a);
    assert_eq!(on_a.login("admin@example.com", "admin-pass").await.status, 303);
    // Signed in on A, entering through B.
    let mut socket = open(&base_b, "/s/wiki/ws", on_a.cookie(), None).await.unwrap();
    assert_eq!(next_text(&mut socket).await, "admin@example.com");
    let through_b = Visitor::new(&base_b);
    through_b.with_cookie(on_a.cookie());
    assert_eq!(through_b.get("/s/wiki/page").await.status, 200);
    // Revoked on A: B closes the WebSocket.
    let other_admin = Visitor::new(&base_a);
    other_admin.login("admin@example.com", "admin-pass").await;
    other_admin
        .send("POST", "/admin/revoke?email=admin@example.com", None, &[])
        .await;
    let (code, took) = closed(&mut socket, CLOSE_BOUND).await;
    assert_eq!(code, Some(1008), "after {took:?}");
    assert_eq!(through_b.get("/s/wiki/page").await.status, 401);
}

#[tokio::test]
async fn a_real_browser_signs_in_and_exchanges_a_websocket_message_through_the_ingress() {
    let (_ingress, base) = ingress(echo().await, &[]);
    let profile = tempfile::tempdir().unwrap();
    let browser = Browser::start(profile.path()).await;
    browser.open(&format!("{base}/s/wiki/chat")).await;
    let url = browser.url().await;
    assert!(url.ends_with("/login?next=%2Fs%2Fwiki%2Fchat"), "{url}");
    browser.fill_sign_in_form("admin@example.com", "admin-pass").await;
    let landed = browser.wait_for_url(&format!("{base}/s/wiki/chat")).await;
    assert_eq!(landed, format!("{base}/s/wiki/chat"), "back on the service's page");
    assert_eq!(browser.wait_for_text("#status", "open").await, "open");
    // The page sent "hello from <whom the service saw>"; the service echoed it.
    assert_eq!(
        browser.wait_for_text("#echo", "hello from admin@example.com").await,
        "hello from admin@example.com"
    );
    browser.quit().await;
}
