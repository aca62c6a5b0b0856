//! What can go wrong on the client side. Messages are one line, name the
//! host or setting involved, and never contain a token.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A boxed error from the wrapped HTTP client.
pub type BoxError = Box<dyn StdError + Send + Sync>;

/// Why an authenticated request could not be made.
///
/// `Clone` so that every request waiting on one shared sign-in gets the same
/// answer when it fails.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum PomeriumClientError {
    /// The user did not finish signing in before the timeout.
    LoginTimeout(Duration),
    /// The login endpoint failed (status, network, or an unreadable body).
    LoginEndpoint {
        /// The route host.
        host: String,
        /// What went wrong, without credentials.
        reason: String,
    },
    /// The login endpoint answered with a sign-in URL we refuse to open
    /// (relative, not https, or http to a non-loopback host).
    BadSignInUrl {
        /// The route host.
        host: String,
        /// Why the URL was refused.
        reason: String,
    },
    /// The local callback listener could not be started.
    Callback(String),
    /// The sign-in URL could not be shown to the user (the opener failed
    /// and writing it to stderr failed too, or the opener panicked): nobody
    /// can complete the sign-in, so it is abandoned at once.
    SignInNotShown(String),
    /// The request URL needs a token but is not https (http is allowed only
    /// for loopback hosts), so a token would travel in clear text.
    InsecureUrl(String),
    /// The request URI has no host, so its route is unknown. Clients that
    /// send relative URIs (tonic channels) need
    /// [`PomeriumClientLayer::with_origin`](super::PomeriumClientLayer::with_origin).
    MissingHost,
    /// The on-disk token cache is unsafe or unusable (symlink, other owner,
    /// I/O failure).
    Cache(String),
    /// The server asked for a new sign-in, but the request body is a stream
    /// that was already sent and cannot be replayed. The rejected token is
    /// dropped: sending the request again signs in again.
    BodyNotReplayable,
    /// [`BlockingPomeriumClient`](super::BlockingPomeriumClient) was called from
    /// inside a Tokio runtime; async code uses the async clients instead.
    AsyncContext,
    /// The wrapped HTTP client failed.
    Service(Arc<dyn StdError + Send + Sync>),
}

impl PomeriumClientError {
    pub(crate) fn service(error: impl Into<BoxError>) -> Self {
        PomeriumClientError::Service(Arc::from(error.into()))
    }
}

impl fmt::Display for PomeriumClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LoginTimeout(after) => write!(f, "sign-in did not complete within {after:?}"),
            Self::LoginEndpoint { host, reason } => write!(f, "pomerium login endpoint of {host} failed: {reason}"),
            Self::BadSignInUrl { host, reason } => write!(f, "pomerium login endpoint of {host} returned a bad sign-in URL: {reason}"),
            Self::Callback(reason) => write!(f, "could not start the sign-in callback listener: {reason}"),
            Self::SignInNotShown(reason) => write!(f, "could not show the sign-in URL: {reason}"),
            Self::InsecureUrl(host) => write!(f, "refusing to send a pomerium token to {host} over plain http"),
            Self::MissingHost => f.write_str(
                "the request URI has no host; give the pomerium layer the route's origin (PomeriumClientLayer::with_origin)",
            ),
            Self::Cache(reason) => write!(f, "pomerium token cache: {reason}"),
            Self::BodyNotReplayable => f.write_str(
                "the server asked to sign in again, but the request body is a stream that cannot be replayed; \
                 send it again to sign in again",
            ),
            Self::AsyncContext => {
                f.write_str("BlockingPomeriumClient was called inside an async runtime; use PomeriumClient there")
            }
            Self::Service(error) => write!(f, "request failed: {error}"),
        }
    }
}

impl StdError for PomeriumClientError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Service(error) => Some(&**error),
            _ => None,
        }
    }
}
