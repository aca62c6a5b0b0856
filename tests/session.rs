//! SessionLayer: cookies, sign-in and sign-out, expiry, rotation,
//! revocation, write-back, store failures and what reaches the logs.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query};
use axum::routing::{get, post};
use common::Reply;
use http::Request;
use serde_json::{Map, Value};
use tower_authkit::session::store::{
    AttemptCounter, Counter, MemoryStore, SaveOutcome, SessionRecords, SessionStore, StoreError, StoreFuture,
    UserSessions,
};
use tower_authkit::session::{
    CredentialVersions, Session, SessionAdmin, SessionHandle, SessionLayer, SessionRecord, UnixMillis,
};
use tower_authkit::{AuthError, BoxFuture, Principal, RequireRole, SecurityContext};

const KEY: &[u8] = b"test signing key, 32 bytes or more.";
const OLD_KEY: &[u8] = b"an older signing key, also long enough";
/// The default name of a `Secure` session cookie.
const COOKIE: &str = "__Host-authkit_session";

/// A store (memory unless said otherwise) that counts calls and can be
/// switched to failing.
#[derive(Clone)]
struct Instrumented {
    inner: Arc<dyn SessionStore>,
    failing: Arc<AtomicBool>,
    loads: Arc<AtomicUsize>,
    writes: Arc<AtomicUsize>,
}

impl Default for Instrumented {
    fn default() -> Self {
        Self::over(MemoryStore::new())
    }
}

impl Instrumented {
    fn over(store: impl SessionStore) -> Self {
        Self {
            inner: Arc::new(store),
            failing: Arc::default(),
            loads: Arc::default(),
            writes: Arc::default(),
        }
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            Err(StoreError::new("injected failure"))
        } else {
            Ok(())
        }
    }

    fn write(&self) -> Result<(), StoreError> {
        self.check()?;
        self.writes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

macro_rules! guarded {
    ($self:ident, $guard:ident, $call:expr) => {{
        if let Err(error) = $self.$guard() {
            return Box::pin(async move { Err(error) });
        }
        $call
    }};
}

impl SessionRecords for Instrumented {
    fn create<'a>(&'a self, record: &'a SessionRecord) -> StoreFuture<'a, ()> {
        guarded!(self, write, self.inner.create(record))
    }

    fn load<'a>(&'a self, key: &'a SessionHandle) -> StoreFuture<'a, Option<SessionRecord>> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        guarded!(self, check, self.inner.load(key))
    }

    fn touch<'a>(&'a self, key: &'a SessionHandle, seen_at: UnixMillis, idle: UnixMillis) -> StoreFuture<'a, bool> {
        guarded!(self, write, self.inner.touch(key, seen_at, idle))
    }

    fn save<'a>(
        &'a self,
        key: &'a SessionHandle,
        expected: u64,
        data: &'a Map<String, Value>,
        seen_at: UnixMillis,
        idle: UnixMillis,
    ) -> StoreFuture<'a, SaveOutcome> {
        guarded!(self, write, self.inner.save(key, expected, data, seen_at, idle))
    }

    fn rekey<'a>(&'a self, old: &'a SessionHandle, new: &'a SessionHandle, at: UnixMillis) -> StoreFuture<'a, bool> {
        guarded!(self, write, self.inner.rekey(old, new, at))
    }

    fn delete<'a>(&'a self, key: &'a SessionHandle) -> StoreFuture<'a, bool> {
        guarded!(self, write, self.inner.delete(key))
    }
}

impl UserSessions for Instrumented {
    fn delete_user<'a>(&'a self, subject: &'a str) -> StoreFuture<'a, u64> {
        guarded!(self, write, self.inner.delete_user(subject))
    }

    fn list_user<'a>(&'a self, subject: &'a str) -> StoreFuture<'a, Vec<SessionRecord>> {
        guarded!(self, check, self.inner.list_user(subject))
    }
}

impl AttemptCounter for Instrumented {
    fn count_failure<'a>(&'a self, counter: &'a str, window: Duration) -> StoreFuture<'a, Counter> {
        guarded!(self, write, self.inner.count_failure(counter, window))
    }

    fn forgive<'a>(&'a self, counter: &'a str) -> StoreFuture<'a, ()> {
        guarded!(self, write, self.inner.forgive(counter))
    }

    fn failures<'a>(&'a self, counter: &'a str) -> StoreFuture<'a, Counter> {
        guarded!(self, check, self.inner.failures(counter))
    }

    fn reset_counter<'a>(&'a self, counter: &'a str) -> StoreFuture<'a, ()> {
        guarded!(self, write, self.inner.reset_counter(counter))
    }
}

#[derive(serde::Deserialize)]
struct LoginQuery {
    user: String,
    #[serde(default)]
    role: Option<String>,
}

/// Lets a test hold a handler until it says so.
#[derive(Clone, Default)]
struct Gate {
    entered: Arc<tokio::sync::Notify>,
    release: Arc<tokio::sync::Notify>,
}

impl Gate {
    /// Bounded: a request that never reaches the handler fails the test.
    async fn wait_entered(&self) {
        tokio::time::timeout(Duration::from_secs(10), self.entered.notified())
            .await
            .expect("the request reached its handler");
    }
}

fn app(layer: SessionLayer, gate: Gate) -> Router {
    Router::new()
        .route("/me", get(|p: Principal| async move { p.subject().to_owned() }))
        .route(
            "/context",
            get(|| async {
                SecurityContext::current()
                    .principal()
                    .map(|p| p.subject().to_owned())
                    .unwrap_or_default()
            }),
        )
        .route(
            "/admin",
            get(|| async { "admin" }).route_layer(RequireRole::new("admin")),
        )
        .route(
            "/login",
            post(|session: Session, Query(q): Query<LoginQuery>| async move {
                let roles = q.role.into_iter().collect();
                session.login(Principal::builder("session", q.user).roles(roles).build());
                "signed in"
            }),
        )
        .route(
            "/relogin/{user}/{key}/{value}",
            post(
                |session: Session, Path((user, key, value)): Path<(String, String, String)>| async move {
                    session.insert(&key, value).unwrap();
                    session.login(Principal::builder("session", user).build());
                    "signed in again"
                },
            ),
        )
        .route(
            "/logout",
            post(|session: Session| async move {
                session.logout();
                "bye"
            }),
        )
        .route(
            "/rotate",
            post(|session: Session| async move {
                session.rotate();
                "rotated"
            }),
        )
        .route(
            "/put/{key}/{value}",
            post(
                |session: Session, Path((key, value)): Path<(String, String)>| async move {
                    session.insert(&key, value).unwrap();
                    "ok"
                },
            ),
        )
        .route(
            "/get/{key}",
            get(|session: Session, Path(key): Path<String>| async move {
                session.get::<String>(&key).ok().flatten().unwrap_or_default()
            }),
        )
        .route(
            "/slow/{key}/{value}",
            post(move |session: Session, Path((key, value)): Path<(String, String)>| {
                let gate = gate.clone();
                async move {
                    gate.entered.notify_one();
                    gate.release.notified().await;
                    session.insert(&key, value).unwrap();
                    "slow"
                }
            }),
        )
        .layer(layer.public_path("/login"))
}

fn builder(store: &Instrumented) -> tower_authkit::session::SessionBuilder {
    SessionLayer::builder().key(KEY.to_vec()).store(store.clone())
}

/// A client that keeps the session cookie like a browser.
#[derive(Clone)]
struct Browser {
    app: Router,
    name: &'static str,
    cookie: Arc<Mutex<Option<String>>>,
    accept_html: bool,
}

impl Browser {
    fn new(app: &Router) -> Self {
        Self::named(app, COOKIE)
    }

    /// A browser for a layer whose session cookie is called `name`.
    fn named(app: &Router, name: &'static str) -> Self {
        Self {
            app: app.clone(),
            name,
            cookie: Arc::new(Mutex::new(None)),
            accept_html: false,
        }
    }

    fn cookie(&self) -> Option<String> {
        self.cookie.lock().unwrap().clone()
    }

    fn set_cookie(&self, value: Option<String>) {
        *self.cookie.lock().unwrap() = value;
    }

    async fn send(&self, method: &str, path: &str) -> Reply {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(value) = self.cookie() {
            request = request.header("cookie", format!("{}={value}", self.name));
        }
        if self.accept_html {
            request = request.header("accept", "text/html,application/xhtml+xml");
        }
        let reply = common::send(&self.app, request.body(Body::empty()).unwrap()).await;
        for set in reply.headers.get_all("set-cookie") {
            let parsed = cookie::Cookie::parse(set.to_str().unwrap().to_owned()).unwrap();
            assert_eq!(parsed.name(), self.name);
            let removed = parsed.value().is_empty() || parsed.max_age() == Some(cookie::time::Duration::ZERO);
            self.set_cookie((!removed).then(|| parsed.value().to_owned()));
        }
        reply
    }

    async fn login(&self, user: &str) -> Reply {
        self.send("POST", &format!("/login?user={user}")).await
    }
}

fn set_cookie_of(reply: &Reply) -> Option<cookie::Cookie<'static>> {
    reply
        .headers
        .get("set-cookie")
        .map(|v| cookie::Cookie::parse(v.to_str().unwrap().to_owned()).unwrap())
}

#[tokio::test]
async fn sign_in_sets_a_hardened_cookie_and_the_session_authenticates() {
    let store = Instrumented::default();
    let app = app(builder(&store).build().unwrap(), Gate::default());
    let browser = Browser::new(&app);
    assert_eq!(browser.send("GET", "/me").await.status, 401);
    let reply = browser.login("alice").await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let cookie = set_cookie_of(&reply).unwrap();
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(cookie.secure(), Some(true));
    assert_eq!(cookie.same_site(), Some(cookie::SameSite::Lax));
    assert_eq!(cookie.path(), Some("/"));
    assert!(cookie.value().len() > 43 && cookie.value().len() < 200);
    let me = browser.send("GET", "/me").await;
    assert_eq!((me.status.as_u16(), me.body.as_str()), (200, "alice"));
    assert_eq!(
        browser.send("GET", "/context").await.body,
        "alice",
        "SecurityContext sees it"
    );
    assert_eq!(browser.send("GET", "/admin").await.status, 403);
    let admin = Browser::new(&app);
    admin.send("POST", "/login?user=root&role=admin").await;
    assert_eq!(admin.send("GET", "/admin").await.status, 200);

    let local = app_with(builder(&store).secure(false).build().unwrap());
    let reply = Browser::named(&local, "authkit_session").login("bob").await;
    assert_eq!(
        set_cookie_of(&reply).unwrap().secure(),
        None,
        "Secure off for local http"
    );
}

#[tokio::test]
async fn secure_session_cookies_are_host_prefixed_so_no_sibling_can_plant_one() {
    let store = Instrumented::default();
    let app = app_with(builder(&store).build().unwrap());
    let cookie = set_cookie_of(&Browser::new(&app).login("alice").await).unwrap();
    // What browsers demand of a __Host- cookie.
    assert_eq!(cookie.name(), "__Host-authkit_session");
    assert_eq!(
        (cookie.secure(), cookie.path(), cookie.domain()),
        (Some(true), Some("/"), None)
    );
    let refused = builder(&store)
        .secure(false)
        .cookie_name("__Host-session")
        .build()
        .err()
        .unwrap();
    assert!(refused.to_string().contains("__Host-"), "{refused}");
}

#[tokio::test]
async fn a_planted_cookie_of_the_same_name_neither_shadows_nor_breaks_the_session() {
    let store = Instrumented::default();
    let app = app_with(builder(&store).build().unwrap());
    let browser = Browser::new(&app);
    browser.login("alice").await;
    let good = browser.cookie().unwrap();
    for cookies in [
        format!("{COOKIE}=planted; {COOKIE}={good}"),
        format!("{COOKIE}={good}; {COOKIE}=planted"),
        format!("{COOKIE}=\"bad value\"; {COOKIE}={good}"),
    ] {
        let request = Request::builder()
            .uri("/me")
            .header("cookie", cookies.as_str())
            .body(Body::empty())
            .unwrap();
        let reply = common::send(&app, request).await;
        assert_eq!(
            (reply.status.as_u16(), reply.body.as_str()),
            (200, "alice"),
            "{cookies}"
        );
    }
    let only_planted = Request::builder()
        .uri("/me")
        .header("cookie", format!("{COOKIE}=planted; {COOKIE}=other"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(common::send(&app, only_planted).await.status, 401);
}

#[tokio::test]
async fn signing_in_as_another_user_never_carries_the_previous_users_data() {
    let store = Instrumented::default();
    let app = app_with(builder(&store).build().unwrap());
    let browser = Browser::new(&app);
    browser.login("alice").await;
    browser.send("POST", "/put/cart/alices-cart").await;
    // Bob signs in on a page that loaded Alice's session.
    let reply = browser.send("POST", "/relogin/bob/note/for-bob").await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(browser.send("GET", "/me").await.body, "bob");
    assert_eq!(
        browser.send("GET", "/get/cart").await.body,
        "",
        "Alice's data stayed behind"
    );
    assert_eq!(
        browser.send("GET", "/get/note").await.body,
        "for-bob",
        "this request's own write"
    );
    // The same user signing in again keeps the session's data.
    browser.send("POST", "/put/cart/bobs-cart").await;
    browser.send("POST", "/relogin/bob/other/x").await;
    assert_eq!(browser.send("GET", "/get/cart").await.body, "bobs-cart");
}

fn app_with(layer: SessionLayer) -> Router {
    app(layer, Gate::default())
}

#[tokio::test]
async fn tampered_unsigned_and_oversized_cookies_count_as_absent() {
    let store = Instrumented::default();
    let app = app_with(builder(&store).build().unwrap());
    let browser = Browser::new(&app);
    browser.login("alice").await;
    let good = browser.cookie().unwrap();
    let mut tampered = good.clone().into_bytes();
    let last = tampered.len() - 1;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    // The id part alone (no signature): the cookie crate puts the 44-char MAC first.
    let unsigned = good[44..].to_owned();
    let oversized = format!("{good}{}", "A".repeat(5000));
    let loads = store.loads.load(Ordering::SeqCst);
    for bad in [tampered, unsigned, oversized] {
        browser.set_cookie(Some(bad));
        let reply = browser.send("GET", "/me").await;
        assert_eq!(reply.status, 401, "{reply:?}");
        assert_eq!(reply.json()["error"], "missing_token", "treated as absent");
    }
    assert_eq!(
        store.loads.load(Ordering::SeqCst),
        loads,
        "bad cookies never reach the store"
    );
    browser.set_cookie(Some(good));
    assert_eq!(browser.send("GET", "/me").await.status, 200);
}

#[tokio::test]
async fn login_issues_a_new_id_and_the_carried_one_dies() {
    let store = Instrumented::default();
    let app = app_with(builder(&store).build().unwrap());
    let browser = Browser::new(&app);
    browser.login("alice").await;
    let first = browser.cookie().unwrap();
    browser.login("alice").await;
    let second = browser.cookie().unwrap();
    assert_ne!(first, second);
    assert_eq!(browser.send("GET", "/me").await.status, 200);
    let old = Browser::new(&app);
    old.set_cookie(Some(first));
    assert_eq!(old.send("GET", "/me").await.status, 401, "the carried session ended");
}

#[tokio::test]
async fn logout_deletes_the_session_and_removes_the_cookie() {
    let store = Instrumented::default();
    let app = app_with(builder(&store).build().unwrap());
    let browser = Browser::new(&app);
    browser.login("alice").await;
    let cookie = browser.cookie().unwrap();
    let reply = browser.send("POST", "/logout").await;
    assert_eq!(reply.status, 200);
    let removal = set_cookie_of(&reply).unwrap();
    assert_eq!(removal.max_age(), Some(cookie::time::Duration::ZERO));
    assert!(browser.cookie().is_none());
    let replay = Browser::new(&app);
    replay.set_cookie(Some(cookie));
    let reply = replay.send("GET", "/me").await;
    assert_eq!(reply.status, 401);
    assert!(
        set_cookie_of(&reply).is_some_and(|c| c.max_age() == Some(cookie::time::Duration::ZERO)),
        "an ended session's cookie is removed"
    );
}

#[tokio::test]
async fn rotation_moves_the_session_to_a_new_id_keeping_its_data() {
    let store = Instrumented::default();
    let app = app_with(builder(&store).build().unwrap());
    let browser = Browser::new(&app);
    browser.login("alice").await;
    browser.send("POST", "/put/theme/dark").await;
    let before = browser.cookie().unwrap();
    assert_eq!(browser.send("POST", "/rotate").await.status, 200);
    let after = browser.cookie().unwrap();
    assert_ne!(before, after);
    assert_eq!(browser.send("GET", "/get/theme").await.body, "dark");
    let old = Browser::new(&app);
    old.set_cookie(Some(before));
    assert_eq!(old.send("GET", "/me").await.status, 401);
}

/// One store read per request for an unchanged session, no write but the
/// throttled touch; one write-back when data changes, none when it does not.
async fn one_read_per_request_and_writes_only_when_changed(store: Instrumented) {
    let app = app_with(builder(&store).build().unwrap());
    let browser = Browser::new(&app);
    browser.login("alice").await;
    let (loads, writes) = (store.loads.load(Ordering::SeqCst), store.writes.load(Ordering::SeqCst));
    for _ in 0..5 {
        assert_eq!(browser.send("GET", "/me").await.status, 200);
    }
    assert_eq!(store.loads.load(Ordering::SeqCst) - loads, 5, "one read per request");
    assert_eq!(
        store.writes.load(Ordering::SeqCst),
        writes,
        "no write for unchanged sessions"
    );
    browser.send("POST", "/put/theme/dark").await;
    assert_eq!(store.writes.load(Ordering::SeqCst) - writes, 1, "one write-back");
    browser.send("POST", "/put/theme/dark").await;
    assert_eq!(store.writes.load(Ordering::SeqCst) - writes, 1, "same value: no write");
    assert_eq!(browser.send("GET", "/get/theme").await.body, "dark");
}

#[tokio::test]
async fn data_is_written_back_once_and_only_when_changed() {
    one_read_per_request_and_writes_only_when_changed(Instrumented::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_sessions_cost_one_read_per_request() {
    let dir = tempfile::tempdir().unwrap();
    let store = tower_authkit::session::store::SqliteStore::open(dir.path().join("s.db")).unwrap();
    one_read_per_request_and_writes_only_when_changed(Instrumented::over(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_sessions_cost_one_read_per_request() {
    let url = std::env::var("AUTHKIT_TEST_REDIS_URL")
        .expect("AUTHKIT_TEST_REDIS_URL is not set: scripts/test.sh starts a redis-server and sets it");
    let prefix = format!("authkit-layer-test:{}:", std::process::id());
    let store = tower_authkit::session::store::RedisStore::with_prefix(&url, &prefix).unwrap();
    one_read_per_request_and_writes_only_when_changed(Instrumented::over(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_changing_different_keys_both_keep_their_changes() {
    let store = Instrumented::default();
    let gate = Gate::default();
    let app = app(builder(&store).build().unwrap(), gate.clone());
    let browser = Browser::new(&app);
    browser.login("alice").await;
    // The slow request reads version N, then waits; the fast one writes N+1.
    let slow = tokio::spawn({
        let browser = browser.clone();
        async move { browser.send("POST", "/slow/a/1").await }
    });
    gate.wait_entered().await;
    assert_eq!(browser.send("POST", "/put/b/2").await.status, 200);
    gate.release.notify_one();
    assert_eq!(slow.await.unwrap().status, 200);
    assert_eq!(browser.send("GET", "/get/a").await.body, "1");
    assert_eq!(browser.send("GET", "/get/b").await.body, "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoke_during_an_in_flight_request_is_not_undone() {
    let store = Instrumented::default();
    let gate = Gate::default();
    let layer = builder(&store).build().unwrap();
    let admin: SessionAdmin = layer.authenticator().admin();
    let app = app(layer, gate.clone());
    let browser = Browser::new(&app);
    browser.login("mallory").await;
    let cookie = browser.cookie().unwrap();
    let in_flight = tokio::spawn({
        let browser = browser.clone();
        async move { browser.send("POST", "/slow/k/v").await }
    });
    gate.wait_entered().await;
    assert_eq!(admin.revoke_user("mallory").await.unwrap(), 1);
    gate.release.notify_one();
    let reply = in_flight.await.unwrap();
    assert_eq!(reply.status, 200, "the request had started");
    assert!(
        admin.list_user("mallory").await.unwrap().is_empty(),
        "its write-back did not re-create the session"
    );
    let replay = Browser::new(&app);
    replay.set_cookie(Some(cookie));
    assert_eq!(replay.send("GET", "/me").await.status, 401);
}

#[tokio::test]
async fn users_end_only_their_own_sessions_by_handle() {
    let store = Instrumented::default();
    let layer = builder(&store).build().unwrap();
    let admin = layer.authenticator().admin();
    let app = app_with(layer);
    let (laptop, phone) = (Browser::new(&app), Browser::new(&app));
    laptop.login("alice").await;
    phone.login("alice").await;
    let sessions = admin.list_user("alice").await.unwrap();
    assert_eq!(sessions.len(), 2);
    for info in &sessions {
        let handle = info.handle.to_hex();
        for cookie in [laptop.cookie().unwrap(), phone.cookie().unwrap()] {
            assert!(!cookie.contains(&handle[..16]), "a handle is not the cookie");
        }
    }
    assert!(
        !admin.revoke("mallory", &sessions[0].handle).await.unwrap(),
        "another user's handle ends nothing"
    );
    assert_eq!(admin.list_user("alice").await.unwrap().len(), 2);
    assert!(admin.revoke("alice", &sessions[0].handle).await.unwrap());
    let statuses = [
        laptop.send("GET", "/me").await.status.as_u16(),
        phone.send("GET", "/me").await.status.as_u16(),
    ];
    let mut sorted = statuses;
    sorted.sort_unstable();
    assert_eq!(sorted, [200, 401], "exactly one ended: {statuses:?}");
}

#[tokio::test]
async fn idle_sessions_end_and_active_ones_do_not_until_the_absolute_limit() {
    let store = Instrumented::default();
    let app = app_with(
        builder(&store)
            .idle_timeout(Duration::from_millis(1500))
            .absolute_timeout(Duration::from_millis(4000))
            .build()
            .unwrap(),
    );
    let idle = Browser::new(&app);
    idle.login("sleeper").await;
    let active = Browser::new(&app);
    active.login("worker").await;
    // The active one is used every 300 ms; touches extend it (at most one a second).
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_millis(2500) {
        assert_eq!(
            active.send("GET", "/me").await.status,
            200,
            "at {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(idle.send("GET", "/me").await.status, 401, "idle past 1.5 s");
    // However active, it ends at the absolute limit (4 s after sign-in).
    while started.elapsed() < Duration::from_millis(4300) {
        active.send("GET", "/me").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(active.send("GET", "/me").await.status, 401, "past the absolute limit");
}

#[tokio::test]
async fn old_keys_verify_after_rotation_and_unknown_keys_do_not() {
    let store = Instrumented::default();
    let old = app_with(
        SessionLayer::builder()
            .key(OLD_KEY.to_vec())
            .store(store.clone())
            .build()
            .unwrap(),
    );
    let browser = Browser::new(&old);
    browser.login("alice").await;
    let cookie = browser.cookie().unwrap();
    let rotated = app_with(builder(&store).old_key(OLD_KEY.to_vec()).build().unwrap());
    let after = Browser::new(&rotated);
    after.set_cookie(Some(cookie.clone()));
    assert_eq!(after.send("GET", "/me").await.status, 200, "an old key still verifies");
    let dropped = app_with(builder(&store).build().unwrap());
    let without = Browser::new(&dropped);
    without.set_cookie(Some(cookie));
    assert_eq!(
        without.send("GET", "/me").await.status,
        401,
        "a dropped key no longer does"
    );
    assert!(SessionLayer::builder().key(b"too short".to_vec()).build().is_err());
    assert!(builder(&store).old_key(b"short".to_vec()).build().is_err());
}

#[tokio::test]
async fn a_store_outage_is_503_keeps_the_cookie_and_the_session_recovers() {
    let store = Instrumented::default();
    let app = app_with(builder(&store).build().unwrap());
    let browser = Browser::new(&app);
    browser.login("alice").await;
    let cookie = browser.cookie().unwrap();
    store.failing.store(true, Ordering::SeqCst);
    let reply = browser.send("GET", "/me").await;
    assert_eq!(reply.status, 503, "{reply:?}");
    assert!(reply.headers.contains_key("retry-after"));
    assert!(reply.headers.get("set-cookie").is_none(), "no silent logout");
    let login = Browser::new(&app).login("bob").await;
    assert_eq!(login.status, 503, "a sign-in that cannot be stored is 503");
    assert!(login.headers.get("set-cookie").is_none());
    store.failing.store(false, Ordering::SeqCst);
    assert_eq!(browser.cookie().unwrap(), cookie);
    assert_eq!(browser.send("GET", "/me").await.status, 200, "same cookie, recovered");
}

/// Credential versions from a table a test can bump.
#[derive(Clone, Default)]
struct PasswordChanges(Arc<Mutex<HashMap<String, u64>>>);

impl CredentialVersions for PasswordChanges {
    fn current<'a>(&'a self, subject: &'a str) -> BoxFuture<'a, Result<Option<String>, AuthError>> {
        let version = self.0.lock().unwrap().get(subject).map(u64::to_string);
        Box::pin(async move { Ok(version) })
    }
}

#[tokio::test]
async fn a_password_change_ends_the_users_other_sessions() {
    let store = Instrumented::default();
    let changes = PasswordChanges::default();
    changes
        .0
        .lock()
        .unwrap()
        .extend([("alice".to_owned(), 1), ("bob".to_owned(), 1)]);
    let app = app_with(builder(&store).credential_versions(changes.clone()).build().unwrap());
    let (laptop, phone, bobs) = (Browser::new(&app), Browser::new(&app), Browser::new(&app));
    laptop.login("alice").await;
    phone.login("alice").await;
    bobs.login("bob").await;
    assert_eq!(phone.send("GET", "/me").await.status, 200);
    // Alice changes her password (on the laptop, which signs in again).
    *changes.0.lock().unwrap().get_mut("alice").unwrap() += 1;
    assert_eq!(phone.send("GET", "/me").await.status, 401, "the phone's session ended");
    assert_eq!(laptop.send("GET", "/me").await.status, 401);
    laptop.login("alice").await;
    assert_eq!(
        laptop.send("GET", "/me").await.status,
        200,
        "a new sign-in uses the new version"
    );
    assert_eq!(bobs.send("GET", "/me").await.status, 200, "other users are untouched");
    // A user who is gone loses their sessions too.
    changes.0.lock().unwrap().remove("bob");
    assert_eq!(bobs.send("GET", "/me").await.status, 401);
}

#[tokio::test]
async fn cookie_session_refusals_name_no_bearer_scheme() {
    let store = Instrumented::default();
    let app = app_with(builder(&store).build().unwrap().realm("portal"));
    let browser = Browser::new(&app);
    let signed_out = browser.send("GET", "/me").await;
    assert_eq!(signed_out.status, 401);
    assert_eq!(signed_out.challenge(), "Cookie realm=\"portal\"");
    browser.login("alice").await;
    // A role refusal further in: 403, and still no token scheme.
    let forbidden = browser.send("GET", "/admin").await;
    assert_eq!(forbidden.status, 403);
    assert!(
        forbidden.headers.get("www-authenticate").is_none(),
        "{:?}",
        forbidden.headers
    );
}

#[tokio::test]
async fn browsers_without_a_session_are_sent_to_the_login_page_with_a_local_next() {
    let store = Instrumented::default();
    let app = app_with(builder(&store).login_redirect("/login").build().unwrap());
    let mut browser = Browser::new(&app);
    browser.accept_html = true;
    let reply = browser.send("GET", "/me?tab=1").await;
    assert_eq!(reply.status, 303);
    assert_eq!(reply.headers["location"], "/login?next=%2Fme%3Ftab%3D1");
    // A redirect, not an API error: no challenge, no JSON body.
    assert!(reply.headers.get("www-authenticate").is_none());
    assert!(reply.headers.get("content-type").is_none(), "{:?}", reply.headers);
    assert_eq!(reply.body, "");
    // API clients still get 401.
    let api = Browser::new(&app);
    assert_eq!(api.send("GET", "/me").await.status, 401);
    assert!(
        SessionLayer::builder()
            .key(KEY.to_vec())
            .login_redirect("https://evil.example/")
            .build()
            .is_err()
    );
}

#[tokio::test]
async fn optional_mode_lets_anonymous_requests_through() {
    let store = Instrumented::default();
    let layer = builder(&store).build().unwrap().optional();
    let app = Router::new()
        .route(
            "/",
            get(|p: Option<Principal>| async move { p.map_or("anonymous".to_owned(), |p| p.subject().to_owned()) }),
        )
        .route(
            "/login",
            post(|session: Session| async move {
                session.login(Principal::builder("session", "alice").build());
            }),
        )
        .layer(layer);
    let browser = Browser::new(&app);
    assert_eq!(browser.send("GET", "/").await.body, "anonymous");
    browser.set_cookie(Some("garbage".into()));
    assert_eq!(browser.send("GET", "/").await.body, "anonymous");
    browser.set_cookie(None);
    browser.send("POST", "/login").await;
    assert_eq!(browser.send("GET", "/").await.body, "alice");
}

/// Rebuilds principals from a user table; disabled users are `None`.
struct Users(Arc<Mutex<HashMap<String, bool>>>);

impl tower_authkit::session::PrincipalLoader for Users {
    fn load<'a>(
        &'a self,
        stored: &'a Principal,
    ) -> futures_util::future::BoxFuture<'a, Result<Option<Principal>, tower_authkit::AuthError>> {
        let enabled = self.0.lock().unwrap().get(stored.subject()).copied().unwrap_or(false);
        let subject = stored.subject().to_owned();
        Box::pin(async move {
            Ok(enabled.then(|| {
                Principal::builder("session", subject)
                    .roles(vec!["admin".into()])
                    .build()
            }))
        })
    }
}

#[tokio::test]
async fn a_principal_loader_re_evaluates_every_request_and_ends_disabled_users_sessions() {
    let store = Instrumented::default();
    let users = Arc::new(Mutex::new(HashMap::from([("alice".to_owned(), true)])));
    let layer = builder(&store)
        .principal_loader(Users(Arc::clone(&users)))
        .build()
        .unwrap();
    let admin = layer.authenticator().admin();
    let app = app_with(layer);
    let browser = Browser::new(&app);
    browser.login("alice").await;
    // Roles come from the loader, not from what was stored at sign-in.
    assert_eq!(browser.send("GET", "/admin").await.status, 200);
    users.lock().unwrap().insert("alice".into(), false);
    assert_eq!(browser.send("GET", "/me").await.status, 401);
    assert!(
        admin.list_user("alice").await.unwrap().is_empty(),
        "the session was ended"
    );
    users.lock().unwrap().insert("alice".into(), true);
    assert_eq!(browser.send("GET", "/me").await.status, 401, "and stays ended");
}

/// Collects everything logged, at every level.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_carry_audit_events_but_never_cookies_or_session_ids() {
    // A global subscriber: scoped (thread-local) ones miss events whose
    // callsites other tests register concurrently.
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("only this test installs one");

    let store = Instrumented::default();
    let layer = builder(&store).build().unwrap();
    let admin = layer.authenticator().admin();
    let app = app_with(layer);
    let browser = Browser::new(&app);
    browser.login("alice").await;
    let cookie = browser.cookie().unwrap();
    browser.send("POST", "/put/k/v").await;
    browser.send("POST", "/rotate").await;
    let rotated = browser.cookie().unwrap();
    assert_eq!(browser.send("GET", "/admin").await.status, 403);
    let intruder = Browser::new(&app);
    intruder.set_cookie(Some(format!("{}x", &cookie[..cookie.len() - 1])));
    intruder.send("GET", "/me").await;
    browser.send("POST", "/logout").await;
    Browser::new(&app).login("bob").await;
    admin.revoke_user("bob").await.unwrap();

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    for event in [
        "session.created",
        "session.rotated",
        "session.signed_out",
        "session.revoked_user",
    ] {
        assert!(logs.contains(event), "{event} missing from:\n{logs}");
    }
    assert!(
        logs.contains("invalid signature"),
        "the tampered cookie was logged as suspicious"
    );
    for secret in [&cookie, &rotated] {
        let id = &secret[44..];
        assert!(!logs.contains(secret.as_str()), "a cookie value was logged");
        assert!(!logs.contains(id), "a session id was logged");
    }
    assert!(!logs.contains(std::str::from_utf8(KEY).unwrap()));
}

/// Collects event names (the process-wide sink is installed once, here).
struct Names(Arc<Mutex<Vec<&'static str>>>);

impl tower_authkit::audit::AuditSink for Names {
    fn record(&self, event: &tower_authkit::audit::AuditEvent<'_>) {
        self.0.lock().unwrap().push(event.name());
    }
}

#[tokio::test]
async fn an_audit_sink_receives_the_events() {
    let names = Arc::new(Mutex::new(Vec::new()));
    assert!(tower_authkit::audit::set_sink(Names(Arc::clone(&names))).is_ok());
    assert!(
        tower_authkit::audit::set_sink(Names(Arc::default())).is_err(),
        "installed once"
    );
    let store = Instrumented::default();
    let app = app_with(builder(&store).build().unwrap());
    let browser = Browser::new(&app);
    browser.login("sink-user").await;
    assert_eq!(browser.send("GET", "/admin").await.status, 403);
    browser.send("POST", "/logout").await;
    let seen = names.lock().unwrap().clone();
    for name in ["session.created", "access.denied", "session.signed_out"] {
        assert!(seen.contains(&name), "{name} not in {seen:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_is_503_and_the_same_cookie_works_once_redis_is_back() {
    use common::redis_server::{Server, free_port};
    let port = free_port();
    let server = Server::start(port);
    let store = tower_authkit::session::store::RedisStore::new(&format!("redis://127.0.0.1:{port}")).unwrap();
    let app = app_with(SessionLayer::builder().key(KEY.to_vec()).store(store).build().unwrap());
    let browser = Browser::new(&app);
    browser.login("alice").await;
    let cookie = browser.cookie().unwrap();
    assert_eq!(browser.send("GET", "/me").await.status, 200);
    // Redis hangs (keeping its data): bounded by the store's response timeout.
    server.signal("-STOP");
    let started = std::time::Instant::now();
    let reply = browser.send("GET", "/me").await;
    assert_eq!(reply.status, 503, "{reply:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    assert!(reply.headers.contains_key("retry-after"));
    assert!(reply.headers.get("set-cookie").is_none(), "no silent logout");
    assert_eq!(browser.cookie().unwrap(), cookie);
    server.signal("-CONT");
    let mut status = 503;
    for _ in 0..100 {
        status = browser.send("GET", "/me").await.status.as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, 200, "the same cookie works again");
}
