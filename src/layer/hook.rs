//! Response-side work of an authenticator: the hook the one pipeline offers
//! to authenticators that keep state with the client.
//!
//! Sessions set or clear their cookie, write back changed data and extend
//! the idle deadline after the handler answered; other authenticators could
//! add headers. An authenticator opts in with
//! [`Authenticator::RESPONSE_HOOK`](super::Authenticator::RESPONSE_HOOK) and
//! returns a [`ResponseHook`] from
//! [`Authenticator::response_hook`](super::Authenticator::response_hook); the
//! pipeline runs it on every response that leaves the layer (the handler's
//! or a rendered rejection), before the response is returned.

use crate::principal::BoxFuture;
use http::HeaderMap;

use crate::principal::Principal;
use crate::rejection::AuthError;

/// How authentication settled for a request, as a response hook sees it.
#[derive(Clone, Copy, Debug)]
pub enum Settled<'a> {
    /// The path is public: authentication was skipped.
    Public,
    /// The request carries this principal.
    Authenticated(&'a Principal),
    /// The request goes on without a principal (optional or enrich-only
    /// mode), for this reason.
    Anonymous(&'a AuthError),
    /// The request is rejected with this error; the handler does not run.
    Rejected(&'a AuthError),
}

/// What a [`ResponseHook`] still has to do after editing the response head.
pub enum Finish {
    /// Nothing more.
    Done,
    /// Async work (e.g. a store write); its headers are appended to the
    /// response. An error replaces the response with the rendered error
    /// (e.g. 503 when a store is down), never a 500.
    Pending(BoxFuture<'static, Result<HeaderMap, AuthError>>),
}

impl std::fmt::Debug for Finish {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Finish::Done => "Finish::Done",
            Finish::Pending(_) => "Finish::Pending",
        })
    }
}

/// Response-side work for one request, for authenticators that keep state
/// with the client: sessions set or clear their cookie, write back changed
/// data and extend the idle deadline after the handler answered. The
/// pipeline runs it on every response that leaves the layer (the handler's or
/// a rendered rejection), before the response is returned; see
/// [`Authenticator::response_hook`](super::Authenticator::response_hook).
pub trait ResponseHook: Send + 'static {
    /// Edits the response head (status, headers) and says whether async work
    /// remains.
    fn finish(self: Box<Self>, response: &mut http::response::Parts) -> Finish;
}
