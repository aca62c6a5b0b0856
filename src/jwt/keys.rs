//! The key-set cache: lock-free reads, single-flight refreshes, refresh-ahead,
//! stale-while-revalidate, an unknown-`kid` cooldown, and failure backoff.
//!
//! Reads load an `Arc` snapshot (`ArcSwap`); no request ever waits on a lock
//! held across I/O, and no request that has a usable key waits for a fetch.
//! A refresh runs as one spawned task whose result every concurrent waiter
//! shares, so N cold requests cause one fetch: before starting one, the
//! snapshot is re-checked under the lock (double-checked locking), since a
//! fetch may have finished between a request's read and its lock.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use url::Url;

use super::algorithm::{Algorithm, AlgorithmSet};
use super::jwk::{KeySet, Lookup, VerifyingKey};
use crate::rejection::AuthError;
use crate::upstream::{Backoff, FailureState, retry_after};
use crate::upstream::{Endpoint, FetchError, Fetcher};

/// Timing rules of the key cache.
#[derive(Clone, Debug)]
pub(crate) struct CachePolicy {
    /// Keys are fresh this long after a fetch.
    pub(crate) max_age: Duration,
    /// Minimum time between refetches caused by unknown `kid`s.
    pub(crate) cooldown: Duration,
    /// How long past `max_age` the last good keys keep serving (at once,
    /// while a background refresh runs or fails).
    pub(crate) max_staleness: Duration,
    /// Pauses between fetch attempts after failures.
    pub(crate) backoff: Backoff,
    /// How long a request with no usable key waits for a fetch before it is
    /// answered 503 (the fetch goes on).
    pub(crate) max_wait: Duration,
}

impl Default for CachePolicy {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(600),
            cooldown: Duration::from_secs(30),
            max_staleness: Duration::from_secs(24 * 3600),
            backoff: Backoff::default(),
            max_wait: Duration::from_secs(2),
        }
    }
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
    failure: FailureState,
    /// Why the last fetch failed, while backing off (answers follow its kind).
    last_error: Option<FetchError>,
}

/// What asking for a refresh led to.
enum Refresh {
    /// A fetch is running (just started, or shared with others).
    Running(SharedRefresh),
    /// Newer keys than the caller saw were installed in the meantime.
    Installed(Arc<Snapshot>),
    /// Backing off after failures: no fetch for this long.
    BackingOff(Duration),
}

/// The answer to "which key verifies this token?": ready now (the common
/// case), or after a refresh.
pub(crate) enum KeyAnswer {
    Ready(Result<Arc<VerifyingKey>, AuthError>),
    Wait(BoxFuture<'static, Result<Arc<VerifyingKey>, AuthError>>),
}

#[cfg(test)]
type PauseHook = Box<dyn Fn(&KeyStore) + Send + Sync>;

pub(crate) struct KeyStore {
    source: Endpoint,
    /// The issuer as configured (a tenant pattern for its tenants), for metrics.
    label: Box<str>,
    fetcher: Fetcher,
    allowed: AlgorithmSet,
    policy: CachePolicy,
    /// Only stored with `refresh` locked, so a snapshot loaded under that lock
    /// is the last one installed.
    current: ArcSwapOption<Snapshot>,
    refresh: Mutex<RefreshState>,
    generations: std::sync::atomic::AtomicU64,
    /// Runs between a request's snapshot read and its locked re-check, so
    /// tests can finish a fetch exactly there.
    #[cfg(test)]
    pause_after_read: Mutex<Option<PauseHook>>,
}

fn unknown_key() -> AuthError {
    AuthError::invalid_token("unknown signing key")
}

/// No answer from the provider (yet): 503.
fn unavailable(wait: Duration) -> AuthError {
    AuthError::unavailable("signing keys unreachable", retry_after(wait))
}

/// No usable keys because fetching failed: the crate's one mapping (503 for
/// an unreachable provider, 502 for an unusable answer).
fn fetch_failed(error: Option<&FetchError>, wait: Duration) -> AuthError {
    match error {
        Some(error) => error.to_auth_error("signing keys", retry_after(wait)),
        None => unavailable(wait),
    }
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
    pub(crate) fn new(source: Endpoint, fetcher: Fetcher, allowed: AlgorithmSet, policy: CachePolicy) -> Self {
        Self {
            label: source.describe().into_boxed_str(),
            source,
            fetcher,
            allowed,
            policy,
            current: ArcSwapOption::empty(),
            refresh: Mutex::new(RefreshState::default()),
            generations: std::sync::atomic::AtomicU64::new(1),
            #[cfg(test)]
            pause_after_read: Mutex::new(None),
        }
    }

    /// Names this key set in metrics (instead of its source).
    pub(crate) fn labelled(mut self, label: impl Into<String>) -> Self {
        self.label = label.into().into_boxed_str();
        self
    }

    fn state(&self) -> MutexGuard<'_, RefreshState> {
        // The lock only guards a few fields and is never held across I/O; a
        // poisoned lock still holds consistent data.
        self.refresh.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts fetching keys in the background (at build time), if a Tokio
    /// runtime is running.
    pub(crate) fn prefetch(self: &Arc<Self>) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            {
                let mut state = self.state();
                drop(self.refresh_locked(&mut state, Instant::now(), None));
            }
            runtime.spawn(Self::keep_fresh(Arc::downgrade(self)));
        }
    }

    /// Refreshes the keys in the background at ¾ of `max_age` even when no
    /// request comes (an idle service's first request then never waits).
    /// Only keys once loaded are kept fresh: loading them first is the
    /// requests' and readiness probes' job, so an issuer that never answered
    /// (a made-up tenant) is never polled by this. Holds the store weakly:
    /// the task ends once the layer is dropped.
    async fn keep_fresh(store: std::sync::Weak<Self>) {
        let mut backing_off = None;
        loop {
            let Some(due_in) = store.upgrade().map(|store| store.refresh_due_in(Instant::now())) else {
                return;
            };
            // At least 100 ms: never a busy loop while a refresh runs.
            let pause = backing_off.take().unwrap_or(due_in).max(Duration::from_millis(100));
            tokio::time::sleep(pause).await;
            let Some(store) = store.upgrade() else {
                return;
            };
            let now = Instant::now();
            let current = store.current.load();
            if let Some(snapshot) = current.as_ref()
                && store.refresh_due_in(now).is_zero()
            {
                let mut state = store.state();
                if let Refresh::BackingOff(wait) = store.refresh_locked(&mut state, now, Some(snapshot.generation)) {
                    backing_off = Some(wait);
                }
            }
        }
    }

    /// How long until the keys are due a refresh: ¾ of `max_age` after the
    /// last fetch, or a quarter of `max_age` to look again when there are
    /// none yet.
    fn refresh_due_in(&self, now: Instant) -> Duration {
        match self.current.load().as_ref() {
            Some(snapshot) => (self.policy.max_age / 4 * 3).saturating_sub(Self::age(snapshot, now)),
            None => self.policy.max_age / 4,
        }
    }

    /// Whether usable keys are loaded now.
    pub(crate) fn is_ready(&self) -> bool {
        self.current
            .load()
            .as_ref()
            .is_some_and(|snapshot| self.usable(snapshot, Instant::now()))
    }

    /// Whether the keys were never loaded and the last fetch failed, with
    /// none running: an issuer found by a tenant pattern is then forgotten.
    pub(crate) fn failed_without_keys(&self) -> bool {
        if self.current.load().is_some() {
            return false;
        }
        let state = self.state();
        state.inflight.is_none() && state.last_error.is_some()
    }

    /// Usable keys now, or the outcome of a fetch started (or joined) for
    /// them: the real fetch error when it fails. While backing off after a
    /// failure, that failure is answered at once.
    pub(crate) async fn ready(self: &Arc<Self>) -> Result<(), FetchError> {
        if self.is_ready() {
            return Ok(());
        }
        let seen = self.current.load().as_ref().map(|snapshot| snapshot.generation);
        let refresh = {
            let mut state = self.state();
            self.refresh_locked(&mut state, Instant::now(), seen)
        };
        match refresh {
            Refresh::Installed(_) => Ok(()),
            Refresh::Running(refresh) => refresh.await.map(|_| ()),
            Refresh::BackingOff(_) => Err(self
                .state()
                .last_error
                .clone()
                .unwrap_or(FetchError::Unreachable("backing off after a failed fetch"))),
        }
    }

    /// Where the keys come from, for messages.
    pub(crate) fn source(&self) -> String {
        self.source.describe()
    }

    fn age(snapshot: &Snapshot, now: Instant) -> Duration {
        now.saturating_duration_since(snapshot.fetched_at)
    }

    /// Keys serve until `max_age + max_staleness`; past `max_age` only while
    /// a refresh is attempted in the background.
    fn usable(&self, snapshot: &Snapshot, now: Instant) -> bool {
        Self::age(snapshot, now) < self.policy.max_age.saturating_add(self.policy.max_staleness)
    }

    /// From three quarters of `max_age` on, every use of the keys makes sure
    /// a refresh is running (or backing off), without waiting for it.
    fn refresh_if_aging(self: &Arc<Self>, snapshot: &Snapshot, now: Instant) {
        if Self::age(snapshot, now) >= self.policy.max_age / 4 * 3 {
            let mut state = self.state();
            drop(self.refresh_locked(&mut state, now, Some(snapshot.generation)));
        }
    }

    /// Whether `key` is still in the current, usable key set (for cached
    /// tokens). Cached tokens skip `key_for`, so this also keeps the key set
    /// fresh.
    pub(crate) fn still_trusts(self: &Arc<Self>, key: &VerifyingKey) -> bool {
        let current = self.current.load();
        let Some(snapshot) = current.as_ref() else {
            return false;
        };
        let now = Instant::now();
        if !self.usable(snapshot, now) {
            return false;
        }
        self.refresh_if_aging(snapshot, now);
        // Same version: the key is in it by construction.
        key.generation == snapshot.generation || snapshot.keys.still_has(key)
    }

    /// Finds the key for a token's `kid` and `alg`. Never waits while usable
    /// keys are known (stale-while-revalidate); otherwise waits at most
    /// `max_wait` for a fetch.
    pub(crate) fn key_for(self: &Arc<Self>, kid: Option<&str>, alg: Algorithm) -> KeyAnswer {
        let now = Instant::now();
        let snapshot = self.current.load_full();
        #[cfg(test)]
        self.pause_after_read();
        match snapshot {
            Some(snapshot) if self.usable(&snapshot, now) => {
                self.refresh_if_aging(&snapshot, now);
                match snapshot.keys.find(kid, alg) {
                    Lookup::Unknown => self.on_unknown_kid(now, kid, alg, &snapshot),
                    _ => KeyAnswer::Ready(lookup(&snapshot, kid, alg)),
                }
            }
            seen => self.without_usable_keys(now, kid, alg, seen.map(|s| s.generation)),
        }
    }

    /// An unknown kid may mean the provider rotated: refetch, at most once
    /// per cooldown for everyone, sharing an in-flight refresh.
    fn on_unknown_kid(self: &Arc<Self>, now: Instant, kid: Option<&str>, alg: Algorithm, seen: &Snapshot) -> KeyAnswer {
        let mut state = self.state();
        let cooled = state
            .last_unknown_kid_refresh
            .is_none_or(|at| now.saturating_duration_since(at) >= self.policy.cooldown);
        let joining = state.inflight.is_some();
        let refresh = if joining || cooled {
            self.refresh_locked(&mut state, now, Some(seen.generation))
        } else {
            match self.newer_than(Some(seen.generation)) {
                Some(newer) => Refresh::Installed(newer),
                None => return KeyAnswer::Ready(Err(unknown_key())),
            }
        };
        let refresh = match refresh {
            Refresh::Installed(newer) => return KeyAnswer::Ready(lookup(&newer, kid, alg)),
            // We have keys and the provider is failing: this kid is not among them.
            Refresh::BackingOff(_) => return KeyAnswer::Ready(Err(unknown_key())),
            Refresh::Running(refresh) => refresh,
        };
        if !joining {
            state.last_unknown_kid_refresh = Some(now);
        }
        drop(state);
        let kid = kid.map(str::to_owned);
        let wait = self.policy.max_wait;
        KeyAnswer::Wait(Box::pin(async move {
            match tokio::time::timeout(wait, refresh).await {
                Ok(Ok(snapshot)) => lookup(&snapshot, kid.as_deref(), alg),
                Ok(Err(_)) => Err(unknown_key()),
                // The provider is slow: we cannot tell yet whether the kid is real.
                Err(_) => Err(unavailable(Duration::ZERO)),
            }
        }))
    }

    /// No keys yet, or keys past `max_age + max_staleness`: wait for a fetch,
    /// at most `max_wait`; the fetch goes on for later requests after that.
    fn without_usable_keys(
        self: &Arc<Self>,
        now: Instant,
        kid: Option<&str>,
        alg: Algorithm,
        seen: Option<u64>,
    ) -> KeyAnswer {
        let refresh = {
            let mut state = self.state();
            self.refresh_locked(&mut state, now, seen)
        };
        let refresh = match refresh {
            Refresh::Installed(newer) => return KeyAnswer::Ready(lookup(&newer, kid, alg)),
            Refresh::BackingOff(wait) => {
                return KeyAnswer::Ready(Err(fetch_failed(self.state().last_error.as_ref(), wait)));
            }
            Refresh::Running(refresh) => refresh,
        };
        let store = Arc::clone(self);
        let kid = kid.map(str::to_owned);
        KeyAnswer::Wait(Box::pin(async move {
            match tokio::time::timeout(store.policy.max_wait, refresh).await {
                Ok(Ok(snapshot)) => lookup(&snapshot, kid.as_deref(), alg),
                Ok(Err(error)) => Err(fetch_failed(Some(&error), store.backoff_left())),
                Err(_) => Err(unavailable(Duration::ZERO)),
            }
        }))
    }

    fn backoff_left(&self) -> Duration {
        self.state().failure.waiting(Instant::now()).unwrap_or_default()
    }

    /// The installed snapshot, if it is not the one the caller saw. Called
    /// with the state lock held: installs happen under it, so the answer
    /// cannot go stale before the lock is released.
    fn newer_than(&self, seen: Option<u64>) -> Option<Arc<Snapshot>> {
        self.current
            .load_full()
            .filter(|current| Some(current.generation) != seen)
    }

    /// Double-checked start of a refresh: newer keys than the caller saw
    /// (a fetch finished between its read and this lock), else the in-flight
    /// refresh, else a new one unless backing off. Spawns, never awaits.
    fn refresh_locked(self: &Arc<Self>, state: &mut RefreshState, now: Instant, seen: Option<u64>) -> Refresh {
        if let Some(newer) = self.newer_than(seen) {
            return Refresh::Installed(newer);
        }
        if let Some(inflight) = &state.inflight {
            return Refresh::Running(inflight.clone());
        }
        if let Some(wait) = state.failure.waiting(now) {
            return Refresh::BackingOff(wait);
        }
        let store = Arc::clone(self);
        let refresh: BoxFuture<'static, _> = match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let task = runtime.spawn(async move { store.fetch_and_install().await });
                Box::pin(async move {
                    task.await
                        .unwrap_or_else(|_| Err(FetchError::Unreachable("the key refresh task ended")))
                })
            }
            Err(_) => Box::pin(async { Err(FetchError::Unreachable("no Tokio runtime to fetch keys on")) }),
        };
        let shared = refresh.shared();
        state.inflight = Some(shared.clone());
        Refresh::Running(shared)
    }

    async fn fetch_and_install(self: Arc<Self>) -> Result<Arc<Snapshot>, FetchError> {
        let result = self.fetch().await.map(Arc::new);
        crate::observe::key_set_fetch(&self.label, result.is_ok());
        let mut state = self.state();
        state.inflight = None;
        match &result {
            Ok(snapshot) => {
                tracing::debug!(keys = snapshot.keys.len(), "signing keys refreshed");
                self.current.store(Some(Arc::clone(snapshot)));
                state.failure.succeeded();
                state.last_error = None;
            }
            Err(error) => {
                state.failure.failed(&self.policy.backoff, Instant::now());
                state.last_error = Some(error.clone());
            }
        }
        result
    }

    /// Says which URL failed, why, and what requests get meanwhile.
    fn log_failure(&self, url: &Url, error: &FetchError) {
        let now = Instant::now();
        let serving = self.current.load_full().filter(|snapshot| self.usable(snapshot, now));
        match serving {
            Some(snapshot) => tracing::warn!(
                %url,
                %error,
                keys = snapshot.keys.len(),
                "fetching signing keys failed; serving the last good keys meanwhile"
            ),
            None => tracing::warn!(
                %url,
                %error,
                "fetching signing keys failed; no usable keys, so tokens are refused with 502/503"
            ),
        }
    }

    #[cfg(test)]
    fn pause_after_read(&self) {
        let hook = self.pause_after_read.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(hook) = hook.as_ref() {
            hook(self);
        }
    }

    async fn fetch(&self) -> Result<Snapshot, FetchError> {
        // Discovery failures are logged (with the discovery URL) by `Endpoint`.
        // Re-read the discovery document when it is older than half of
        // max_age, i.e. at each scheduled refresh (¾ of max_age): a moved
        // `jwks_uri` is followed at the next one.
        let url = self
            .source
            .url_within(&self.fetcher, Some(self.policy.max_age / 2))
            .await?;
        let generation = self.generations.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let fetched = self.fetcher.get(&url).await;
        let keys = match fetched
            .and_then(|body| KeySet::parse(&body, self.allowed, generation).map_err(FetchError::Invalid))
        {
            Ok(keys) => keys,
            Err(error) => {
                self.log_failure(&url, &error);
                return Err(error);
            }
        };
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

#[cfg(all(test, any(feature = "aws-lc-rs", feature = "rust-crypto")))]
mod tests {
    //! The single-flight races, forced: a hook pauses a request between its
    //! snapshot read and its locked re-check while the test finishes a fetch.

    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::*;
    // The test kit serves keys over HTTP; only strings cross over from it.
    use crate::upstream::FetchPolicy;
    use tower_authkit_testing::{IdpFailure, TestIdp};

    fn store_for(idp: &TestIdp, policy: CachePolicy) -> Arc<KeyStore> {
        let url = Url::parse(&idp.jwks_url()).unwrap();
        let fetcher = Fetcher::new(FetchPolicy::default()).unwrap();
        let allowed: AlgorithmSet = Algorithm::ALL.into_iter().collect();
        Arc::new(KeyStore::new(Endpoint::Fixed(url), fetcher, allowed, policy))
    }

    fn kid_and_alg(token: &str) -> (Option<String>, Algorithm) {
        let jws = super::super::verify::parse(token, Algorithm::ALL.into_iter().collect()).unwrap();
        (jws.kid.clone(), jws.alg)
    }

    async fn wait_for_fetches(idp: &TestIdp, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while idp.jwks_fetches() < count && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(idp.jwks_fetches(), count, "the provider saw the fetch");
    }

    /// While paused, lets the hanging provider answer and waits (bounded)
    /// until the keys it returned are installed.
    fn finish_fetch_during_pause(store: &KeyStore, idp: Arc<TestIdp>) {
        let before = store.current.load().as_ref().map(|s| s.generation);
        *store.pause_after_read.lock().unwrap() = Some(Box::new(move |store: &KeyStore| {
            idp.set_failure(IdpFailure::None);
            let deadline = Instant::now() + Duration::from_secs(5);
            while store.current.load().as_ref().map(|s| s.generation) == before && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
        }));
    }

    /// Runs `key_for` on a blocking thread, so the paused request does not
    /// hold a runtime worker the fetch needs.
    async fn key_for_paused(store: &Arc<KeyStore>, kid: Option<String>, alg: Algorithm) -> KeyAnswer {
        let store = Arc::clone(store);
        tokio::task::spawn_blocking(move || store.key_for(kid.as_deref(), alg))
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cold_request_that_reads_before_a_fetch_finishes_does_not_start_another() {
        let idp = Arc::new(TestIdp::start().await);
        let store = store_for(&idp, CachePolicy::default());
        let (kid, alg) = kid_and_alg(&idp.token().sign());
        idp.set_failure(IdpFailure::Hang);
        // The first cold request starts a fetch, which hangs.
        let KeyAnswer::Wait(first) = store.key_for(kid.as_deref(), alg) else {
            panic!("a cold request waits for keys");
        };
        let first = tokio::spawn(first);
        wait_for_fetches(&idp, 1).await;
        // The second reads "no keys"; the fetch finishes before it locks.
        finish_fetch_during_pause(&store, Arc::clone(&idp));
        let second = key_for_paused(&store, kid, alg).await;
        assert!(
            matches!(second, KeyAnswer::Ready(Ok(_))),
            "the re-check under the lock finds the new keys"
        );
        assert!(first.await.unwrap().is_ok());
        assert_eq!(idp.jwks_fetches(), 1, "one fetch for both requests");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unknown_kid_request_that_reads_before_a_refresh_finishes_uses_its_keys() {
        let idp = Arc::new(TestIdp::start().await);
        let store = store_for(
            &idp,
            CachePolicy {
                cooldown: Duration::from_secs(60),
                ..CachePolicy::default()
            },
        );
        let (kid, alg) = kid_and_alg(&idp.token().sign());
        let KeyAnswer::Wait(prime) = store.key_for(kid.as_deref(), alg) else {
            panic!("a cold request waits for keys");
        };
        assert!(prime.await.is_ok());
        let new_kid = idp.rotate();
        let (kid, alg) = kid_and_alg(&idp.token().sign());
        assert_eq!(kid.as_deref(), Some(new_kid.as_str()));
        idp.set_failure(IdpFailure::Hang);
        // The first request with the new kid starts the cooldown and a refresh.
        let KeyAnswer::Wait(first) = store.key_for(kid.as_deref(), alg) else {
            panic!("an unknown kid waits for a refresh");
        };
        let first = tokio::spawn(first);
        wait_for_fetches(&idp, 2).await;
        // The second saw the old keys; the refresh installs the new ones
        // before it locks, inside the cooldown.
        finish_fetch_during_pause(&store, Arc::clone(&idp));
        let second = key_for_paused(&store, kid, alg).await;
        assert!(
            matches!(second, KeyAnswer::Ready(Ok(_))),
            "the re-check under the lock finds the rotated key"
        );
        assert!(first.await.unwrap().is_ok());
        assert_eq!(idp.jwks_fetches(), 2, "no extra fetch");
    }
}
