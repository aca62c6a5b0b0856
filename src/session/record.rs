//! What a store keeps per session.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::id::SessionHandle;
use crate::principal::{Principal, PrincipalBuilder};

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub(crate) fn ms(duration: Duration) -> u64 {
    duration.as_millis().min(u128::from(u64::MAX)) as u64
}

/// A point in time as stores keep it: milliseconds since the Unix epoch
/// (stored as that integer, so records written before this type existed
/// read the same).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UnixMillis(u64);

impl UnixMillis {
    /// Now, by the system clock.
    pub fn now() -> Self {
        UnixMillis(now_ms())
    }

    /// `millis` milliseconds after the epoch.
    pub const fn from_millis(millis: u64) -> Self {
        UnixMillis(millis)
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// `duration` later (saturating).
    #[must_use]
    pub fn after(self, duration: Duration) -> Self {
        UnixMillis(self.0.saturating_add(ms(duration)))
    }

    /// How long from `self` until `later` (zero when `later` is not later).
    pub fn until(self, later: UnixMillis) -> Duration {
        Duration::from_millis(later.0.saturating_sub(self.0))
    }

    /// As a [`SystemTime`].
    pub fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.0)
    }
}

impl From<SystemTime> for UnixMillis {
    fn from(time: SystemTime) -> Self {
        UnixMillis(time.duration_since(UNIX_EPOCH).map_or(0, ms))
    }
}

/// The signed-in identity, as stored with the session.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredPrincipal {
    /// `sub`.
    pub subject: String,
    /// Issuer, if the principal had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// E-mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Roles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Scopes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Permissions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permissions: Vec<String>,
    /// The roles, groups and permissions grant nothing (see
    /// [`Principal::roles_trusted`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub roles_untrusted: bool,
    /// The user's credential version at sign-in, when the layer checks
    /// them ([`SessionBuilder::credential_versions`](crate::session::SessionBuilder::credential_versions)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_version: Option<String>,
}

impl StoredPrincipal {
    pub(crate) fn of(principal: &Principal) -> Self {
        Self {
            subject: principal.subject().to_owned(),
            issuer: principal.issuer().map(str::to_owned),
            email: principal.email().map(str::to_owned),
            name: principal.name().map(str::to_owned),
            roles: principal.roles().to_vec(),
            groups: principal.groups().to_vec(),
            scopes: principal.scopes().to_vec(),
            permissions: principal.permissions().to_vec(),
            roles_untrusted: !principal.roles_trusted(),
            credential_version: None,
        }
    }

    /// The principal handlers see (provider `"session"`).
    pub fn to_principal(&self) -> Principal {
        self.builder().build()
    }

    pub(crate) fn builder(&self) -> PrincipalBuilder {
        let mut builder = Principal::builder("session", self.subject.clone())
            .roles(self.roles.clone())
            .groups(self.groups.clone())
            .scopes(self.scopes.clone())
            .permissions(self.permissions.clone())
            .roles_trusted(!self.roles_untrusted);
        if let Some(issuer) = &self.issuer {
            builder = builder.issuer(issuer.clone());
        }
        if let Some(email) = &self.email {
            builder = builder.email(email.clone());
        }
        if let Some(name) = &self.name {
            builder = builder.name(name.clone());
        }
        builder
    }
}

/// One session as a store keeps it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SessionRecord {
    /// The key (SHA-256 of the id) the record is stored under.
    pub key: SessionHandle,
    /// Who is signed in.
    pub principal: StoredPrincipal,
    /// Application data (`Session::insert`).
    #[serde(default)]
    pub data: Map<String, Value>,
    /// When the session was created (sign-in or rotation).
    pub created_at: UnixMillis,
    /// The last request that touched it.
    pub last_seen_at: UnixMillis,
    /// Idle deadline: `last_seen_at + idle timeout`, never past `absolute_expires_at`.
    pub idle_expires_at: UnixMillis,
    /// Absolute deadline: `created_at + absolute lifetime` at sign-in.
    pub absolute_expires_at: UnixMillis,
    /// Bumped by every data write; write-backs name the version they read.
    pub version: u64,
}

impl SessionRecord {
    /// The earlier of the two deadlines.
    pub fn expires_at(&self) -> UnixMillis {
        self.idle_expires_at.min(self.absolute_expires_at)
    }

    /// Whether the record is still valid at `now`.
    pub fn is_live(&self, now: UnixMillis) -> bool {
        now < self.expires_at()
    }

    /// The subject the record belongs to (for per-user indexes).
    pub fn subject(&self) -> &str {
        &self.principal.subject
    }
}
