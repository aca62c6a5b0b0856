//! The `authkit-dev-server` binary as a user starts it: it binds the port
//! it is given, prints its readiness line, and serves OpenID discovery for
//! the issuer it names. (Its CORS behaviour and the flows that use it are
//! tested with the examples, in the workspace root's `tests/examples.rs`.)

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Killed when the test ends, pass or fail.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_dev_server_starts_on_the_given_port_and_serves_discovery() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_authkit-dev-server"))
        .env("AUTHKIT_DEV_PORT", "0")
        .env("AUTHKIT_DEV_POMERIUM_PORT", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
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
        .expect("the readiness line within 30 s");
    let response = reqwest::get(format!("{base}/.well-known/openid-configuration"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let document: serde_json::Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(document["issuer"], base.as_str());
    assert!(document["jwks_uri"].as_str().is_some_and(|uri| uri.starts_with(&base)));

    // Development only: the token endpoint issues the roles and scopes asked for.
    let token_endpoint = document["token_endpoint"].as_str().unwrap();
    let answer: serde_json::Value = reqwest::Client::new()
        .post(token_endpoint)
        .basic_auth("dev-client", Some("dev-secret"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&scope=articles%3Aread&roles=editor+reviewer")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .map(|body| serde_json::from_str(&body).unwrap())
        .unwrap();
    let token = answer["access_token"].as_str().unwrap();
    let payload = token.split('.').nth(1).unwrap();
    use base64::Engine;
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["roles"], serde_json::json!(["editor", "reviewer"]));
    assert_eq!(claims["scope"], "articles:read");
}
