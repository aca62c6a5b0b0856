//! [`SessionAuthenticator`]: the session cookie is the credential, the store
//! record yields the principal; the response hook applies what the handler
//! asked for (sign-in, sign-out, rotation, data) and the throttled touch.

use std::sync::Arc;
use std::time::Duration;

use cookie::Cookie;

use super::SameSite;
use http::header::{LOCATION, SET_COOKIE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, StatusCode};

use super::handle::{Action, Session, State};
use super::id::{CookieKeys, SessionHandle, SessionId};
use super::record::{SessionRecord, StoredPrincipal, UnixMillis};
use super::store::{SaveOutcome, SessionStore, StoreError};
use super::{CredentialVersions, PrincipalLoader, audit};
use crate::layer::{AuthFuture, Authentication, Authenticator, Finish, RequestHead, ResponseHook, Settled};
use crate::principal::Principal;
use crate::rejection::{AuthError, AuthErrorKind};
use crate::token::Credential;

/// Cookies longer than this are ignored (and logged as suspicious).
pub(crate) const MAX_COOKIE_LEN: usize = 4096;

/// How many same-named session cookies are tried, at most.
const MAX_SAME_NAME: usize = 8;

/// How many times a write-back re-reads and merges after a version conflict.
const SAVE_ATTEMPTS: usize = 3;

pub(crate) struct CookieSettings {
    pub(crate) name: String,
    pub(crate) same_site: SameSite,
    pub(crate) secure: bool,
}

pub(crate) struct Config {
    pub(crate) store: Arc<dyn SessionStore>,
    pub(crate) keys: CookieKeys,
    pub(crate) cookie: CookieSettings,
    pub(crate) idle: Duration,
    pub(crate) absolute: Duration,
    pub(crate) loader: Option<Arc<dyn PrincipalLoader>>,
    pub(crate) versions: Option<Arc<dyn CredentialVersions>>,
    pub(crate) login_redirect: Option<String>,
}

/// The loaded record, carried from `authenticate` to the response hook.
struct Loaded(Arc<SessionRecord>);

/// Authenticates requests by their session cookie. Cheap to clone.
#[derive(Clone)]
pub struct SessionAuthenticator {
    pub(crate) config: Arc<Config>,
}

impl std::fmt::Debug for SessionAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionAuthenticator")
            .field("cookie", &self.config.cookie.name)
            .field("idle", &self.config.idle)
            .field("absolute", &self.config.absolute)
            .finish_non_exhaustive()
    }
}

pub(crate) fn store_unavailable(error: StoreError) -> AuthError {
    tracing::warn!(%error, "session store unavailable");
    AuthError::unavailable("session store unavailable", Duration::from_secs(1))
}

fn session_ended() -> AuthError {
    AuthError::invalid_token("session expired or ended")
}

impl Config {
    /// A new session of `principal` in the store, under a fresh id.
    pub(crate) async fn create_session(
        &self,
        principal: &Principal,
        data: serde_json::Map<String, serde_json::Value>,
    ) -> Result<SessionId, AuthError> {
        let id = new_id()?;
        let mut stored = StoredPrincipal::of(principal);
        if let Some(versions) = &self.versions {
            stored.credential_version = versions.current(principal.subject()).await?;
        }
        let now = UnixMillis::now();
        let absolute_expires_at = now.after(self.absolute);
        let record = SessionRecord {
            key: id.key(),
            principal: stored,
            data,
            created_at: now,
            last_seen_at: now,
            idle_expires_at: now.after(self.idle).min(absolute_expires_at),
            absolute_expires_at,
            version: 0,
        };
        self.store.create(&record).await.map_err(store_unavailable)?;
        audit::session_created(record.subject(), &record.key);
        Ok(id)
    }

    /// The store key of a signed cookie value; oversized, unsigned and
    /// tampered values count as absent (logged without the value).
    fn key_of(&self, value: &str) -> Option<SessionHandle> {
        if value.len() > MAX_COOKIE_LEN {
            tracing::warn!(len = value.len(), "oversized session cookie ignored");
            return None;
        }
        match self.keys.verify(&self.cookie.name, value) {
            Some(id) => Some(id.key()),
            None => {
                tracing::warn!("session cookie with an invalid signature ignored");
                None
            }
        }
    }

    /// The values of every cookie named like the session cookie, in the
    /// order the browser sent them (at most [`MAX_SAME_NAME`]).
    fn cookies_in<'h>(&self, headers: &'h HeaderMap) -> impl Iterator<Item = &'h str> {
        let name = self.cookie.name.as_str();
        headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|header| header.to_str().ok())
            .flat_map(|text| text.split(';'))
            .filter_map(move |pair| {
                let (cookie, value) = pair.split_once('=')?;
                (cookie.trim() == name).then(|| value.trim())
            })
            .filter(|value| !value.is_empty())
            .take(MAX_SAME_NAME)
    }

    /// Whether the request carries a cookie named like the session cookie.
    fn cookie_in(&self, headers: &HeaderMap) -> bool {
        self.cookies_in(headers).next().is_some()
    }

    /// The key of the validly signed session cookie, if any. A browser may
    /// hold several cookies of that name (one a site on a sibling path or
    /// host planted): the one this layer signed wins, the others are noise.
    fn signed_key_in(&self, headers: &HeaderMap) -> Option<SessionHandle> {
        self.cookies_in(headers).find_map(|value| self.key_of(value))
    }

    async fn load(self: Arc<Self>, key: SessionHandle) -> Result<Principal, AuthError> {
        self.current(key).await?.ok_or_else(session_ended)
    }

    /// The principal of session `key` as of now; `None` once it has ended
    /// (signed out, revoked, expired, or its user refused by the loader).
    pub(crate) async fn current(&self, key: SessionHandle) -> Result<Option<Principal>, AuthError> {
        let record = self.store.load(&key).await.map_err(store_unavailable)?;
        let Some(record) = record.filter(|r| r.is_live(UnixMillis::now())) else {
            return Ok(None);
        };
        if let Some(versions) = &self.versions {
            let current = versions.current(record.subject()).await?;
            if current.is_none() || current != record.principal.credential_version {
                // Credentials changed (or the user is gone) since sign-in.
                self.store.delete(&key).await.map_err(store_unavailable)?;
                audit::session_ended_by_loader(record.subject(), &key);
                return Ok(None);
            }
        }
        let record = Arc::new(record);
        let Some(loader) = &self.loader else {
            return Ok(Some(record.principal.builder().attach(Loaded(record)).build()));
        };
        let stored = record.principal.builder().build();
        match loader.load(&stored).await? {
            Some(principal) => Ok(Some(principal.with_attachment(Loaded(record)))),
            None => {
                // The user is gone or disabled: the session ends now.
                self.store.delete(&key).await.map_err(store_unavailable)?;
                audit::session_ended_by_loader(record.subject(), &key);
                Ok(None)
            }
        }
    }

    fn set_cookie(&self, id: &SessionId) -> HeaderValue {
        let value = self.keys.sign(&self.cookie.name, id);
        let cookie = Cookie::build((self.cookie.name.clone(), value))
            .http_only(true)
            .same_site(self.cookie.same_site.to_cookie())
            .secure(self.cookie.secure)
            .path("/")
            .max_age(cookie::time::Duration::seconds(self.absolute.as_secs() as i64))
            .build();
        header_value(&cookie)
    }

    fn clear_cookie(&self) -> HeaderValue {
        let mut cookie = Cookie::build((self.cookie.name.clone(), ""))
            .http_only(true)
            .same_site(self.cookie.same_site.to_cookie())
            .secure(self.cookie.secure)
            .path("/")
            .build();
        cookie.make_removal();
        header_value(&cookie)
    }

    fn idle_deadline(&self, record: &SessionRecord, now: UnixMillis) -> UnixMillis {
        now.after(self.idle).min(record.absolute_expires_at)
    }

    /// Activity is recorded at most once per `max(1 s, idle / 10)`.
    fn touch_due(&self, record: &SessionRecord, now: UnixMillis) -> bool {
        let every = (self.idle / 10).max(Duration::from_secs(1));
        record.last_seen_at.until(now) >= every
    }
}

fn header_value(cookie: &Cookie<'_>) -> HeaderValue {
    // Names are checked at build time and values are base64: always valid.
    let mut value = HeaderValue::try_from(cookie.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""));
    value.set_sensitive(true);
    value
}

fn one_header(value: HeaderValue) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(SET_COOKIE, value);
    headers
}

/// `next` if it is a path on this site: one leading `/`, no scheme, host or
/// backslash tricks, no control characters. Anything else is not a safe
/// redirect target.
pub fn local_path(next: &str) -> Option<&str> {
    let bytes = next.as_bytes();
    let safe = bytes.first() == Some(&b'/')
        && !matches!(bytes.get(1), Some(b'/' | b'\\'))
        && !next.contains('\\')
        && !next.chars().any(char::is_control);
    safe.then_some(next)
}

impl Authenticator for SessionAuthenticator {
    type Future = AuthFuture;
    const NAME: &'static str = "session";

    const RESPONSE_HOOK: bool = true;

    fn authenticate(&self, _credential: Credential, request: &RequestHead<'_>) -> Authentication<Self::Future> {
        // The pipeline found a session cookie; of several, the signed one counts.
        let Some(key) = self.config.signed_key_in(request.headers) else {
            return Authentication::Ready(Err(AuthError::missing_credentials()));
        };
        let mut load = AuthFuture::new(Arc::clone(&self.config).load(key));
        // An in-process store answers at once: settle now, without the
        // pipeline's async state. Otherwise the pipeline polls it again with
        // its own waker (a future registers the latest waker it is given).
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        match std::pin::Pin::new(&mut load).poll(&mut context) {
            std::task::Poll::Ready(outcome) => Authentication::Ready(outcome),
            std::task::Poll::Pending => Authentication::Pending(load),
        }
    }

    fn response_hook(&self, request: &mut http::request::Parts, settled: Settled<'_>) -> Option<Box<dyn ResponseHook>> {
        let config = &self.config;
        let mut state = State::default();
        let mut clear_cookie = false;
        match settled {
            Settled::Authenticated(principal) => {
                if let Some(Loaded(record)) = principal.attachment::<Loaded>() {
                    state.loaded = Some(Arc::clone(record));
                }
            }
            Settled::Public => {
                state.carried = config.signed_key_in(&request.headers);
            }
            Settled::Anonymous(error) | Settled::Rejected(error) => {
                // An ended session's cookie is removed; a store failure keeps it.
                clear_cookie = error.kind() == AuthErrorKind::InvalidToken && config.cookie_in(&request.headers);
            }
        }
        let redirect = match settled {
            Settled::Rejected(error)
                if matches!(
                    error.kind(),
                    AuthErrorKind::MissingCredentials | AuthErrorKind::InvalidToken
                ) && crate::rejection::accepts_html(&request.headers) =>
            {
                config.login_redirect.as_deref().map(|login| {
                    let here = request.uri.path_and_query().map_or("/", |p| p.as_str());
                    let next: String = form_urlencoded::byte_serialize(here.as_bytes()).collect();
                    format!("{login}?next={next}")
                })
            }
            _ => None,
        };
        let session = match settled {
            Settled::Rejected(_) if !clear_cookie && redirect.is_none() => return None,
            Settled::Rejected(_) => None,
            _ => {
                let session = Session::new(state);
                request.extensions.insert(session.clone());
                Some(session)
            }
        };
        Some(Box::new(SessionHook {
            config: Arc::clone(config),
            session,
            clear_cookie,
            redirect,
        }))
    }
}

/// The end of a request: apply the handler's requests to the store and the
/// cookie.
struct SessionHook {
    config: Arc<Config>,
    session: Option<Session>,
    clear_cookie: bool,
    redirect: Option<String>,
}

impl ResponseHook for SessionHook {
    fn finish(self: Box<Self>, response: &mut http::response::Parts) -> Finish {
        let config = self.config;
        if let Some(location) = self.redirect.and_then(|l| HeaderValue::try_from(l).ok()) {
            response.status = StatusCode::SEE_OTHER;
            response.headers.insert(LOCATION, location);
            response.headers.remove(WWW_AUTHENTICATE);
        }
        let mut state = match &self.session {
            Some(session) => std::mem::take(&mut *session.lock()),
            None => State::default(),
        };
        let now = UnixMillis::now();
        let carried = state.carried_key();
        match std::mem::take(&mut state.action) {
            Action::Login(principal) => {
                let data = state.take_data_for(principal.subject());
                Finish::Pending(Box::pin(login(config, carried, principal, data)))
            }
            Action::Logout => match carried {
                Some(key) => Finish::Pending(Box::pin(async move {
                    config.store.delete(&key).await.map_err(store_unavailable)?;
                    audit::signed_out(&key);
                    Ok(one_header(config.clear_cookie()))
                })),
                None => {
                    response.headers.append(SET_COOKIE, config.clear_cookie());
                    Finish::Done
                }
            },
            Action::Rotate if state.loaded.is_some() => Finish::Pending(Box::pin(rotate(config, state))),
            _ => match &state.loaded {
                Some(_) if !state.changed.is_empty() => Finish::Pending(Box::pin(async move {
                    let record = state.loaded.as_ref().map(|r| r.key);
                    match record {
                        Some(key) => write_back(&config, key, &state, now).await,
                        None => Ok(HeaderMap::new()),
                    }
                })),
                Some(record) if config.touch_due(record, now) => {
                    let key = record.key;
                    let deadline = config.idle_deadline(record, now);
                    Finish::Pending(Box::pin(async move {
                        let touched = config
                            .store
                            .touch(&key, now, deadline)
                            .await
                            .map_err(store_unavailable)?;
                        Ok(if touched {
                            HeaderMap::new()
                        } else {
                            one_header(config.clear_cookie())
                        })
                    }))
                }
                Some(_) => Finish::Done,
                None => {
                    if self.clear_cookie {
                        response.headers.append(SET_COOKIE, config.clear_cookie());
                    }
                    Finish::Done
                }
            },
        }
    }
}

fn new_id() -> Result<SessionId, AuthError> {
    SessionId::generate().map_err(|_| AuthError::unavailable("could not create a session id", Duration::from_secs(1)))
}

async fn login(
    config: Arc<Config>,
    carried: Option<SessionHandle>,
    principal: Principal,
    data: serde_json::Map<String, serde_json::Value>,
) -> Result<HeaderMap, AuthError> {
    if let Some(old) = carried {
        // Fixation defence: the session the request came with ends.
        config.store.delete(&old).await.map_err(store_unavailable)?;
    }
    let id = config.create_session(&principal, data).await?;
    Ok(one_header(config.set_cookie(&id)))
}

async fn rotate(config: Arc<Config>, state: State) -> Result<HeaderMap, AuthError> {
    let Some(old) = state.loaded.as_ref().map(|r| r.key) else {
        return Ok(HeaderMap::new());
    };
    let id = new_id()?;
    let now = UnixMillis::now();
    let moved = config
        .store
        .rekey(&old, &id.key(), now)
        .await
        .map_err(store_unavailable)?;
    if !moved {
        // Revoked while the request ran: the revoke wins.
        return Ok(one_header(config.clear_cookie()));
    }
    audit::session_rotated(&old, &id.key());
    if !state.changed.is_empty() {
        let cleared = write_back(&config, id.key(), &state, now).await?;
        if cleared.contains_key(SET_COOKIE) {
            return Ok(cleared);
        }
    }
    Ok(one_header(config.set_cookie(&id)))
}

/// Writes this request's changed keys back, on the version it read; after a
/// conflict, re-reads and re-applies only those keys, so concurrent requests
/// changing different keys both keep their changes (per key, the last writer
/// wins). A session gone meanwhile stays gone and its cookie is removed.
async fn write_back(
    config: &Config,
    key: SessionHandle,
    state: &State,
    now: UnixMillis,
) -> Result<HeaderMap, AuthError> {
    let Some(loaded) = &state.loaded else {
        return Ok(HeaderMap::new());
    };
    let mut version = loaded.version;
    let mut data = state.data().clone();
    let mut deadline = config.idle_deadline(loaded, now);
    for _ in 0..SAVE_ATTEMPTS {
        match config
            .store
            .save(&key, version, &data, now, deadline)
            .await
            .map_err(store_unavailable)?
        {
            SaveOutcome::Saved(_) => return Ok(HeaderMap::new()),
            SaveOutcome::Gone => return Ok(one_header(config.clear_cookie())),
            SaveOutcome::Conflict => {
                let Some(fresh) = config.store.load(&key).await.map_err(store_unavailable)? else {
                    return Ok(one_header(config.clear_cookie()));
                };
                let mut merged = fresh.data.clone();
                for changed in &state.changed {
                    match state.data().get(changed) {
                        Some(value) => merged.insert(changed.clone(), value.clone()),
                        None => merged.remove(changed),
                    };
                }
                data = merged;
                version = fresh.version;
                deadline = config.idle_deadline(&fresh, now);
            }
        }
    }
    tracing::warn!("session data changed concurrently too often; this request's changes were not saved");
    Err(AuthError::unavailable(
        "session busy, try again",
        Duration::from_secs(1),
    ))
}

#[cfg(test)]
mod tests {
    use super::local_path;

    #[test]
    fn only_local_paths_are_redirect_targets() {
        for ok in ["/", "/a/b?c=d", "/me/sessions"] {
            assert_eq!(local_path(ok), Some(ok));
        }
        for bad in [
            "",
            "//evil.example/",
            "/\\evil.example",
            "https://evil.example/",
            "evil",
            "/a\\b",
            "/a\nb",
            "javascript:alert(1)",
        ] {
            assert_eq!(local_path(bad), None, "{bad:?}");
        }
    }
}
