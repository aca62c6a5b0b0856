//! One conformance suite for every session store: the same behaviour from
//! memory, SQLite and Redis (the suite is the test kit's, public, so other
//! stores run it too).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tower_authkit::session::store::{AttemptCounter, SessionRecords, UserSessions};
use tower_authkit_testing::store_conformance::{HOUR, ago_ms, in_ms, key, now, record, user};

tower_authkit_testing::store_conformance!(memory, Arc::new(tower_authkit::session::store::MemoryStore::new()));

#[cfg(feature = "session-sqlite")]
tower_authkit_testing::store_conformance!(sqlite, {
    let dir = tempfile::tempdir().unwrap();
    let store = tower_authkit::session::store::SqliteStore::open(dir.path().join("sessions.db")).unwrap();
    // The directory must outlive the test: leak it (a few bytes per test).
    std::mem::forget(dir);
    Arc::new(store)
});

#[cfg(feature = "session-sqlite")]
mod sqlite_specific {
    use super::*;
    use tower_authkit::session::store::SqliteStore;

    #[tokio::test]
    async fn records_survive_reopening_and_the_sweeper_purges_expired_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sessions.db");
        let live = record(&user("persistent"), HOUR);
        let mut expired = record(&user("expired"), HOUR);
        expired.idle_expires_at = ago_ms(1);
        {
            let store = SqliteStore::open(&path).unwrap();
            store.create(&live).await.unwrap();
            store.create(&expired).await.unwrap();
        }
        let reopened = SqliteStore::open(&path).unwrap();
        assert_eq!(reopened.load(&live.key).await.unwrap(), Some(live.clone()));
        assert_eq!(reopened.sweep().await.unwrap(), 1, "only the expired record");
        assert!(reopened.load(&live.key).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_failing_database_is_a_store_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sessions.db");
        let store = SqliteStore::open(&path).unwrap();
        let live = record(&user("victim"), HOUR);
        store.create(&live).await.unwrap();
        // Another process breaks the database under us.
        let other = rusqlite::Connection::open(&path).unwrap();
        other
            .execute_batch("DROP TABLE authkit_sessions; DROP TABLE authkit_counters;")
            .unwrap();
        assert!(store.load(&live.key).await.is_err());
        assert!(store.touch(&live.key, now(), in_ms(1000)).await.is_err());
        assert!(store.count_failure("c", Duration::from_secs(1)).await.is_err());
        assert!(SqliteStore::open(dir.path().join("missing-dir/x.db")).is_err());
    }
}

/// The Redis the test script started (`AUTHKIT_TEST_REDIS_URL`).
#[cfg(feature = "session-redis")]
fn redis_url() -> String {
    std::env::var("AUTHKIT_TEST_REDIS_URL").expect(
        "AUTHKIT_TEST_REDIS_URL is not set: scripts/test.sh starts a redis-server and sets it \
         (or start one and set it to redis://127.0.0.1:PORT)",
    )
}

/// A store with a prefix of its own, so tests never see each other's keys.
#[cfg(feature = "session-redis")]
fn redis_store() -> tower_authkit::session::store::RedisStore {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let prefix = format!(
        "authkit-test:{}:{}:{}:",
        std::process::id(),
        now().as_millis(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    tower_authkit::session::store::RedisStore::with_prefix(&redis_url(), &prefix).unwrap()
}

#[cfg(feature = "session-redis")]
tower_authkit_testing::store_conformance!(redis, Arc::new(redis_store()));

#[cfg(feature = "session-redis")]
mod redis_specific {
    use super::*;
    use crate::common::redis_server::{Server, free_port};
    use tower_authkit::session::store::RedisStore;

    #[tokio::test]
    async fn forty_expired_sign_ins_leave_no_trace_in_the_user_index() {
        let prefix = format!("authkit-index-test:{}:{}:", std::process::id(), now().as_millis());
        let store = RedisStore::with_prefix(&redis_url(), &prefix).unwrap();
        let subject = user("frequent");
        for _ in 0..40 {
            let mut short = record(&subject, HOUR);
            short.idle_expires_at = in_ms(100);
            store.create(&short).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
        store.create(&record(&subject, HOUR)).await.unwrap();
        let members = std::process::Command::new("redis-cli")
            .args(["-u", &redis_url(), "ZCARD", &format!("{prefix}u:{subject}")])
            .output()
            .expect("redis-cli (installed with redis-server)");
        let count: u64 = String::from_utf8_lossy(&members.stdout).trim().parse().unwrap();
        assert_eq!(count, 1, "only the live session is indexed");
        assert_eq!(store.delete_user(&subject).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn records_expire_in_redis_itself_at_their_deadline() {
        let store = redis_store();
        let mut short = record(&user("short"), HOUR);
        short.idle_expires_at = in_ms(300);
        store.create(&short).await.unwrap();
        assert!(store.load(&short.key).await.unwrap().is_some());
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(store.load(&short.key).await.unwrap(), None);
        assert!(store.list_user(short.subject()).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_unreachable_redis_is_a_store_error_and_the_store_reconnects() {
        let port = free_port();
        let url = format!("redis://127.0.0.1:{port}");
        // Nothing listens yet: errors, not hangs or panics.
        let store = RedisStore::new(&url).unwrap();
        let started = std::time::Instant::now();
        assert!(store.load(&key()).await.is_err());
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "bounded: {:?}",
            started.elapsed()
        );
        let server = Server::start(port);
        let live = record(&user("reconnect"), HOUR);
        let mut stored = false;
        for _ in 0..100 {
            if store.create(&live).await.is_ok() {
                stored = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(stored, "reconnected once Redis was up");
        assert!(store.load(&live.key).await.unwrap().is_some());
        drop(server);
        assert!(store.load(&live.key).await.is_err(), "down again: an error");
        let _server = Server::start(port);
        let mut recovered = false;
        for _ in 0..100 {
            if store.load(&live.key).await.is_ok() {
                recovered = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(recovered);
        assert!(RedisStore::new("not a url").is_err());
        let outside = std::thread::spawn(|| RedisStore::new("redis://127.0.0.1:1").map(|_| ()));
        assert!(
            outside.join().unwrap().is_err(),
            "outside a runtime: an error, not a panic"
        );
    }
}
