//! The README's "build your own" ingress runs as written: the README holds
//! `examples/own_ingress.rs` verbatim, and that program, started as a user
//! starts it, signs a user in and lets them into the wiki.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::any;

const EXAMPLE: &str = include_str!("../examples/own_ingress.rs");
const README: &str = include_str!("../README.md");

#[test]
fn the_readme_holds_the_example_verbatim() {
    // The file after its opening comment.
    let start = EXAMPLE.find("\nuse ").expect("the example's imports") + 1;
    let code = &EXAMPLE[start..];
    assert!(
        README.contains(code),
        "README.md's snippet and examples/own_ingress.rs differ"
    );
}

/// Killed when the test ends, pass or fail.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `target/<profile>/examples/own_ingress`, built by `cargo test`.
fn example() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile = exe.parent().and_then(|deps| deps.parent()).unwrap();
    profile.join("examples").join("own_ingress")
}

/// A wiki that answers with the user the ingress asserted.
async fn wiki() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let echo = |headers: HeaderMap| async move {
        let user = headers
            .get("x-authkit-user")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("nobody");
        format!("wiki page for {user}")
    };
    tokio::spawn(async move { axum::serve(listener, Router::new().fallback(any(echo))).await.unwrap() });
    addr
}

#[tokio::test]
async fn the_readme_ingress_signs_people_in_and_lets_them_into_the_wiki() {
    let wiki = wiki().await;
    let mut child = Command::new(example())
        .env("SESSION_KEY", "a readme test key of at least 32 bytes")
        .env("WIKI_URL", format!("http://{wiki}/"))
        .env("BIND", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .spawn()
        .expect(
            "examples/own_ingress is built by `cargo test` (alone: `cargo build -p authkit-ingress --examples` first)",
        );
    let stdout = child.stdout.take().unwrap();
    let _running = Running(child);
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(base) = line.strip_prefix("listening on ") {
                let _ = sender.send(base.to_owned());
                return;
            }
        }
    });
    let base = receiver
        .recv_timeout(Duration::from_secs(30))
        .expect("the readiness line");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |path: &str, cookie: Option<&str>| {
        let mut request = client.get(format!("{base}{path}")).header("accept", "text/html");
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request.send()
    };
    // A signed-out visit goes to the login page.
    let signed_out = get("/s/wiki/page", None).await.unwrap();
    assert_eq!(signed_out.status(), 303);
    assert!(signed_out.headers()["location"].to_str().unwrap().starts_with("/login"));
    // The login page it redirects to exists, and signing in gives a cookie.
    assert_eq!(get("/login", None).await.unwrap().status(), 200);
    let signed_in = client.post(format!("{base}/login")).send().await.unwrap();
    assert_eq!(signed_in.status(), 303);
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    // The bare service path moves under the service's slash.
    let bare = get("/s/wiki", Some(&cookie)).await.unwrap();
    let location = bare.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!((bare.status().as_u16(), location.as_str()), (308, "/s/wiki/"));
    let page = get("/s/wiki/page", Some(&cookie)).await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.text().await.unwrap(), "wiki page for alice@example.com");
}
