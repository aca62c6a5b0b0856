//! An authenticated ingress: a sign-in portal that lets people into
//! internal services that have no login of their own. This crate is the
//! `authkit-ingress` binary (`authkit-ingress serve`, configured from the
//! environment; see the README) and the pieces it is built from, for
//! building your own.
//!
//! ```
//! use authkit_ingress::{Destination, Forwarded, Identity, UnderscoreHeaders, forward_request_headers};
//!
//! let wiki = Destination::parse("wiki", "http://10.0.0.7:8080/").expect("internal");
//! assert!(Destination::parse("www", "https://example.com/").is_err(), "public hosts are refused");
//!
//! let mut headers = http::HeaderMap::new();
//! headers.insert("x-authkit-user", "admin@example.com".parse().unwrap()); // a spoof attempt
//! headers.insert("x_authkit_groups", "admins".parse().unwrap()); // one for servers that fold `_` into `-`
//! headers.insert("cookie", "authkit_session=...; theme=dark".parse().unwrap());
//! let groups = vec!["staff".to_owned()];
//! forward_request_headers(
//!     &mut headers,
//!     Identity { user: "alice@example.com", groups: &groups },
//!     Forwarded { client: "192.0.2.1".parse().unwrap(), proto: "https", host: Some("portal.example.com") },
//!     "authkit_session",
//!     UnderscoreHeaders::Drop,
//! );
//! assert_eq!(headers["x-authkit-user"], "alice@example.com");
//! assert!(headers.get("x_authkit_groups").is_none());
//! assert_eq!(headers["cookie"], "theme=dark");
//!
//! // The raw path after `/s/wiki` goes to the service byte for byte; paths
//! // that would change segments downstream are refused (400).
//! let target = wiki.target(&"/s/wiki/docs/a%20b?q=1".parse().unwrap()).unwrap();
//! assert_eq!(target, "http://10.0.0.7:8080/docs/a%20b?q=1");
//! assert!(wiki.target(&"/s/wiki/..%2Fhr%2Fsecret".parse().unwrap()).is_err());
//! ```
//!
//! **Trust model: path mode is for trusted services only.** Every service
//! is served under the portal's own origin (`/s/{name}/`), so a script in
//! any service's pages runs with the portal's origin: it can call the
//! portal's own routes (`/admin/*` included) as the visitor, and read every
//! other service the visitor may enter. Cookie `Path` is no boundary
//! between them, and such requests are same-origin to
//! [`CrossOriginLayer`](tower_authkit::cross_origin::CrossOriginLayer). Put only
//! services you trust as much as the portal itself behind one origin;
//! isolating untrusted services needs one origin (host name) per service.
//!
//! - [`Destination`] checks a service URL at start-up: internal hosts only,
//!   no user info, query or fragment.
//! - [`Destination::target`] builds the downstream request-target from the
//!   raw path: [`join_path`] states the path rule (dot segments, encoded
//!   slashes and backslashes, control bytes and bad escapes refused with
//!   400; every other byte forwarded as the client sent it).
//! - [`forward_request_headers`] is the request side of the trust boundary:
//!   credentials and hop-by-hop headers out, spoofable identity and
//!   forwarding headers replaced by what the ingress knows, headers with `_`
//!   in their names dropped ([`UnderscoreHeaders`]).
//! - [`forward_response_headers`] moves a service's own redirects and its
//!   cookies under `/s/{name}/`, and drops cookies named like the portal's
//!   session cookie.
//! - [`ServiceProxy`] forwards one request with both, streaming bodies within
//!   [`Limits`] (413 for requests; responses past the limit are cut and the
//!   connection closed), a timeout (504), 502 for unreachable services, and
//!   a correlation id (`X-Request-Id`) on every response and in the log;
//!   it never retries a request.
//! - [`ServiceProxy::forward_websocket`] does the same for WebSocket
//!   upgrades, then relays messages under a [`WebSocketPolicy`]: the user's
//!   [`Standing`] is re-checked every few seconds and the connection closed
//!   (1008) when it ends or the lifetime is reached.
//!
//! Around them, what the binary serves: [`portal`] (sign-in, sign-out, "my
//! sessions" and the admin routes on `tower_authkit`'s `SessionLayer`; the
//! repository's `session_portal` example serves it alone), [`settings`]
//! (environment variables with errors that name them) and [`server`]
//! (binding, readiness line, graceful stop).
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod destination;
mod headers;
mod path;
pub mod portal;
mod proxy;
pub mod server;
pub mod settings;
mod websocket;

pub use destination::Destination;
pub use headers::{
    Forwarded, GROUPS_HEADER, IDENTITY_PREFIX, Identity, USER_HEADER, UnderscoreHeaders, forward_request_headers,
    forward_response_headers, remove_hop_by_hop, rewrite_location, scope_set_cookie,
};
#[doc(hidden)]
pub use path::normalised;
pub use path::{PathRefused, join_path};
pub use proxy::{Limits, ProxyBody, REQUEST_ID_HEADER, ServiceProxy, correlation_id};
pub use websocket::{Standing, WebSocketPolicy, is_websocket_upgrade};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
