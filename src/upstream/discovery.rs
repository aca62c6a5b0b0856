//! An endpoint given in the configuration, or found once through OpenID
//! discovery (`{issuer}/.well-known/openid-configuration`) and then kept.
//! Concurrent first uses share one discovery; while discovery keeps failing,
//! its last failure is answered again until the backoff step has passed, so
//! an outage does not turn every request into a discovery fetch.

use std::sync::Mutex;
use std::time::Instant;

use tokio::sync::OnceCell;
use url::Url;

use super::{Backoff, FailureState, FetchError, Fetcher, discover_document};

/// Where an upstream endpoint is.
pub(crate) enum Endpoint {
    /// Configured.
    Fixed(Url),
    /// Named by the issuer's discovery document.
    Discovered(Discovered),
}

pub(crate) struct Discovered {
    issuer: String,
    field: &'static str,
    url: OnceCell<Url>,
    failure: Mutex<(FailureState, Option<FetchError>)>,
    backoff: Backoff,
}

impl Endpoint {
    /// The endpoint named `field` (`jwks_uri`, `introspection_endpoint`) in
    /// `issuer`'s discovery document, found at first use.
    pub(crate) fn discovered(issuer: impl Into<String>, field: &'static str, backoff: Backoff) -> Self {
        Endpoint::Discovered(Discovered {
            issuer: issuer.into(),
            field,
            url: OnceCell::new(),
            failure: Mutex::default(),
            backoff,
        })
    }

    /// The URL, or where it will be discovered, for messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Endpoint::Fixed(url) => url.to_string(),
            Endpoint::Discovered(discovered) => match discovered.url.get() {
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
        let discovered = match self {
            Endpoint::Fixed(url) => return Ok(url.clone()),
            Endpoint::Discovered(discovered) => discovered,
        };
        discovered
            .url
            .get_or_try_init(|| discovered.discover(fetcher))
            .await
            .cloned()
    }
}

impl Discovered {
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
