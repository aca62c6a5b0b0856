//! An endpoint given in the configuration, or found through OpenID
//! discovery (`{issuer}/.well-known/openid-configuration`) and then kept,
//! re-read when a caller needs it fresher than a given age (the key set
//! does at each scheduled refresh, so a provider that moves its `jwks_uri`
//! is followed). Concurrent discoveries are one; while discovery keeps
//! failing, its last failure is answered again until the backoff step has
//! passed, so an outage does not turn every request into a discovery
//! fetch, and a known endpoint keeps serving while re-discovery fails.

use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use url::Url;

use super::{Backoff, FailureState, FetchError, Fetcher, discover_document};

/// Where an upstream endpoint is.
pub(crate) enum Endpoint {
    /// Configured.
    Fixed(Url),
    /// Named by the issuer's discovery document (boxed: it is large and
    /// only read on refreshes).
    Discovered(Box<Discovered>),
}

pub(crate) struct Discovered {
    issuer: String,
    field: &'static str,
    /// The endpoint found last, and when.
    known: RwLock<Option<(Url, Instant)>>,
    /// Held while discovering: one discovery at a time.
    discovering: tokio::sync::Mutex<()>,
    failure: Mutex<(FailureState, Option<FetchError>)>,
    backoff: Backoff,
}

impl Endpoint {
    /// The endpoint named `field` (`jwks_uri`, `introspection_endpoint`) in
    /// `issuer`'s discovery document, found at first use.
    pub(crate) fn discovered(issuer: impl Into<String>, field: &'static str, backoff: Backoff) -> Self {
        Endpoint::Discovered(Box::new(Discovered {
            issuer: issuer.into(),
            field,
            known: RwLock::new(None),
            discovering: tokio::sync::Mutex::new(()),
            failure: Mutex::default(),
            backoff,
        }))
    }

    /// The URL, or where it will be discovered, for messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Endpoint::Fixed(url) => url.to_string(),
            Endpoint::Discovered(discovered) => match discovered.known(None) {
                Some(url) => url.to_string(),
                None => format!(
                    "{} of {}",
                    discovered.field,
                    super::discovery_url(&discovered.issuer)
                        .map(String::from)
                        .unwrap_or_default()
                ),
            },
        }
    }

    /// The endpoint's URL, discovering it if needed.
    pub(crate) async fn url(&self, fetcher: &Fetcher) -> Result<Url, FetchError> {
        self.url_within(fetcher, None).await
    }

    /// The endpoint, re-discovered first when the one known is older than
    /// `max_age` (kept when that re-discovery fails).
    pub(crate) async fn url_within(&self, fetcher: &Fetcher, max_age: Option<Duration>) -> Result<Url, FetchError> {
        match self {
            Endpoint::Fixed(url) => Ok(url.clone()),
            Endpoint::Discovered(discovered) => discovered.url(fetcher, max_age).await,
        }
    }
}

impl Discovered {
    fn known(&self, max_age: Option<Duration>) -> Option<Url> {
        let known = self.known.read().unwrap_or_else(|p| p.into_inner());
        known
            .as_ref()
            .filter(|(_, found_at)| max_age.is_none_or(|max| found_at.elapsed() < max))
            .map(|(url, _)| url.clone())
    }

    async fn url(&self, fetcher: &Fetcher, max_age: Option<Duration>) -> Result<Url, FetchError> {
        if let Some(url) = self.known(max_age) {
            return Ok(url);
        }
        let _one_at_a_time = self.discovering.lock().await;
        // Someone else may have discovered it while we waited.
        if let Some(url) = self.known(max_age) {
            return Ok(url);
        }
        let previous = self.known(None);
        match self.discover(fetcher).await {
            Ok(url) => {
                if previous.as_ref().is_some_and(|old| *old != url) {
                    tracing::info!(issuer = %self.issuer, field = self.field, %url, "the discovery document names a new endpoint; following it");
                }
                *self.known.write().unwrap_or_else(|p| p.into_inner()) = Some((url.clone(), Instant::now()));
                Ok(url)
            }
            // The endpoint we know still serves while discovery fails.
            Err(error) => previous.ok_or(error),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (FailureState, Option<FetchError>)> {
        self.failure.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One discovery, unless backing off. Callers that queued behind a
    /// failed attempt get its error from here rather than trying in turn.
    async fn discover(&self, fetcher: &Fetcher) -> Result<Url, FetchError> {
        if let (state, Some(error)) = &*self.lock()
            && state.waiting(Instant::now()).is_some()
        {
            return Err(error.clone());
        }
        let found = discover_document(fetcher, &self.issuer, self.field).await;
        let mut failure = self.lock();
        match &found {
            Ok(_) => *failure = Default::default(),
            Err(error) => {
                let url = super::discovery_url(&self.issuer).map(String::from).unwrap_or_default();
                tracing::warn!(issuer = %self.issuer, %url, %error, "OpenID discovery failed");
                failure.0.failed(&self.backoff, Instant::now());
                failure.1 = Some(error.clone());
            }
        }
        found
    }
}
