//! Where sessions live, as three concerns: the records themselves
//! ([`SessionRecords`]), the per-user index behind "my sessions" and
//! "sign this user out everywhere" ([`UserSessions`]), and the sign-in
//! attempt counters ([`AttemptCounter`], which [`SignIn`](crate::session::SignIn)
//! takes). A [`SessionStore`] is all three; the memory, SQLite and Redis
//! stores are, and pass one conformance suite (`tower-authkit-testing`'s
//! `store_conformance!`, for stores of your own too).
//!
//! The rules every store keeps:
//! - records are keyed by [`SessionHandle`] (a hash of the id, never the id);
//! - `load` never returns an expired record (and may purge it);
//! - `touch`, `save` and `rekey` never create a record: once deleted or
//!   revoked, a session stays gone, whatever in-flight requests do;
//! - `save` succeeds only on the version it read ([`SaveOutcome::Conflict`]
//!   otherwise), so concurrent requests do not overwrite each other blindly;
//! - failures are [`StoreError`]s, which the layer answers with 503.

mod memory;
#[cfg(feature = "session-redis")]
mod redis;
#[cfg(feature = "session-sqlite")]
mod sqlite;
#[cfg(feature = "metrics")]
pub(crate) mod timed;

use std::fmt;
use std::time::Duration;

use crate::principal::BoxFuture;
use serde_json::{Map, Value};

#[cfg(feature = "session-redis")]
pub use self::redis::RedisStore;
pub use memory::MemoryStore;
#[cfg(feature = "session-sqlite")]
pub use sqlite::SqliteStore;

use super::id::SessionHandle;
use super::record::{SessionRecord, UnixMillis};

/// A store operation's future.
pub type StoreFuture<'a, T> = BoxFuture<'a, Result<T, StoreError>>;

/// The store could not be used (unreachable, failing, corrupt data).
#[derive(Clone)]
pub struct StoreError {
    reason: String,
}

impl StoreError {
    /// A failure, described without secrets.
    pub fn new(reason: impl fmt::Display) -> Self {
        Self {
            reason: reason.to_string(),
        }
    }
}

impl fmt::Debug for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreError({:?})", self.reason)
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "session store failed: {}", self.reason)
    }
}

impl std::error::Error for StoreError {}

/// What a version-checked write-back did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveOutcome {
    /// Written; the record now has this version.
    Saved(u64),
    /// The record changed since it was read (another request wrote first).
    Conflict,
    /// The record is gone (deleted, revoked or expired): nothing written.
    Gone,
}

/// A failure counter's state after one more failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counter {
    /// Failures in the current window, this one included.
    pub count: u64,
    /// Time left until the window (and the count) ends.
    pub resets_in: Duration,
}

/// The session records: create, load, write back, rotate, delete. Methods
/// return boxed futures so stores can be used as `Arc<dyn SessionStore>`.
/// See the [module docs](self) for the rules.
pub trait SessionRecords: Send + Sync + 'static {
    /// Inserts a new record (its key is fresh and random).
    fn create<'a>(&'a self, record: &'a SessionRecord) -> StoreFuture<'a, ()>;

    /// The live record under `key`, or `None` (missing or expired).
    fn load<'a>(&'a self, key: &'a SessionHandle) -> StoreFuture<'a, Option<SessionRecord>>;

    /// Records activity: sets `last_seen_at` and `idle_expires_at` if the
    /// record still exists and is live. Returns whether it did.
    fn touch<'a>(
        &'a self,
        key: &'a SessionHandle,
        seen_at: UnixMillis,
        idle_expires_at: UnixMillis,
    ) -> StoreFuture<'a, bool>;

    /// Replaces the data (and touches) if the stored version is `expected`,
    /// bumping the version.
    fn save<'a>(
        &'a self,
        key: &'a SessionHandle,
        expected: u64,
        data: &'a Map<String, Value>,
        seen_at: UnixMillis,
        idle_expires_at: UnixMillis,
    ) -> StoreFuture<'a, SaveOutcome>;

    /// Moves a live record to a new key (id rotation), atomically. Returns
    /// `false`, doing nothing, if the old record is gone.
    fn rekey<'a>(
        &'a self,
        old: &'a SessionHandle,
        new: &'a SessionHandle,
        created_at: UnixMillis,
    ) -> StoreFuture<'a, bool>;

    /// Deletes one record. Returns whether it existed.
    fn delete<'a>(&'a self, key: &'a SessionHandle) -> StoreFuture<'a, bool>;
}

/// The per-user index: every live session of one subject (listings,
/// "sign out everywhere", revoking a disabled user).
pub trait UserSessions: Send + Sync + 'static {
    /// Deletes every record of `subject`. Returns how many live ones there were.
    fn delete_user<'a>(&'a self, subject: &'a str) -> StoreFuture<'a, u64>;

    /// The live records of `subject`, oldest first.
    fn list_user<'a>(&'a self, subject: &'a str) -> StoreFuture<'a, Vec<SessionRecord>>;
}

/// Sign-in attempt counters, shared by every process using the store: what
/// [`SignIn`](crate::session::SignIn) limits attempts with.
pub trait AttemptCounter: Send + Sync + 'static {
    /// Counts one more attempt under `counter`, atomically, and returns the
    /// count including it; a new window of `window` starts with the first
    /// attempt after the last one ended. Shared by every process using the
    /// store. [`SignIn`](crate::session::SignIn) calls it *before* checking
    /// a password (increment-then-check), so parallel attempts cannot all
    /// see a count under the limit.
    fn count_failure<'a>(&'a self, counter: &'a str, window: Duration) -> StoreFuture<'a, Counter>;

    /// Takes back one counted attempt that turned out not to be a failure
    /// (never below zero; nothing when no window is running).
    fn forgive<'a>(&'a self, counter: &'a str) -> StoreFuture<'a, ()>;

    /// The current count under `counter` (0 when no window is running).
    fn failures<'a>(&'a self, counter: &'a str) -> StoreFuture<'a, Counter>;

    /// Ends `counter`'s window (after a success).
    fn reset_counter<'a>(&'a self, counter: &'a str) -> StoreFuture<'a, ()>;
}

/// A whole session store: records, the per-user index and attempt
/// counters, usable as one `Arc<dyn SessionStore>` (which also coerces to
/// `Arc<dyn AttemptCounter>` for [`SignIn`](crate::session::SignIn)).
/// Implemented for every type that implements the three.
pub trait SessionStore: SessionRecords + UserSessions + AttemptCounter {}

impl<T: SessionRecords + UserSessions + AttemptCounter + ?Sized> SessionStore for T {}
