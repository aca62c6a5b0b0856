//! The verified-token cache: a repeated token costs a hash and a lookup
//! instead of a signature check.
//!
//! **Keyed by a digest.** An entry is found by a 128-bit SipHash-1-3 of the
//! whole token under a random per-cache key, not by the token itself: an
//! entry no longer grows with the token (a 700-byte RS256 token would be
//! most of it). A token is served another token's principal only if their
//! digests collide; SipHash is a keyed pseudorandom function, so without
//! the key a collision with a token one has not seen is a 2^-128 guess per
//! cached token, and a collision between tokens one holds yields only a
//! principal one could present anyway.
//!
//! **Expiry and trust.** An entry is never served past the token's `exp`
//! (+ leeway), nor once its signing key left the key set: both are checked
//! on every hit, and a failing entry is dropped. An expired entry nobody
//! asks for again takes a slot until eviction reaches it, which the bound
//! below already accounts for.
//!
//! **Bounds.** At most `capacity` entries (rounded up to a whole number per
//! shard; shards hold at least 32), evicted by S3-FIFO (quick_cache): an
//! entry starts in a small probation queue and moves to the main queue if
//! it is hit while there, so a stream of tokens seen twice cannot push out
//! the hot ones. Memory: about 0.7 KiB per entry at rest for a typical
//! access token (measured by the `memory_per_token` bench): the digest,
//! the mapped principal, and its claims as compact JSON text. A handler
//! that reads raw claims (`claims()`, `claim()`) parses them once and the
//! parsed form then stays with the entry; `claims_as` reads from the text
//! without keeping a parsed copy. Plus the doorkeeper, 8 bytes per unit of
//! capacity.
//!
//! **Admission on second sight.** A token enters the cache the second time
//! it is verified, not the first: a doorkeeper (one 64-bit fingerprint per
//! slot, as many slots as the cache's capacity rounded up to a power of
//! two) remembers tokens seen once. One-time tokens (a new `jti` per
//! request) therefore never pay an insert and never crowd the cache, and a
//! repeated token is served from the cache from its third request on, even
//! when the cache is full of other tokens: every admitted token gets a
//! place in the probation queue. Two tokens sharing a doorkeeper slot only
//! cost the later one an extra verification.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use quick_cache::sync::Cache;
use siphasher::sip128::{Hasher128, SipHasher13};

use super::authenticator::Issuer;
use super::jwk::VerifyingKey;
use crate::principal::Principal;

#[derive(Clone)]
struct Entry {
    principal: Principal,
    /// The issuer (its key set, and its rules for what a hit still needs,
    /// e.g. a DPoP proof), and the key that verified the token.
    issuer: Arc<Issuer>,
    key: Arc<VerifyingKey>,
    /// `exp` + leeway: the last moment the token is acceptable.
    valid_until: SystemTime,
}

/// A token's 128-bit keyed digest: the cache key (see the module docs).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct TokenDigest(u128);

/// Remembers tokens verified once (see the module docs).
struct Doorkeeper {
    slots: Box<[AtomicU64]>,
}

impl Doorkeeper {
    fn new(capacity: u64) -> Self {
        let len = usize::try_from(capacity.clamp(64, 1 << 20))
            .unwrap_or(1 << 20)
            .next_power_of_two();
        Self {
            slots: (0..len).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Whether the token was seen before; if not, it is remembered now.
    fn seen_before(&self, digest: TokenDigest) -> bool {
        // The digest's halves are independent: one picks the slot, the
        // other is the fingerprint (never 0, the empty slot).
        let fingerprint = digest.0 as u64 | 1;
        let slot = &self.slots[(digest.0 >> 64) as usize & (self.slots.len() - 1)];
        if slot.load(Ordering::Relaxed) == fingerprint {
            return true;
        }
        slot.store(fingerprint, Ordering::Relaxed);
        false
    }
}

pub(crate) struct TokenCache {
    cache: Cache<TokenDigest, Entry>,
    doorkeeper: Doorkeeper,
    digest_key: SipHasher13,
}

impl TokenCache {
    pub(crate) fn new(capacity: u64) -> Self {
        Self {
            cache: Cache::new(usize::try_from(capacity).unwrap_or(usize::MAX)),
            doorkeeper: Doorkeeper::new(capacity),
            digest_key: random_sip_key(),
        }
    }

    /// The token's cache key.
    pub(crate) fn digest(&self, token: &str) -> TokenDigest {
        let mut hasher = self.digest_key;
        hasher.write(token.as_bytes());
        TokenDigest(hasher.finish128().as_u128())
    }

    /// The cached principal for the token, if it is still acceptable.
    pub(crate) fn get(&self, digest: TokenDigest) -> Option<(Principal, Arc<Issuer>)> {
        let found = self.cache.get(&digest).and_then(|entry| {
            if SystemTime::now() >= entry.valid_until || !entry.issuer.store.still_trusts(&entry.key) {
                self.cache.remove(&digest);
                return None;
            }
            Some((entry.principal, entry.issuer))
        });
        crate::observe::token_cache_lookup(found.is_some());
        found
    }

    /// Remembers a verified token until `exp` + `leeway`, from its second
    /// verification on (the first only marks it in the doorkeeper).
    pub(crate) fn insert(
        &self,
        digest: TokenDigest,
        principal: &Principal,
        issuer: &Arc<Issuer>,
        key: Arc<VerifyingKey>,
        leeway: Duration,
    ) {
        let Some(expires_at) = principal.expires_at() else {
            return;
        };
        if !self.doorkeeper.seen_before(digest) {
            return;
        }
        let entry = Entry {
            principal: principal.compact(),
            issuer: Arc::clone(issuer),
            key,
            valid_until: expires_at + leeway,
        };
        self.cache.insert(digest, entry);
        #[cfg(feature = "metrics")]
        crate::observe::token_cache_entries(self.len());
    }

    /// How many tokens are cached.
    pub(crate) fn len(&self) -> u64 {
        self.cache.len() as u64
    }
}

/// A SipHash key no one outside this process can know. std's `RandomState`
/// is seeded from the OS's random source; two of its outputs are
/// pseudorandom under that secret seed, so they serve as our key without a
/// second source of randomness.
fn random_sip_key() -> SipHasher13 {
    let seed = RandomState::new();
    SipHasher13::new_with_keys(seed.hash_one(0_u8), seed.hash_one(1_u8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_doorkeeper_admits_a_token_on_second_sight() {
        let cache = TokenCache::new(10_000);
        let doorkeeper = &cache.doorkeeper;
        let seen = |token: &str| doorkeeper.seen_before(cache.digest(token));
        assert!(!seen("token-a"));
        assert!(seen("token-a"));
        assert!(seen("token-a"), "stays admitted");
        // One-time tokens only mark slots; a hot token among them still gets in.
        for i in 0..5_000 {
            assert!(!seen(&format!("one-time-{i}")));
        }
        assert!(!seen("hot"));
        assert!(seen("hot"));
        assert_eq!(doorkeeper.slots.len(), 16_384);
    }

    #[test]
    fn digests_are_stable_per_cache_and_keyed_per_cache() {
        let (one, other) = (TokenCache::new(64), TokenCache::new(64));
        assert!(one.digest("a.b.c") == one.digest("a.b.c"));
        assert!(one.digest("a.b.c") != one.digest("a.b.d"));
        // Another cache has another key: digests are not predictable.
        assert!(one.digest("a.b.c") != other.digest("a.b.c"));
    }
}
