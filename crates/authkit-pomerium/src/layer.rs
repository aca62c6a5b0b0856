//! The tower layer for HTTP client services: hyper-util's client, tonic
//! channels, or anything that is a `Service<http::Request<B>>`.
//!
//! ```no_run
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use hyper_util::{client::legacy::Client, rt::TokioExecutor};
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use tower_authkit_pomerium::PomeriumClient;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let auth = PomeriumClient::builder().build()?;
//! let https = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>(); // add a TLS connector in real use
//! let mut client = ServiceBuilder::new().layer(auth.layer()).service(https);
//!
//! let request = http::Request::get("https://app.example.com/api").body(Full::default())?;
//! let response = client.ready().await?.call(request).await?;
//! # Ok(()) }
//! ```

use std::any::Any;
use std::future::poll_fn;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, Uri, header::AUTHORIZATION};
use http_body_util::{Empty, Full};
use tower_layer::Layer;
use tower_service::Service;

use super::token::Route;
use super::{BoxError, PomeriumClient, PomeriumClientError, asks_for_sign_in};
use tower_authkit::BoxFuture;
use tower_authkit::ConfigError;

/// Adds Pomerium sign-in to an HTTP client service. See the
/// [module docs](super) for the behaviour.
#[derive(Clone, Debug)]
#[must_use = "a layer does nothing until it wraps a service"]
pub struct PomeriumClientLayer {
    auth: PomeriumClient,
    origin: Option<Uri>,
}

impl PomeriumClientLayer {
    /// For clients that send absolute request URIs (hyper-util's client).
    pub fn new(auth: PomeriumClient) -> Self {
        Self { auth, origin: None }
    }

    /// For clients that send relative URIs and add the origin themselves,
    /// like tonic's `Channel`: requests without a host are taken to go to
    /// `origin` (e.g. `https://grpc.example.com`).
    pub fn with_origin(auth: PomeriumClient, origin: &str) -> Result<Self, ConfigError> {
        let invalid = |reason: &str| ConfigError::Invalid {
            setting: "origin",
            reason: reason.to_owned(),
        };
        let origin: Uri = origin.parse().map_err(|_| invalid("not a URI"))?;
        if origin.scheme().is_none() || origin.host().is_none() {
            return Err(invalid("needs a scheme and a host, e.g. https://grpc.example.com"));
        }
        Ok(Self {
            auth,
            origin: Some(origin),
        })
    }
}

impl<S> Layer<S> for PomeriumClientLayer {
    type Service = PomeriumClientService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PomeriumClientService {
            inner,
            auth: self.auth.clone(),
            origin: self.origin.clone(),
        }
    }
}

/// The service made by [`PomeriumClientLayer`].
#[derive(Clone, Debug)]
pub struct PomeriumClientService<S> {
    inner: S,
    auth: PomeriumClient,
    origin: Option<Uri>,
}

impl<S, B, ResBody> Service<Request<B>> for PomeriumClientService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = PomeriumClientError;
    // Boxed: a client call that may include a browser sign-in is not a hot
    // path, and the future needs the service for a possible replay.
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(PomeriumClientError::service)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // The ready service goes into the future; a clone stays for the next call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = self.auth.clone();
        let route = self.route(request.uri());
        Box::pin(async move {
            let Some(route) = route? else {
                return inner.call(request).await.map_err(PomeriumClientError::service);
            };
            let token = auth.token(&route, None).await?;
            let replay = try_clone_request(&request);
            request
                .headers_mut()
                .insert(AUTHORIZATION, token.authorization().clone());
            let response = inner.call(request).await.map_err(PomeriumClientError::service)?;
            if !asks_for_sign_in(response.status(), response.headers()) {
                return Ok(response);
            }
            let Some(mut again) = replay else {
                auth.drop_rejected(&route, &token);
                return Err(PomeriumClientError::BodyNotReplayable);
            };
            drop(response);
            let fresh = auth.token(&route, Some(&token)).await?;
            again.headers_mut().insert(AUTHORIZATION, fresh.authorization().clone());
            poll_fn(|cx| inner.poll_ready(cx))
                .await
                .map_err(PomeriumClientError::service)?;
            inner.call(again).await.map_err(PomeriumClientError::service)
        })
    }
}

impl<S> PomeriumClientService<S> {
    fn route(&self, uri: &Uri) -> Result<Option<Route>, PomeriumClientError> {
        match (&self.origin, uri.host()) {
            (Some(origin), None) => self.auth.route_of(origin),
            _ => self.auth.route_of(uri),
        }
    }
}

/// A copy of the request for one replay, when its body is one of the
/// buffered types (`Full<Bytes>`, `Empty<Bytes>`, `String`). Any other body
/// (a stream, tonic's body) cannot be sent twice.
fn try_clone_request<B: 'static>(request: &Request<B>) -> Option<Request<B>> {
    let body = try_clone_body(request.body())?;
    let mut copy = Request::new(body);
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    *copy.extensions_mut() = request.extensions().clone();
    Some(copy)
}

fn try_clone_body<B: 'static>(body: &B) -> Option<B> {
    let body = body as &dyn Any;
    let copy: Box<dyn Any> = if let Some(full) = body.downcast_ref::<Full<Bytes>>() {
        Box::new(full.clone())
    } else if let Some(empty) = body.downcast_ref::<Empty<Bytes>>() {
        Box::new(*empty)
    } else if let Some(text) = body.downcast_ref::<String>() {
        Box::new(text.clone())
    } else {
        return None;
    };
    copy.downcast::<B>().ok().map(|copy| *copy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    #[test]
    fn buffered_bodies_are_cloned_streams_are_not() {
        let request = Request::post("https://x.example/a")
            .header("x-trace", "1")
            .body(Full::new(Bytes::from_static(b"payload")))
            .unwrap();
        let copy = try_clone_request(&request).expect("Full is replayable");
        assert_eq!(copy.method(), "POST");
        assert_eq!(copy.uri(), "https://x.example/a");
        assert_eq!(copy.headers()["x-trace"], "1");
        assert!(try_clone_body(&Empty::<Bytes>::new()).is_some());
        assert_eq!(try_clone_body(&"text".to_owned()).as_deref(), Some("text"));

        let stream = futures_util::stream::iter([Ok::<_, std::io::Error>(http_body::Frame::data(Bytes::new()))]);
        let streaming = StreamBody::new(stream).boxed();
        assert!(try_clone_body(&streaming).is_none());
    }

    #[test]
    fn origin_needs_scheme_and_host() {
        let auth = PomeriumClient::builder().build().unwrap();
        assert!(PomeriumClientLayer::with_origin(auth.clone(), "https://grpc.example.com").is_ok());
        assert!(PomeriumClientLayer::with_origin(auth.clone(), "grpc.example.com").is_err());
        assert!(PomeriumClientLayer::with_origin(auth, "/path").is_err());
    }
}
