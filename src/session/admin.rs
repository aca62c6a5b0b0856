//! [`SessionAdmin`]: revoke and list sessions from outside a request.

use std::sync::Arc;
use std::time::SystemTime;

use super::audit;
use super::id::SessionHandle;
use super::store::{SessionStore, StoreError};

/// A live session, as listings show it: its public handle and times, never
/// its id or cookie.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    /// The public handle (revoke with it).
    pub handle: SessionHandle,
    /// When it was created (sign-in or rotation).
    pub created_at: SystemTime,
    /// Its last recorded activity (recorded at most once per `max(1 s, idle / 10)`).
    pub last_seen_at: SystemTime,
    /// When it ends unless used (idle) or at the latest (absolute).
    pub expires_at: SystemTime,
}

/// Revokes and lists sessions. Revocations take effect at the next request
/// of the session, and in-flight requests cannot undo them (stores never
/// re-create a deleted record). Get it from the layer
/// ([`SessionAuthenticator::admin`](super::SessionAuthenticator::admin)) or
/// from a store.
#[derive(Clone)]
pub struct SessionAdmin {
    store: Arc<dyn SessionStore>,
}

impl std::fmt::Debug for SessionAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionAdmin").finish_non_exhaustive()
    }
}

impl SessionAdmin {
    /// An admin over `store`.
    pub fn new(store: Arc<dyn SessionStore>) -> Self {
        Self { store }
    }

    /// Ends one of `owner`'s sessions (`owner` is the subject, e.g. the
    /// signed-in caller's `principal.subject()`): what a "my sessions" page
    /// calls. A handle that is not a live session of `owner` ends nothing
    /// and answers `false`, exactly as an unknown one does, so a user can
    /// neither end nor detect another user's session.
    pub async fn revoke(&self, owner: &str, handle: &SessionHandle) -> Result<bool, StoreError> {
        match self.store.load(handle).await? {
            Some(record) if record.subject() == owner => self.revoke_any(handle).await,
            _ => Ok(false),
        }
    }

    /// Ends any session by its handle, whoever it belongs to: for
    /// administrators (never call it with a handle a user sent about a
    /// session of their own; use [`revoke`](Self::revoke)). Returns whether
    /// it existed.
    pub async fn revoke_any(&self, handle: &SessionHandle) -> Result<bool, StoreError> {
        let existed = self.store.delete(handle).await?;
        audit::revoked(handle, existed);
        Ok(existed)
    }

    /// Ends every session of `subject`. Returns how many there were.
    pub async fn revoke_user(&self, subject: &str) -> Result<u64, StoreError> {
        let count = self.store.delete_user(subject).await?;
        audit::revoked_user(subject, count);
        Ok(count)
    }

    /// The live sessions of `subject`, oldest first.
    pub async fn list_user(&self, subject: &str) -> Result<Vec<SessionInfo>, StoreError> {
        Ok(self
            .store
            .list_user(subject)
            .await?
            .into_iter()
            .map(|record| SessionInfo {
                handle: record.key,
                created_at: record.created_at.to_system_time(),
                last_seen_at: record.last_seen_at.to_system_time(),
                expires_at: record.expires_at().to_system_time(),
            })
            .collect())
    }
}
