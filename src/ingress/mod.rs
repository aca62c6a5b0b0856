//! Pieces of an authenticated ingress (feature `ingress`): a sign-in portal
//! that lets people into internal services that have no login of their own.
//!
//! ```
//! use tower_authkit::ingress::{Destination, Forwarded, Identity, forward_request_headers};
//!
//! let wiki = Destination::parse("wiki", "http://10.0.0.7:8080/").expect("internal");
//! assert!(Destination::parse("www", "https://example.com/").is_err(), "public hosts are refused");
//!
//! let mut headers = http::HeaderMap::new();
//! headers.insert("x-authkit-user", "admin@example.com".parse().unwrap()); // a spoof attempt
//! headers.insert("cookie", "authkit_session=...; theme=dark".parse().unwrap());
//! let groups = vec!["staff".to_owned()];
//! forward_request_headers(
//!     &mut headers,
//!     Identity { user: "alice@example.com", groups: &groups },
//!     Forwarded { client: "192.0.2.1".parse().unwrap(), proto: "https", host: Some("portal.example.com") },
//!     "authkit_session",
//! );
//! assert_eq!(headers["x-authkit-user"], "alice@example.com");
//! assert_eq!(headers["cookie"], "theme=dark");
//! assert_eq!(wiki.target("docs/a", Some("q=1")), "http://10.0.0.7:8080/docs/a?q=1");
//! ```
//!
//! - [`Destination`] checks a service URL at start-up: internal hosts only,
//!   no user info, query or fragment.
//! - [`forward_request_headers`] is the request side of the trust boundary:
//!   credentials and hop-by-hop headers out, spoofable identity and
//!   forwarding headers replaced by what the ingress knows.
//! - [`forward_response_headers`] moves a service's own redirects and its
//!   cookies under `/s/{name}/`.
//! - [`ServiceProxy`] forwards one request with both, streaming bodies within
//!   [`Limits`] (413 for requests; responses past the limit are cut and the
//!   connection closed), a timeout (504), 502 for unreachable services, and
//!   error pages with a correlation id; it never retries a request.
//! - [`ServiceProxy::forward_websocket`] does the same for WebSocket
//!   upgrades, then relays messages under a [`WebSocketPolicy`]: the user's
//!   [`Standing`] is re-checked every few seconds and the connection closed
//!   (1008) when it ends or the lifetime is reached.

mod destination;
mod headers;
mod proxy;
mod websocket;

pub use destination::Destination;
pub use headers::{
    Forwarded, GROUPS_HEADER, IDENTITY_PREFIX, Identity, USER_HEADER, forward_request_headers,
    forward_response_headers, remove_hop_by_hop, rewrite_location, scope_set_cookie,
};
pub use proxy::{Limits, ProxyBody, ServiceProxy, correlation_id};
pub use websocket::{Standing, WebSocketPolicy, is_websocket_upgrade};
