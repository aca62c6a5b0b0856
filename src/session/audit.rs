//! The session events, with a session's handle shortened for the log.

use super::id::SessionHandle;
use crate::audit::{AuditEvent, emit};

fn short(key: &SessionHandle) -> String {
    key.to_hex()[..12].to_owned()
}

pub(crate) fn session_created(subject: &str, key: &SessionHandle) {
    emit(AuditEvent::SessionCreated {
        subject,
        session: &short(key),
    });
}

pub(crate) fn signed_out(key: &SessionHandle) {
    emit(AuditEvent::SignedOut { session: &short(key) });
}

pub(crate) fn session_rotated(old: &SessionHandle, new: &SessionHandle) {
    emit(AuditEvent::SessionRotated {
        session: &short(old),
        new_session: &short(new),
    });
}

pub(crate) fn session_ended_by_loader(subject: &str, key: &SessionHandle) {
    emit(AuditEvent::SessionEnded {
        subject,
        session: &short(key),
    });
}

pub(crate) fn revoked(key: &SessionHandle, existed: bool) {
    emit(AuditEvent::SessionRevoked {
        session: &short(key),
        existed,
    });
}

pub(crate) fn revoked_user(subject: &str, count: u64) {
    emit(AuditEvent::UserSessionsRevoked { subject, count });
}

pub(crate) fn sign_in_succeeded(account: &str) {
    emit(AuditEvent::SignInSucceeded { account });
}

pub(crate) fn sign_in_failed(account: &str, reason: &'static str) {
    emit(AuditEvent::SignInFailed { account, reason });
}
