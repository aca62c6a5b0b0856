//! The verified-token cache: a repeated token costs a hash and a lookup
//! instead of a signature check.
//!
//! Keyed by the whole token with a randomly seeded fast hasher (moka compares
//! the stored token for equality, so a collision can never return another
//! token's principal). An entry never outlives the token's `exp` (+ leeway),
//! and is dropped on use once its signing key left the key set.
//!
//! **Admission on second sight.** A token enters the cache the second time
//! it is verified, not the first: a doorkeeper (one 64-bit fingerprint per
//! slot, as many slots as the cache's capacity rounded up to a power of
//! two) remembers tokens seen once. One-time tokens (a new `jti` per
//! request) therefore never pay an insert and never crowd the cache, and a
//! repeated token is served from the cache from its third request on. Two
//! tokens sharing a slot only cost the later one an extra verification.

use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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

/// Remembers tokens verified once (see the module docs).
struct Doorkeeper {
    slots: Box<[AtomicU64]>,
    hasher: foldhash::fast::RandomState,
}

impl Doorkeeper {
    fn new(capacity: u64) -> Self {
        let len = usize::try_from(capacity.clamp(64, 1 << 20))
            .unwrap_or(1 << 20)
            .next_power_of_two();
        Self {
            slots: (0..len).map(|_| AtomicU64::new(0)).collect(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    /// Whether `token` was seen before; if not, it is remembered now.
    fn seen_before(&self, token: &str) -> bool {
        // Never 0, the empty slot.
        let fingerprint = self.hasher.hash_one(token) | 1;
        let slot = &self.slots[(fingerprint >> 1) as usize & (self.slots.len() - 1)];
        if slot.load(Ordering::Relaxed) == fingerprint {
            return true;
        }
        slot.store(fingerprint, Ordering::Relaxed);
        false
    }
}

pub(crate) struct TokenCache {
    cache: Cache<Arc<str>, Entry, foldhash::fast::RandomState>,
    doorkeeper: Doorkeeper,
}

impl TokenCache {
    pub(crate) fn new(capacity: u64) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(capacity)
                .expire_after(UntilExpiry)
                .build_with_hasher(foldhash::fast::RandomState::default()),
            doorkeeper: Doorkeeper::new(capacity),
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

    /// Remembers a verified token until `exp` + `leeway`, from its second
    /// verification on (the first only marks it in the doorkeeper).
    pub(crate) fn insert(&self, token: &str, principal: &Principal, key: Arc<VerifyingKey>, leeway: Duration) {
        let Some(expires_at) = principal.expires_at() else {
            return;
        };
        if !self.doorkeeper.seen_before(token) {
            return;
        }
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

#[cfg(test)]
mod tests {
    use super::Doorkeeper;

    #[test]
    fn the_doorkeeper_admits_a_token_on_second_sight() {
        let doorkeeper = Doorkeeper::new(10_000);
        assert!(!doorkeeper.seen_before("token-a"));
        assert!(doorkeeper.seen_before("token-a"));
        assert!(doorkeeper.seen_before("token-a"), "stays admitted");
        // One-time tokens only mark slots; a hot token among them still gets in.
        for i in 0..5_000 {
            assert!(!doorkeeper.seen_before(&format!("one-time-{i}")));
        }
        assert!(!doorkeeper.seen_before("hot"));
        assert!(doorkeeper.seen_before("hot"));
        assert_eq!(doorkeeper.slots.len(), 16_384);
    }
}
