//! The in-process store: the default, for one process (tests, a single
//! replica). Sessions do not survive a restart and are not shared between
//! processes; use the SQLite or Redis store for that.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::{AttemptCounter, Counter, SaveOutcome, SessionRecords, StoreError, StoreFuture, UserSessions};
use crate::session::id::SessionHandle;
use crate::session::record::{SessionRecord, UnixMillis};

/// Sweep expired records once per this many creations.
const SWEEP_EVERY: u64 = 256;

#[derive(Default)]
struct State {
    records: HashMap<SessionHandle, SessionRecord>,
    by_user: HashMap<String, BTreeSet<SessionHandle>>,
    counters: HashMap<String, (u64, Instant)>,
}

impl State {
    fn remove(&mut self, key: &SessionHandle) -> Option<SessionRecord> {
        let record = self.records.remove(key)?;
        if let Some(keys) = self.by_user.get_mut(record.subject()) {
            keys.remove(key);
            if keys.is_empty() {
                self.by_user.remove(record.subject());
            }
        }
        Some(record)
    }

    fn insert(&mut self, record: SessionRecord) {
        self.by_user
            .entry(record.subject().to_owned())
            .or_default()
            .insert(record.key);
        self.records.insert(record.key, record);
    }

    /// The live record under `key`; an expired one is removed.
    fn live(&mut self, key: &SessionHandle, now: UnixMillis) -> Option<&mut SessionRecord> {
        if self.records.get(key).is_some_and(|r| !r.is_live(now)) {
            self.remove(key);
        }
        self.records.get_mut(key)
    }

    fn sweep(&mut self, now: UnixMillis) {
        let expired: Vec<SessionHandle> = self
            .records
            .values()
            .filter(|r| !r.is_live(now))
            .map(|r| r.key)
            .collect();
        for key in expired {
            self.remove(&key);
        }
        let instant = Instant::now();
        self.counters.retain(|_, (_, ends)| *ends > instant);
    }
}

/// Sessions in this process's memory. Cheap to clone (clones share records).
#[derive(Clone, Default)]
pub struct MemoryStore {
    state: Arc<RwLock<State>>,
    creations: Arc<AtomicU64>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("sessions", &self.read().records.len())
            .finish()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    // A poisoned lock still holds consistent maps: every mutation is a few
    // map operations that cannot panic halfway.
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }
}

fn ready<'a, T: Send + 'a>(value: T) -> StoreFuture<'a, T> {
    Box::pin(std::future::ready(Ok::<T, StoreError>(value)))
}

impl SessionRecords for MemoryStore {
    fn create<'a>(&'a self, record: &'a SessionRecord) -> StoreFuture<'a, ()> {
        let mut state = self.write();
        if self.creations.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            state.sweep(UnixMillis::now());
        }
        state.insert(record.clone());
        ready(())
    }

    fn load<'a>(&'a self, key: &'a SessionHandle) -> StoreFuture<'a, Option<SessionRecord>> {
        let now = UnixMillis::now();
        {
            let state = self.read();
            match state.records.get(key) {
                None => return ready(None),
                Some(record) if record.is_live(now) => return ready(Some(record.clone())),
                Some(_) => {}
            }
        }
        self.write().live(key, now);
        ready(None)
    }

    fn touch<'a>(
        &'a self,
        key: &'a SessionHandle,
        seen_at: UnixMillis,
        idle_expires_at: UnixMillis,
    ) -> StoreFuture<'a, bool> {
        let mut state = self.write();
        let touched = match state.live(key, UnixMillis::now()) {
            Some(record) => {
                record.last_seen_at = seen_at;
                record.idle_expires_at = idle_expires_at;
                true
            }
            None => false,
        };
        ready(touched)
    }

    fn save<'a>(
        &'a self,
        key: &'a SessionHandle,
        expected: u64,
        data: &'a Map<String, Value>,
        seen_at: UnixMillis,
        idle_expires_at: UnixMillis,
    ) -> StoreFuture<'a, SaveOutcome> {
        let mut state = self.write();
        let outcome = match state.live(key, UnixMillis::now()) {
            None => SaveOutcome::Gone,
            Some(record) if record.version != expected => SaveOutcome::Conflict,
            Some(record) => {
                record.data = data.clone();
                record.version += 1;
                record.last_seen_at = seen_at;
                record.idle_expires_at = idle_expires_at;
                SaveOutcome::Saved(record.version)
            }
        };
        ready(outcome)
    }

    fn rekey<'a>(
        &'a self,
        old: &'a SessionHandle,
        new: &'a SessionHandle,
        created_at: UnixMillis,
    ) -> StoreFuture<'a, bool> {
        let mut state = self.write();
        if state.live(old, UnixMillis::now()).is_none() {
            return ready(false);
        }
        let moved = match state.remove(old) {
            Some(mut record) => {
                record.key = *new;
                record.created_at = created_at;
                state.insert(record);
                true
            }
            None => false,
        };
        ready(moved)
    }

    fn delete<'a>(&'a self, key: &'a SessionHandle) -> StoreFuture<'a, bool> {
        ready(self.write().remove(key).is_some())
    }
}

impl UserSessions for MemoryStore {
    fn delete_user<'a>(&'a self, subject: &'a str) -> StoreFuture<'a, u64> {
        let mut state = self.write();
        let now = UnixMillis::now();
        let keys = state.by_user.remove(subject).unwrap_or_default();
        let mut live = 0;
        for key in keys {
            if state.records.remove(&key).is_some_and(|r| r.is_live(now)) {
                live += 1;
            }
        }
        ready(live)
    }

    fn list_user<'a>(&'a self, subject: &'a str) -> StoreFuture<'a, Vec<SessionRecord>> {
        let state = self.read();
        let now = UnixMillis::now();
        let mut records: Vec<SessionRecord> = state
            .by_user
            .get(subject)
            .into_iter()
            .flatten()
            .filter_map(|key| state.records.get(key))
            .filter(|r| r.is_live(now))
            .cloned()
            .collect();
        records.sort_by_key(|r| (r.created_at, r.key));
        ready(records)
    }
}

impl AttemptCounter for MemoryStore {
    fn count_failure<'a>(&'a self, counter: &'a str, window: Duration) -> StoreFuture<'a, Counter> {
        let mut state = self.write();
        let now = Instant::now();
        let entry = state.counters.entry(counter.to_owned()).or_insert((0, now + window));
        if entry.1 <= now {
            *entry = (0, now + window);
        }
        entry.0 += 1;
        let counter = Counter {
            count: entry.0,
            resets_in: entry.1 - now,
        };
        ready(counter)
    }

    fn failures<'a>(&'a self, counter: &'a str) -> StoreFuture<'a, Counter> {
        let state = self.read();
        let now = Instant::now();
        let counter = match state.counters.get(counter) {
            Some((count, ends)) if *ends > now => Counter {
                count: *count,
                resets_in: *ends - now,
            },
            _ => Counter {
                count: 0,
                resets_in: Duration::ZERO,
            },
        };
        ready(counter)
    }

    fn forgive<'a>(&'a self, counter: &'a str) -> StoreFuture<'a, ()> {
        let mut state = self.write();
        if let Some((count, ends)) = state.counters.get_mut(counter)
            && *ends > Instant::now()
        {
            *count = count.saturating_sub(1);
        }
        ready(())
    }

    fn reset_counter<'a>(&'a self, counter: &'a str) -> StoreFuture<'a, ()> {
        self.write().counters.remove(counter);
        ready(())
    }
}
