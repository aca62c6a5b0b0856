//! Audit events: sign-ins, sign-outs, session revocations and refused
//! access, as `tracing` events under one target (`tower_authkit::audit`) and
//! through an optional process-wide [`AuditSink`].
//!
//! Events name subjects, accounts and a session's public handle (a hash of
//! its id, shortened): never a password, token, cookie value or session id.
//!
//! ```
//! use tower_authkit::audit::{AuditEvent, AuditSink};
//!
//! struct Siem;
//!
//! impl AuditSink for Siem {
//!     fn record(&self, event: &AuditEvent<'_>) {
//!         // e.g. forward to your security log pipeline
//!         let _ = event.name();
//!     }
//! }
//!
//! tower_authkit::audit::set_sink(Siem).ok();
//! ```

use std::sync::OnceLock;

/// The `tracing` target of every audit event.
pub const TARGET: &str = "tower_authkit::audit";

/// One audit event. Strings are borrowed for the duration of the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditEvent<'a> {
    /// A password sign-in succeeded.
    SignInSucceeded {
        /// The account signing in.
        account: &'a str,
    },
    /// A sign-in was refused.
    SignInFailed {
        /// The account named in the attempt.
        account: &'a str,
        /// `wrong password`, `unknown account` or `limited`.
        reason: &'static str,
    },
    /// A session started (sign-in).
    SessionCreated {
        /// Who signed in.
        subject: &'a str,
        /// The session's public handle, shortened.
        session: &'a str,
    },
    /// A session moved to a new id.
    SessionRotated {
        /// The old handle, shortened.
        session: &'a str,
        /// The new handle, shortened.
        new_session: &'a str,
    },
    /// A session was signed out by its user.
    SignedOut {
        /// The handle, shortened.
        session: &'a str,
    },
    /// A session ended because its user is gone or disabled.
    SessionEnded {
        /// Whose session it was.
        subject: &'a str,
        /// The handle, shortened.
        session: &'a str,
    },
    /// One session was revoked.
    SessionRevoked {
        /// The handle, shortened.
        session: &'a str,
        /// Whether it still existed.
        existed: bool,
    },
    /// Every session of a user was revoked.
    UserSessionsRevoked {
        /// The user.
        subject: &'a str,
        /// How many sessions ended.
        count: u64,
    },
    /// An ingress let a user into a service (logged once per session and service).
    EntryAllowed {
        /// The user.
        subject: &'a str,
        /// The service.
        service: &'a str,
    },
    /// An ingress refused a user entry to a service.
    EntryDenied {
        /// The user.
        subject: &'a str,
        /// The service.
        service: &'a str,
    },
    /// A proxied request failed downstream (the id is on the error page).
    DownstreamFailed {
        /// The service.
        service: &'a str,
        /// The HTTP status answered (502, 504).
        status: u16,
        /// The correlation id.
        request_id: &'a str,
        /// What failed, in general terms.
        reason: &'a str,
    },
    /// An ingress closed a proxied WebSocket on its own: the session ended,
    /// the connection reached its lifetime, or the session could not be
    /// checked for too long.
    ConnectionClosed {
        /// The service.
        service: &'a str,
        /// Why, in general terms.
        reason: &'a str,
    },
    /// An authenticated request was refused (403).
    AccessDenied {
        /// The caller, when known.
        subject: Option<&'a str>,
        /// The request path.
        path: &'a str,
        /// Why.
        reason: &'a str,
    },
}

impl AuditEvent<'_> {
    /// A stable dotted name, e.g. `sign_in.failed`.
    pub fn name(&self) -> &'static str {
        match self {
            AuditEvent::SignInSucceeded { .. } => "sign_in.succeeded",
            AuditEvent::SignInFailed { .. } => "sign_in.failed",
            AuditEvent::SessionCreated { .. } => "session.created",
            AuditEvent::SessionRotated { .. } => "session.rotated",
            AuditEvent::SignedOut { .. } => "session.signed_out",
            AuditEvent::SessionEnded { .. } => "session.ended",
            AuditEvent::SessionRevoked { .. } => "session.revoked",
            AuditEvent::UserSessionsRevoked { .. } => "session.revoked_user",
            AuditEvent::EntryAllowed { .. } => "ingress.entry_allowed",
            AuditEvent::EntryDenied { .. } => "ingress.entry_denied",
            AuditEvent::DownstreamFailed { .. } => "ingress.downstream_failed",
            AuditEvent::ConnectionClosed { .. } => "ingress.connection_closed",
            AuditEvent::AccessDenied { .. } => "access.denied",
        }
    }
}

/// Receives every audit event (after it is logged).
pub trait AuditSink: Send + Sync + 'static {
    /// Records one event; must not block for long (it runs inside requests).
    fn record(&self, event: &AuditEvent<'_>);
}

static SINK: OnceLock<Box<dyn AuditSink>> = OnceLock::new();

/// Installs the process-wide sink; a second call fails and returns it.
pub fn set_sink<S: AuditSink>(sink: S) -> Result<(), S> {
    let mut sink = Some(sink);
    SINK.get_or_init(|| Box::new(sink.take().expect("taken once")));
    match sink {
        None => Ok(()),
        Some(sink) => Err(sink),
    }
}

/// Logs `event` under [`TARGET`] and hands it to the sink; for events an
/// application raises itself (e.g. an ingress's entry decisions).
pub fn emit(event: AuditEvent<'_>) {
    let name = event.name();
    match event {
        AuditEvent::SignInSucceeded { account } => tracing::info!(target: TARGET, event = name, account),
        AuditEvent::SignInFailed { account, reason } => {
            tracing::warn!(target: TARGET, event = name, account, reason);
        }
        AuditEvent::SessionCreated { subject, session } => {
            tracing::info!(target: TARGET, event = name, subject, session);
        }
        AuditEvent::SessionRotated { session, new_session } => {
            tracing::info!(target: TARGET, event = name, session, new_session);
        }
        AuditEvent::SignedOut { session } => tracing::info!(target: TARGET, event = name, session),
        AuditEvent::SessionEnded { subject, session } => {
            tracing::info!(target: TARGET, event = name, subject, session, reason = "user gone or disabled");
        }
        AuditEvent::SessionRevoked { session, existed } => {
            tracing::info!(target: TARGET, event = name, session, existed);
        }
        AuditEvent::UserSessionsRevoked { subject, count } => {
            tracing::info!(target: TARGET, event = name, subject, count);
        }
        AuditEvent::EntryAllowed { subject, service } | AuditEvent::EntryDenied { subject, service } => {
            tracing::info!(target: TARGET, event = name, subject, service);
        }
        AuditEvent::DownstreamFailed {
            service,
            status,
            request_id,
            reason,
        } => {
            tracing::warn!(target: TARGET, event = name, service, status, request_id, reason);
        }
        AuditEvent::ConnectionClosed { service, reason } => {
            tracing::info!(target: TARGET, event = name, service, reason);
        }
        AuditEvent::AccessDenied { subject, path, reason } => {
            tracing::info!(target: TARGET, event = name, subject, path, reason);
        }
    }
    if let Some(sink) = SINK.get() {
        sink.record(&event);
    }
}
