//! The conformance suite every session store must pass (feature
//! `sessions`): the rules of [`SessionStore`] as tests, so a third-party
//! store can prove itself with one line,
//! [`store_conformance!`](macro@crate::store_conformance). Memory, SQLite and Redis
//! pass it in `tower-authkit`'s own tests. The helpers ([`record`],
//! [`user`], [`key`]) serve a store's own extra tests.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Map, json};
use tower_authkit::session::store::SaveOutcome;
pub use tower_authkit::session::store::SessionStore;
use tower_authkit::session::{SessionHandle, SessionRecord, SignIn, SignInError, StoredPrincipal, UnixMillis};

/// Now, on the stores' clock.
pub fn now() -> UnixMillis {
    UnixMillis::now()
}

/// `millis` milliseconds from now.
pub fn in_ms(millis: u64) -> UnixMillis {
    now().after(Duration::from_millis(millis))
}

/// `millis` milliseconds ago.
pub fn ago_ms(millis: u64) -> UnixMillis {
    UnixMillis::from_millis(now().as_millis().saturating_sub(millis))
}

/// A fresh key (random per test run, so persistent stores never collide).
pub fn key() -> SessionHandle {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let salt = now().as_millis() ^ u64::from(std::process::id()) << 32;
    SessionHandle::from_hex(&format!("{salt:016x}{n:016x}{:032x}", 0xfeed_u32)).unwrap()
}

/// A record of `subject` with a fresh key, idle for `lifetime` and ended
/// at twice that.
pub fn record(subject: &str, lifetime: Duration) -> SessionRecord {
    let now = now();
    SessionRecord {
        key: key(),
        principal: StoredPrincipal {
            subject: subject.to_owned(),
            email: Some(format!("{subject}@example.com")),
            roles: vec!["user".into()],
            ..StoredPrincipal::default()
        },
        data: Map::new(),
        created_at: now,
        last_seen_at: now,
        idle_expires_at: now.after(lifetime),
        absolute_expires_at: now.after(2 * lifetime),
        version: 0,
    }
}

/// `name` made unique per run (persistent stores keep users across runs).
pub fn user(name: &str) -> String {
    // Unique per run: persistent stores keep users across runs.
    format!("{name}-{}-{}", std::process::id(), now().as_millis())
}

/// An hour.
pub const HOUR: Duration = Duration::from_secs(3600);

/// Conformance case: create then load returns the record.
pub async fn create_then_load_returns_the_record(store: Arc<dyn SessionStore>) {
    let mut created = record(&user("alice"), HOUR);
    created.data.insert("cart".into(), json!([1, 2]));
    store.create(&created).await.unwrap();
    assert_eq!(store.load(&created.key).await.unwrap(), Some(created));
    assert_eq!(store.load(&key()).await.unwrap(), None);
}

/// Conformance case: expired records are never loaded.
pub async fn expired_records_are_never_loaded(store: Arc<dyn SessionStore>) {
    let mut idle = record(&user("idle"), HOUR);
    idle.idle_expires_at = ago_ms(1);
    let mut absolute = record(&user("absolute"), HOUR);
    absolute.absolute_expires_at = ago_ms(1);
    for expired in [&idle, &absolute] {
        store.create(expired).await.unwrap();
        assert_eq!(store.load(&expired.key).await.unwrap(), None);
        assert!(!store.touch(&expired.key, now(), in_ms(60_000)).await.unwrap());
        assert_eq!(
            store.load(&expired.key).await.unwrap(),
            None,
            "a touch does not revive it"
        );
    }
}

/// Conformance case: touch extends a live record and never creates one.
pub async fn touch_extends_a_live_record_and_never_creates_one(store: Arc<dyn SessionStore>) {
    let created = record(&user("toucher"), HOUR);
    store.create(&created).await.unwrap();
    let later = in_ms(10);
    assert!(
        store
            .touch(&created.key, later, later.after(Duration::from_millis(99_000)))
            .await
            .unwrap()
    );
    let loaded = store.load(&created.key).await.unwrap().unwrap();
    assert_eq!(loaded.last_seen_at, later);
    assert_eq!(loaded.idle_expires_at, later.after(Duration::from_millis(99_000)));
    assert_eq!(loaded.version, created.version, "a touch is not a data write");
    let missing = key();
    assert!(!store.touch(&missing, now(), in_ms(1000)).await.unwrap());
    assert_eq!(store.load(&missing).await.unwrap(), None);
}

/// Conformance case: save is version checked and never creates.
pub async fn save_is_version_checked_and_never_creates(store: Arc<dyn SessionStore>) {
    let created = record(&user("saver"), HOUR);
    store.create(&created).await.unwrap();
    let mut data = Map::new();
    data.insert("theme".into(), json!("dark"));
    let outcome = store.save(&created.key, 0, &data, now(), in_ms(60_000)).await.unwrap();
    assert_eq!(outcome, SaveOutcome::Saved(1));
    let loaded = store.load(&created.key).await.unwrap().unwrap();
    assert_eq!(loaded.data, data);
    assert_eq!(loaded.version, 1);
    // A writer that read version 0 has lost the race.
    let stale = store
        .save(&created.key, 0, &Map::new(), now(), in_ms(60_000))
        .await
        .unwrap();
    assert_eq!(stale, SaveOutcome::Conflict);
    assert_eq!(store.load(&created.key).await.unwrap().unwrap().data, data);
    let missing = key();
    assert_eq!(
        store.save(&missing, 0, &data, now(), in_ms(60_000)).await.unwrap(),
        SaveOutcome::Gone
    );
    assert_eq!(store.load(&missing).await.unwrap(), None);
}

/// Conformance case: rekey moves the record and never revives one.
pub async fn rekey_moves_the_record_and_never_revives_one(store: Arc<dyn SessionStore>) {
    let created = record(&user("rotator"), HOUR);
    store.create(&created).await.unwrap();
    let new = key();
    let at = in_ms(5);
    assert!(store.rekey(&created.key, &new, at).await.unwrap());
    assert_eq!(store.load(&created.key).await.unwrap(), None, "the old id is dead");
    let moved = store.load(&new).await.unwrap().unwrap();
    assert_eq!(moved.key, new);
    assert_eq!(moved.created_at, at);
    assert_eq!(moved.principal, created.principal);
    let listed = store.list_user(created.subject()).await.unwrap();
    assert_eq!(listed.iter().map(|r| r.key).collect::<Vec<_>>(), [new]);
    // The old key is gone: rekeying it again does nothing.
    let third = key();
    assert!(!store.rekey(&created.key, &third, now()).await.unwrap());
    assert_eq!(store.load(&third).await.unwrap(), None);
}

/// Conformance case: deleted records stay deleted.
pub async fn deleted_records_stay_deleted(store: Arc<dyn SessionStore>) {
    let created = record(&user("deleter"), HOUR);
    store.create(&created).await.unwrap();
    assert!(store.delete(&created.key).await.unwrap());
    assert!(!store.delete(&created.key).await.unwrap());
    // In-flight requests that still hold the record cannot bring it back.
    assert!(!store.touch(&created.key, now(), in_ms(60_000)).await.unwrap());
    assert_eq!(
        store
            .save(&created.key, 0, &Map::new(), now(), in_ms(60_000))
            .await
            .unwrap(),
        SaveOutcome::Gone
    );
    assert!(!store.rekey(&created.key, &key(), now()).await.unwrap());
    assert_eq!(store.load(&created.key).await.unwrap(), None);
    assert!(store.list_user(created.subject()).await.unwrap().is_empty());
}

/// Conformance case: revoke user and list user see only that users live sessions.
pub async fn revoke_user_and_list_user_see_only_that_users_live_sessions(store: Arc<dyn SessionStore>) {
    let (carol, dave) = (user("carol"), user("dave"));
    let mut carols = Vec::new();
    for i in 0..3u64 {
        let mut r = record(&carol, HOUR);
        r.created_at = UnixMillis::from_millis(r.created_at.as_millis() - (10 - i)); // a known order
        store.create(&r).await.unwrap();
        carols.push(r.key);
    }
    let mut expired = record(&carol, HOUR);
    expired.idle_expires_at = ago_ms(1);
    store.create(&expired).await.unwrap();
    let daves = record(&dave, HOUR);
    store.create(&daves).await.unwrap();

    let listed = store.list_user(&carol).await.unwrap();
    assert_eq!(
        listed.iter().map(|r| r.key).collect::<Vec<_>>(),
        carols,
        "live ones, oldest first"
    );
    assert_eq!(store.delete_user(&carol).await.unwrap(), 3);
    for key in &carols {
        assert_eq!(store.load(key).await.unwrap(), None);
    }
    assert!(store.list_user(&carol).await.unwrap().is_empty());
    assert_eq!(store.delete_user(&carol).await.unwrap(), 0);
    assert!(
        store.load(&daves.key).await.unwrap().is_some(),
        "other users keep theirs"
    );
}

/// Conformance case: failure counters count within a window and reset.
pub async fn failure_counters_count_within_a_window_and_reset(store: Arc<dyn SessionStore>) {
    let counter = user("login:erin@example.com");
    let window = Duration::from_millis(1500);
    assert_eq!(store.failures(&counter).await.unwrap().count, 0);
    for expected in 1..=3 {
        let counted = store.count_failure(&counter, window).await.unwrap();
        assert_eq!(counted.count, expected);
        assert!(counted.resets_in <= window && counted.resets_in > Duration::ZERO);
    }
    assert_eq!(store.failures(&counter).await.unwrap().count, 3);
    store.reset_counter(&counter).await.unwrap();
    assert_eq!(store.failures(&counter).await.unwrap().count, 0);
    assert_eq!(store.count_failure(&counter, window).await.unwrap().count, 1);
    // The window ends by itself.
    tokio::time::sleep(window + Duration::from_millis(300)).await;
    assert_eq!(store.failures(&counter).await.unwrap().count, 0);
    assert_eq!(store.count_failure(&counter, window).await.unwrap().count, 1);
}

/// Conformance case: forgiven attempts are taken back but never below zero.
pub async fn forgiven_attempts_are_taken_back_but_never_below_zero(store: Arc<dyn SessionStore>) {
    let counter = user("login:frank@example.com");
    let window = Duration::from_secs(60);
    store.forgive(&counter).await.unwrap();
    assert_eq!(store.failures(&counter).await.unwrap().count, 0, "no window: nothing");
    for _ in 0..3 {
        store.count_failure(&counter, window).await.unwrap();
    }
    store.forgive(&counter).await.unwrap();
    assert_eq!(store.failures(&counter).await.unwrap().count, 2);
    for _ in 0..5 {
        store.forgive(&counter).await.unwrap();
    }
    assert_eq!(store.failures(&counter).await.unwrap().count, 0);
    assert_eq!(store.count_failure(&counter, window).await.unwrap().count, 1);
}

/// A burst of `attempts` wrong passwords at once; how many were checked
/// (answered "invalid") rather than refused as limited.
async fn checked_in_a_burst(sign_in: &SignIn, accounts: &[String], client: IpAddr, attempts: usize) -> usize {
    let tries = (0..attempts).map(|i| {
        let account = &accounts[i % accounts.len()];
        async move { sign_in.check(account, Some(client), "wrong", None).await }
    });
    let outcomes = futures_util::future::join_all(tries).await;
    let mut checked = 0;
    for outcome in outcomes {
        match outcome {
            Err(SignInError::Invalid) => checked += 1,
            Err(SignInError::Limited { .. }) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    checked
}

fn client_ip() -> IpAddr {
    // Unique per test run: persistent stores keep counters across runs.
    let n = now().as_millis();
    IpAddr::from([10, (n >> 16) as u8, (n >> 8) as u8, n as u8])
}

/// Conformance case: a burst of wrong passwords gets at most the limit of checks.
pub async fn a_burst_of_wrong_passwords_gets_at_most_the_limit_of_checks(store: Arc<dyn SessionStore>) {
    let sign_in = SignIn::new(store.clone()).account_attempts(5).client_attempts(1000);
    let victim = [user("victim")];
    let checked = checked_in_a_burst(&sign_in, &victim, client_ip(), 80).await;
    assert!(
        (1..=5).contains(&checked),
        "{checked} passwords checked for one account"
    );
    // Per client too: one address spraying many accounts.
    let sign_in = SignIn::new(store).account_attempts(1000).client_attempts(4);
    let accounts: Vec<String> = (0..80).map(|i| user(&format!("spray{i}"))).collect();
    let checked = checked_in_a_burst(&sign_in, &accounts, client_ip(), 80).await;
    assert!((1..=4).contains(&checked), "{checked} passwords checked for one client");
}

/// Conformance case: a success resets the account and costs the client nothing.
pub async fn a_success_resets_the_account_and_costs_the_client_nothing(store: Arc<dyn SessionStore>) {
    let sign_in = SignIn::new(store).account_attempts(2).client_attempts(2);
    let hash = sign_in.passwords().hash("right").await.unwrap();
    let (account, client) = (user("grace"), client_ip());
    for _ in 0..5 {
        assert!(
            sign_in
                .check(&account, Some(client), "right", Some(&hash))
                .await
                .is_ok()
        );
    }
    assert!(matches!(
        sign_in.check(&account, Some(client), "wrong", Some(&hash)).await,
        Err(SignInError::Invalid)
    ));
    assert!(
        sign_in
            .check(&account, Some(client), "right", Some(&hash))
            .await
            .is_ok()
    );
    assert!(matches!(
        sign_in.check(&account, Some(client), "wrong", Some(&hash)).await,
        Err(SignInError::Invalid)
    ));
    assert!(matches!(
        sign_in.check(&account, Some(client), "wrong", Some(&hash)).await,
        Err(SignInError::Limited { .. })
    ));
}

/// Conformance case: concurrent saves on one version let exactly one win.
pub async fn concurrent_saves_on_one_version_let_exactly_one_win(store: Arc<dyn SessionStore>) {
    let created = record(&user("racer"), HOUR);
    store.create(&created).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = Arc::clone(&store);
        let key = created.key;
        tasks.push(tokio::spawn(async move {
            let mut data = Map::new();
            data.insert("writer".into(), json!(i));
            store.save(&key, 0, &data, now(), in_ms(60_000)).await.unwrap()
        }));
    }
    let mut saved = 0;
    for task in tasks {
        match task.await.unwrap() {
            SaveOutcome::Saved(1) => saved += 1,
            SaveOutcome::Conflict => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(saved, 1);
}

/// Runs every conformance case against a store: one `#[tokio::test]` per
/// case, in a module named `$module`, each on a store `$make` returns (an
/// `Arc<dyn SessionStore>`; a fresh one per case). Needs `tokio` with the
/// `macros` and `rt-multi-thread` features in the calling crate.
///
/// ```
/// use std::sync::Arc;
/// use tower_authkit::session::store::MemoryStore;
///
/// // In a test file of your store's crate, with your store in place of MemoryStore.
/// tower_authkit_testing::store_conformance!(memory, Arc::new(MemoryStore::new()));
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! store_conformance {
    ($module:ident, $make:expr) => {
        mod $module {
            // `$make` may name items of the calling module.
            #[allow(unused_imports)]
            use super::*;

            $crate::store_conformance!(@cases $make;
                create_then_load_returns_the_record,
                expired_records_are_never_loaded,
                touch_extends_a_live_record_and_never_creates_one,
                save_is_version_checked_and_never_creates,
                rekey_moves_the_record_and_never_revives_one,
                deleted_records_stay_deleted,
                revoke_user_and_list_user_see_only_that_users_live_sessions,
                failure_counters_count_within_a_window_and_reset,
                forgiven_attempts_are_taken_back_but_never_below_zero,
                a_burst_of_wrong_passwords_gets_at_most_the_limit_of_checks,
                a_success_resets_the_account_and_costs_the_client_nothing,
                concurrent_saves_on_one_version_let_exactly_one_win,
            );
        }
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let store: ::std::sync::Arc<dyn $crate::store_conformance::SessionStore> = $make;
                $crate::store_conformance::$case(store).await;
            }
        )*
    };
}
