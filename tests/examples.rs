//! The examples are contracts: run them as a user would.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tower_authkit::testing::TestIdp;

/// `target/<profile>/examples/<name>`, built by `cargo test` alongside the tests.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is not built: run the whole suite (`cargo test` builds examples), or `cargo build --examples` first",
        path.display()
    );
    path
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn quickstart_walks_through_and_exits_zero() {
    let output = Command::new(example("quickstart")).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("-> 401"), "{stdout}");
    assert!(stdout.contains("-> 403"), "{stdout}");
    assert!(stdout.contains("hello, alice"), "{stdout}");
}

#[test]
fn resource_server_names_the_missing_variable() {
    for (set, missing) in [
        (None, "AUTHKIT_ISSUER"),
        (
            Some(("AUTHKIT_ISSUER", "https://idp.example")),
            "AUTHKIT_AUDIENCE",
        ),
    ] {
        let mut command = Command::new(example("resource_server"));
        command
            .env_remove("AUTHKIT_ISSUER")
            .env_remove("AUTHKIT_AUDIENCE");
        if let Some((name, value)) = set {
            command.env(name, value);
        }
        let output = command.output().unwrap();
        assert!(!output.status.success());
        assert!(String::from_utf8_lossy(&output.stderr).contains(missing));
    }
}

#[tokio::test]
async fn resource_server_serves_its_routes() {
    let idp = TestIdp::start().await;
    let mut child = Command::new(example("resource_server"))
        .env("AUTHKIT_ISSUER", idp.issuer())
        .env("AUTHKIT_AUDIENCE", idp.audience())
        .env("AUTHKIT_JWKS_TTL", "60")
        .env("AUTHKIT_REFRESH_COOLDOWN", "5")
        .env("AUTHKIT_BIND", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let server = Running(child);
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("listening on ") {
                let _ = sender.send(url.to_owned());
                return;
            }
        }
    });
    let base = receiver
        .recv_timeout(Duration::from_secs(30))
        .expect("readiness line");
    let client = reqwest::Client::new();
    let call = |path: &str, token: Option<String>| {
        let mut request = client.get(format!("{base}{path}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let started = Instant::now();
    assert_eq!(call("/health", None).await, (200, "ok".to_owned()));
    assert_eq!(call("/me", None).await.0, 401);
    let user = idp
        .token()
        .sub("u1")
        .email("u1@example.com")
        .roles(["user"])
        .groups(["team-a"])
        .scope("reports:read")
        .sign();
    let (status, body) = call("/me", Some(user.clone())).await;
    assert_eq!(status, 200, "{body}");
    let me: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(me["sub"], "u1");
    assert_eq!(me["email"], "u1@example.com");
    assert_eq!(me["roles"], serde_json::json!(["user"]));
    assert_eq!(me["groups"], serde_json::json!(["team-a"]));
    assert_eq!(me["scopes"], serde_json::json!(["reports:read"]));
    assert_eq!(call("/admin", Some(user.clone())).await.0, 403);
    assert_eq!(call("/team", Some(user.clone())).await.0, 200);
    assert_eq!(call("/reports", Some(user)).await.0, 200);
    let admin = idp.token().roles(["admin"]).sign();
    assert_eq!(call("/admin", Some(admin.clone())).await.0, 200);
    assert_eq!(call("/team", Some(admin.clone())).await.0, 403);
    assert_eq!(call("/reports", Some(admin)).await.0, 403);
    assert!(started.elapsed() < Duration::from_secs(30));
    drop(server);
}
