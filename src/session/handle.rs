//! [`Session`]: what a handler does with its session. Changes are applied
//! once, after the handler answered, by the layer's response hook.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::id::SessionHandle;
use super::record::SessionRecord;
use crate::principal::Principal;

/// A session value that could not be read as the type asked for, or
/// stored. Names the key; never shows the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionDataError {
    key: String,
    reason: &'static str,
}

impl SessionDataError {
    fn new(key: &str, reason: &'static str) -> Self {
        // Not serde_json's message: it quotes the value it refused.
        SessionDataError {
            key: key.to_owned(),
            reason,
        }
    }

    /// The key whose value was refused.
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl std::fmt::Display for SessionDataError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "session value {:?}: {}", self.key, self.reason)
    }
}

impl std::error::Error for SessionDataError {}

/// What the handler asked for, applied at the end of the request.
#[derive(Default)]
pub(crate) enum Action {
    #[default]
    Keep,
    /// A new session for this principal, under a new id.
    Login(Principal),
    /// End the session.
    Logout,
    /// The same session under a new id.
    Rotate,
}

#[derive(Default)]
pub(crate) struct State {
    /// The session the request carried and the layer loaded.
    pub(crate) loaded: Option<Arc<SessionRecord>>,
    /// A valid cookie's key that was not loaded (public paths): ended by a
    /// login, as a fixation defence.
    pub(crate) carried: Option<SessionHandle>,
    /// The working copy of the data, made on the first change (reads use
    /// the loaded record's until then).
    pub(crate) data: Option<Map<String, Value>>,
    /// Keys inserted or removed by this request.
    pub(crate) changed: BTreeSet<String>,
    pub(crate) action: Action,
}

static NO_DATA: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);

impl State {
    /// The key of the session this request carried, loaded or not.
    pub(crate) fn carried_key(&self) -> Option<SessionHandle> {
        self.loaded.as_ref().map(|r| r.key).or(self.carried)
    }

    /// The data as this request sees it.
    pub(crate) fn data(&self) -> &Map<String, Value> {
        match (&self.data, &self.loaded) {
            (Some(data), _) => data,
            (None, Some(record)) => &record.data,
            (None, None) => &NO_DATA,
        }
    }

    fn data_mut(&mut self) -> &mut Map<String, Value> {
        if self.data.is_none() {
            self.data = Some(self.loaded.as_ref().map(|r| r.data.clone()).unwrap_or_default());
        }
        self.data.get_or_insert_with(Map::new)
    }

    /// The data to carry into a new session for `subject`: all of it when
    /// the loaded session was that user's (or there was none); only this
    /// request's own writes when it was another user's, so one user's data
    /// never lands in another's session.
    pub(crate) fn take_data_for(&mut self, subject: &str) -> Map<String, Value> {
        let same_user = self.loaded.as_ref().is_none_or(|r| r.subject() == subject);
        self.data_mut();
        let mut data = self.data.take().unwrap_or_default();
        if !same_user {
            data.retain(|key, _| self.changed.contains(key));
        }
        data
    }
}

/// The request's session, as an extractor (`Session` in a handler's
/// arguments; needs a [`SessionLayer`](super::SessionLayer) around the route).
///
/// Reads see this request's changes; writes are applied once after the
/// handler answered, and only if something changed.
#[derive(Clone)]
pub struct Session {
    pub(crate) state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("Session")
            .field("handle", &state.loaded.as_ref().map(|r| r.key))
            .field("keys", &state.data().keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Session {
    pub(crate) fn new(state: State) -> Self {
        Self {
            state: Arc::new(Mutex::new(state)),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // Never held across an await; a panicking handler leaves usable data.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Signs `principal` in: a new session under a new id (any session the
    /// request carried is ended, so a planted id is useless). The session's
    /// data moves to the new one when the same subject signs in again; for
    /// a different subject only what this request wrote does, so nothing of
    /// the previous user's data reaches the new user.
    pub fn login(&self, principal: Principal) {
        self.lock().action = Action::Login(principal);
    }

    /// Signs out: the session is deleted and the cookie removed.
    pub fn logout(&self) {
        self.lock().action = Action::Logout;
    }

    /// Keeps the session but moves it to a new id (after a privilege change).
    pub fn rotate(&self) {
        let mut state = self.lock();
        if matches!(state.action, Action::Keep) {
            state.action = Action::Rotate;
        }
    }

    /// Whether the request carries a live session.
    pub fn is_signed_in(&self) -> bool {
        self.lock().loaded.is_some()
    }

    /// The public handle of the current session (for listings), if any.
    pub fn handle(&self) -> Option<SessionHandle> {
        self.lock().loaded.as_ref().map(|r| r.key)
    }

    /// The value under `key`: `Ok(None)` when absent, an error when the
    /// stored value is not a `T` (e.g. written by an older release of your
    /// app), so a type mismatch is never mistaken for "not set".
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionDataError> {
        let state = self.lock();
        match state.data().get(key) {
            None => Ok(None),
            Some(value) => T::deserialize(value)
                .map(Some)
                .map_err(|_| SessionDataError::new(key, "the stored value is not of the type asked for")),
        }
    }

    /// Stores `value` under `key` (written back at the end of the request);
    /// an error when `value` cannot be represented as JSON.
    pub fn insert<T: Serialize>(&self, key: &str, value: T) -> Result<(), SessionDataError> {
        let value = serde_json::to_value(value)
            .map_err(|_| SessionDataError::new(key, "the value cannot be stored as JSON"))?;
        let mut state = self.lock();
        if state.data().get(key) != Some(&value) {
            state.data_mut().insert(key.to_owned(), value);
            state.changed.insert(key.to_owned());
        }
        Ok(())
    }

    /// Removes `key`, returning whether it was there.
    pub fn remove(&self, key: &str) -> bool {
        let mut state = self.lock();
        if !state.data().contains_key(key) {
            return false;
        }
        let removed = state.data_mut().remove(key).is_some();
        if removed {
            state.changed.insert(key.to_owned());
        }
        removed
    }
}

#[cfg(feature = "axum")]
impl<S: Send + Sync> axum_core::extract::FromRequestParts<S> for Session {
    type Rejection = (http::StatusCode, &'static str);

    /// A route without a `SessionLayer` around it is a wiring mistake: 500,
    /// and an error log naming the missing layer (as axum does for a
    /// missing `Extension`).
    async fn from_request_parts(parts: &mut http::request::Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Session>().cloned().ok_or_else(|| {
            tracing::error!(
                path = parts.uri.path(),
                "the Session extractor found no session: add a SessionLayer around this route"
            );
            (
                http::StatusCode::INTERNAL_SERVER_ERROR,
                "the Session extractor needs a SessionLayer around this route",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_value_of_another_type_is_an_error_naming_the_key_not_an_absent_value() {
        let session = Session::new(State::default());
        session.insert("visits", "three").unwrap();
        assert_eq!(session.get::<String>("visits").unwrap().as_deref(), Some("three"));
        assert_eq!(session.get::<u32>("missing").unwrap(), None);
        let error = session.get::<u32>("visits").unwrap_err();
        assert_eq!(error.key(), "visits");
        assert!(!error.to_string().contains("three"), "the value is not shown: {error}");
    }
}
