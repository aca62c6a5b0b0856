//! Debian's chromium, driven through chromedriver's WebDriver HTTP API (no
//! client crate: a handful of JSON calls).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use super::Running;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One headless browser session. End it with [`Browser::quit`]; dropped,
/// only chromedriver is stopped.
pub struct Browser {
    client: reqwest::Client,
    /// `http://127.0.0.1:{port}/session/{id}`.
    session: String,
    _driver: Running,
}

fn json_body(request: reqwest::RequestBuilder, body: &Value) -> reqwest::RequestBuilder {
    request
        .header("content-type", "application/json")
        .body(serde_json::to_vec(body).unwrap())
}

impl Browser {
    /// Starts chromedriver and a headless chromium with the empty profile `profile`.
    pub async fn start(profile: &Path) -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = std::env::var("AUTHKIT_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".to_owned());
        let child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{driver}: {e} (scripts/test.sh installs chromium-driver)"));
        let running = Running(child);
        let client = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let chromium = std::env::var("AUTHKIT_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        }}});
        for _ in 0..100 {
            let request = client.post(format!("{base}/session"));
            if let Ok(response) = json_body(request, &capabilities).send().await {
                let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
                let id = body["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("{body}"));
                return Browser {
                    session: format!("{base}/session/{id}"),
                    client,
                    _driver: running,
                };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not answer within 10 s");
    }

    async fn call(&self, method: Method, path: &str, body: Value) -> Value {
        let request = self.client.request(method, format!("{}{path}", self.session));
        let request = if body.is_null() {
            request
        } else {
            json_body(request, &body)
        };
        let answer: Value = serde_json::from_slice(&request.send().await.unwrap().bytes().await.unwrap()).unwrap();
        answer["value"].clone()
    }

    /// Navigates to `url`.
    pub async fn open(&self, url: &str) {
        self.call(Method::POST, "/url", json!({"url": url})).await;
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        let url = self.call(Method::GET, "/url", Value::Null).await;
        url.as_str().unwrap_or_default().to_owned()
    }

    /// Waits (up to 10 s) until the current URL is `url`; returns the last one seen.
    pub async fn wait_for_url(&self, url: &str) -> String {
        let mut seen = String::new();
        for _ in 0..100 {
            seen = self.url().await;
            if seen == url {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        seen
    }

    async fn element(&self, css: &str) -> String {
        let found = self
            .call(Method::POST, "/element", json!({"using": "css selector", "value": css}))
            .await;
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("{css}: {found}"))
            .to_owned()
    }

    /// Types `text` into the element `css`.
    pub async fn type_into(&self, css: &str, text: &str) {
        let element = self.element(css).await;
        self.call(
            Method::POST,
            &format!("/element/{element}/value"),
            json!({"text": text}),
        )
        .await;
    }

    /// Clicks the element `css`.
    pub async fn click(&self, css: &str) {
        let element = self.element(css).await;
        self.call(Method::POST, &format!("/element/{element}/click"), json!({}))
            .await;
    }

    /// The text of the element `css`.
    pub async fn text(&self, css: &str) -> String {
        let element = self.element(css).await;
        let text = self
            .call(Method::GET, &format!("/element/{element}/text"), Value::Null)
            .await;
        text.as_str().unwrap_or_default().to_owned()
    }

    /// Waits (up to 10 s) until the element `css` has text `wanted`; returns the last text seen.
    pub async fn wait_for_text(&self, css: &str, wanted: &str) -> String {
        let mut seen = String::new();
        for _ in 0..100 {
            seen = self.text(css).await;
            if seen == wanted {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        seen
    }

    /// Ends the browser session (closing chromium), then chromedriver.
    pub async fn quit(self) {
        let _ = self.client.delete(&self.session).send().await;
    }

    /// Signs in through the portal's form, which the browser is on.
    pub async fn fill_sign_in_form(&self, email: &str, password: &str) {
        self.type_into("#email", email).await;
        self.type_into("#password", password).await;
        self.click("#submit").await;
    }
}
