//! A store wrapper that times every call for the `metrics` feature
//! (`authkit_session_store_duration_seconds`, by operation and result).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::{
    AttemptCounter, Counter, SaveOutcome, SessionHandle, SessionRecord, SessionRecords, SessionStore, StoreFuture,
    UserSessions,
};
use crate::session::record::UnixMillis;

/// Times the calls of the store it wraps.
pub(crate) struct Timed(pub(crate) Arc<dyn SessionStore>);

fn timed<'a, T: Send + 'a>(operation: &'static str, call: StoreFuture<'a, T>) -> StoreFuture<'a, T> {
    Box::pin(async move {
        let started = Instant::now();
        let result = call.await;
        crate::observe::session_store(operation, result.is_ok(), started.elapsed());
        result
    })
}

impl SessionRecords for Timed {
    fn create<'a>(&'a self, record: &'a SessionRecord) -> StoreFuture<'a, ()> {
        timed("create", self.0.create(record))
    }

    fn load<'a>(&'a self, key: &'a SessionHandle) -> StoreFuture<'a, Option<SessionRecord>> {
        timed("load", self.0.load(key))
    }

    fn touch<'a>(
        &'a self,
        key: &'a SessionHandle,
        seen_at: UnixMillis,
        idle_expires_at: UnixMillis,
    ) -> StoreFuture<'a, bool> {
        timed("touch", self.0.touch(key, seen_at, idle_expires_at))
    }

    fn save<'a>(
        &'a self,
        key: &'a SessionHandle,
        expected: u64,
        data: &'a Map<String, Value>,
        seen_at: UnixMillis,
        idle_expires_at: UnixMillis,
    ) -> StoreFuture<'a, SaveOutcome> {
        timed("save", self.0.save(key, expected, data, seen_at, idle_expires_at))
    }

    fn rekey<'a>(
        &'a self,
        old: &'a SessionHandle,
        new: &'a SessionHandle,
        created_at: UnixMillis,
    ) -> StoreFuture<'a, bool> {
        timed("rekey", self.0.rekey(old, new, created_at))
    }

    fn delete<'a>(&'a self, key: &'a SessionHandle) -> StoreFuture<'a, bool> {
        timed("delete", self.0.delete(key))
    }
}

impl UserSessions for Timed {
    fn delete_user<'a>(&'a self, subject: &'a str) -> StoreFuture<'a, u64> {
        timed("delete_user", self.0.delete_user(subject))
    }

    fn list_user<'a>(&'a self, subject: &'a str) -> StoreFuture<'a, Vec<SessionRecord>> {
        timed("list_user", self.0.list_user(subject))
    }
}

impl AttemptCounter for Timed {
    fn count_failure<'a>(&'a self, counter: &'a str, window: Duration) -> StoreFuture<'a, Counter> {
        timed("count_failure", self.0.count_failure(counter, window))
    }

    fn forgive<'a>(&'a self, counter: &'a str) -> StoreFuture<'a, ()> {
        timed("forgive", self.0.forgive(counter))
    }

    fn failures<'a>(&'a self, counter: &'a str) -> StoreFuture<'a, Counter> {
        timed("failures", self.0.failures(counter))
    }

    fn reset_counter<'a>(&'a self, counter: &'a str) -> StoreFuture<'a, ()> {
        timed("reset_counter", self.0.reset_counter(counter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::store::MemoryStore;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    #[test]
    fn every_call_is_timed_by_operation_and_result() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let store = Timed(Arc::new(MemoryStore::new()));
        let key = SessionHandle::from_hex(&"ab".repeat(32)).unwrap();
        metrics::with_local_recorder(&recorder, || {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            runtime.block_on(async {
                assert!(store.load(&key).await.unwrap().is_none());
                assert!(!store.delete(&key).await.unwrap());
                assert_eq!(store.failures("c").await.unwrap().count, 0);
            });
        });
        let mut seen: Vec<(String, usize)> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| {
                let (_, key) = key.into_parts();
                let labels: Vec<String> = key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
                let samples = match value {
                    DebugValue::Histogram(samples) => samples.len(),
                    _ => 0,
                };
                (format!("{}{{{}}}", key.name(), labels.join(",")), samples)
            })
            .collect();
        seen.sort();
        let expected: Vec<(String, usize)> = ["delete", "failures", "load"]
            .iter()
            .map(|op| {
                (
                    format!("authkit_session_store_duration_seconds{{operation={op},result=ok}}"),
                    1,
                )
            })
            .collect();
        assert_eq!(seen, expected);
    }
}
