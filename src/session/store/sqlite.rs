//! SQLite: embedded and persistent (feature `session-sqlite`). One
//! connection in WAL mode, used from Tokio's blocking pool; the schema is
//! created on first use. Expired records are purged lazily and by
//! [`SqliteStore::spawn_sweeper`].

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Map, Value};

use super::{AttemptCounter, Counter, SaveOutcome, SessionRecords, StoreError, StoreFuture, UserSessions};
use crate::session::id::SessionHandle;
use crate::session::record::{SessionRecord, StoredPrincipal, UnixMillis, ms, now_ms};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS authkit_sessions (
    key TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    principal TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    idle_expires_at INTEGER NOT NULL,
    absolute_expires_at INTEGER NOT NULL,
    version INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS authkit_sessions_subject ON authkit_sessions (subject);
CREATE TABLE IF NOT EXISTS authkit_counters (
    name TEXT PRIMARY KEY,
    count INTEGER NOT NULL,
    ends_at INTEGER NOT NULL
);
";

/// Rows that are still valid at `?now`.
const LIVE: &str = "idle_expires_at > ?1 AND absolute_expires_at > ?1";

const COLUMNS: &str = "key, principal, data, created_at, last_seen_at, idle_expires_at, absolute_expires_at, version";

/// Sessions in a SQLite database. Cheap to clone (clones share the connection).
#[derive(Clone)]
pub struct SqliteStore {
    connection: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

fn failed(error: impl std::fmt::Display) -> StoreError {
    StoreError::new(format!("sqlite: {error}"))
}

fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A time as SQLite keeps it (integer milliseconds).
fn time(at: UnixMillis) -> i64 {
    int(at.as_millis())
}

fn uint(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn row_to_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<(String, String, String, [i64; 5])> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        [row.get(3)?, row.get(4)?, row.get(5)?, row.get(6)?, row.get(7)?],
    ))
}

fn decode((key, principal, data, times): (String, String, String, [i64; 5])) -> Result<SessionRecord, StoreError> {
    let key = SessionHandle::from_hex(&key).ok_or_else(|| failed("corrupt session key"))?;
    let principal: StoredPrincipal = serde_json::from_str(&principal).map_err(|_| failed("corrupt principal"))?;
    let data: Map<String, Value> = serde_json::from_str(&data).map_err(|_| failed("corrupt session data"))?;
    let [created_at, last_seen_at, idle_expires_at, absolute_expires_at, version] = times;
    Ok(SessionRecord {
        key,
        principal,
        data,
        created_at: UnixMillis::from_millis(uint(created_at)),
        last_seen_at: UnixMillis::from_millis(uint(last_seen_at)),
        idle_expires_at: UnixMillis::from_millis(uint(idle_expires_at)),
        absolute_expires_at: UnixMillis::from_millis(uint(absolute_expires_at)),
        version: uint(version),
    })
}

impl SqliteStore {
    /// Opens (or creates) the database at `path`, in WAL mode, and creates
    /// the schema if needed.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::init(Connection::open(path).map_err(failed)?)
    }

    /// A private in-memory database (tests).
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory().map_err(failed)?)
    }

    fn init(connection: Connection) -> Result<Self, StoreError> {
        connection.busy_timeout(Duration::from_secs(5)).map_err(failed)?;
        // WAL lets readers in other processes work while one writes.
        connection
            .query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
            .map_err(failed)?;
        connection
            .execute_batch("PRAGMA synchronous = NORMAL;")
            .map_err(failed)?;
        connection.execute_batch(SCHEMA).map_err(failed)?;
        Ok(Self {
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    /// Runs `work` with the connection on the blocking pool.
    fn run<'a, T: Send + 'static>(
        &'a self,
        work: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> StoreFuture<'a, T> {
        let connection = Arc::clone(&self.connection);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let mut connection = connection.lock().unwrap_or_else(|p| p.into_inner());
                work(&mut connection)
            })
            .await
            .map_err(|_| failed("blocking task failed"))?
        })
    }

    /// Deletes expired records and counters; returns how many sessions went.
    pub async fn sweep(&self) -> Result<u64, StoreError> {
        self.run(|c| {
            let now = int(now_ms());
            let removed = c
                .execute(
                    "DELETE FROM authkit_sessions WHERE idle_expires_at <= ?1 OR absolute_expires_at <= ?1",
                    params![now],
                )
                .map_err(failed)?;
            c.execute("DELETE FROM authkit_counters WHERE ends_at <= ?1", params![now])
                .map_err(failed)?;
            Ok(removed as u64)
        })
        .await
    }

    /// Sweeps every `every` in a background task (until the handle is aborted).
    pub fn spawn_sweeper(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                if let Err(error) = store.sweep().await {
                    tracing::warn!(%error, "session sweep failed");
                }
            }
        })
    }
}

impl SessionRecords for SqliteStore {
    fn create<'a>(&'a self, record: &'a SessionRecord) -> StoreFuture<'a, ()> {
        let record = record.clone();
        self.run(move |c| {
            let principal = serde_json::to_string(&record.principal).map_err(failed)?;
            let data = serde_json::to_string(&record.data).map_err(failed)?;
            c.execute(
                &format!(
                    "INSERT INTO authkit_sessions (subject, {COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                ),
                params![
                    record.subject(),
                    record.key.to_hex(),
                    principal,
                    data,
                    time(record.created_at),
                    time(record.last_seen_at),
                    time(record.idle_expires_at),
                    time(record.absolute_expires_at),
                    int(record.version),
                ],
            )
            .map_err(failed)?;
            Ok(())
        })
    }

    fn load<'a>(&'a self, key: &'a SessionHandle) -> StoreFuture<'a, Option<SessionRecord>> {
        let key = key.to_hex();
        self.run(move |c| {
            let now = int(now_ms());
            let row = c
                .query_row(
                    &format!("SELECT {COLUMNS} FROM authkit_sessions WHERE key = ?2 AND {LIVE}"),
                    params![now, key],
                    row_to_record,
                )
                .optional()
                .map_err(failed)?;
            match row {
                Some(row) => decode(row).map(Some),
                None => {
                    // Lazy purge of an expired record under this key.
                    c.execute("DELETE FROM authkit_sessions WHERE key = ?1", params![key])
                        .map_err(failed)?;
                    Ok(None)
                }
            }
        })
    }

    fn touch<'a>(
        &'a self,
        key: &'a SessionHandle,
        seen_at: UnixMillis,
        idle_expires_at: UnixMillis,
    ) -> StoreFuture<'a, bool> {
        let key = key.to_hex();
        self.run(move |c| {
            let changed = c
                .execute(
                    &format!(
                        "UPDATE authkit_sessions SET last_seen_at = ?2, idle_expires_at = ?3 WHERE key = ?4 AND {LIVE}"
                    ),
                    params![int(now_ms()), time(seen_at), time(idle_expires_at), key],
                )
                .map_err(failed)?;
            Ok(changed == 1)
        })
    }

    fn save<'a>(
        &'a self,
        key: &'a SessionHandle,
        expected: u64,
        data: &'a Map<String, Value>,
        seen_at: UnixMillis,
        idle_expires_at: UnixMillis,
    ) -> StoreFuture<'a, SaveOutcome> {
        let key = key.to_hex();
        let data = serde_json::to_string(data);
        self.run(move |c| {
            let data = data.map_err(failed)?;
            let now = int(now_ms());
            let changed = c
                .execute(
                    &format!(
                        "UPDATE authkit_sessions SET data = ?2, version = version + 1, last_seen_at = ?3, \
                         idle_expires_at = ?4 WHERE key = ?5 AND version = ?6 AND {LIVE}"
                    ),
                    params![now, data, time(seen_at), time(idle_expires_at), key, int(expected)],
                )
                .map_err(failed)?;
            if changed == 1 {
                return Ok(SaveOutcome::Saved(expected + 1));
            }
            let exists = c
                .query_row(
                    &format!("SELECT 1 FROM authkit_sessions WHERE key = ?2 AND {LIVE}"),
                    params![now, key],
                    |_| Ok(()),
                )
                .optional()
                .map_err(failed)?;
            Ok(if exists.is_some() {
                SaveOutcome::Conflict
            } else {
                SaveOutcome::Gone
            })
        })
    }

    fn rekey<'a>(
        &'a self,
        old: &'a SessionHandle,
        new: &'a SessionHandle,
        created_at: UnixMillis,
    ) -> StoreFuture<'a, bool> {
        let (old, new) = (old.to_hex(), new.to_hex());
        self.run(move |c| {
            let changed = c
                .execute(
                    &format!("UPDATE authkit_sessions SET key = ?2, created_at = ?3 WHERE key = ?4 AND {LIVE}"),
                    params![int(now_ms()), new, time(created_at), old],
                )
                .map_err(failed)?;
            Ok(changed == 1)
        })
    }

    fn delete<'a>(&'a self, key: &'a SessionHandle) -> StoreFuture<'a, bool> {
        let key = key.to_hex();
        self.run(move |c| {
            let changed = c
                .execute("DELETE FROM authkit_sessions WHERE key = ?1", params![key])
                .map_err(failed)?;
            Ok(changed == 1)
        })
    }
}

impl UserSessions for SqliteStore {
    fn delete_user<'a>(&'a self, subject: &'a str) -> StoreFuture<'a, u64> {
        let subject = subject.to_owned();
        self.run(move |c| {
            let transaction = c.transaction().map_err(failed)?;
            let live: i64 = transaction
                .query_row(
                    &format!("SELECT COUNT(*) FROM authkit_sessions WHERE subject = ?2 AND {LIVE}"),
                    params![int(now_ms()), subject],
                    |row| row.get(0),
                )
                .map_err(failed)?;
            transaction
                .execute("DELETE FROM authkit_sessions WHERE subject = ?1", params![subject])
                .map_err(failed)?;
            transaction.commit().map_err(failed)?;
            Ok(uint(live))
        })
    }

    fn list_user<'a>(&'a self, subject: &'a str) -> StoreFuture<'a, Vec<SessionRecord>> {
        let subject = subject.to_owned();
        self.run(move |c| {
            let mut statement = c
                .prepare(&format!(
                    "SELECT {COLUMNS} FROM authkit_sessions WHERE subject = ?2 AND {LIVE} ORDER BY created_at, key"
                ))
                .map_err(failed)?;
            let rows = statement
                .query_map(params![int(now_ms()), subject], row_to_record)
                .map_err(failed)?;
            rows.map(|row| row.map_err(failed).and_then(decode)).collect()
        })
    }
}

impl AttemptCounter for SqliteStore {
    fn count_failure<'a>(&'a self, counter: &'a str, window: Duration) -> StoreFuture<'a, Counter> {
        let counter = counter.to_owned();
        self.run(move |c| {
            let now = now_ms();
            let (count, ends_at): (i64, i64) = c
                .query_row(
                    "INSERT INTO authkit_counters (name, count, ends_at) VALUES (?1, 1, ?3) \
                     ON CONFLICT (name) DO UPDATE SET \
                       count = CASE WHEN ends_at <= ?2 THEN 1 ELSE count + 1 END, \
                       ends_at = CASE WHEN ends_at <= ?2 THEN ?3 ELSE ends_at END \
                     RETURNING count, ends_at",
                    params![counter, int(now), int(now + ms(window))],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .map_err(failed)?;
            Ok(Counter {
                count: uint(count),
                resets_in: Duration::from_millis(uint(ends_at).saturating_sub(now)),
            })
        })
    }

    fn failures<'a>(&'a self, counter: &'a str) -> StoreFuture<'a, Counter> {
        let counter = counter.to_owned();
        self.run(move |c| {
            let now = now_ms();
            let row: Option<(i64, i64)> = c
                .query_row(
                    "SELECT count, ends_at FROM authkit_counters WHERE name = ?1 AND ends_at > ?2",
                    params![counter, int(now)],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()
                .map_err(failed)?;
            Ok(match row {
                Some((count, ends_at)) => Counter {
                    count: uint(count),
                    resets_in: Duration::from_millis(uint(ends_at).saturating_sub(now)),
                },
                None => Counter {
                    count: 0,
                    resets_in: Duration::ZERO,
                },
            })
        })
    }

    fn forgive<'a>(&'a self, counter: &'a str) -> StoreFuture<'a, ()> {
        let counter = counter.to_owned();
        self.run(move |c| {
            c.execute(
                "UPDATE authkit_counters SET count = count - 1 WHERE name = ?1 AND count > 0 AND ends_at > ?2",
                params![counter, int(now_ms())],
            )
            .map_err(failed)?;
            Ok(())
        })
    }

    fn reset_counter<'a>(&'a self, counter: &'a str) -> StoreFuture<'a, ()> {
        let counter = counter.to_owned();
        self.run(move |c| {
            c.execute("DELETE FROM authkit_counters WHERE name = ?1", params![counter])
                .map_err(failed)?;
            Ok(())
        })
    }
}
