//! [`VerdictCache`]: what an upstream said about a credential, kept for a
//! while. One shape serves every provider that asks an upstream per token
//! (Cloudflare identity, proxy-user, introspection):
//!
//! - a valid verdict is kept for the positive TTL (or less, e.g. never past
//!   the token's `exp`), an invalid one for the negative TTL;
//! - concurrent requests for one key share one upstream call;
//! - upstream failures are never cached as verdicts, but damped: while the
//!   upstream keeps failing for a key, the last failure is answered again
//!   for one backoff step instead of asking per request;
//! - keys are digests (`token::digest`), never raw tokens, so a cache dump
//!   or a `Debug` print cannot leak a credential.

use std::future::Future;
use std::hash::Hash;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::future::Cache;

use super::{Backoff, FailureDamper};
use crate::rejection::AuthError;

/// What an upstream said about a key.
pub(crate) enum Verdict<V> {
    /// Valid: kept for the positive TTL, or `lifetime` when that is shorter.
    Valid { value: V, lifetime: Option<Duration> },
    /// Not valid: kept for the negative TTL and answered with this error.
    Invalid(AuthError),
}

impl<V> Verdict<V> {
    /// Valid for the positive TTL.
    pub(crate) fn valid(value: V) -> Self {
        Verdict::Valid { value, lifetime: None }
    }
}

#[derive(Clone)]
struct Entry<V> {
    value: V,
    lifetime: Duration,
}

struct OwnLifetime;

impl<K, V> Expiry<K, Entry<V>> for OwnLifetime {
    fn expire_after_create(&self, _key: &K, entry: &Entry<V>, _created_at: Instant) -> Option<Duration> {
        Some(entry.lifetime)
    }
}

/// Positive and negative verdicts with single flight and damped failures.
/// Clones share the caches.
#[derive(Clone)]
pub(crate) struct VerdictCache<K, V> {
    ttl: Duration,
    valid: Cache<K, Entry<V>>,
    invalid: Cache<K, AuthError>,
    failures: FailureDamper<K>,
}

impl<K, V> VerdictCache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// At most `capacity` entries of each kind.
    pub(crate) fn new(ttl: Duration, negative_ttl: Duration, capacity: u64) -> Self {
        Self {
            ttl,
            valid: Cache::builder()
                .max_capacity(capacity)
                .expire_after(OwnLifetime)
                .build(),
            invalid: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(negative_ttl)
                .build(),
            failures: FailureDamper::new(Backoff::default(), capacity),
        }
    }

    /// The verdict for `key`: cached, or from `ask` (shared by concurrent
    /// callers). `ask` fails with the request's answer for an upstream
    /// failure (502/503: damped, not cached) or a client error (passed on).
    pub(crate) async fn get<F>(&self, key: K, ask: F) -> Result<V, AuthError>
    where
        F: Future<Output = Result<Verdict<V>, AuthError>>,
    {
        if let Some(error) = self.invalid.get(&key).await {
            return Err(error);
        }
        self.failures.check(&key)?;
        let fetch = async {
            let outcome = match ask.await {
                Ok(Verdict::Valid { value, lifetime }) => Ok(Entry {
                    value,
                    lifetime: lifetime.map_or(self.ttl, |own| own.min(self.ttl)),
                }),
                Ok(Verdict::Invalid(error)) => {
                    self.invalid.insert(key.clone(), error.clone()).await;
                    Err(error)
                }
                Err(error) => Err(error),
            };
            self.failures.record(&key, &outcome);
            outcome
        };
        self.valid
            .try_get_with(key.clone(), fetch)
            .await
            .map(|entry| entry.value)
            .map_err(|error| (*error).clone())
    }

    /// Forgets every verdict.
    pub(crate) fn clear(&self) {
        self.valid.invalidate_all();
        self.invalid.invalidate_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn cache() -> VerdictCache<[u8; 32], u32> {
        VerdictCache::new(Duration::from_secs(60), Duration::from_secs(60), 100)
    }

    #[tokio::test]
    async fn verdicts_are_kept_and_failures_are_damped_not_cached() {
        let cache = cache();
        let calls = Arc::new(AtomicUsize::new(0));
        let ask = |answer: Result<Verdict<u32>, AuthError>| {
            let calls = Arc::clone(&calls);
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                answer
            }
        };
        // Valid: asked once, then cached.
        assert_eq!(cache.get([1; 32], ask(Ok(Verdict::valid(7)))).await.unwrap(), 7);
        assert_eq!(cache.get([1; 32], ask(Ok(Verdict::valid(8)))).await.unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // Invalid: cached with its error.
        let invalid = AuthError::invalid_token("token is not active");
        assert!(cache.get([2; 32], ask(Ok(Verdict::Invalid(invalid)))).await.is_err());
        let again = cache.get([2; 32], ask(Ok(Verdict::valid(1)))).await.unwrap_err();
        assert_eq!(
            again.to_string(),
            AuthError::invalid_token("token is not active").to_string()
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // A failure is answered again during its backoff, not asked, not cached for good.
        let down = AuthError::unavailable("identity service unreachable", Duration::from_secs(1));
        assert!(cache.get([3; 32], ask(Err(down))).await.is_err());
        assert!(cache.get([3; 32], ask(Ok(Verdict::valid(3)))).await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(cache.get([3; 32], ask(Ok(Verdict::valid(3)))).await.unwrap(), 3);
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_verdict_never_outlives_its_own_lifetime() {
        let cache = cache();
        let short = Verdict::Valid {
            value: 1,
            lifetime: Some(Duration::from_millis(50)),
        };
        assert_eq!(cache.get([1; 32], async { Ok(short) }).await.unwrap(), 1);
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert_eq!(cache.get([1; 32], async { Ok(Verdict::valid(2)) }).await.unwrap(), 2);
    }

    #[tokio::test]
    async fn concurrent_requests_share_one_call() {
        let cache = cache();
        let calls = Arc::new(AtomicUsize::new(0));
        let (release, gate) = tokio::sync::watch::channel(false);
        let mut waiting = Vec::new();
        for _ in 0..8 {
            let (cache, calls, mut gate) = (cache.clone(), Arc::clone(&calls), gate.clone());
            waiting.push(tokio::spawn(async move {
                cache
                    .get([9; 32], async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        let _ = gate.wait_for(|open| *open).await;
                        Ok(Verdict::valid(5))
                    })
                    .await
            }));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        release.send(true).unwrap();
        for task in waiting {
            assert_eq!(task.await.unwrap().unwrap(), 5);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
