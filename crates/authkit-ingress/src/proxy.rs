//! [`ServiceProxy`]: forwards a request to a [`Destination`] with the
//! header hygiene of this module, streamed bodies with limits, a timeout, and
//! generic error pages that carry a correlation id.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use pin_project_lite::pin_project;

use super::{
    Destination, Forwarded, Identity, PathRefused, UnderscoreHeaders, forward_request_headers, forward_response_headers,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of a proxied response: the downstream's, cut off with an error
/// (so the connection is closed, never a complete-looking short body) past
/// the response limit; or a small error page.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// Limits of a proxied exchange.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest request body forwarded (default 10 MiB; larger: 413).
    pub max_request_bytes: u64,
    /// Largest response body passed back (default 50 MiB; past it the
    /// response is cut and the connection closed).
    pub max_response_bytes: u64,
    /// Time for the downstream to answer with its headers (default 30 s; 504).
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_bytes: 10 * 1024 * 1024,
            max_response_bytes: 50 * 1024 * 1024,
            timeout: Duration::from_secs(30),
        }
    }
}

/// Forwards requests to downstream services over HTTP/1.1. Cheap to clone.
#[derive(Clone)]
pub struct ServiceProxy {
    client: Client<HttpConnector, ProxyBody>,
    limits: Limits,
    underscores: UnderscoreHeaders,
}

impl std::fmt::Debug for ServiceProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceProxy")
            .field("limits", &self.limits)
            .field("underscores", &self.underscores)
            .finish_non_exhaustive()
    }
}

/// The header every response the ingress passes back carries: the
/// correlation id its log and audit lines repeat. The service gets the same
/// id in its request.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// A short random id tying an error page to its log line.
pub fn correlation_id() -> String {
    let mut bytes = [0u8; 8];
    let _ = getrandom::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn page(status: StatusCode, id: &str) -> Response<ProxyBody> {
    let reason = status.canonical_reason().unwrap_or("error");
    explained(status, id, reason)
}

/// An error page saying `detail` (which must carry nothing of the request).
fn explained(status: StatusCode, id: &str, detail: &str) -> Response<ProxyBody> {
    let body = format!("{} {detail} (request id {id})\n", status.as_u16());
    let mut response = Response::new(
        http_body_util::Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    if let Ok(id) = HeaderValue::try_from(id) {
        headers.insert(REQUEST_ID_HEADER, id);
    }
    response
}

/// The 400 for a client's path that breaks the path rule; logged with the
/// reason, never the path.
pub(super) fn path_refused(destination: &Destination, refused: PathRefused, id: &str) -> Response<ProxyBody> {
    tracing::info!(
        service = destination.name(),
        request_id = id,
        reason = refused.reason(),
        "path refused"
    );
    explained(
        StatusCode::BAD_REQUEST,
        id,
        &format!("Bad Request: {}", refused.reason()),
    )
}

fn downstream_failed(status: StatusCode, destination: &Destination, reason: &str, id: &str) -> Response<ProxyBody> {
    tower_authkit::audit::emit(tower_authkit::audit::AuditEvent::DownstreamFailed {
        service: destination.name(),
        status: status.as_u16(),
        request_id: id,
        reason,
    });
    page(status, id)
}

pin_project! {
    /// Counts a body's bytes and fails it once past `max`.
    struct Capped<B> {
        #[pin]
        body: B,
        left: u64,
    }
}

#[derive(Debug)]
struct TooLarge;

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("body over the proxy's limit")
    }
}

impl std::error::Error for TooLarge {}

impl<B> Body for Capped<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        match this.body.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    if len > *this.left {
                        return Poll::Ready(Some(Err(Box::new(TooLarge))));
                    }
                    *this.left -= len;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(error.into()))),
            other => other.map(|_| None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl ServiceProxy {
    /// A proxy with `limits`.
    pub fn new(limits: Limits) -> Self {
        let mut builder = Client::builder(TokioExecutor::new());
        // A request on a connection the downstream closed is not replayed:
        // an unsafe request must never run twice.
        builder.retry_canceled_requests(false);
        builder.pool_idle_timeout(Duration::from_secs(30));
        Self {
            client: builder.build_http(),
            limits,
            underscores: UnderscoreHeaders::default(),
        }
    }

    /// What happens to request headers whose name contains `_` (default:
    /// dropped; see [`UnderscoreHeaders`]).
    pub fn underscore_headers(mut self, underscores: UnderscoreHeaders) -> Self {
        self.underscores = underscores;
        self
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Forwards `request` (received at `/s/{name}{rest}`) to `rest` of
    /// `destination`, as `identity`: the downstream request-target is the
    /// request's raw path after the prefix, appended to the service's base
    /// path byte for byte, with the query as sent (see
    /// [`join_path`](super::join_path) for the paths refused with 400).
    /// Answers 413 for a request over the limit, 502 when the downstream
    /// cannot be reached or fails, 504 when it is too slow. Every response,
    /// the service's included, carries an `X-Request-Id` that the log line
    /// (target `tower_authkit::audit`) repeats. WebSocket upgrades need
    /// [`forward_websocket`](Self::forward_websocket); here they are
    /// forwarded as plain requests.
    pub async fn forward<B>(
        &self,
        destination: &Destination,
        request: Request<B>,
        identity: Identity<'_>,
        forwarded: Forwarded<'_>,
        session_cookie: &str,
    ) -> Response<ProxyBody>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let id = correlation_id();
        let (mut parts, body) = request.into_parts();
        let declared = parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > self.limits.max_request_bytes) {
            return page(StatusCode::PAYLOAD_TOO_LARGE, &id);
        }
        if let Err(refused) = self.prepare(&mut parts, destination, identity, forwarded, session_cookie, &id) {
            return path_refused(destination, refused, &id);
        }
        let capped = Capped {
            body,
            left: self.limits.max_request_bytes,
        };
        match self
            .exchange(destination, Request::from_parts(parts, capped.boxed_unsync()), &id)
            .await
        {
            Ok(response) => self.pass_back(response, destination, session_cookie, &id),
            Err(page) => page,
        }
    }

    /// Sends a prepared request; a failure is already the page to answer.
    pub(super) async fn exchange(
        &self,
        destination: &Destination,
        request: Request<ProxyBody>,
        id: &str,
    ) -> Result<Response<hyper::body::Incoming>, Response<ProxyBody>> {
        match tokio::time::timeout(self.limits.timeout, self.client.request(request)).await {
            Err(_) => Err(downstream_failed(
                StatusCode::GATEWAY_TIMEOUT,
                destination,
                "timed out",
                id,
            )),
            Ok(Err(error)) => {
                let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&error);
                let mut too_large = false;
                while let Some(current) = cause {
                    too_large |= current.is::<TooLarge>();
                    cause = current.source();
                }
                if too_large {
                    return Err(page(StatusCode::PAYLOAD_TOO_LARGE, id));
                }
                let reason = if error.is_connect() {
                    "connection failed"
                } else {
                    "request failed"
                };
                Err(downstream_failed(StatusCode::BAD_GATEWAY, destination, reason, id))
            }
            Ok(Ok(response)) => Ok(response),
        }
    }

    /// A downstream's response as the client gets it: headers rewritten,
    /// the request id set, body capped.
    pub(super) fn pass_back(
        &self,
        response: Response<hyper::body::Incoming>,
        destination: &Destination,
        session_cookie: &str,
        id: &str,
    ) -> Response<ProxyBody> {
        let (mut parts, body) = response.into_parts();
        forward_response_headers(&mut parts.headers, destination, session_cookie);
        if let Ok(id) = HeaderValue::try_from(id) {
            parts.headers.insert(REQUEST_ID_HEADER, id);
        }
        let body = Capped {
            body,
            left: self.limits.max_response_bytes,
        };
        Response::from_parts(parts, body.boxed_unsync())
    }
}

impl ServiceProxy {
    /// Points `parts` at its target in `destination` with the forwarding
    /// headers and the request id; refused when the path breaks the rule.
    pub(super) fn prepare(
        &self,
        parts: &mut http::request::Parts,
        destination: &Destination,
        identity: Identity<'_>,
        forwarded: Forwarded<'_>,
        session_cookie: &str,
        id: &str,
    ) -> Result<(), PathRefused> {
        let uri = destination.target(&parts.uri)?;
        forward_request_headers(
            &mut parts.headers,
            identity,
            forwarded,
            session_cookie,
            self.underscores,
        );
        if let Ok(id) = HeaderValue::try_from(id) {
            parts.headers.insert(REQUEST_ID_HEADER, id);
        }
        parts.headers.remove(http::header::HOST);
        parts.uri = uri;
        Ok(())
    }
}
