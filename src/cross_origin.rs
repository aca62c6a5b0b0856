//! Cross-origin protection for cookie-authenticated requests, in the style
//! of Go 1.25's `net/http.CrossOriginProtection`: no tokens, just the
//! headers browsers send.
//!
//! ```
//! use axum::{routing::post, Router};
//! use tower_authkit::cross_origin::CrossOriginLayer;
//!
//! let app: Router = Router::new()
//!     .route("/transfer", post(|| async { "done" }))
//!     .layer(CrossOriginLayer::new().allow_origin("https://admin.example.com").unwrap());
//! ```
//!
//! Unsafe methods (anything but GET, HEAD, OPTIONS, TRACE) are refused with
//! 403 when the browser says the request is cross-site (`Sec-Fetch-Site:
//! cross-site` or `same-site`), or when its `Origin` is neither the request's
//! own (compared with `Host`) nor allowlisted. WebSocket handshakes are
//! checked the same way, although they are GETs (cross-site WebSocket
//! hijacking). Requests with neither header pass: they come from
//! non-browser clients, which cookies do not follow around. Put it in front of any layer that authenticates by cookie.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_TYPE, HOST, HeaderName, ORIGIN, UPGRADE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

use crate::error::ConfigError;
use crate::layer::AuthBody;

/// Refuses cross-origin unsafe requests; see the [module docs](self).
#[derive(Clone, Debug, Default)]
#[must_use = "a layer does nothing until it wraps a service"]
pub struct CrossOriginLayer {
    allowed: Arc<Vec<String>>,
}

impl CrossOriginLayer {
    /// Only same-origin unsafe requests pass.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also lets `origin` (`scheme://host[:port]`, no path) send unsafe requests.
    pub fn allow_origin(mut self, origin: &str) -> Result<Self, ConfigError> {
        let invalid = |reason: &str| ConfigError::Invalid {
            setting: "allow_origin",
            reason: format!("{origin:?}: {reason}"),
        };
        let url = normalized_origin(origin).ok_or_else(|| invalid("expected scheme://host[:port]"))?;
        Arc::make_mut(&mut self.allowed).push(url);
        Ok(self)
    }
}

/// `scheme://host[:port]`, lowercased, if `origin` has exactly that shape
/// (also the dev server's CORS origins).
pub fn normalized_origin(origin: &str) -> Option<String> {
    let (scheme, rest) = origin.split_once("://")?;
    let valid = matches!(scheme, "http" | "https")
        && !rest.is_empty()
        && !rest.contains(['/', '?', '#', '@'])
        && rest.chars().all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c));
    valid.then(|| origin.to_ascii_lowercase())
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE)
}

/// Whether one of the `name` headers lists `token` (comma-separated, any case).
fn lists_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// A WebSocket opening handshake (RFC 6455 §4.1): a GET with
/// `Connection: upgrade` and `Upgrade: websocket`.
pub(crate) fn is_websocket_handshake(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::GET && lists_token(headers, CONNECTION, "upgrade") && lists_token(headers, UPGRADE, "websocket")
}

/// `None` when the request may pass, else why not. A WebSocket handshake
/// is a GET, but it opens a channel that acts for the cookie's owner (and
/// browsers let any page open one), so it is checked like an unsafe method.
fn refusal(method: &Method, headers: &HeaderMap, allowed: &[String]) -> Option<&'static str> {
    if is_safe(method) && !is_websocket_handshake(method, headers) {
        return None;
    }
    let origin = headers.get(ORIGIN).and_then(|v| v.to_str().ok());
    if origin.is_some_and(|o| allowed.iter().any(|a| a.eq_ignore_ascii_case(o))) {
        return None;
    }
    if let Some(site) = headers.get("sec-fetch-site") {
        return match site.as_bytes() {
            b"same-origin" | b"none" => None,
            _ => Some("cross-origin request refused"),
        };
    }
    let origin = origin?;
    let host = headers.get(HOST).and_then(|v| v.to_str().ok());
    let same = origin
        .split_once("://")
        .is_some_and(|(_, authority)| host.is_some_and(|h| h.eq_ignore_ascii_case(authority)));
    (!same).then_some("cross-origin request refused")
}

fn forbidden(reason: &'static str) -> Response<Bytes> {
    let body = serde_json::json!({"error": "cross_origin_request", "error_description": reason});
    let mut response = Response::new(Bytes::from(body.to_string()));
    *response.status_mut() = StatusCode::FORBIDDEN;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

impl<S> Layer<S> for CrossOriginLayer {
    type Service = CrossOriginService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CrossOriginService {
            inner,
            allowed: Arc::clone(&self.allowed),
        }
    }
}

/// The service of [`CrossOriginLayer`].
#[derive(Clone, Debug)]
pub struct CrossOriginService<S> {
    inner: S,
    allowed: Arc<Vec<String>>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for CrossOriginService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<AuthBody<ResBody>>;
    type Error = S::Error;
    type Future = CrossOriginFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        match refusal(request.method(), request.headers(), &self.allowed) {
            Some(reason) => {
                crate::audit::emit(crate::audit::AuditEvent::AccessDenied {
                    subject: None,
                    path: request.uri().path(),
                    reason,
                });
                CrossOriginFuture::refuse(forbidden(reason))
            }
            None => CrossOriginFuture::pass(self.inner.call(request)),
        }
    }
}

/// The response future of [`CrossOriginService`].
pub type CrossOriginFuture<F> = crate::layer::GuardFuture<F>;

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn the_rules() {
        let allowed = vec!["https://admin.example.com".to_owned()];
        let post = Method::POST;
        let pass = |h: &[(&'static str, &'static str)]| refusal(&post, &headers(h), &allowed).is_none();
        assert!(pass(&[]), "non-browser clients");
        assert!(pass(&[("sec-fetch-site", "same-origin")]));
        assert!(pass(&[("sec-fetch-site", "none")]));
        assert!(!pass(&[("sec-fetch-site", "cross-site")]));
        assert!(!pass(&[("sec-fetch-site", "same-site")]));
        assert!(pass(&[
            ("host", "app.example.com"),
            ("origin", "https://app.example.com")
        ]));
        assert!(!pass(&[
            ("host", "app.example.com"),
            ("origin", "https://evil.example")
        ]));
        assert!(!pass(&[("host", "app.example.com"), ("origin", "null")]));
        assert!(pass(&[
            ("sec-fetch-site", "cross-site"),
            ("origin", "https://admin.example.com")
        ]));
        assert!(refusal(&Method::GET, &headers(&[("sec-fetch-site", "cross-site")]), &allowed).is_none());
        for method in [Method::PUT, Method::PATCH, Method::DELETE] {
            assert!(refusal(&method, &headers(&[("sec-fetch-site", "cross-site")]), &allowed).is_some());
        }
    }

    #[test]
    fn websocket_handshakes_are_checked_like_unsafe_requests() {
        let handshake = |origin: &'static str| {
            headers(&[
                ("host", "app.example.com"),
                ("connection", "keep-alive, Upgrade"),
                ("upgrade", "websocket"),
                ("origin", origin),
            ])
        };
        assert!(refusal(&Method::GET, &handshake("https://app.example.com"), &[]).is_none());
        assert_eq!(
            refusal(&Method::GET, &handshake("https://evil.example"), &[]),
            Some("cross-origin request refused")
        );
        let plain_get = headers(&[("host", "app.example.com"), ("origin", "https://evil.example")]);
        assert!(refusal(&Method::GET, &plain_get, &[]).is_none());
    }

    #[test]
    fn allowlisted_origins_are_checked() {
        assert!(CrossOriginLayer::new().allow_origin("https://a.example:8443").is_ok());
        for bad in ["a.example", "https://a.example/path", "ftp://a.example", "https://"] {
            assert!(CrossOriginLayer::new().allow_origin(bad).is_err(), "{bad}");
        }
    }
}
