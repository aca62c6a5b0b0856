//! Audit events: `tracing` events under one target, `tower_authkit::audit`.
//! They name the subject and a session's public handle (a hash of its id,
//! shortened), never a password, token, cookie value or session id.

use super::id::SessionKey;

/// The target every audit event is logged under.
pub const TARGET: &str = "tower_authkit::audit";

pub(crate) fn session_created(subject: &str, key: &SessionKey) {
    tracing::info!(target: TARGET, event = "session.created", subject, session = ?key);
}

pub(crate) fn signed_out(key: &SessionKey) {
    tracing::info!(target: TARGET, event = "session.signed_out", session = ?key);
}

pub(crate) fn session_rotated(old: &SessionKey, new: &SessionKey) {
    tracing::info!(target: TARGET, event = "session.rotated", session = ?old, new_session = ?new);
}

pub(crate) fn session_ended_by_loader(subject: &str, key: &SessionKey) {
    tracing::info!(target: TARGET, event = "session.ended", reason = "user gone or disabled", subject, session = ?key);
}

pub(crate) fn revoked(key: &SessionKey, existed: bool) {
    tracing::info!(target: TARGET, event = "session.revoked", session = ?key, existed);
}

pub(crate) fn revoked_user(subject: &str, count: u64) {
    tracing::info!(target: TARGET, event = "session.revoked_user", subject, count);
}

pub(crate) fn sign_in_succeeded(account: &str) {
    tracing::info!(target: TARGET, event = "sign_in.succeeded", account);
}

pub(crate) fn sign_in_failed(account: &str, reason: &'static str) {
    tracing::warn!(target: TARGET, event = "sign_in.failed", account, reason);
}
