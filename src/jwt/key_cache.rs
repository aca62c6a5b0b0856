//! [`KeyCache`]: how a JWKS-based layer fetches and keeps its keys.

use std::time::Duration;

use super::keys::CachePolicy;

/// How a JWKS-based layer fetches and keeps its provider's keys: freshness,
/// refetch cooldown, stale-if-error, backoff, how long a request may wait,
/// retries and prefetching. One value for every builder that verifies
/// against a key set ([`JwksAuthBuilder`](crate::jwt::JwksAuthBuilder),
/// [`CfAccessBuilder`](crate::cloudflare::CfAccessBuilder),
/// the Pomerium assertion builder), each taking it with `key_cache(..)`.
///
/// ```
/// use std::time::Duration;
/// use tower_authkit::jwt::{JwksAuthLayer, KeyCache};
///
/// let keys = KeyCache::default()
///     .max_age(Duration::from_secs(300))
///     .max_staleness(Duration::from_secs(6 * 3600));
/// let builder = JwksAuthLayer::builder()
///     .issuer("https://idp.example.com")
///     .audience("orders-api")
///     .key_cache(keys);
/// # let _ = builder;
/// ```
#[derive(Clone, Debug)]
#[must_use = "a KeyCache does nothing until a builder takes it"]
pub struct KeyCache {
    pub(crate) policy: CachePolicy,
    pub(crate) http_retries: u32,
    pub(crate) prefetch: bool,
}

impl Default for KeyCache {
    fn default() -> Self {
        KeyCache {
            policy: CachePolicy::default(),
            http_retries: crate::upstream::FetchPolicy::default().retries,
            prefetch: true,
        }
    }
}

impl KeyCache {
    /// How long fetched keys stay fresh (default 10 min). They are refreshed
    /// in the background at three quarters of this.
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.policy.max_age = max_age;
        self
    }

    /// Minimum time between refetches triggered by unknown `kid`s (default 30 s).
    pub fn refresh_cooldown(mut self, cooldown: Duration) -> Self {
        self.policy.cooldown = cooldown;
        self
    }

    /// How long past `max_age` the last good keys keep serving (default 24 h).
    /// Within it, requests are answered at once from the stale keys while one
    /// background refresh runs (stale-while-revalidate), so a slow or failing
    /// provider never makes a request that has a usable key wait.
    pub fn max_staleness(mut self, max_staleness: Duration) -> Self {
        self.policy.max_staleness = max_staleness;
        self
    }

    /// The first pause after a failed fetch (default 0.5 s). Each further
    /// consecutive failure doubles it, up to
    /// [`max_retry_backoff`](Self::max_retry_backoff); a success resets it. While
    /// no keys are known, 503 responses carry the time left as `Retry-After`.
    pub fn retry_failed_fetch_after(mut self, backoff: Duration) -> Self {
        self.policy.backoff.initial = backoff;
        self
    }

    /// The longest pause between fetch attempts while the provider keeps
    /// failing (default 1 s: the first request after an outage is served
    /// within about a second; one fetch per second is no load for a provider).
    pub fn max_retry_backoff(mut self, max: Duration) -> Self {
        self.policy.backoff.max = max;
        self
    }

    /// How long a request waits for keys when none are usable: at start, or
    /// for an unknown `kid` (default 2 s). After that it is answered 503 with
    /// `Retry-After` while the fetch goes on for later requests.
    pub fn max_key_wait(mut self, wait: Duration) -> Self {
        self.policy.max_wait = wait;
        self
    }

    /// Retries of transient HTTP failures of one fetch (default 2, with
    /// 100 ms doubling backoff).
    pub fn http_retries(mut self, retries: u32) -> Self {
        self.http_retries = retries;
        self
    }

    /// Whether building the layer starts fetching keys right away when a
    /// Tokio runtime is running (default true).
    pub fn prefetch(mut self, prefetch: bool) -> Self {
        self.prefetch = prefetch;
        self
    }
}
