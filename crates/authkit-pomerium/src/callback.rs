//! The one-shot local listener the browser is redirected to after sign-in.
//!
//! Bound to `127.0.0.1` on an ephemeral port (never configurable: another
//! interface would let the network hand us a token, a fixed port would let
//! another local program squat it) on an unguessable path. It answers any
//! number of stray requests (favicon, preconnects) with 404, and exactly one
//! request carrying `pomerium_jwt` on its path; then it stops.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::token::Token;

const SIGNED_IN_PAGE: &str = "<!doctype html><meta charset=\"utf-8\"><title>Signed in</title>\
<p>Signed in, you can close this window.</p>";
/// A connection that says nothing for this long is dropped.
const IDLE_CONNECTION: Duration = Duration::from_secs(10);

pub(crate) struct CallbackListener {
    listener: TcpListener,
    path: String,
    port: u16,
}

impl CallbackListener {
    pub(crate) async fn bind() -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let port = listener.local_addr()?.port();
        let mut secret = [0u8; 24];
        getrandom::fill(&mut secret).map_err(std::io::Error::other)?;
        let path = format!("/{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret));
        Ok(Self { listener, path, port })
    }

    /// `http://127.0.0.1:<port>/<random path>`, for `pomerium_redirect_uri`.
    pub(crate) fn redirect_uri(&self) -> String {
        format!("http://127.0.0.1:{}{}", self.port, self.path)
    }

    /// Serves until one request brings a token, then returns it once its
    /// response has been written. Dropping the future stops the listener and
    /// every connection.
    pub(crate) async fn token(self) -> Token {
        let (found, mut received) = mpsc::channel::<Token>(1);
        let path: Arc<str> = Arc::from(self.path);
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = self.listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    connections.spawn(serve(stream, path.clone(), found.clone()));
                }
                Some(token) = received.recv() => return token,
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    }
}

/// One connection, one request (no keep-alive), so the response is on the
/// wire before the token is handed over and the listener goes away.
async fn serve(stream: tokio::net::TcpStream, path: Arc<str>, found: mpsc::Sender<Token>) {
    let received: Arc<Mutex<Option<Token>>> = Arc::default();
    let slot = received.clone();
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let (status, page) = answer(&request, &path, &slot);
        let mut response = Response::new(Full::new(Bytes::from_static(page.as_bytes())));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        // The token is in this page's URL: never pass it on.
        headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        async move { Ok::<_, Infallible>(response) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), service);
    let _ = tokio::time::timeout(IDLE_CONNECTION, connection).await;
    let token = received.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
    if let Some(token) = token {
        let _ = found.send(token).await;
    }
}

fn answer(request: &Request<Incoming>, path: &str, slot: &Mutex<Option<Token>>) -> (StatusCode, &'static str) {
    if request.method() != http::Method::GET || request.uri().path() != path {
        return (StatusCode::NOT_FOUND, "<p>Not found.</p>");
    }
    let token = request.uri().query().and_then(|query| {
        form_urlencoded::parse(query.as_bytes())
            .find(|(name, _)| name == "pomerium_jwt")
            .map(|(_, value)| value.into_owned())
    });
    match token.as_deref().and_then(Token::parse) {
        Some(token) => {
            *slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(token);
            (StatusCode::OK, SIGNED_IN_PAGE)
        }
        None => (
            StatusCode::BAD_REQUEST,
            "<p>The sign-in did not return a usable token. Try again.</p>",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(url: &str) -> (u16, String) {
        let response = reqwest::get(url).await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    #[tokio::test]
    async fn accepts_one_token_on_its_path_and_stops() {
        let listener = CallbackListener::bind().await.unwrap();
        let uri = listener.redirect_uri();
        assert!(uri.starts_with("http://127.0.0.1:"));
        let base = uri.rsplit_once('/').unwrap().0.to_owned();
        let waiting = tokio::spawn(listener.token());

        assert_eq!(get(&format!("{base}/favicon.ico")).await.0, 404);
        assert_eq!(get(&format!("{base}/wrong?pomerium_jwt=a.b.c")).await.0, 404);
        assert_eq!(get(&uri).await.0, 400, "right path, no token");
        assert_eq!(get(&format!("{uri}?pomerium_jwt=a%20b")).await.0, 400, "not a token");
        let (status, page) = get(&format!("{uri}?pomerium_jwt=aaa.bbb.ccc")).await;
        assert_eq!(status, 200);
        assert!(page.contains("Signed in, you can close this window."));

        let token = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(token.as_str(), "aaa.bbb.ccc");
        assert!(reqwest::get(&uri).await.is_err(), "the listener is gone");
    }

    #[tokio::test]
    async fn paths_are_unguessable() {
        let a = CallbackListener::bind().await.unwrap();
        let b = CallbackListener::bind().await.unwrap();
        assert_ne!(a.path, b.path);
        assert!(a.path.len() >= 32);
    }
}
