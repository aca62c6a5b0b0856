//! The key-set cache: lock-free reads, single-flight refreshes, refresh-ahead,
//! an unknown-`kid` cooldown, and stale-if-error.
//!
//! Reads load an `Arc` snapshot (`ArcSwap`); no request ever waits on a lock
//! held across I/O. A refresh runs as one spawned task whose result every
//! concurrent waiter shares, so N cold requests cause one fetch.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use url::Url;

use super::algorithm::{Algorithm, AlgorithmSet};
use super::jwk::{KeySet, Lookup, VerifyingKey};
use crate::fetch::{FetchError, Fetcher, discover_document};
use crate::rejection::AuthError;

/// Timing rules of the key cache.
#[derive(Clone, Debug)]
pub(crate) struct CachePolicy {
    /// Keys are fresh this long after a fetch.
    pub(crate) max_age: Duration,
    /// Minimum time between refetches caused by unknown `kid`s.
    pub(crate) cooldown: Duration,
    /// How long past `max_age` the last good keys may serve while refreshes fail.
    pub(crate) max_staleness: Duration,
    /// After a failed fetch, how long before another is attempted.
    pub(crate) failure_backoff: Duration,
}

impl Default for CachePolicy {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(600),
            cooldown: Duration::from_secs(30),
            max_staleness: Duration::from_secs(24 * 3600),
            failure_backoff: Duration::from_secs(5),
        }
    }
}

/// Where keys come from.
#[derive(Clone, Debug)]
pub(crate) enum KeySource {
    /// OIDC discovery on this issuer, then its `jwks_uri`.
    Discovery { issuer: String },
    /// A pinned JWKS URL.
    Jwks(Url),
}

/// One fetched key set.
pub(crate) struct Snapshot {
    pub(crate) keys: KeySet,
    fetched_at: Instant,
    generation: u64,
}

type SharedRefresh = Shared<BoxFuture<'static, Result<Arc<Snapshot>, FetchError>>>;

#[derive(Default)]
struct RefreshState {
    inflight: Option<SharedRefresh>,
    last_unknown_kid_refresh: Option<Instant>,
    last_failure: Option<Instant>,
}

/// The answer to "which key verifies this token?": ready now (the common
/// case), or after a refresh.
pub(crate) enum KeyAnswer {
    Ready(Result<Arc<VerifyingKey>, AuthError>),
    Wait(BoxFuture<'static, Result<Arc<VerifyingKey>, AuthError>>),
}

pub(crate) struct KeyStore {
    source: KeySource,
    fetcher: Fetcher,
    allowed: AlgorithmSet,
    policy: CachePolicy,
    current: ArcSwapOption<Snapshot>,
    jwks_uri: ArcSwapOption<Url>,
    refresh: Mutex<RefreshState>,
    generations: std::sync::atomic::AtomicU64,
}

fn unknown_key() -> AuthError {
    AuthError::invalid_token("unknown signing key")
}

fn lookup(snapshot: &Snapshot, kid: Option<&str>, alg: Algorithm) -> Result<Arc<VerifyingKey>, AuthError> {
    match snapshot.keys.find(kid, alg) {
        Lookup::Found(key) => Ok(key),
        Lookup::Unknown => Err(unknown_key()),
        Lookup::WrongAlgorithm => Err(AuthError::invalid_token("token algorithm does not match its key")),
        Lookup::Ambiguous => Err(AuthError::invalid_token("token has no key id and several keys match")),
    }
}

impl KeyStore {
    pub(crate) fn new(source: KeySource, fetcher: Fetcher, allowed: AlgorithmSet, policy: CachePolicy) -> Self {
        Self {
            source,
            fetcher,
            allowed,
            policy,
            current: ArcSwapOption::empty(),
            jwks_uri: ArcSwapOption::empty(),
            refresh: Mutex::new(RefreshState::default()),
            generations: std::sync::atomic::AtomicU64::new(1),
        }
    }

    fn state(&self) -> MutexGuard<'_, RefreshState> {
        // The lock only guards a few fields and is never held across I/O; a
        // poisoned lock still holds consistent data.
        self.refresh.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts fetching keys in the background (at build time), if a Tokio
    /// runtime is running.
    pub(crate) fn prefetch(self: &Arc<Self>) {
        if tokio::runtime::Handle::try_current().is_ok() {
            let mut state = self.state();
            drop(self.refresh_locked(&mut state, Instant::now()));
        }
    }

    /// Whether `key` is still in the current key set (for cached tokens).
    /// Cached tokens skip `key_for`, so this also keeps the key set fresh:
    /// past ¾ of `max_age` it starts a background refresh (never waits).
    pub(crate) fn still_trusts(self: &Arc<Self>, key: &VerifyingKey) -> bool {
        let current = self.current.load();
        let Some(snapshot) = current.as_ref() else {
            return false;
        };
        let now = Instant::now();
        if now.saturating_duration_since(snapshot.fetched_at) >= self.policy.max_age / 4 * 3 {
            let mut state = self.state();
            drop(self.refresh_locked(&mut state, now));
        }
        // Same version: the key is in it by construction.
        key.generation == snapshot.generation || snapshot.keys.still_has(key)
    }

    /// Finds the key for a token's `kid` and `alg`.
    pub(crate) fn key_for(self: &Arc<Self>, kid: Option<&str>, alg: Algorithm) -> KeyAnswer {
        let now = Instant::now();
        let Some(snapshot) = self.current.load_full() else {
            return self.after_refresh(now, kid, alg, None);
        };
        let age = now.saturating_duration_since(snapshot.fetched_at);
        if age >= self.policy.max_age {
            return self.after_refresh(now, kid, alg, Some(snapshot));
        }
        if age >= self.policy.max_age / 4 * 3 {
            // Refresh ahead of expiry so no request has to wait for it.
            let mut state = self.state();
            drop(self.refresh_locked(&mut state, now));
        }
        match snapshot.keys.find(kid, alg) {
            Lookup::Unknown => self.on_unknown_kid(now, kid, alg),
            _ => KeyAnswer::Ready(lookup(&snapshot, kid, alg)),
        }
    }

    /// An unknown kid may mean the provider rotated: refetch, at most once
    /// per cooldown for everyone, sharing an in-flight refresh.
    fn on_unknown_kid(self: &Arc<Self>, now: Instant, kid: Option<&str>, alg: Algorithm) -> KeyAnswer {
        let mut state = self.state();
        let refresh = match &state.inflight {
            Some(inflight) => inflight.clone(),
            None => {
                let cooled = state
                    .last_unknown_kid_refresh
                    .is_none_or(|at| now.saturating_duration_since(at) >= self.policy.cooldown);
                if !cooled {
                    return KeyAnswer::Ready(Err(unknown_key()));
                }
                let Some(refresh) = self.refresh_locked(&mut state, now) else {
                    return KeyAnswer::Ready(Err(unknown_key()));
                };
                state.last_unknown_kid_refresh = Some(now);
                refresh
            }
        };
        drop(state);
        let kid = kid.map(str::to_owned);
        KeyAnswer::Wait(Box::pin(async move {
            match refresh.await {
                Ok(snapshot) => lookup(&snapshot, kid.as_deref(), alg),
                // The provider is down but we have keys: this kid is not among them.
                Err(_) => Err(unknown_key()),
            }
        }))
    }

    /// No keys yet, or keys past `max_age`: refresh and look up in the new
    /// set; on failure fall back to `stale` while within `max_staleness`.
    fn after_refresh(
        self: &Arc<Self>,
        now: Instant,
        kid: Option<&str>,
        alg: Algorithm,
        stale: Option<Arc<Snapshot>>,
    ) -> KeyAnswer {
        let refresh = {
            let mut state = self.state();
            self.refresh_locked(&mut state, now)
        };
        let usable_stale = stale
            .filter(|s| now.saturating_duration_since(s.fetched_at) < self.policy.max_age + self.policy.max_staleness);
        let Some(refresh) = refresh else {
            // In failure backoff: no fetch now.
            return KeyAnswer::Ready(match &usable_stale {
                Some(stale) => lookup(stale, kid, alg),
                None => Err(self.unavailable(now)),
            });
        };
        let store = Arc::clone(self);
        let kid = kid.map(str::to_owned);
        KeyAnswer::Wait(Box::pin(async move {
            match refresh.await {
                Ok(snapshot) => lookup(&snapshot, kid.as_deref(), alg),
                Err(_) => match &usable_stale {
                    Some(stale) => lookup(stale, kid.as_deref(), alg),
                    None => Err(store.unavailable(Instant::now())),
                },
            }
        }))
    }

    fn unavailable(&self, now: Instant) -> AuthError {
        let last_failure = self.state().last_failure;
        let wait = last_failure.map_or(self.policy.failure_backoff, |at| {
            self.policy
                .failure_backoff
                .saturating_sub(now.saturating_duration_since(at))
        });
        AuthError::unavailable("signing keys are unavailable", wait.max(Duration::from_secs(1)))
    }

    /// The in-flight refresh, or a new one; `None` while backing off after a
    /// failure. Called with the state lock held; spawns, never awaits.
    fn refresh_locked(self: &Arc<Self>, state: &mut RefreshState, now: Instant) -> Option<SharedRefresh> {
        if let Some(inflight) = &state.inflight {
            return Some(inflight.clone());
        }
        if state
            .last_failure
            .is_some_and(|at| now.saturating_duration_since(at) < self.policy.failure_backoff)
        {
            return None;
        }
        let store = Arc::clone(self);
        let refresh: BoxFuture<'static, _> = match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let task = runtime.spawn(async move { store.fetch_and_install().await });
                Box::pin(async move {
                    task.await
                        .unwrap_or_else(|_| Err(FetchError::Transport("refresh task ended".to_owned())))
                })
            }
            Err(_) => Box::pin(async { Err(FetchError::Transport("no Tokio runtime".to_owned())) }),
        };
        let shared = refresh.shared();
        state.inflight = Some(shared.clone());
        Some(shared)
    }

    async fn fetch_and_install(self: Arc<Self>) -> Result<Arc<Snapshot>, FetchError> {
        let result = self.fetch().await.map(Arc::new);
        let mut state = self.state();
        state.inflight = None;
        match &result {
            Ok(snapshot) => {
                tracing::debug!(keys = snapshot.keys.len(), "signing keys refreshed");
                self.current.store(Some(Arc::clone(snapshot)));
                state.last_failure = None;
            }
            Err(error) => {
                tracing::warn!(%error, "fetching signing keys failed; keeping the last good keys");
                state.last_failure = Some(Instant::now());
            }
        }
        result
    }

    async fn fetch(&self) -> Result<Snapshot, FetchError> {
        let url = match &self.source {
            KeySource::Jwks(url) => url.clone(),
            KeySource::Discovery { issuer } => match self.jwks_uri.load_full() {
                Some(url) => (*url).clone(),
                None => {
                    let url = discover_document(&self.fetcher, issuer, "jwks_uri").await?;
                    self.jwks_uri.store(Some(Arc::new(url.clone())));
                    url
                }
            },
        };
        let body = self.fetcher.get(&url).await?;
        let generation = self.generations.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let keys = KeySet::parse(&body, self.allowed, generation).map_err(FetchError::Invalid)?;
        if keys.len() == 0 {
            tracing::warn!(%url, "key set has no usable signing keys");
        }
        Ok(Snapshot {
            keys,
            fetched_at: Instant::now(),
            generation,
        })
    }
}
