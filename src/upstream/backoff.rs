//! How often a failing upstream is asked again.
//!
//! Every caller of an upstream (key sets, discovery, user-info, introspection,
//! identity lookups) backs off the same way after a failure: a short first
//! pause, doubling up to a cap. The default cap is one second: a failing
//! upstream is asked at most about once per second (per key), which damps an
//! outage instead of amplifying it, and the first request after the outage
//! ends is served within about a second, however long it lasted. A longer cap
//! trades that recovery time for even less load; it is configurable. [`FailureDamper`] applies it per cache key
//! for the verdict caches: while an upstream keeps failing for a key, the last
//! error is answered again instead of asking once per request.

use std::time::{Duration, Instant};

/// Exponential backoff: `initial`, doubling per consecutive failure, at most `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Backoff {
    pub(crate) initial: Duration,
    pub(crate) max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(1),
        }
    }
}

impl Backoff {
    /// The pause after the `failures`-th consecutive failure (1-based).
    pub(crate) fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(30);
        self.initial
            .saturating_mul(1 << doublings)
            .min(self.max.max(self.initial))
    }
}

/// A `Retry-After` for a wait: whole seconds, rounded up, at least one.
pub(crate) fn retry_after(wait: Duration) -> Duration {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    Duration::from_secs(secs.max(1))
}

#[cfg(any(feature = "proxy-user", feature = "introspection", feature = "cloudflare"))]
pub(crate) use damper::FailureDamper;

#[cfg(any(feature = "proxy-user", feature = "introspection", feature = "cloudflare"))]
mod damper {
    use std::hash::Hash;
    use std::time::Instant;

    use super::{Backoff, FailureState, retry_after};
    use crate::rejection::{AuthError, AuthErrorKind};

    #[derive(Clone)]
    struct Failure {
        state: FailureState,
        error: AuthError,
    }

    /// Remembers upstream failures per key (bounded), so a failing upstream
    /// is asked at most once per backoff step for each key. Clones share
    /// their memory.
    #[derive(Clone)]
    pub(crate) struct FailureDamper<K> {
        backoff: Backoff,
        failures: moka::sync::Cache<K, Failure>,
    }

    impl<K: Hash + Eq + Clone + Send + Sync + 'static> FailureDamper<K> {
        pub(crate) fn new(backoff: Backoff, capacity: u64) -> Self {
            Self {
                backoff,
                // Forget a key's failure count once it has been quiet for two
                // full steps at the cap.
                failures: moka::sync::Cache::builder()
                    .max_capacity(capacity)
                    .time_to_live(backoff.max.saturating_mul(2))
                    .build(),
            }
        }

        /// The error to answer without asking, while `key` is backing off.
        pub(crate) fn check(&self, key: &K) -> Result<(), AuthError> {
            self.check_at(key, Instant::now())
        }

        fn check_at(&self, key: &K, now: Instant) -> Result<(), AuthError> {
            let Some(failure) = self.failures.get(key) else {
                return Ok(());
            };
            match failure.state.waiting(now) {
                Some(wait) if failure.error.kind() == AuthErrorKind::Unavailable => {
                    Err(failure.error.with_retry_after(retry_after(wait)))
                }
                Some(_) => Err(failure.error),
                None => Ok(()),
            }
        }

        /// Records the outcome of one upstream call for `key`: upstream
        /// failures (502/503) start or extend the backoff, anything else ends it.
        pub(crate) fn record<T>(&self, key: &K, outcome: &Result<T, AuthError>) {
            self.record_at(key, outcome, Instant::now());
        }

        fn record_at<T>(&self, key: &K, outcome: &Result<T, AuthError>, now: Instant) {
            match outcome {
                Err(error) if matches!(error.kind(), AuthErrorKind::Unavailable | AuthErrorKind::BadGateway) => {
                    let mut state = self.failures.get(key).map(|f| f.state).unwrap_or_default();
                    state.failed(&self.backoff, now);
                    self.failures.insert(
                        key.clone(),
                        Failure {
                            state,
                            error: error.clone(),
                        },
                    );
                }
                // Only a key that failed has an entry; skip the write otherwise.
                _ if self.failures.contains_key(key) => self.failures.invalidate(key),
                _ => {}
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use std::time::Duration;

        use super::*;

        #[test]
        fn a_failing_key_is_answered_from_memory_until_its_backoff_ends() {
            let damper = FailureDamper::new(Backoff::default(), 100);
            let start = Instant::now();
            let failed: Result<(), _> = Err(AuthError::unavailable("down", Duration::from_secs(5)));
            assert!(damper.check_at(&1, start).is_ok());
            damper.record_at(&1, &failed, start);
            let error = damper.check_at(&1, start + Duration::from_millis(100)).unwrap_err();
            assert_eq!(error.kind(), AuthErrorKind::Unavailable);
            assert_eq!(error.retry_after(), Some(Duration::from_secs(1)));
            // Other keys are not affected.
            assert!(damper.check_at(&2, start).is_ok());
            // After the first step (0.5 s) the upstream is asked again...
            assert!(damper.check_at(&1, start + Duration::from_millis(600)).is_ok());
            // ...and a second failure doubles the pause (to the 1 s cap).
            let again = start + Duration::from_millis(600);
            damper.record_at(&1, &failed, again);
            assert!(damper.check_at(&1, again + Duration::from_millis(900)).is_err());
            assert!(damper.check_at(&1, again + Duration::from_millis(1100)).is_ok());
            damper.record_at(&1, &failed, again);
            assert!(
                damper.check_at(&1, again + Duration::from_millis(1100)).is_ok(),
                "capped at 1 s"
            );
        }

        #[test]
        fn success_and_client_errors_end_the_backoff() {
            let damper = FailureDamper::new(Backoff::default(), 100);
            let now = Instant::now();
            damper.record_at(&"k", &Err::<(), _>(AuthError::bad_gateway("bad answer")), now);
            assert_eq!(
                damper.check_at(&"k", now).unwrap_err().kind(),
                AuthErrorKind::BadGateway
            );
            damper.record_at(&"k", &Ok(()), now);
            assert!(damper.check_at(&"k", now).is_ok());
            damper.record_at(&"k", &Err::<(), _>(AuthError::bad_gateway("bad answer")), now);
            damper.record_at(&"k", &Err::<(), _>(AuthError::invalid_token("revoked")), now);
            assert!(damper.check_at(&"k", now).is_ok());
        }
    }
}

/// The consecutive-failure count and the time of the next allowed attempt.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct FailureState {
    failures: u32,
    retry_at: Option<Instant>,
}

impl FailureState {
    /// Whether an attempt must wait; the remaining wait if so.
    pub(crate) fn waiting(&self, now: Instant) -> Option<Duration> {
        self.retry_at
            .filter(|at| now < *at)
            .map(|at| at.saturating_duration_since(now))
    }

    pub(crate) fn failed(&mut self, backoff: &Backoff, now: Instant) {
        self.failures = self.failures.saturating_add(1);
        self.retry_at = Some(now + backoff.delay(self.failures));
    }

    pub(crate) fn succeeded(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_starts_small_doubles_and_is_capped() {
        let backoff = Backoff::default();
        let steps: Vec<u64> = (1..=4).map(|n| backoff.delay(n).as_millis() as u64).collect();
        assert_eq!(steps, [500, 1000, 1000, 1000]);
        let long = Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
        };
        let steps: Vec<u64> = (1..=9).map(|n| long.delay(n).as_millis() as u64).collect();
        assert_eq!(steps, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
        assert_eq!(long.delay(u32::MAX), Duration::from_secs(30));
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up() {
        assert_eq!(retry_after(Duration::from_millis(1)), Duration::from_secs(1));
        assert_eq!(retry_after(Duration::ZERO), Duration::from_secs(1));
        assert_eq!(retry_after(Duration::from_millis(2500)), Duration::from_secs(3));
    }

    #[test]
    fn failure_state_waits_then_resets_on_success() {
        let backoff = Backoff::default();
        let now = Instant::now();
        let mut state = FailureState::default();
        assert!(state.waiting(now).is_none());
        state.failed(&backoff, now);
        assert_eq!(state.waiting(now), Some(Duration::from_millis(500)));
        state.failed(&backoff, now);
        assert_eq!(state.waiting(now), Some(Duration::from_secs(1)));
        state.failed(&backoff, now);
        assert_eq!(state.waiting(now), Some(Duration::from_secs(1)), "capped");
        assert!(state.waiting(now + Duration::from_secs(1)).is_none());
        state.succeeded();
        assert!(state.waiting(now).is_none());
    }
}
