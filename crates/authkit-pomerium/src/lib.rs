//! Call Pomerium-protected routes from programs, signing the user in
//! through the browser: the client side of `tower-authkit` (whose
//! `pomerium` module verifies Pomerium's assertion in services behind it).
//!
//! ```
//! use tower_authkit_pomerium::{PomeriumClient, PomeriumClientMiddleware};
//! use tower_authkit_testing::FakePomerium;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let route = FakePomerium::start().await; // stands in for https://app.example.com
//! let auth = PomeriumClient::builder()
//!     .authenticated_domains(["127.0.0.1"]) // never send tokens elsewhere
//!     .opener(route.auto_sign_in())         // in real use: the browser (the default)
//!     .build()?;
//!
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(PomeriumClientMiddleware::new(auth))
//!     .build();
//! let response = client.get(route.url("/api/status")).send().await?;
//! assert_eq!(response.status(), 200);
//! assert_eq!(route.logins(), 1); // later requests reuse the token
//! # Ok(()) }
//! ```
//!
//! The first request to a route signs in: `GET
//! https://<route>/.pomerium/api/v1/login?pomerium_redirect_uri=http://127.0.0.1:<port>/<random>`
//! returns a sign-in URL, which is opened in the browser (or printed as
//! `sign in at: <URL>` when [`open_browser(false)`](PomeriumClientBuilder::open_browser)
//! or the browser cannot be started); after sign-in Pomerium redirects the
//! browser to the local one-shot listener with `pomerium_jwt`. Requests to
//! that route then carry `Authorization: Pomerium <jwt>`.
//!
//! - **Re-authentication**: a response redirecting to `/.pomerium/sign_in`,
//!   or a 401, signs in again and replays the request once. That needs a
//!   buffered body (`Full<Bytes>`, `Empty<Bytes>` or `String` for the tower
//!   layer; anything `reqwest::Request::try_clone` can clone for reqwest); a
//!   streaming body gets [`PomeriumClientError::BodyNotReplayable`]. A 403
//!   keeps the token: the user is signed in, just not allowed.
//! - **One sign-in per route**: concurrent requests wait for the same
//!   sign-in and share its outcome.
//! - **Scope**: with [`authenticated_domains`](PomeriumClientBuilder::authenticated_domains)
//!   only those domains and their subdomains get tokens; other hosts are
//!   passed through untouched. Tokens go over https only (http to loopback).
//! - **Tokens** live in memory unless [`cache(true)`](PomeriumClientBuilder::cache):
//!   then one `0600` file per route in a `0700` per-user directory; symlinks
//!   and other users' files are refused, and tokens whose `exp` is past or
//!   less than a minute away are dropped.
//!
//! Where it plugs in: [`PomeriumClientLayer`] for any tower HTTP client
//! (hyper-util's client, tonic channels), [`PomeriumClientMiddleware`] for
//! `reqwest-middleware`, and [`BlockingPomeriumClient`] for synchronous code.

#![warn(missing_debug_implementations, unreachable_pub)]

mod blocking;
mod builder;
mod callback;
mod disk;
mod error;
mod layer;
mod login;
mod middleware;
mod token;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderValue, StatusCode};

pub use blocking::BlockingPomeriumClient;
pub use builder::PomeriumClientBuilder;
pub use error::{BoxError, PomeriumClientError};
pub use layer::{PomeriumClientLayer, PomeriumClientService};
pub use login::print_sign_in_url;
pub use middleware::PomeriumClientMiddleware;

use disk::DiskCache;
use token::{Route, Token};
use tower_authkit::__private::Fetcher;

/// How long the user has to sign in, by default.
pub const DEFAULT_LOGIN_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Opens the sign-in URL for the user (see [`PomeriumClientBuilder::opener`]).
type Opener = Arc<dyn Fn(&str) -> std::io::Result<()> + Send + Sync>;

/// Pomerium sign-in state shared by every client it is plugged into: the
/// configuration, one token slot per route, and the optional disk cache.
/// Cheap to clone.
#[derive(Clone)]
pub struct PomeriumClient {
    shared: Arc<Shared>,
}

struct Shared {
    domains: Option<Vec<String>>,
    disk: Option<DiskCache>,
    open_browser: bool,
    opener: Option<Opener>,
    login_timeout: Duration,
    fetcher: Fetcher,
    routes: Mutex<HashMap<Route, Arc<Slot>>>,
}

/// One route's token. The std mutex guards a few fields and is never held
/// across an await; the async gate serializes sign-ins so concurrent
/// requests share one.
#[derive(Default)]
struct Slot {
    state: Mutex<SlotState>,
    gate: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct SlotState {
    token: Option<Token>,
    /// Sign-in attempts finished; a waiter that saw this change while queued
    /// takes the attempt's outcome instead of starting another.
    attempts: u64,
    last_failure: Option<PomeriumClientError>,
}

impl PomeriumClient {
    /// Starts a configuration; see [`PomeriumClientBuilder`] for the defaults.
    pub fn builder() -> PomeriumClientBuilder {
        PomeriumClientBuilder::default()
    }

    /// A tower layer adding this sign-in to an HTTP client service.
    pub fn layer(&self) -> PomeriumClientLayer {
        PomeriumClientLayer::new(self.clone())
    }

    /// The `Authorization` value for a request to `url`, signing in first if
    /// needed; `None` when the URL is out of scope (see
    /// [`authenticated_domains`](PomeriumClientBuilder::authenticated_domains)).
    /// For HTTP clients this crate does not plug into; call
    /// [`forget`](Self::forget) when the server then asks to sign in again.
    pub async fn authorization(&self, url: &http::Uri) -> Result<Option<HeaderValue>, PomeriumClientError> {
        let Some(route) = self.route_of(url)? else {
            return Ok(None);
        };
        Ok(Some(self.token(&route, None).await?.authorization().clone()))
    }

    /// Drops the token for `url`'s route (memory and disk), so the next
    /// request signs in again.
    pub fn forget(&self, url: &http::Uri) {
        if let Ok(Some(route)) = self.route_of(url) {
            let slot = self.slot(&route);
            lock(&slot.state).token = None;
            if let Some(disk) = &self.shared.disk {
                disk.remove(&route);
            }
        }
    }

    /// The route a request URL belongs to, when it should get a token.
    pub(crate) fn route_of(&self, url: &http::Uri) -> Result<Option<Route>, PomeriumClientError> {
        let Some(host) = url.host() else {
            return Err(PomeriumClientError::MissingHost);
        };
        self.in_scope(Route::from_uri(url), host)
    }

    pub(crate) fn route_of_url(&self, url: &url::Url) -> Result<Option<Route>, PomeriumClientError> {
        self.in_scope(Route::from_url(url), url.host_str().unwrap_or_default())
    }

    fn in_scope(&self, route: Option<Route>, host: &str) -> Result<Option<Route>, PomeriumClientError> {
        let Some(route) = route else { return Ok(None) };
        if let Some(domains) = &self.shared.domains
            && !route.within(domains)
        {
            return Ok(None);
        }
        if !route.is_secure() {
            return Err(PomeriumClientError::InsecureUrl(host.to_owned()));
        }
        Ok(Some(route))
    }

    /// A fresh token for `route`: from memory, else the disk cache, else a
    /// sign-in shared with every concurrent caller. `rejected` is the token
    /// the server just refused; it is never returned again.
    pub(crate) async fn token(&self, route: &Route, rejected: Option<&Token>) -> Result<Token, PomeriumClientError> {
        let slot = self.slot(route);
        let seen = {
            let state = lock(&slot.state);
            if let Some(token) = usable(&state, rejected) {
                return Ok(token);
            }
            state.attempts
        };
        let _gate = slot.gate.lock().await;
        {
            let mut state = lock(&slot.state);
            if let Some(token) = usable(&state, rejected) {
                return Ok(token);
            }
            if state.attempts != seen
                && let Some(failure) = &state.last_failure
            {
                return Err(failure.clone());
            }
            state.token = None;
        }
        if let Some(disk) = &self.shared.disk {
            // Another process may have signed in meanwhile: its token is as
            // good as a new sign-in; the refused one is deleted.
            match disk.load(route).map_err(PomeriumClientError::Cache)? {
                Some(token) if Some(&token) != rejected => {
                    lock(&slot.state).token = Some(token.clone());
                    return Ok(token);
                }
                Some(_) => disk.remove(route),
                None => {}
            }
        }
        let outcome = login::sign_in(&self.shared, route).await;
        let mut state = lock(&slot.state);
        state.attempts += 1;
        match outcome {
            Ok(token) => {
                state.token = Some(token.clone());
                state.last_failure = None;
                drop(state);
                if let Some(disk) = &self.shared.disk
                    && let Err(reason) = disk.store(route, &token)
                {
                    tracing::warn!(%reason, "pomerium token not cached on disk");
                }
                Ok(token)
            }
            Err(error) => {
                state.last_failure = Some(error.clone());
                Err(error)
            }
        }
    }

    /// Drops `rejected` without signing in again (the caller cannot retry).
    pub(crate) fn drop_rejected(&self, route: &Route, rejected: &Token) {
        let slot = self.slot(route);
        let mut state = lock(&slot.state);
        if state.token.as_ref() == Some(rejected) {
            state.token = None;
            if let Some(disk) = &self.shared.disk {
                disk.remove(route);
            }
        }
    }

    fn slot(&self, route: &Route) -> Arc<Slot> {
        lock(&self.shared.routes).entry(route.clone()).or_default().clone()
    }
}

impl std::fmt::Debug for PomeriumClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PomeriumClient")
            .field("authenticated_domains", &self.shared.domains)
            .field("cache_dir", &self.shared.disk.as_ref().map(DiskCache::dir))
            .field("open_browser", &self.shared.open_browser)
            .field("login_timeout", &self.shared.login_timeout)
            .finish_non_exhaustive()
    }
}

fn usable(state: &SlotState, rejected: Option<&Token>) -> Option<Token> {
    state
        .token
        .as_ref()
        .filter(|token| Some(*token) != rejected && token.is_fresh(SystemTime::now()))
        .cloned()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whether a response says the token is missing or no longer good: a 401,
/// or a redirect to Pomerium's `/.pomerium/sign_in` (on any host, usually
/// the authenticate service). A 403 is not: signed in, not allowed.
pub(crate) fn asks_for_sign_in(status: StatusCode, headers: &HeaderMap) -> bool {
    if status == StatusCode::UNAUTHORIZED {
        return true;
    }
    status.is_redirection()
        && headers
            .get(http::header::LOCATION)
            .and_then(|location| location.to_str().ok())
            .and_then(|location| location.parse::<http::Uri>().ok())
            .is_some_and(|location| is_sign_in_path(location.path()))
}

/// [`asks_for_sign_in`], or a client that followed the redirect and ended on
/// the sign-in page.
pub(crate) fn refused(status: StatusCode, headers: &HeaderMap, final_url: &url::Url) -> bool {
    asks_for_sign_in(status, headers) || is_sign_in_path(final_url.path())
}

fn is_sign_in_path(path: &str) -> bool {
    path == "/.pomerium/sign_in"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_is_asked_by_401_and_sign_in_redirects_only() {
        let redirect = |location: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(http::header::LOCATION, HeaderValue::from_str(location).unwrap());
            headers
        };
        let none = HeaderMap::new();
        assert!(asks_for_sign_in(StatusCode::UNAUTHORIZED, &none));
        assert!(!asks_for_sign_in(StatusCode::FORBIDDEN, &none), "403 keeps the token");
        assert!(!asks_for_sign_in(StatusCode::OK, &none));
        let to_authenticate = redirect("https://authenticate.example.com/.pomerium/sign_in?pomerium_redirect_uri=x");
        assert!(asks_for_sign_in(StatusCode::FOUND, &to_authenticate));
        assert!(asks_for_sign_in(StatusCode::SEE_OTHER, &redirect("/.pomerium/sign_in")));
        assert!(!asks_for_sign_in(StatusCode::FOUND, &redirect("/somewhere/else")));
        assert!(!asks_for_sign_in(StatusCode::OK, &to_authenticate), "only redirects");
    }

    #[test]
    fn scope_keeps_tokens_to_listed_domains_and_secure_urls() {
        let auth = PomeriumClient::builder()
            .authenticated_domains(["example.com", "localhost"])
            .build()
            .unwrap();
        let scope = |url: &str| auth.route_of(&url.parse().unwrap());
        assert!(scope("https://app.example.com/x").unwrap().is_some());
        assert!(
            scope("https://other.net/x").unwrap().is_none(),
            "out of scope: untouched"
        );
        assert!(scope("http://localhost:8080/x").unwrap().is_some());
        assert!(matches!(
            scope("http://app.example.com/x"),
            Err(PomeriumClientError::InsecureUrl(_))
        ));
        assert!(matches!(scope("/relative"), Err(PomeriumClientError::MissingHost)));
    }
}

// The README's snippets compile as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
