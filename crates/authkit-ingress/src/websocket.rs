//! WebSockets through the ingress: the upgrade is forwarded with the same
//! checks and headers as any request, then the ingress relays messages both
//! ways and re-checks the user's standing while the connection lives.
//!
//! The relay speaks the protocol itself (rather than copying bytes) so that
//! it can end a connection cleanly with a close frame: 1008 (policy) when
//! the session ends or the lifetime is reached, 1013 (try again later) when
//! the session cannot be checked for too long. It offers no extensions, so
//! `Sec-WebSocket-Extensions` is not forwarded; pings are answered at each
//! hop rather than relayed.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::header::{CONNECTION, HeaderValue, SEC_WEBSOCKET_EXTENSIONS, UPGRADE};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};

use super::proxy::{ProxyBody, correlation_id, path_refused};
use super::{Destination, Forwarded, Identity, ServiceProxy};

/// How long the client and the service have to take over their upgraded
/// connections once the 101 is on its way.
const UPGRADE_WAIT: Duration = Duration::from_secs(10);

/// How long a close handshake may take before the connection is dropped.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Whether `request` asks to open a WebSocket (RFC 6455 §4.1: a GET with
/// `Connection: upgrade` and `Upgrade: websocket`).
pub fn is_websocket_upgrade<B>(request: &Request<B>) -> bool {
    tower_authkit::__private::is_websocket_handshake(request.method(), request.headers())
}

/// How long a proxied WebSocket may live, and how often the user's standing
/// is re-checked.
#[derive(Clone, Copy, Debug)]
pub struct WebSocketPolicy {
    /// Between two checks of the user's standing (default 5 s).
    pub check_every: Duration,
    /// After this the connection is closed whatever the standing (default 1 h).
    pub lifetime: Duration,
    /// While checks answer [`Standing::Unknown`], the connection stays open
    /// this long after the last good check (default 15 s), then closes with 1013.
    pub unknown_grace: Duration,
    /// Largest message relayed in either direction (default 16 MiB).
    pub max_message_bytes: usize,
}

impl Default for WebSocketPolicy {
    fn default() -> Self {
        Self {
            check_every: Duration::from_secs(5),
            lifetime: Duration::from_secs(3600),
            unknown_grace: Duration::from_secs(15),
            max_message_bytes: 16 * 1024 * 1024,
        }
    }
}

/// What a re-check of a WebSocket's user found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// The user may stay connected.
    Allowed,
    /// The session ended or the user lost access: close now (1008).
    Ended,
    /// The check could not be made (e.g. the session store is down).
    Unknown,
}

impl ServiceProxy {
    /// Forwards a WebSocket upgrade (see [`is_websocket_upgrade`]) like
    /// [`forward`](Self::forward) — same target, headers, timeout and error
    /// pages — and, when the service accepts it (101), relays messages both
    /// ways under `policy`. `check` is called every
    /// [`check_every`](WebSocketPolicy::check_every) while the connection
    /// lives; for sessions,
    /// [`SessionAuthenticator::principal_of`](tower_authkit::session::SessionAuthenticator::principal_of)
    /// answers it. A service that answers anything but 101 is passed back as
    /// a plain response.
    #[allow(clippy::too_many_arguments)] // the arguments of `forward` plus the watch
    pub async fn forward_websocket<B, C, F>(
        &self,
        destination: &Destination,
        mut request: Request<B>,
        identity: Identity<'_>,
        forwarded: Forwarded<'_>,
        session_cookie: &str,
        policy: WebSocketPolicy,
        check: C,
    ) -> Response<ProxyBody>
    where
        C: FnMut() -> F + Send + 'static,
        F: Future<Output = Standing> + Send,
    {
        let id = correlation_id();
        let client_side = hyper::upgrade::on(&mut request);
        let (mut parts, _) = request.into_parts();
        if let Err(refused) = self.prepare(&mut parts, destination, identity, forwarded, session_cookie, &id) {
            return path_refused(destination, refused, &id);
        }
        // `prepare` removed the hop-by-hop headers; the upgrade is ours to ask for.
        parts.headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        parts.headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
        parts.headers.remove(SEC_WEBSOCKET_EXTENSIONS);
        let empty = http_body_util::Empty::<Bytes>::new()
            .map_err(|never| match never {})
            .boxed_unsync();
        let mut response = match self.exchange(destination, Request::from_parts(parts, empty), &id).await {
            Ok(response) => response,
            Err(page) => return page,
        };
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            return self.pass_back(response, destination, session_cookie, &id);
        }
        let service_side = hyper::upgrade::on(&mut response);
        let mut accepted = self.pass_back(response, destination, session_cookie, &id);
        let headers = accepted.headers_mut();
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
        headers.remove(SEC_WEBSOCKET_EXTENSIONS);
        let service = destination.name().to_owned();
        tokio::spawn(async move {
            let both = async { tokio::try_join!(client_side, service_side) };
            match tokio::time::timeout(UPGRADE_WAIT, both).await {
                Ok(Ok((client, downstream))) => {
                    let config = WebSocketConfig::default()
                        .max_message_size(Some(policy.max_message_bytes))
                        .max_frame_size(Some(policy.max_message_bytes));
                    let client =
                        WebSocketStream::from_raw_socket(TokioIo::new(client), Role::Server, Some(config)).await;
                    let downstream =
                        WebSocketStream::from_raw_socket(TokioIo::new(downstream), Role::Client, Some(config)).await;
                    relay(client, downstream, policy, check, &service).await;
                }
                Ok(Err(error)) => tracing::debug!(service, %error, "websocket upgrade failed"),
                Err(_) => tracing::debug!(service, "websocket upgrade not taken over in time"),
            }
        });
        accepted
    }
}

/// Why the relay ended.
#[derive(Debug, PartialEq, Eq)]
enum Ending {
    /// One side closed or failed; the other is told (or already gone).
    Peer,
    /// The ingress closed both sides.
    Closed(CloseCode, &'static str),
}

/// Relays messages until a side closes, the user's standing ends, the
/// lifetime is reached or checks stay unknown past the grace period.
async fn relay<C, S, W, F>(
    mut client: WebSocketStream<C>,
    mut service: WebSocketStream<S>,
    policy: WebSocketPolicy,
    mut check: W,
    name: &str,
) where
    C: AsyncRead + AsyncWrite + Unpin,
    S: AsyncRead + AsyncWrite + Unpin,
    W: FnMut() -> F,
    F: Future<Output = Standing>,
{
    let start = tokio::time::Instant::now();
    let deadline = tokio::time::sleep_until(start + policy.lifetime);
    tokio::pin!(deadline);
    let mut checks = tokio::time::interval_at(start + policy.check_every, policy.check_every);
    checks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_known_good = start;
    let ending = loop {
        tokio::select! {
            message = client.next() => {
                if !pass(message, &mut client, &mut service).await {
                    break Ending::Peer;
                }
            }
            message = service.next() => {
                if !pass(message, &mut service, &mut client).await {
                    break Ending::Peer;
                }
            }
            () = &mut deadline => break Ending::Closed(CloseCode::Policy, "connection lifetime reached"),
            now = checks.tick() => match check().await {
                Standing::Allowed => last_known_good = now,
                Standing::Ended => break Ending::Closed(CloseCode::Policy, "access ended"),
                Standing::Unknown if now.duration_since(last_known_good) >= policy.unknown_grace => {
                    break Ending::Closed(CloseCode::Again, "session could not be checked");
                }
                Standing::Unknown => {}
            },
        }
    };
    if let Ending::Closed(code, reason) = ending {
        tower_authkit::audit::emit(tower_authkit::audit::AuditEvent::ConnectionClosed { service: name, reason });
        let frame = || CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = tokio::time::timeout(CLOSE_WAIT, async {
            let _ = tokio::join!(client.close(Some(frame())), service.close(Some(frame())));
        })
        .await;
    }
}

/// Passes one message read from `from` on to `to`; false when the relay
/// should end (after passing on a close, or when a side is gone).
async fn pass<A, B>(
    message: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    from: &mut WebSocketStream<A>,
    to: &mut WebSocketStream<B>,
) -> bool
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    match message {
        // Each hop answers its own pings (tungstenite queues the pong).
        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => true,
        Some(Ok(Message::Close(frame))) => {
            let _ = tokio::time::timeout(CLOSE_WAIT, async {
                // The reply to `from`'s close is queued; flushing sends it.
                let _ = tokio::join!(to.close(frame), from.flush());
            })
            .await;
            false
        }
        Some(Ok(message)) => to.send(message).await.is_ok(),
        Some(Err(_)) | None => {
            let _ = tokio::time::timeout(CLOSE_WAIT, to.close(None)).await;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    use std::sync::Arc;
    use std::sync::atomic::{AtomicU8, Ordering};

    fn upgrade_request(connection: &str, upgrade: &str) -> Request<()> {
        Request::get("/")
            .header(CONNECTION, connection)
            .header(UPGRADE, upgrade)
            .body(())
            .unwrap()
    }

    #[test]
    fn upgrades_are_recognised_by_their_tokens() {
        assert!(is_websocket_upgrade(&upgrade_request(
            "keep-alive, Upgrade",
            "WebSocket"
        )));
        assert!(!is_websocket_upgrade(&upgrade_request("keep-alive", "websocket")));
        assert!(!is_websocket_upgrade(&upgrade_request("upgrade", "h2c")));
        let mut post = upgrade_request("upgrade", "websocket");
        *post.method_mut() = Method::POST;
        assert!(!is_websocket_upgrade(&post));
    }

    /// Two in-memory WebSocket pairs: (client end, ingress end) and
    /// (ingress end, service end).
    async fn pairs() -> (
        WebSocketStream<tokio::io::DuplexStream>,
        WebSocketStream<tokio::io::DuplexStream>,
        WebSocketStream<tokio::io::DuplexStream>,
        WebSocketStream<tokio::io::DuplexStream>,
    ) {
        let (a, b) = tokio::io::duplex(1 << 16);
        let (c, d) = tokio::io::duplex(1 << 16);
        (
            WebSocketStream::from_raw_socket(a, Role::Client, None).await,
            WebSocketStream::from_raw_socket(b, Role::Server, None).await,
            WebSocketStream::from_raw_socket(c, Role::Client, None).await,
            WebSocketStream::from_raw_socket(d, Role::Server, None).await,
        )
    }

    fn close_code(message: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>) -> Option<u16> {
        match message {
            Some(Ok(Message::Close(Some(frame)))) => Some(frame.code.into()),
            _ => None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn messages_pass_both_ways_until_the_standing_ends() {
        let (mut user, ingress_client, ingress_service, mut service) = pairs().await;
        let standing = Arc::new(AtomicU8::new(0));
        let watched = Arc::clone(&standing);
        let check = move || {
            let value = watched.load(Ordering::SeqCst);
            async move { [Standing::Allowed, Standing::Ended][usize::from(value)] }
        };
        let relay = tokio::spawn(async move {
            relay(
                ingress_client,
                ingress_service,
                WebSocketPolicy::default(),
                check,
                "test",
            )
            .await;
        });
        user.send(Message::text("hello")).await.unwrap();
        assert_eq!(service.next().await.unwrap().unwrap(), Message::text("hello"));
        service.send(Message::binary(vec![1, 2, 3])).await.unwrap();
        assert_eq!(user.next().await.unwrap().unwrap(), Message::binary(vec![1, 2, 3]));

        // Two checks pass (10 s), then the session ends: closed at the next one.
        tokio::time::sleep(Duration::from_secs(11)).await;
        standing.store(1, Ordering::SeqCst);
        let closed = tokio::time::timeout(Duration::from_secs(6), user.next()).await.unwrap();
        assert_eq!(close_code(closed), Some(1008));
        assert_eq!(close_code(service.next().await), Some(1008));
        relay.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn the_lifetime_closes_a_connection_in_good_standing() {
        let (mut user, ingress_client, ingress_service, _service) = pairs().await;
        let policy = WebSocketPolicy {
            lifetime: Duration::from_secs(7),
            ..WebSocketPolicy::default()
        };
        let began = tokio::time::Instant::now();
        tokio::spawn(relay(
            ingress_client,
            ingress_service,
            policy,
            || async { Standing::Allowed },
            "test",
        ));
        let closed = user.next().await;
        assert_eq!(close_code(closed), Some(1008));
        assert_eq!(began.elapsed().as_secs(), 7);
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_standing_is_tolerated_only_for_the_grace_period() {
        let (mut user, ingress_client, ingress_service, _service) = pairs().await;
        let began = tokio::time::Instant::now();
        tokio::spawn(relay(
            ingress_client,
            ingress_service,
            WebSocketPolicy::default(),
            || async { Standing::Unknown },
            "test",
        ));
        let closed = user.next().await;
        assert_eq!(close_code(closed), Some(1013));
        // Checks at 5, 10, 15 s: the third is 15 s after the start.
        assert_eq!(began.elapsed().as_secs(), 15);
    }

    #[tokio::test(start_paused = true)]
    async fn a_close_from_one_side_reaches_the_other_and_ends_the_relay() {
        let (mut user, ingress_client, ingress_service, mut service) = pairs().await;
        let relay = tokio::spawn(relay(
            ingress_client,
            ingress_service,
            WebSocketPolicy::default(),
            || async { Standing::Allowed },
            "test",
        ));
        user.close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        }))
        .await
        .unwrap();
        assert_eq!(close_code(service.next().await), Some(1000));
        relay.await.unwrap();
    }
}
