//! Redis: for services that run several replicas (feature `session-redis`).
//!
//! Each session is a hash `{prefix}s:{key}` that expires at its deadline; a
//! sorted set `{prefix}u:{subject}` indexes a user's sessions for listing and
//! revoke-all; counters are `{prefix}c:{name}` with a TTL. Conditional writes
//! run as Lua scripts, so a touch or write-back never re-creates a revoked
//! session. The connection is redis-rs's `ConnectionManager`: it connects on
//! first use and reconnects by itself; while Redis is unreachable, operations
//! fail (the layer answers 503) instead of waiting. The scripts address the
//! user index by name, so this store targets a standalone Redis (or one
//! primary), not Redis Cluster.

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};
use serde_json::{Map, Value};

use super::{AttemptCounter, Counter, SaveOutcome, SessionRecords, StoreError, StoreFuture, UserSessions};
use crate::session::id::SessionHandle;
use crate::session::record::{SessionRecord, StoredPrincipal, UnixMillis, ms};

/// Sets last_seen and the idle deadline of a live session; 0 if it is gone.
const TOUCH: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local absolute = tonumber(redis.call('HGET', KEYS[1], 'absolute_expires_at'))
local idle = tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'last_seen_at', ARGV[1], 'idle_expires_at', ARGV[2])
redis.call('PEXPIREAT', KEYS[1], math.min(idle, absolute))
return 1
";

/// Version-checked write-back: the new version, 0 on conflict, -1 if gone.
const SAVE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local version = tonumber(redis.call('HGET', KEYS[1], 'version'))
if version ~= tonumber(ARGV[1]) then return 0 end
local absolute = tonumber(redis.call('HGET', KEYS[1], 'absolute_expires_at'))
local idle = tonumber(ARGV[4])
redis.call('HSET', KEYS[1], 'data', ARGV[2], 'version', version + 1, 'last_seen_at', ARGV[3], 'idle_expires_at', ARGV[4])
redis.call('PEXPIREAT', KEYS[1], math.min(idle, absolute))
return version + 1
";

/// Moves a live session to a new key and re-indexes it; 0 if it is gone.
const REKEY: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local subject = redis.call('HGET', KEYS[1], 'subject')
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[2], 'created_at', ARGV[3])
local index = ARGV[1] .. 'u:' .. subject
redis.call('ZREM', index, ARGV[2])
redis.call('ZADD', index, ARGV[3], ARGV[4])
return 1
";

/// Deletes a session and its index entry; 1 if it existed.
const DELETE: &str = r"
local subject = redis.call('HGET', KEYS[1], 'subject')
local deleted = redis.call('DEL', KEYS[1])
if subject then redis.call('ZREM', ARGV[1] .. 'u:' .. subject, ARGV[2]) end
return deleted
";

/// Deletes every session of a user; the number that existed.
const DELETE_USER: &str = r"
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
local count = 0
for _, member in ipairs(members) do
  count = count + redis.call('DEL', ARGV[1] .. 's:' .. member)
end
redis.call('DEL', KEYS[1])
return count
";

/// One more failure: {count, milliseconds left in the window}.
const COUNT_FAILURE: &str = r"
local count = redis.call('INCR', KEYS[1])
if count == 1 or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return {count, redis.call('PTTL', KEYS[1])}
";

/// Takes one back from a running counter, never below zero.
const FORGIVE: &str = r"
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count > 0 and redis.call('PTTL', KEYS[1]) > 0 then redis.call('DECR', KEYS[1]) end
return 0
";

/// Inserts a session (KEYS[1]) and indexes it (KEYS[2]); prunes index
/// members whose session is gone (expired or deleted), so the index costs
/// what is live. ARGV: prefix, score, member, expiry, then field/value pairs.
const CREATE: &str = r"
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
redis.call('PEXPIREAT', KEYS[1], ARGV[4])
local members = redis.call('ZRANGE', KEYS[2], 0, -1)
for _, member in ipairs(members) do
  if redis.call('EXISTS', ARGV[1] .. 's:' .. member) == 0 then redis.call('ZREM', KEYS[2], member) end
end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
return 1
";

struct Scripts {
    create: Script,
    forgive: Script,
    touch: Script,
    save: Script,
    rekey: Script,
    delete: Script,
    delete_user: Script,
    count_failure: Script,
}

/// Sessions in Redis. Cheap to clone (clones share the connection).
#[derive(Clone)]
pub struct RedisStore {
    connection: ConnectionManager,
    prefix: String,
    scripts: std::sync::Arc<Scripts>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn failed(error: redis::RedisError) -> StoreError {
    StoreError::new(crate::redis_connection::describe(&error))
}

fn corrupt(what: &str) -> StoreError {
    StoreError::new(format!("redis: corrupt {what}"))
}

impl RedisStore {
    /// A store on `url` (`redis://host:port[/db]`), keys prefixed `authkit:`,
    /// created inside a Tokio runtime.
    /// Connects on first use: a Redis that is down at start gives 503s until
    /// it is reachable, not a startup failure.
    pub fn new(url: &str) -> Result<Self, StoreError> {
        Self::with_prefix(url, "authkit:")
    }

    /// Like [`new`](Self::new) with another key prefix (several apps on one Redis).
    /// Call it inside a Tokio runtime (the connection manager lives there).
    pub fn with_prefix(url: &str, prefix: &str) -> Result<Self, StoreError> {
        let connection = crate::redis_connection::connect(url, "RedisStore").map_err(StoreError::new)?;
        Ok(Self {
            connection,
            prefix: prefix.to_owned(),
            scripts: std::sync::Arc::new(Scripts {
                touch: Script::new(TOUCH),
                save: Script::new(SAVE),
                rekey: Script::new(REKEY),
                delete: Script::new(DELETE),
                delete_user: Script::new(DELETE_USER),
                count_failure: Script::new(COUNT_FAILURE),
                create: Script::new(CREATE),
                forgive: Script::new(FORGIVE),
            }),
        })
    }

    fn session(&self, key: &SessionHandle) -> String {
        format!("{}s:{}", self.prefix, key.to_hex())
    }

    fn index(&self, subject: &str) -> String {
        format!("{}u:{subject}", self.prefix)
    }

    fn counter(&self, name: &str) -> String {
        format!("{}c:{name}", self.prefix)
    }

    async fn fetch(&self, key: &SessionHandle) -> Result<Option<SessionRecord>, StoreError> {
        const FIELDS: [&str; 7] = [
            "principal",
            "data",
            "created_at",
            "last_seen_at",
            "idle_expires_at",
            "absolute_expires_at",
            "version",
        ];
        let mut connection = self.connection.clone();
        // HMGET in a fixed order: one round trip, no map to build.
        let values: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.session(key))
            .arg(&FIELDS[..])
            .query_async(&mut connection)
            .await
            .map_err(failed)?;
        if values.iter().all(Option::is_none) {
            return Ok(None);
        }
        let field = |i: usize| values[i].as_deref().ok_or_else(|| corrupt(FIELDS[i]));
        let number = |i: usize| field(i)?.parse::<u64>().map_err(|_| corrupt(FIELDS[i]));
        let principal: StoredPrincipal = serde_json::from_str(field(0)?).map_err(|_| corrupt("principal"))?;
        let data: Map<String, Value> = serde_json::from_str(field(1)?).map_err(|_| corrupt("data"))?;
        Ok(Some(SessionRecord {
            key: *key,
            principal,
            data,
            created_at: UnixMillis::from_millis(number(2)?),
            last_seen_at: UnixMillis::from_millis(number(3)?),
            idle_expires_at: UnixMillis::from_millis(number(4)?),
            absolute_expires_at: UnixMillis::from_millis(number(5)?),
            version: number(6)?,
        }))
    }
}

impl SessionRecords for RedisStore {
    fn create<'a>(&'a self, record: &'a SessionRecord) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let principal = serde_json::to_string(&record.principal).map_err(|_| corrupt("principal"))?;
            let data = serde_json::to_string(&record.data).map_err(|_| corrupt("data"))?;
            let mut connection = self.connection.clone();
            let mut create = self.scripts.create.prepare_invoke();
            create
                .key(self.session(&record.key))
                .key(self.index(record.subject()))
                .arg(&self.prefix)
                .arg(record.created_at.as_millis())
                .arg(record.key.to_hex())
                .arg(record.expires_at().as_millis());
            for (field, value) in [
                ("subject", record.subject().to_owned()),
                ("principal", principal),
                ("data", data),
                ("created_at", record.created_at.as_millis().to_string()),
                ("last_seen_at", record.last_seen_at.as_millis().to_string()),
                ("idle_expires_at", record.idle_expires_at.as_millis().to_string()),
                (
                    "absolute_expires_at",
                    record.absolute_expires_at.as_millis().to_string(),
                ),
                ("version", record.version.to_string()),
            ] {
                create.arg(field).arg(value);
            }
            let _: i64 = create.invoke_async(&mut connection).await.map_err(failed)?;
            Ok(())
        })
    }

    fn load<'a>(&'a self, key: &'a SessionHandle) -> StoreFuture<'a, Option<SessionRecord>> {
        Box::pin(async move {
            let record = self.fetch(key).await?;
            // Redis expires the hash at the deadline; clocks may differ by a little.
            Ok(record.filter(|r| r.is_live(UnixMillis::now())))
        })
    }

    fn touch<'a>(
        &'a self,
        key: &'a SessionHandle,
        seen_at: UnixMillis,
        idle_expires_at: UnixMillis,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let touched: i64 = self
                .scripts
                .touch
                .key(self.session(key))
                .arg(seen_at.as_millis())
                .arg(idle_expires_at.as_millis())
                .invoke_async(&mut connection)
                .await
                .map_err(failed)?;
            Ok(touched == 1)
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
        Box::pin(async move {
            let data = serde_json::to_string(data).map_err(|_| corrupt("data"))?;
            let mut connection = self.connection.clone();
            let outcome: i64 = self
                .scripts
                .save
                .key(self.session(key))
                .arg(expected)
                .arg(data)
                .arg(seen_at.as_millis())
                .arg(idle_expires_at.as_millis())
                .invoke_async(&mut connection)
                .await
                .map_err(failed)?;
            Ok(match outcome {
                -1 => SaveOutcome::Gone,
                0 => SaveOutcome::Conflict,
                version => SaveOutcome::Saved(version as u64),
            })
        })
    }

    fn rekey<'a>(
        &'a self,
        old: &'a SessionHandle,
        new: &'a SessionHandle,
        created_at: UnixMillis,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let moved: i64 = self
                .scripts
                .rekey
                .key(self.session(old))
                .key(self.session(new))
                .arg(&self.prefix)
                .arg(old.to_hex())
                .arg(created_at.as_millis())
                .arg(new.to_hex())
                .invoke_async(&mut connection)
                .await
                .map_err(failed)?;
            Ok(moved == 1)
        })
    }

    fn delete<'a>(&'a self, key: &'a SessionHandle) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let deleted: i64 = self
                .scripts
                .delete
                .key(self.session(key))
                .arg(&self.prefix)
                .arg(key.to_hex())
                .invoke_async(&mut connection)
                .await
                .map_err(failed)?;
            Ok(deleted == 1)
        })
    }
}

impl UserSessions for RedisStore {
    fn delete_user<'a>(&'a self, subject: &'a str) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let count: i64 = self
                .scripts
                .delete_user
                .key(self.index(subject))
                .arg(&self.prefix)
                .invoke_async(&mut connection)
                .await
                .map_err(failed)?;
            Ok(count.max(0) as u64)
        })
    }

    fn list_user<'a>(&'a self, subject: &'a str) -> StoreFuture<'a, Vec<SessionRecord>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let index = self.index(subject);
            let members: Vec<String> = connection.zrange(&index, 0, -1).await.map_err(failed)?;
            let mut records = Vec::with_capacity(members.len());
            for member in members {
                let Some(key) = SessionHandle::from_hex(&member) else {
                    continue;
                };
                match self.load(&key).await? {
                    Some(record) => records.push(record),
                    // Expired: drop the stale index entry.
                    None => {
                        let _: i64 = connection.zrem(&index, &member).await.map_err(failed)?;
                    }
                }
            }
            records.sort_by_key(|r| (r.created_at, r.key));
            Ok(records)
        })
    }
}

impl AttemptCounter for RedisStore {
    fn count_failure<'a>(&'a self, counter: &'a str, window: Duration) -> StoreFuture<'a, Counter> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let (count, left): (i64, i64) = self
                .scripts
                .count_failure
                .key(self.counter(counter))
                .arg(ms(window).max(1))
                .invoke_async(&mut connection)
                .await
                .map_err(failed)?;
            Ok(Counter {
                count: count.max(0) as u64,
                resets_in: Duration::from_millis(left.max(0) as u64),
            })
        })
    }

    fn forgive<'a>(&'a self, counter: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let _: i64 = self
                .scripts
                .forgive
                .key(self.counter(counter))
                .invoke_async(&mut connection)
                .await
                .map_err(failed)?;
            Ok(())
        })
    }

    fn failures<'a>(&'a self, counter: &'a str) -> StoreFuture<'a, Counter> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let name = self.counter(counter);
            let (count, left): (Option<i64>, i64) = redis::pipe()
                .get(&name)
                .pttl(&name)
                .query_async(&mut connection)
                .await
                .map_err(failed)?;
            Ok(match count {
                Some(count) if left > 0 => Counter {
                    count: count.max(0) as u64,
                    resets_in: Duration::from_millis(left as u64),
                },
                _ => Counter {
                    count: 0,
                    resets_in: Duration::ZERO,
                },
            })
        })
    }

    fn reset_counter<'a>(&'a self, counter: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let _: i64 = connection.del(self.counter(counter)).await.map_err(failed)?;
            Ok(())
        })
    }
}
