//! A browser-like HTTP client for tests of the example servers.

use std::sync::Mutex;

use serde_json::Value;

/// What a test needs from a response.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    pub fn location(&self) -> &str {
        self.headers.get("location").and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    pub fn set_cookie(&self) -> Option<&str> {
        self.headers.get("set-cookie").and_then(|v| v.to_str().ok())
    }
}

/// A browser-like client: keeps the session cookie, follows no redirects.
pub struct Visitor {
    base: String,
    client: reqwest::Client,
    cookie: Mutex<Option<String>>,
}

impl Visitor {
    pub fn new(base: &str) -> Self {
        Self {
            base: base.to_owned(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookie: Mutex::new(None),
        }
    }

    pub fn cookie(&self) -> Option<String> {
        self.cookie.lock().unwrap().clone()
    }

    pub fn with_cookie(&self, cookie: Option<String>) -> &Self {
        *self.cookie.lock().unwrap() = cookie;
        self
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        form: Option<&[(&str, &str)]>,
        headers: &[(&str, &str)],
    ) -> Page {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(cookie) = self.cookie() {
            request = request.header("cookie", cookie);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(form) = form {
            let body: String = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form.iter())
                .finish();
            request = request
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body);
        }
        let response = request.send().await.unwrap();
        let page = Page {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: String::new(),
        };
        let body = response.text().await.unwrap();
        let page = Page { body, ..page };
        if let Some(set) = page.set_cookie() {
            let pair = set.split(';').next().unwrap_or("").to_owned();
            let removed = pair.ends_with('=') || set.to_ascii_lowercase().contains("max-age=0");
            *self.cookie.lock().unwrap() = (!removed).then_some(pair);
        }
        page
    }

    pub async fn get(&self, path: &str) -> Page {
        self.send("GET", path, None, &[]).await
    }

    pub async fn login(&self, email: &str, password: &str) -> Page {
        self.send("POST", "/login", Some(&[("email", email), ("password", password)]), &[])
            .await
    }
}
