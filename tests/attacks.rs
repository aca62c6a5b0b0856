//! Attacks against the shipped examples, run as processes and sent as an
//! attacker sends them: raw request-targets, header names the client
//! chooses, bursts in parallel, forged forwarding headers, tokens from
//! issuers that should not be trusted for roles. Each test is named after
//! the attack it makes.

mod process;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, Uri};
use axum::routing::{any, get};
use process::visitor::Visitor;
use process::{Running, raw, start, start_ingress};
use serde_json::{Value, json};
use tower_authkit_testing::TestIdp;

const KEY: &str = "attack test key: long enough for the session layer";
const USERS: &str = "admin@example.com:admin-pass:admin:staff,user@example.com:user-pass::guests";

/// What the downstream saw: every request-target, in order.
type Seen = Arc<Mutex<Vec<String>>>;

/// A downstream that answers every request with its request-target and
/// its header lines (as a list: duplicates stay visible); `/app/set-cookie`
/// also tries to set a cookie named like the portal's.
async fn downstream() -> (SocketAddr, Seen) {
    let seen: Seen = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = Arc::clone(&seen);
    let echo = move |uri: Uri, headers: HeaderMap| {
        let log = Arc::clone(&log);
        async move {
            log.lock().unwrap().push(uri.to_string());
            let headers: Vec<Value> = headers
                .iter()
                .map(|(k, v)| json!([k.as_str(), v.to_str().unwrap_or("?")]))
                .collect();
            axum::Json(json!({"target": uri.to_string(), "headers": headers}))
        }
    };
    let app = Router::new()
        .route(
            "/app/set-cookie",
            get(|| async {
                (
                    [
                        ("set-cookie", "authkit_session=planted; Path=/"),
                        ("set-cookie", "theme=dark; Path=/"),
                    ],
                    "cookies set",
                )
            }),
        )
        .fallback(any(echo));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, seen)
}

fn ingress(downstream: SocketAddr, extra: &[(&str, &str)]) -> (Running, String) {
    let services = format!("wiki=http://{downstream}/app/|staff");
    let mut envs = vec![
        ("AUTHKIT_SESSION_KEY", KEY),
        ("AUTHKIT_DEMO_USERS", USERS),
        ("AUTHKIT_SECURE_COOKIES", "false"),
        ("AUTHKIT_INGRESS_SERVICES", services.as_str()),
    ];
    envs.extend_from_slice(extra);
    start_ingress(&envs)
}

/// An ingress in front of [`downstream`], with the admin signed in.
struct SignedIn {
    _ingress: Running,
    base: String,
    cookie: String,
    seen: Seen,
}

async fn signed_in(extra: &[(&str, &str)]) -> SignedIn {
    let (addr, seen) = downstream().await;
    let (ingress, base) = ingress(addr, extra);
    let admin = Visitor::new(&base);
    assert_eq!(admin.login("admin@example.com", "admin-pass").await.status, 303);
    let cookie = admin.cookie().unwrap();
    SignedIn {
        _ingress: ingress,
        base,
        cookie,
        seen,
    }
}

impl SignedIn {
    /// `GET target` as written, with the session cookie and `headers`.
    async fn get(&self, target: &str, headers: &[(&str, &str)]) -> raw::RawResponse {
        let mut all = vec![("cookie", self.cookie.as_str())];
        all.extend_from_slice(headers);
        raw::send(&self.base, "GET", target, &all).await
    }
}

/// The header lines the downstream reported.
fn header_lines(seen: &Value) -> Vec<(String, String)> {
    seen["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| {
            (
                pair[0].as_str().unwrap().to_owned(),
                pair[1].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn underscore_header_names_cannot_forge_identity_or_forwarding_headers() {
    let entered = signed_in(&[]).await;
    let answer = entered
        .get(
            "/s/wiki/page",
            &[
                ("X_Authkit_Groups", "hr;admins"),
                ("X-Authkit_User", "root@example.com"),
                ("x_authkit_user", "root@example.com"),
                ("X_Forwarded_For", "6.6.6.6"),
                ("X_Forwarded-Proto", "https"),
                ("X_Real_IP", "6.6.6.6"),
                ("X-Real_Ip", "6.6.6.6"),
                ("Forwarded", "for=6.6.6.6"),
                ("X_Custom_Thing", "1"),
                ("x-custom", "kept"),
            ],
        )
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let lines = header_lines(&serde_json::from_str(&answer.body).unwrap());
    for (name, value) in &lines {
        assert!(!name.contains('_'), "{name}: {value} reached the service");
    }
    let values = |wanted: &str| -> Vec<&str> {
        lines
            .iter()
            .filter(|(n, _)| n == wanted)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert_eq!(values("x-authkit-user"), ["admin@example.com"]);
    assert_eq!(values("x-authkit-groups"), ["staff"]);
    assert_eq!(values("x-forwarded-for"), ["127.0.0.1"]);
    assert!(values("x-real-ip").is_empty());
    assert!(values("forwarded").is_empty());
    assert_eq!(values("x-custom"), ["kept"]);
}

#[tokio::test]
async fn underscore_headers_kept_on_request_still_never_carry_a_protected_name() {
    let entered = signed_in(&[("AUTHKIT_INGRESS_UNDERSCORE_HEADERS", "keep")]).await;
    let answer = entered
        .get(
            "/s/wiki/page",
            &[
                ("X_Authkit_Groups", "hr"),
                ("X_Forwarded_Host", "evil.example"),
                ("X_Real_IP", "6.6.6.6"),
                ("Proxy_Authorization", "Basic eDp5"),
                ("X_Custom_Thing", "kept"),
            ],
        )
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let lines = header_lines(&serde_json::from_str(&answer.body).unwrap());
    let names: Vec<&str> = lines.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"x_custom_thing"), "{names:?}");
    for forged in [
        "x_authkit_groups",
        "x_forwarded_host",
        "x_real_ip",
        "proxy_authorization",
    ] {
        assert!(!names.contains(&forged), "{forged} reached the service: {names:?}");
    }
}

/// Request-targets that leave the service or change its segments: refused
/// with 400 before anything is sent.
const TRAVERSALS: &[&str] = &[
    "/s/wiki/..%2Fhr%2Fsecret",
    "/s/wiki/../hr/secret",
    "/s/wiki/%2e%2e/hr/secret",
    "/s/wiki/%2E%2e/hr/secret",
    "/s/wiki/.%2E/hr/secret",
    "/s/wiki/a/./b",
    "/s/wiki/a/%2e/b",
    "/s/wiki/a%5Cb",
    "/s/wiki/a%5c..%5chr",
    "/s/wiki/a%2Fb",
    "/s/wiki/..;/hr/secret",
    "/s/wiki/a%00b",
    "/s/wiki/a%zz",
    "/s/wiki/..",
];

#[tokio::test]
async fn encoded_traversal_out_of_a_service_is_refused_before_anything_is_sent() {
    let entered = signed_in(&[]).await;
    for target in TRAVERSALS {
        let answer = entered.get(target, &[]).await;
        assert_eq!(answer.status, 400, "{target}: {answer:?}");
        assert!(answer.header("x-request-id").is_some(), "{target}");
    }
    let seen = entered.seen.lock().unwrap();
    assert!(seen.is_empty(), "sent: {seen:?}");
}

#[tokio::test]
async fn encoded_bytes_reach_the_service_exactly_as_the_client_sent_them() {
    let entered = signed_in(&[]).await;
    for (target, forwarded) in [
        ("/s/wiki/a%20b", "/app/a%20b"),
        ("/s/wiki/x%3Fy", "/app/x%3Fy"),
        ("/s/wiki/x%23y", "/app/x%23y"),
        ("/s/wiki/caf%C3%A9", "/app/caf%C3%A9"),
        ("/s/wiki/%252e%252e/x", "/app/%252e%252e/x"),
        ("/s/wiki/q?a=%2F..&b=%3F", "/app/q?a=%2F..&b=%3F"),
        ("/s/wiki/", "/app/"),
        ("/s/wiki/a/b/", "/app/a/b/"),
    ] {
        let answer = entered.get(target, &[]).await;
        assert_eq!(answer.status, 200, "{target}: {answer:?}");
        let seen: Value = serde_json::from_str(&answer.body).unwrap();
        assert_eq!(seen["target"], forwarded, "{target}");
    }
}

#[tokio::test]
async fn every_proxied_response_carries_a_request_id() {
    let entered = signed_in(&[]).await;
    let page = entered.get("/s/wiki/page", &[]).await;
    assert_eq!(page.status, 200);
    let id = page.header("x-request-id").expect("x-request-id on a 200");
    assert_eq!(id.len(), 16, "{id}");
}

#[tokio::test]
async fn a_service_cannot_plant_a_cookie_named_like_the_portal_session() {
    let entered = signed_in(&[]).await;
    let planted = entered.get("/s/wiki/set-cookie", &[]).await;
    assert_eq!(planted.status, 200);
    let set: Vec<&str> = planted
        .headers
        .iter()
        .filter(|(name, _)| name == "set-cookie")
        .map(|(_, value)| value.as_str())
        .collect();
    assert!(set.iter().all(|c| !c.starts_with("authkit_session=")), "{set:?}");
    assert!(set.iter().any(|c| c.starts_with("theme=dark")), "{set:?}");
    // A browser that holds one anyway (planted before the fix, or by a
    // sibling host) sends both: the validly signed one wins, no 400.
    let cookie = &entered.cookie;
    for both in [
        format!("authkit_session=planted; {cookie}"),
        format!("{cookie}; authkit_session=planted"),
    ] {
        let answer = raw::send(&entered.base, "GET", "/s/wiki/page", &[("cookie", &both)]).await;
        assert_eq!(answer.status, 200, "{answer:?}");
    }
}

/// A Redis database of these tests' own, so their counters never meet
/// those of other test binaries on the script's redis-server.
fn redis_store() -> String {
    let url = std::env::var("AUTHKIT_TEST_REDIS_URL")
        .expect("AUTHKIT_TEST_REDIS_URL is not set: scripts/test.sh starts a redis-server and sets it");
    format!("{}/9", url.trim_end_matches('/'))
}

/// A client address no other test uses (IPv6 documentation prefix).
fn unique_client() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("2001:db8::{:x}:{:x}", (nanos >> 16) & 0xffff, nanos & 0xffff)
}

fn unique(label: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{label}-{nanos}@example.com")
}

/// A sign-in form for `account` with a wrong password.
fn form(account: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs([("email", account), ("password", "wrong")])
        .finish()
}

/// Sends `attempts` wrong-password sign-ins at once; the statuses.
async fn burst(base: &str, client: &str, accounts: impl Fn(usize) -> String, attempts: usize) -> Vec<u16> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let requests = (0..attempts).map(|i| {
        let (http, account) = (http.clone(), accounts(i));
        let url = format!("{base}/login");
        async move {
            http.post(url)
                .header("x-forwarded-for", client)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form(&account))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    });
    futures_util::future::join_all(requests).await
}

#[tokio::test]
async fn a_parallel_password_guessing_burst_gets_only_the_limit_of_guesses() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite:{}", dir.path().join("sessions.db").display());
    for store in ["memory".to_owned(), sqlite, redis_store()] {
        let (_portal, base) = start(
            "session_portal",
            &[
                ("AUTHKIT_SESSION_KEY", KEY),
                ("AUTHKIT_DEMO_USERS", USERS),
                ("AUTHKIT_SECURE_COOKIES", "false"),
                ("AUTHKIT_SESSION_STORE", store.as_str()),
                ("AUTHKIT_LOGIN_ATTEMPTS", "5"),
                ("AUTHKIT_LOGIN_CLIENT_ATTEMPTS", "100000"),
            ],
        );
        let account = unique("victim");
        let statuses = burst(&base, &unique_client(), |_| account.clone(), 60).await;
        let guesses = statuses.iter().filter(|&&s| s == 401).count();
        let limited = statuses.iter().filter(|&&s| s == 429).count();
        assert_eq!(guesses + limited, 60, "{store}: {statuses:?}");
        assert!(guesses <= 5, "{store}: {guesses} passwords were checked: {statuses:?}");
        assert!(guesses >= 1, "{store}: {statuses:?}");
    }
}

#[tokio::test]
async fn a_parallel_burst_across_accounts_gets_only_the_client_limit_of_guesses() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite:{}", dir.path().join("sessions.db").display());
    for store in ["memory".to_owned(), sqlite, redis_store()] {
        // The client is named by a trusted proxy, so these counts are this
        // test's own on the shared Redis.
        let client = unique_client();
        let (_portal, base) = start(
            "session_portal",
            &[
                ("AUTHKIT_SESSION_KEY", KEY),
                ("AUTHKIT_DEMO_USERS", USERS),
                ("AUTHKIT_SECURE_COOKIES", "false"),
                ("AUTHKIT_SESSION_STORE", store.as_str()),
                ("AUTHKIT_LOGIN_ATTEMPTS", "100"),
                ("AUTHKIT_LOGIN_CLIENT_ATTEMPTS", "5"),
                ("AUTHKIT_TRUSTED_PROXIES", "127.0.0.1"),
            ],
        );
        let prefix = unique("spray");
        let statuses = burst(&base, &client, |i| format!("{i}-{prefix}"), 60).await;
        let guesses = statuses.iter().filter(|&&s| s == 401).count();
        assert!(
            guesses <= 5,
            "{store} ({client}): {guesses} passwords were checked: {statuses:?}"
        );
        assert!(guesses >= 1, "{store}: {statuses:?}");
    }
}

/// A wrong-password sign-in from `client` as a proxy at the socket says it.
async fn fail_from(base: &str, forwarded_for: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{base}/login"))
        .header("x-forwarded-for", forwarded_for)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&unique("someone")))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn behind_a_trusted_proxy_one_client_cannot_lock_everyone_out() {
    let (_portal, base) = start(
        "session_portal",
        &[
            ("AUTHKIT_SESSION_KEY", KEY),
            ("AUTHKIT_DEMO_USERS", USERS),
            ("AUTHKIT_SECURE_COOKIES", "false"),
            ("AUTHKIT_LOGIN_CLIENT_ATTEMPTS", "3"),
            ("AUTHKIT_TRUSTED_PROXIES", "127.0.0.0/8, ::1"),
        ],
    );
    for _ in 0..3 {
        assert_eq!(fail_from(&base, "203.0.113.1").await, 401);
    }
    assert_eq!(fail_from(&base, "203.0.113.1").await, 429);
    // A forged left-most entry changes nothing: the proxy appended .1.
    assert_eq!(fail_from(&base, "192.0.2.77, 203.0.113.1").await, 429);
    // Everybody else still gets to try.
    assert_eq!(fail_from(&base, "203.0.113.2").await, 401);
    assert_eq!(fail_from(&base, "203.0.113.1, 203.0.113.3").await, 401);
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let (_portal, base) = start(
        "session_portal",
        &[
            ("AUTHKIT_SESSION_KEY", KEY),
            ("AUTHKIT_DEMO_USERS", USERS),
            ("AUTHKIT_SECURE_COOKIES", "false"),
            ("AUTHKIT_LOGIN_CLIENT_ATTEMPTS", "3"),
            ("AUTHKIT_TRUSTED_PROXIES", "10.0.0.0/8"),
        ],
    );
    for i in 0..3 {
        assert_eq!(fail_from(&base, &format!("203.0.113.{i}")).await, 401);
    }
    // The socket peer is the client: a new header value is no new client.
    assert_eq!(fail_from(&base, "203.0.113.99").await, 429);
}

#[tokio::test]
async fn the_ingress_forwards_the_client_a_trusted_proxy_names() {
    let entered = signed_in(&[("AUTHKIT_TRUSTED_PROXIES", "127.0.0.1")]).await;
    let page = entered
        .get(
            "/s/wiki/page",
            &[
                ("x-forwarded-for", "192.0.2.1, 198.51.100.4"),
                ("x-forwarded-proto", "https"),
            ],
        )
        .await;
    let lines = header_lines(&serde_json::from_str(&page.body).unwrap());
    let get = |name: &str| lines.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    assert_eq!(get("x-forwarded-for").as_deref(), Some("198.51.100.4"));
    assert_eq!(get("x-forwarded-proto").as_deref(), Some("https"));
}

async fn call(base: &str, path: &str, token: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn the_admin_of_any_tenant_cannot_grant_themselves_admin() {
    let idp = TestIdp::start().await;
    let pattern = idp.tenant_pattern();
    let envs = [
        ("AUTHKIT_ISSUER", idp.issuer()),
        ("AUTHKIT_AUDIENCE", "api"),
        ("AUTHKIT_TENANT_ISSUER", pattern.as_str()),
        ("AUTHKIT_TENANTS", "*"),
        ("AUTHKIT_TENANT_AUDIENCE", "tenant-api"),
    ];
    let (_server, base) = start("resource_server", &envs);
    let tenant_admin = idp
        .token()
        .issuer(&idp.tenant_issuer("attacker-tenant"))
        .audience("tenant-api")
        .roles(["admin"])
        .groups(["team-a"])
        .sign();
    assert_eq!(call(&base, "/me", &tenant_admin).await, 200);
    assert_eq!(call(&base, "/admin", &tenant_admin).await, 403);
    assert_eq!(call(&base, "/team", &tenant_admin).await, 403);
    // The explicitly listed issuer keeps today's behaviour.
    let admin = idp.token().audience("api").roles(["admin"]).sign();
    assert_eq!(call(&base, "/admin", &admin).await, 200);

    // Trusting the pattern for roles is a decision the operator writes down.
    let mut trusting = envs.to_vec();
    trusting.push(("AUTHKIT_TENANT_TRUST_ROLES", "1"));
    let (_server, base) = start("resource_server", &trusting);
    let mut answered = call(&base, "/admin", &tenant_admin).await;
    for _ in 0..30 {
        // A new tenant issuer is admitted one per second (503 meanwhile).
        if answered != 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        answered = call(&base, "/admin", &tenant_admin).await;
    }
    assert_eq!(answered, 200);
    assert_eq!(call(&base, "/team", &tenant_admin).await, 200);
}

#[tokio::test]
async fn a_dpop_required_server_never_invites_a_bearer_token() {
    let idp = TestIdp::start().await;
    let envs = [
        ("AUTHKIT_ISSUER", idp.issuer()),
        ("AUTHKIT_AUDIENCE", idp.audience()),
        ("AUTHKIT_DPOP", "required"),
    ];
    let (_server, base) = start("resource_server", &envs);
    let response = reqwest::get(format!("{base}/me")).await.unwrap();
    assert_eq!(response.status(), 401);
    let challenges: Vec<String> = response
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(!challenges.is_empty());
    assert!(challenges.iter().all(|c| c.starts_with("DPoP")), "{challenges:?}");
    let mut allowed = envs.to_vec();
    allowed[2] = ("AUTHKIT_DPOP", "allowed");
    let (_server, base) = start("resource_server", &allowed);
    let response = reqwest::get(format!("{base}/me")).await.unwrap();
    let schemes: Vec<String> = response
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().split(' ').next().unwrap().to_owned())
        .collect();
    assert_eq!(schemes, ["Bearer", "DPoP"]);
}
