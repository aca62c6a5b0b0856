//! The verified-token cache: a repeated token costs a hash and a lookup
//! instead of a signature check.
//!
//! Keyed by the whole token with a randomly seeded fast hasher (moka compares
//! the stored token for equality, so a collision can never return another
//! token's principal). An entry never outlives the token's `exp` (+ leeway),
//! and is dropped on use once its signing key left the key set.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use moka::Expiry;
use moka::sync::Cache;

use super::jwk::VerifyingKey;
use super::keys::KeyStore;
use crate::principal::Principal;

#[derive(Clone)]
struct Entry {
    principal: Principal,
    key: Arc<VerifyingKey>,
    /// `exp` + leeway: the last moment the token is acceptable.
    valid_until: SystemTime,
}

struct UntilExpiry;

impl Expiry<Arc<str>, Entry> for UntilExpiry {
    fn expire_after_create(&self, _token: &Arc<str>, entry: &Entry, _now: Instant) -> Option<Duration> {
        Some(
            entry
                .valid_until
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO),
        )
    }
}

pub(crate) struct TokenCache {
    cache: Cache<Arc<str>, Entry, foldhash::fast::RandomState>,
}

impl TokenCache {
    pub(crate) fn new(capacity: u64) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(capacity)
                .expire_after(UntilExpiry)
                .build_with_hasher(foldhash::fast::RandomState::default()),
        }
    }

    /// The cached principal for `token`, if it is still acceptable.
    pub(crate) fn get(&self, token: &str, store: &Arc<KeyStore>) -> Option<Principal> {
        // moka enforces the per-entry expiry (exp + leeway) on read.
        let entry = self.cache.get(token)?;
        if !store.still_trusts(&entry.key) {
            self.cache.invalidate(token);
            return None;
        }
        Some(entry.principal)
    }

    /// Remembers a verified token until `exp` + `leeway`.
    pub(crate) fn insert(&self, token: &str, principal: &Principal, key: Arc<VerifyingKey>, leeway: Duration) {
        let Some(expires_at) = principal.expires_at() else {
            return;
        };
        let entry = Entry {
            principal: principal.clone(),
            key,
            valid_until: expires_at + leeway,
        };
        self.cache.insert(Arc::from(token), entry);
    }

    /// How many tokens are cached (after pending evictions).
    pub(crate) fn len(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }
}
