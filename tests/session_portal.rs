//! `examples/session_portal.rs` is a contract: run it as a user would, on
//! each store, two instances sharing Redis, and in a real browser.

mod process;

use std::process::{Command, Stdio};
use std::time::Duration;

use process::visitor::Visitor;
use process::webdriver::Browser;
use process::{Running, example, start};

const KEY: &str = "portal test key: long enough, high enough entropy for a test";
const USERS: &str = "admin@example.com:admin-pass:admin,user@example.com:user-pass:user";

fn portal(extra: &[(&str, &str)]) -> (Running, String) {
    let mut envs = vec![
        ("AUTHKIT_SESSION_KEY", KEY),
        ("AUTHKIT_DEMO_USERS", USERS),
        ("AUTHKIT_SECURE_COOKIES", "false"),
    ];
    envs.extend_from_slice(extra);
    start("session_portal", &envs)
}

#[test]
fn the_portal_refuses_to_start_without_a_long_enough_key() {
    for key in [None, Some("too short")] {
        let mut command = Command::new(example("session_portal"));
        command
            .env_remove("AUTHKIT_SESSION_KEY")
            .env("AUTHKIT_BIND", "127.0.0.1:0")
            .stdout(Stdio::null());
        if let Some(key) = key {
            command.env("AUTHKIT_SESSION_KEY", key);
        }
        let output = command.output().unwrap();
        assert!(!output.status.success(), "{key:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("AUTHKIT_SESSION_KEY"), "{key:?}: {stderr}");
    }
}

#[tokio::test]
async fn the_portal_serves_its_contract() {
    let (_portal, base) = portal(&[]);
    let anonymous = Visitor::new(&base);
    let health = anonymous.get("/health").await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok"));
    let form = anonymous.get("/login").await;
    assert_eq!(form.status, 200);
    for field in ["name=\"email\"", "name=\"password\"", "name=\"next\""] {
        assert!(form.body.contains(field), "{field}: {}", form.body);
    }
    let html = anonymous.send("GET", "/", None, &[("accept", "text/html")]).await;
    assert_eq!((html.status, html.location()), (303, "/login?next=%2F"));
    assert_eq!(anonymous.get("/").await.status, 401);
    let me = anonymous.get("/me").await;
    assert_eq!(me.status, 401);
    assert_eq!(me.json()["error"], "missing_token");
    assert_eq!(anonymous.get("/admin").await.status, 401);

    // Wrong password and unknown user: 401 HTML, no session.
    for (email, password) in [("user@example.com", "nope"), ("ghost@example.com", "user-pass")] {
        let refused = anonymous.login(email, password).await;
        assert_eq!(refused.status, 401, "{email}");
        assert!(refused.body.contains("<form"), "{email}");
        assert!(refused.set_cookie().is_none(), "{email}");
    }

    let user = Visitor::new(&base);
    let signed_in = user.login("user@example.com", "user-pass").await;
    assert_eq!((signed_in.status, signed_in.location()), (303, "/"));
    let cookie = signed_in.set_cookie().unwrap().to_ascii_lowercase();
    assert!(cookie.contains("httponly") && cookie.contains("samesite=lax") && cookie.contains("path=/"));
    let home = user.get("/").await;
    assert_eq!(home.status, 200);
    assert!(home.body.contains("user@example.com"));
    let me = user.get("/me").await.json();
    assert_eq!(me["sub"], "user@example.com");
    assert_eq!(me["email"], "user@example.com");
    assert_eq!(me["roles"], serde_json::json!(["user"]));
    assert_eq!(user.get("/admin").await.status, 403);

    // `next` is followed only when it is a local path.
    for (next, expected) in [("/me", "/me"), ("//evil.example/", "/"), ("https://evil.example/", "/")] {
        let visitor = Visitor::new(&base);
        let reply = visitor
            .send(
                "POST",
                "/login",
                Some(&[("email", "user@example.com"), ("password", "user-pass"), ("next", next)]),
                &[],
            )
            .await;
        assert_eq!((reply.status, reply.location()), (303, expected), "{next}");
    }

    // Sessions: list (one is current), end another one.
    let phone = Visitor::new(&base);
    phone.login("user@example.com", "user-pass").await;
    let sessions = user.get("/me/sessions").await.json();
    let sessions = sessions.as_array().unwrap().clone();
    assert!(sessions.len() >= 2, "{sessions:?}");
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    for session in &sessions {
        assert!(session["created_at"].as_u64().unwrap() > 1_600_000_000);
        assert!(session["last_seen_at"].as_u64().is_some());
        let id = session["id"].as_str().unwrap();
        assert!(
            !user.cookie().unwrap().contains(id),
            "the id is a handle, not the cookie"
        );
    }
    let phone_id = phone
        .get("/me/sessions")
        .await
        .json()
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        user.send("DELETE", &format!("/me/sessions/{phone_id}"), None, &[])
            .await
            .status,
        204
    );
    assert_eq!(phone.get("/me").await.status, 401, "that session ended");
    assert_eq!(user.get("/me").await.status, 200, "this one did not");

    // Another user's handle ends nothing and looks unknown (no IDOR).
    let stranger = Visitor::new(&base);
    stranger.login("admin@example.com", "admin-pass").await;
    let strangers = current_session(&stranger).await;
    let refused = user
        .send("DELETE", &format!("/me/sessions/{strangers}"), None, &[])
        .await;
    assert_eq!(refused.status, 404);
    let refused = user
        .send("POST", &format!("/me/sessions/{strangers}/end"), None, &[])
        .await;
    assert_eq!(refused.status, 404);
    assert_eq!(
        stranger.get("/me").await.status,
        200,
        "the other user's session lives on"
    );
    // An HTML form ends one's own session with POST, and is sent back to the list.
    let tablet = Visitor::new(&base);
    tablet.login("user@example.com", "user-pass").await;
    let tablets = current_session(&tablet).await;
    let ended = user
        .send("POST", &format!("/me/sessions/{tablets}/end"), None, &[])
        .await;
    assert_eq!((ended.status, ended.location()), (303, "/me/sessions"));
    assert_eq!(tablet.get("/me").await.status, 401);

    // Admin: revoke all of a user's sessions; disable and enable.
    let admin = Visitor::new(&base);
    admin.login("admin@example.com", "admin-pass").await;
    assert_eq!(admin.get("/admin").await.status, 200);
    assert_eq!(
        user.send("POST", "/admin/revoke?email=admin@example.com", None, &[])
            .await
            .status,
        403
    );
    let revoked = admin
        .send("POST", "/admin/revoke?email=user@example.com", None, &[])
        .await;
    assert_eq!(revoked.status, 200);
    assert!(revoked.json()["revoked"].as_u64().unwrap() >= 1);
    assert_eq!(user.get("/me").await.status, 401);
    user.login("user@example.com", "user-pass").await;
    assert_eq!(user.get("/me").await.status, 200);
    assert_eq!(
        admin
            .send("POST", "/admin/disable?email=user@example.com", None, &[])
            .await
            .status,
        200
    );
    assert_eq!(user.get("/me").await.status, 401, "disabled: sessions stop");
    assert_eq!(
        user.login("user@example.com", "user-pass").await.status,
        401,
        "and cannot sign in"
    );
    assert_eq!(
        admin
            .send("POST", "/admin/enable?email=user@example.com", None, &[])
            .await
            .status,
        200
    );
    assert_eq!(user.login("user@example.com", "user-pass").await.status, 303);

    // Cross-origin unsafe requests are refused; same-origin ones pass.
    let host = base.trim_start_matches("http://");
    let cross = admin
        .send(
            "POST",
            "/admin/revoke?email=user@example.com",
            None,
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(cross.status, 403);
    let fetch = admin
        .send(
            "POST",
            "/admin/revoke?email=nobody@example.com",
            None,
            &[("sec-fetch-site", "cross-site")],
        )
        .await;
    assert_eq!(fetch.status, 403);
    let same = admin
        .send(
            "POST",
            "/admin/revoke?email=nobody@example.com",
            None,
            &[("origin", &base), ("host", host)],
        )
        .await;
    assert_eq!(same.status, 200);

    // Sign-out: 303 to /login, the cookie removed, the session gone.
    let old = user.cookie();
    let out = user.send("POST", "/logout", None, &[]).await;
    assert_eq!((out.status, out.location()), (303, "/login"));
    assert!(user.cookie().is_none());
    assert_eq!(Visitor::new(&base).with_cookie(old).get("/me").await.status, 401);
}

#[tokio::test]
async fn failed_sign_ins_are_limited_with_429() {
    let (_portal, base) = portal(&[("AUTHKIT_LOGIN_ATTEMPTS", "3"), ("AUTHKIT_LOGIN_WINDOW", "60")]);
    let visitor = Visitor::new(&base);
    for _ in 0..3 {
        assert_eq!(visitor.login("user@example.com", "wrong").await.status, 401);
    }
    let limited = visitor.login("user@example.com", "user-pass").await;
    assert_eq!(limited.status, 429, "even the right password waits");
    let retry: u64 = limited.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert!(limited.set_cookie().is_none());
    // Another account is not affected by this one's failures.
    assert_eq!(visitor.login("admin@example.com", "admin-pass").await.status, 303);
}

/// The Redis the test script started.
fn redis_url() -> String {
    std::env::var("AUTHKIT_TEST_REDIS_URL")
        .expect("AUTHKIT_TEST_REDIS_URL is not set: scripts/test.sh starts a redis-server and sets it")
}

#[tokio::test]
async fn two_portals_sharing_redis_share_sessions_revocations_and_limits() {
    // A database of this test's own, so earlier runs' counters do not count.
    let url = format!("{}/{}", redis_url(), 1 + std::process::id() % 15);
    let mut redis = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    redis::cmd("FLUSHDB").query_async::<()>(&mut redis).await.unwrap();
    let shared = [
        ("AUTHKIT_SESSION_STORE", url.as_str()),
        ("AUTHKIT_LOGIN_ATTEMPTS", "3"),
        ("AUTHKIT_LOGIN_WINDOW", "60"),
    ];
    let (_a, base_a) = portal(&shared);
    let (_b, base_b) = portal(&shared);
    let on_a = Visitor::new(&base_a);
    let signed_in = on_a.login("user@example.com", "user-pass").await;
    assert_eq!(signed_in.status, 303, "{signed_in:?}");
    let on_b = Visitor::new(&base_b);
    on_b.with_cookie(on_a.cookie());
    assert_eq!(on_b.get("/me").await.status, 200, "a session from A works on B");
    // Sign-out on B ends it on A.
    let cookie = on_a.cookie();
    on_b.send("POST", "/logout", None, &[]).await;
    assert_eq!(Visitor::new(&base_a).with_cookie(cookie).get("/me").await.status, 401);
    // A revoke through A ends sessions used on B.
    let user_b = Visitor::new(&base_b);
    user_b.login("user@example.com", "user-pass").await;
    let admin_a = Visitor::new(&base_a);
    admin_a.login("admin@example.com", "admin-pass").await;
    admin_a
        .send("POST", "/admin/revoke?email=user@example.com", None, &[])
        .await;
    assert_eq!(user_b.get("/me").await.status, 401);
    // Failures on A and on B count together.
    let (fail_a, fail_b) = (Visitor::new(&base_a), Visitor::new(&base_b));
    assert_eq!(fail_a.login("user@example.com", "wrong").await.status, 401);
    assert_eq!(fail_b.login("user@example.com", "wrong").await.status, 401);
    assert_eq!(fail_a.login("user@example.com", "wrong").await.status, 401);
    assert_eq!(fail_b.login("user@example.com", "user-pass").await.status, 429);
}

#[tokio::test]
async fn sqlite_sessions_survive_a_restart_with_the_same_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite:{}", dir.path().join("portal.db").display());
    let visitor = {
        let (_portal, base) = portal(&[("AUTHKIT_SESSION_STORE", &store)]);
        let visitor = Visitor::new(&base);
        assert_eq!(visitor.login("user@example.com", "user-pass").await.status, 303);
        visitor.cookie()
    };
    let (_portal, base) = portal(&[("AUTHKIT_SESSION_STORE", &store)]);
    let again = Visitor::new(&base);
    again.with_cookie(visitor);
    assert_eq!(again.get("/me").await.status, 200, "the session is on disk");
}

#[tokio::test]
async fn key_rotation_keeps_sessions_signed_with_an_old_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite:{}", dir.path().join("portal.db").display());
    let old_key = "the previous portal key - also long enough to be accepted";
    let run = |key: &'static str, old: Option<&'static str>| {
        let mut envs = vec![
            ("AUTHKIT_SESSION_KEY", key),
            ("AUTHKIT_DEMO_USERS", USERS),
            ("AUTHKIT_SECURE_COOKIES", "false"),
            ("AUTHKIT_SESSION_STORE", store.as_str()),
        ];
        if let Some(old) = old {
            envs.push(("AUTHKIT_SESSION_OLD_KEYS", old));
        }
        start("session_portal", &envs)
    };
    let cookie = {
        let (_portal, base) = run(old_key, None);
        let visitor = Visitor::new(&base);
        assert_eq!(visitor.login("user@example.com", "user-pass").await.status, 303);
        visitor.cookie()
    };
    {
        let (_portal, base) = run(KEY, Some(old_key));
        let rotated = Visitor::new(&base);
        rotated.with_cookie(cookie.clone());
        assert_eq!(rotated.get("/me").await.status, 200, "the old key still verifies");
    }
    let (_portal, base) = run(KEY, None);
    let dropped = Visitor::new(&base);
    dropped.with_cookie(cookie);
    assert_eq!(dropped.get("/me").await.status, 401, "a dropped key no longer does");
}

#[tokio::test]
async fn no_password_cookie_or_session_id_reaches_the_output_even_at_trace() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("portal.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut command = Command::new(example("session_portal"));
    command
        .env("AUTHKIT_BIND", "127.0.0.1:0")
        .env("AUTHKIT_SESSION_KEY", KEY)
        .env("AUTHKIT_DEMO_USERS", USERS)
        .env("AUTHKIT_SECURE_COOKIES", "false")
        .env("RUST_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(log);
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let running = Running(child);
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        // Keep reading so the child never blocks on a full pipe; keep every line.
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    let base = loop {
        let line = receiver.recv_timeout(Duration::from_secs(30)).expect("readiness line");
        if let Some(url) = line.strip_prefix("listening on ") {
            break url.to_owned();
        }
    };
    let visitor = Visitor::new(&base);
    assert_eq!(visitor.login("user@example.com", "user-pass").await.status, 303);
    let cookie = visitor.cookie().unwrap();
    visitor.get("/me").await;
    visitor.get("/me/sessions").await;
    let wrong = Visitor::new(&base);
    wrong.login("user@example.com", "a-wrong-secret-password").await;
    let tampered = Visitor::new(&base);
    tampered.with_cookie(Some(format!("{cookie}x")));
    tampered.get("/me").await;
    visitor.send("POST", "/logout", None, &[]).await;
    drop(running);
    let mut output = std::fs::read_to_string(&log_path).unwrap();
    while let Ok(line) = receiver.try_recv() {
        output.push_str(&line);
        output.push('\n');
    }
    assert!(
        output.contains("sign_in.succeeded"),
        "audit events are there:\n{output}"
    );
    assert!(output.contains("sign_in.failed"));
    let value = cookie.split_once('=').unwrap().1;
    for secret in ["user-pass", "a-wrong-secret-password", KEY, value, &value[44..]] {
        assert!(!output.contains(secret), "{secret:?} leaked into the output");
    }
}

#[tokio::test]
async fn a_real_browser_signs_in_through_the_form_and_sees_its_email() {
    let (_portal, base) = portal(&[]);
    let profile = tempfile::tempdir().unwrap();
    let browser = Browser::start(profile.path()).await;
    browser.open(&format!("{base}/")).await;
    // Sent to the sign-in page, with `next` pointing back.
    let url = browser.url().await;
    assert!(url.ends_with("/login?next=%2F"), "{url}");
    browser.fill_sign_in_form("user@example.com", "user-pass").await;
    let landed = browser.wait_for_url(&format!("{base}/")).await;
    assert_eq!(landed, format!("{base}/"), "landed on the portal's home page");
    assert_eq!(browser.text("#email").await, "user@example.com");
    browser.quit().await;
}

/// The handle of the session `visitor` is signed in with.
async fn current_session(visitor: &Visitor) -> String {
    let sessions = visitor.get("/me/sessions").await.json();
    let current = sessions.as_array().unwrap().iter().find(|s| s["current"] == true);
    current.unwrap()["id"].as_str().unwrap().to_owned()
}
