//! `examples/ingress.rs` as a user runs it: start-up refusals, group checks
//! re-evaluated per request, identity headers, and the portal's routes.

mod process;

use std::net::SocketAddr;
use std::process::{Command, Stdio};

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::any;
use process::visitor::Visitor;
use process::{example, start};
use serde_json::{Value, json};

const KEY: &str = "ingress test key: long enough for the session layer";
const USERS: &str = "admin@example.com:admin-pass:admin:staff,user@example.com:user-pass::guests";

/// A downstream that echoes the headers it received.
async fn echo() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().fallback(any(|uri: axum::http::Uri, headers: HeaderMap| async move {
        let headers: serde_json::Map<String, Value> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or("?"))))
            .collect();
        axum::Json(json!({"path": uri.to_string(), "headers": headers}))
    }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[test]
fn public_or_unsafe_destinations_stop_the_program_naming_the_service() {
    for services in [
        "wiki=https://example.com/|staff",
        "wiki=http://user:pw@127.0.0.1:9/|staff",
        "wiki=http://127.0.0.1:9/?q=1|staff",
    ] {
        let output = Command::new(example("ingress"))
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
    let (_ingress, base) = start(
        "ingress",
        &[
            ("AUTHKIT_SESSION_KEY", KEY),
            ("AUTHKIT_DEMO_USERS", USERS),
            ("AUTHKIT_SECURE_COOKIES", "false"),
            ("AUTHKIT_INGRESS_SERVICES", services.as_str()),
        ],
    );
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
