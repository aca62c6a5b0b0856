//! The examples are contracts: run them as a user would.

mod process;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use process::{Running, example, launch, start, start_program, workspace_binary};
use tower_authkit_testing::{IdpFailure, TestIdp};

#[test]
fn quickstart_walks_through_and_exits_zero() {
    let output = Command::new(example("quickstart")).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("-> 401"), "{stdout}");
    assert!(stdout.contains("-> 403"), "{stdout}");
    assert!(stdout.contains("hello, alice"), "{stdout}");
}

#[test]
fn resource_server_names_the_missing_variable() {
    for (set, missing) in [
        (None, "AUTHKIT_ISSUER"),
        (Some(("AUTHKIT_ISSUER", "https://idp.example")), "AUTHKIT_AUDIENCE"),
    ] {
        let mut command = Command::new(example("resource_server"));
        // Any free port: the server binds before it reads the rest.
        command
            .env_remove("AUTHKIT_ISSUER")
            .env_remove("AUTHKIT_AUDIENCE")
            .env("AUTHKIT_BIND", "127.0.0.1:0");
        if let Some((name, value)) = set {
            command.env(name, value);
        }
        let output = command.output().unwrap();
        assert!(!output.status.success());
        assert!(String::from_utf8_lossy(&output.stderr).contains(missing));
    }
}

#[test]
fn mcp_server_names_what_is_missing_or_wrong() {
    for (envs, expected) in [
        (&[][..], "AUTHKIT_ISSUER"),
        (
            &[
                ("AUTHKIT_ISSUER", "https://idp.example"),
                ("AUTHKIT_RESOURCE", "http://mcp.example/mcp"),
            ][..],
            "resource",
        ),
    ] {
        let mut command = Command::new(example("mcp_server"));
        command
            .env_remove("AUTHKIT_ISSUER")
            .env_remove("AUTHKIT_RESOURCE")
            .env("AUTHKIT_BIND", "127.0.0.1:0");
        command.envs(envs.iter().copied());
        let output = command.output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{envs:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{envs:?}: {stderr}");
    }
}

/// GET `base + path` with optional headers; returns status and body.
async fn call(base: &str, path: &str, headers: &[(&str, String)]) -> (u16, String) {
    let mut request = reqwest::Client::new().get(format!("{base}{path}"));
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn bearer(token: String) -> Vec<(&'static str, String)> {
    vec![("authorization", format!("Bearer {token}"))]
}

#[tokio::test]
async fn resource_server_serves_its_routes() {
    let idp = TestIdp::start().await;
    let (_server, base) = start(
        "resource_server",
        &[
            ("AUTHKIT_ISSUER", idp.issuer()),
            ("AUTHKIT_AUDIENCE", idp.audience()),
            ("AUTHKIT_JWKS_TTL", "60"),
            ("AUTHKIT_REFRESH_COOLDOWN", "5"),
        ],
    );
    let started = Instant::now();
    assert_eq!(call(&base, "/health", &[]).await, (200, "ok".to_owned()));
    assert_eq!(call(&base, "/ready", &[]).await, (200, "ready".to_owned()));
    assert_eq!(call(&base, "/me", &[]).await.0, 401);
    let user = idp
        .token()
        .sub("u1")
        .email("u1@example.com")
        .roles(["user"])
        .groups(["team-a"])
        .scope("reports:read")
        .sign();
    let (status, body) = call(&base, "/me", &bearer(user.clone())).await;
    assert_eq!(status, 200, "{body}");
    let me: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(me["sub"], "u1");
    assert_eq!(me["email"], "u1@example.com");
    assert_eq!(me["roles"], serde_json::json!(["user"]));
    assert_eq!(me["groups"], serde_json::json!(["team-a"]));
    assert_eq!(me["scopes"], serde_json::json!(["reports:read"]));
    assert_eq!(call(&base, "/admin", &bearer(user.clone())).await.0, 403);
    assert_eq!(call(&base, "/team", &bearer(user.clone())).await.0, 200);
    assert_eq!(call(&base, "/reports", &bearer(user)).await.0, 200);
    let admin = idp.token().roles(["admin"]).sign();
    assert_eq!(call(&base, "/admin", &bearer(admin.clone())).await.0, 200);
    assert_eq!(call(&base, "/team", &bearer(admin.clone())).await.0, 403);
    assert_eq!(call(&base, "/reports", &bearer(admin)).await.0, 403);
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test]
async fn resource_server_trusts_several_issuers_and_listed_tenants() {
    let (a, b) = (TestIdp::start().await, TestIdp::start().await);
    b.rotate();
    b.retire("rsa-1");
    b.set_failure(IdpFailure::Error);
    let issuers = format!("{}=api-a,{}=api-b|api-c", a.issuer(), b.issuer());
    let pattern = a.tenant_pattern();
    let (_server, base) = start(
        "resource_server",
        &[
            ("AUTHKIT_ISSUERS", issuers.as_str()),
            ("AUTHKIT_TENANT_ISSUER", pattern.as_str()),
            ("AUTHKIT_TENANTS", "acme,globex"),
            ("AUTHKIT_TENANT_AUDIENCE", "tenant-api"),
        ],
    );
    // b's keys cannot be loaded yet: not ready, and the reason names b.
    let (status, body) = call(&base, "/ready", &[]).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains(b.issuer()), "{body}");
    b.set_failure(IdpFailure::None);
    let started = Instant::now();
    while call(&base, "/ready", &[]).await.0 != 200 {
        assert!(started.elapsed() < Duration::from_secs(10), "never ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let accepted = [
        a.token().sub("from-a").audience("api-a").sign(),
        b.token().sub("from-b").audience("api-c").sign(),
        a.token().issuer(&a.tenant_issuer("acme")).audience("tenant-api").sign(),
    ];
    for token in accepted {
        let (status, body) = call(&base, "/me", &bearer(token)).await;
        assert_eq!(status, 200, "{body}");
    }
    let stranger = TestIdp::start().await;
    let refused = [
        a.token().audience("api-b").sign(),
        b.token().issuer(a.issuer()).audience("api-a").sign(),
        a.token()
            .issuer(&a.tenant_issuer("initech"))
            .audience("tenant-api")
            .sign(),
        stranger.token().audience("api-a").sign(),
    ];
    for token in refused {
        let (status, body) = call(&base, "/me", &bearer(token)).await;
        assert_eq!(status, 401, "{body}");
    }
    assert_eq!(stranger.jwks_fetches() + stranger.discovery_fetches(), 0);
}

#[cfg(feature = "metrics")]
#[tokio::test]
async fn resource_server_serves_prometheus_metrics() {
    let idp = TestIdp::start().await;
    let (_server, base) = start(
        "resource_server",
        &[("AUTHKIT_ISSUER", idp.issuer()), ("AUTHKIT_AUDIENCE", idp.audience())],
    );
    assert_eq!(call(&base, "/me", &bearer(idp.token().sign())).await.0, 200);
    assert_eq!(call(&base, "/me", &[]).await.0, 401);
    let (status, body) = call(&base, "/metrics", &[]).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(r#"authkit_authentications_total{provider="jwks",outcome="authenticated",reason="none"} 1"#),
        "{body}"
    );
    assert!(
        body.contains(r#"authkit_authentications_total{provider="jwks",outcome="rejected",reason="missing_token"} 1"#),
        "{body}"
    );
    assert!(body.contains("authkit_upstream_request_duration_seconds"), "{body}");
}

#[tokio::test]
async fn resource_server_asks_for_step_up_on_stepup() {
    let idp = TestIdp::start().await;
    let (_server, base) = start(
        "resource_server",
        &[("AUTHKIT_ISSUER", idp.issuer()), ("AUTHKIT_AUDIENCE", idp.audience())],
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mfa = idp
        .token()
        .claim("acr", "urn:authkit:mfa")
        .claim("auth_time", now - 10)
        .sign();
    assert_eq!(call(&base, "/stepup", &bearer(mfa)).await.0, 200);
    for token in [
        idp.token().claim("auth_time", now).sign(),
        idp.token()
            .claim("acr", "urn:authkit:mfa")
            .claim("auth_time", now - 600)
            .sign(),
        idp.token().claim("acr", "urn:authkit:mfa").sign(),
    ] {
        let response = reqwest::Client::new()
            .get(format!("{base}/stepup"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        let challenge = response.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(
            challenge.contains(r#"error="insufficient_user_authentication""#),
            "{challenge}"
        );
        assert!(challenge.contains(r#"acr_values="urn:authkit:mfa""#), "{challenge}");
        assert!(challenge.contains("max_age=300"), "{challenge}");
        let body: serde_json::Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
        assert_eq!(body["acr_values"], "urn:authkit:mfa");
        assert_eq!(body["max_age"], 300);
    }
}

#[tokio::test]
async fn resource_server_publishes_rfc_9728_metadata_and_binds_tokens_to_the_resource() {
    let idp = TestIdp::start().await;
    let resource = "http://127.0.0.1:9/api/v1";
    let (_server, base) = start(
        "resource_server",
        &[("AUTHKIT_ISSUER", idp.issuer()), ("AUTHKIT_RESOURCE", resource)],
    );
    for path in [
        "/.well-known/oauth-protected-resource/api/v1",
        "/.well-known/oauth-protected-resource",
    ] {
        let response = reqwest::get(format!("{base}{path}")).await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["content-type"], "application/json");
        assert!(
            response.headers()["cache-control"]
                .to_str()
                .unwrap()
                .contains("max-age")
        );
        let document: serde_json::Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
        assert_eq!(document["resource"], resource);
        assert_eq!(document["authorization_servers"], serde_json::json!([idp.issuer()]));
        assert_eq!(document["bearer_methods_supported"], serde_json::json!(["header"]));
    }
    let metadata = r#"resource_metadata="http://127.0.0.1:9/.well-known/oauth-protected-resource/api/v1""#;
    let bound = idp.token().audience(resource).sign();
    let other = idp.token().audience("some-other-api").sign();
    for (headers, status) in [(vec![], 401), (bearer(other), 401), (bearer(bound.clone()), 200)] {
        let mut request = reqwest::Client::new().get(format!("{base}/me"));
        for (name, value) in &headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), status);
        if status == 401 {
            let challenge = response.headers()["www-authenticate"].to_str().unwrap();
            assert!(challenge.contains(metadata), "{challenge}");
        }
    }
    // Never from the query string.
    let (status, _) = call(&base, &format!("/me?access_token={bound}"), &[]).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn resource_server_takes_dpop_per_authkit_dpop() {
    let idp = TestIdp::start().await;
    for (mode, bearer_status) in [("allowed", 200), ("required", 401)] {
        let (_server, base) = start(
            "resource_server",
            &[
                ("AUTHKIT_ISSUER", idp.issuer()),
                ("AUTHKIT_AUDIENCE", idp.audience()),
                ("AUTHKIT_DPOP", mode),
            ],
        );
        let response = reqwest::Client::new()
            .get(format!("{base}/me"))
            .bearer_auth(idp.token().sign())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), bearer_status, "{mode}");
        if bearer_status == 401 {
            let challenge = response.headers()["www-authenticate"].to_str().unwrap();
            assert!(challenge.starts_with("DPoP algs="), "{challenge}");
        }
        // A bound token without its proof is refused in both modes.
        let bound = idp.token().claim("cnf", serde_json::json!({"jkt": "abc"})).sign();
        let (status, body) = call(&base, "/me", &[("authorization", format!("DPoP {bound}"))]).await;
        assert_eq!(status, 401, "{mode}: {body}");
        assert!(body.contains("exactly one DPoP header is required"), "{body}");
        // RFC 9449 §7.1: a DPoP-scheme request is answered in that scheme,
        // and a request with no credential is offered both when bearer
        // tokens are taken, DPoP alone when they are not.
        let expired = idp.token().expired_for(Duration::from_secs(600)).sign();
        let response = reqwest::Client::new()
            .get(format!("{base}/me"))
            .header("authorization", format!("DPoP {expired}"))
            .header("dpop", "not-a-proof")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{mode}");
        let challenge = response.headers()["www-authenticate"].to_str().unwrap();
        assert!(challenge.starts_with("DPoP algs=\""), "{challenge}");
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
        let response = reqwest::Client::new().get(format!("{base}/me")).send().await.unwrap();
        let challenges: Vec<&str> = response
            .headers()
            .get_all("www-authenticate")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        if mode == "allowed" {
            assert_eq!(challenges.len(), 2, "{challenges:?}");
            assert!(challenges[0].starts_with("Bearer realm="), "{challenges:?}");
            assert!(challenges[1].starts_with("DPoP algs=\""), "{challenges:?}");
        } else {
            assert_eq!(challenges.len(), 1, "{challenges:?}");
            assert!(challenges[0].starts_with("DPoP algs=\""), "{challenges:?}");
        }
    }
}

#[tokio::test]
async fn resource_server_requires_rfc_9068_access_tokens_when_asked() {
    let idp = TestIdp::start().await;
    let (_server, base) = start(
        "resource_server",
        &[
            ("AUTHKIT_ISSUER", idp.issuer()),
            ("AUTHKIT_AUDIENCE", idp.audience()),
            ("AUTHKIT_ACCESS_TOKEN_PROFILE", "1"),
        ],
    );
    let access_token = idp
        .token()
        .header("typ", "at+jwt")
        .claim("client_id", "web")
        .claim("jti", "j-1")
        .sign();
    assert_eq!(call(&base, "/me", &bearer(access_token)).await.0, 200);
    let (status, body) = call(&base, "/me", &bearer(idp.token().claim("nonce", "n").sign())).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("not an access token"), "{body}");
}

#[tokio::test]
async fn resource_server_is_not_ready_without_keys_and_says_why() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let jwks = format!("http://{}/jwks", closed.local_addr().unwrap());
    drop(closed);
    let (_server, base) = start(
        "resource_server",
        &[
            ("AUTHKIT_ISSUER", "https://idp.example"),
            ("AUTHKIT_AUDIENCE", "api"),
            ("AUTHKIT_JWKS_URL", jwks.as_str()),
        ],
    );
    assert_eq!(call(&base, "/health", &[]).await.0, 200, "alive");
    let (status, body) = call(&base, "/ready", &[]).await;
    assert_eq!(status, 503);
    assert_eq!(
        body,
        format!("signing keys from {jwks} are not available: connection refused")
    );
}

#[tokio::test]
async fn examples_log_from_rust_log_and_drain_in_flight_requests_on_sigterm() {
    let idp = TestIdp::start().await;
    // The provider hangs: a request waits (up to the 2 s key wait) and is in
    // flight when SIGTERM arrives.
    idp.set_failure(tower_authkit_testing::IdpFailure::Hang);
    let mut command = Command::new(example("resource_server"));
    command
        .env("AUTHKIT_BIND", "127.0.0.1:0")
        .env("AUTHKIT_ISSUER", idp.issuer())
        .env("AUTHKIT_AUDIENCE", idp.audience())
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let stderr = child.stderr.take().unwrap();
    let pid = child.id();
    let running = Running(child);
    let base = stdout
        .lines()
        .map_while(Result::ok)
        .find_map(|line| line.strip_prefix("listening on ").map(str::to_owned))
        .expect("readiness line");
    let token = idp.token().sign();
    let in_flight = tokio::spawn({
        let base = base.clone();
        async move { call(&base, "/me", &bearer(token)).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    assert!(sent.success());
    let (status, _) = tokio::time::timeout(Duration::from_secs(10), in_flight)
        .await
        .expect("the in-flight request finished")
        .unwrap();
    assert_eq!(status, 503, "answered, not cut off");
    let mut running = running;
    let deadline = Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(exit) = running.0.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "the example did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit:?}");
    let mut logs = String::new();
    std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut logs).unwrap();
    assert!(logs.contains("resource_server listening"), "{logs}");
    assert!(logs.contains("shutting down"), "{logs}");
    assert!(logs.contains("stopped"), "{logs}");
    idp.set_failure(tower_authkit_testing::IdpFailure::None);
}

#[cfg(feature = "cloudflare")]
#[tokio::test]
async fn cloudflare_access_example_serves_its_routes() {
    let team = TestIdp::start().await;
    let aud = "4714c1358e65fe4b408ad6d432a5f878f08194bdb4752441fd56faefa9b2b6f2";
    let (_server, base) = start(
        "cloudflare_access",
        &[
            ("AUTHKIT_CF_TEAM_DOMAIN", team.cf_team_domain()),
            ("AUTHKIT_CF_AUD", &format!("other-tag,{aud}")),
        ],
    );
    assert_eq!(call(&base, "/health", &[]).await, (200, "ok".to_owned()));
    assert_eq!(call(&base, "/me", &[]).await.0, 401);
    let user = team.cf_user_token(aud).sign();
    let (status, body) = call(&base, "/me", &[("cf-access-jwt-assertion", user.clone())]).await;
    assert_eq!(status, 200, "{body}");
    let me: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(me["kind"], "user");
    assert_eq!(me["email"], "user@example.com");
    assert_eq!(me["country"], "NL");
    assert_eq!(me["sub"], "7335d417-61da-459d-899c-0a01c76a2f94");
    let service = team.cf_service_token(aud, "ci").sign();
    let (_, body) = call(&base, "/me", &[("cookie", format!("CF_Authorization={service}"))]).await;
    let me: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((me["kind"].as_str(), me["email"].is_null()), (Some("service"), true));
    let (status, body) = call(&base, "/identity", &[("cf-access-jwt-assertion", user)]).await;
    assert_eq!(status, 200, "{body}");
    let identity: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(identity["email"], "user@example.com");
    assert_eq!(identity["x_unmodelled_field"]["kept"], true);
}

#[cfg(feature = "pomerium")]
#[tokio::test]
async fn pomerium_upstream_example_serves_its_routes() {
    let pomerium = TestIdp::start().await;
    let host = "app.example.com";
    let jwks_url = pomerium.pomerium_jwks_url();
    let (_server, base) = start(
        "pomerium_upstream",
        &[
            ("AUTHKIT_POMERIUM_AUDIENCE", host),
            ("AUTHKIT_POMERIUM_JWKS_URL", &jwks_url),
        ],
    );
    assert_eq!(call(&base, "/health", &[]).await, (200, "ok".to_owned()));
    assert_eq!(call(&base, "/me", &[]).await.0, 401);
    let assertion = pomerium.pomerium_assertion(host).groups(["team-a"]).sign();
    let (status, body) = call(&base, "/me", &[("x-pomerium-jwt-assertion", assertion.clone())]).await;
    assert_eq!(status, 200, "{body}");
    let me: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(me["sub"], "user-123");
    assert_eq!(me["email"], "user@example.com");
    assert_eq!(me["groups"], serde_json::json!(["team-a"]));
    assert_eq!(
        call(&base, "/team", &[("x-pomerium-jwt-assertion", assertion)]).await.0,
        200
    );
    let outsider = pomerium.pomerium_assertion(host).groups(["team-b"]).sign();
    assert_eq!(
        call(&base, "/team", &[("x-pomerium-jwt-assertion", outsider)]).await.0,
        403
    );
}

#[cfg(feature = "proxy-user")]
const DEV_TOKEN: &str = "mock-dev-token";

/// The README's two-terminal flow: the dev server, the example in dev mode, curl.
#[cfg(feature = "proxy-user")]
#[tokio::test]
async fn proxy_user_app_two_terminal_flow_with_the_dev_server() {
    let dev_server = workspace_binary("authkit-dev-server");
    let (_dev, dev_url) = start_program(dev_server, &[("AUTHKIT_DEV_PORT", "0")]);
    for envs in [
        vec![
            ("AUTHKIT_PROXY_DEV_MODE", "1"),
            ("AUTHKIT_PROXY_DEV_URL", dev_url.as_str()),
        ],
        vec![("AUTHKIT_PROXY_URL", dev_url.as_str())],
    ] {
        let (_app, base) = start("proxy_user_app", &envs);
        assert_eq!(call(&base, "/health", &[]).await, (200, "ok".to_owned()));
        assert_eq!(call(&base, "/v1/me", &[]).await.0, 401);
        let (status, body) = call(&base, "/v1/me", &bearer(DEV_TOKEN.to_owned())).await;
        assert_eq!(status, 200, "{body}");
        let me: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(me["email"], "mock.user@example.com");
        assert_eq!(me["x_unmodelled_field"]["kept"], true);
        let (_, body) = call(&base, "/v1/maybe-public", &[]).await;
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&body).unwrap()["signed_in"],
            false
        );
        let (_, body) = call(
            &base,
            "/v1/maybe-public",
            &[("cookie", format!("OxaigenPlatformAuthAccessToken={DEV_TOKEN}"))],
        )
        .await;
        let maybe: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (maybe["signed_in"].as_bool(), maybe["email"].as_str()),
            (Some(true), Some("mock.user@example.com"))
        );
        assert_eq!(call(&base, "/v1/audit", &bearer(DEV_TOKEN.to_owned())).await.0, 200);
        assert_eq!(
            call(&base, "/v1/audit", &bearer("mock-forbidden-token".to_owned()))
                .await
                .0,
            403
        );
    }
}

#[cfg(feature = "proxy-user")]
#[tokio::test]
async fn proxy_user_app_derives_the_upstream_only_for_allowed_hosts() {
    let proxy = TestIdp::start().await;
    let allowed = proxy.addr().to_string();
    let (_app, base) = start(
        "proxy_user_app",
        &[
            ("AUTHKIT_PROXY_ALLOWED_HOSTS", allowed.as_str()),
            ("AUTHKIT_PROXY_SCHEME", "http"),
        ],
    );
    let mut headers = bearer(DEV_TOKEN.to_owned());
    headers.push(("host", allowed.clone()));
    assert_eq!(call(&base, "/v1/me", &headers).await.0, 200);
    let evil = vec![
        ("authorization", format!("Bearer {DEV_TOKEN}")),
        ("host", "evil.example".to_owned()),
    ];
    let (status, _) = call(&base, "/v1/me", &evil).await;
    assert_eq!(status, 400);
    assert_eq!(proxy.proxy_me_calls(), 1, "the evil host caused no upstream call");
}

/// The README's Pomerium CLI try-out: `authkit-pomerium` against the dev
/// server's Pomerium route, signing in through the printed URL.
#[tokio::test]
async fn pomerium_cli_against_the_dev_server_route() {
    let dev_server = workspace_binary("authkit-dev-server");
    let (_dev, _, banner) = launch(dev_server, &[("AUTHKIT_DEV_PORT", "0")]);
    let origin = banner
        .iter()
        .find_map(|line| line.trim().strip_prefix("Pomerium route"))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the banner names the Pomerium route")
        .to_owned();

    let mut cli = Command::new(workspace_binary("authkit-pomerium"))
        .args(["--no-browser", &format!("{origin}/hello")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = cli.stderr.take().unwrap();
    let stdout = cli.stdout.take().unwrap();
    let cli = Running(cli);
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    let prompt = receiver
        .recv_timeout(Duration::from_secs(30))
        .expect("a sign-in prompt");
    let sign_in_url = prompt.strip_prefix("sign in at: ").expect(&prompt);
    assert_eq!(reqwest::get(sign_in_url).await.unwrap().status(), 200);

    let output = tokio::task::spawn_blocking(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut BufReader::new(stdout), &mut text).unwrap();
        text
    });
    let output = tokio::time::timeout(Duration::from_secs(30), output)
        .await
        .unwrap()
        .unwrap();
    drop(cli);
    assert_eq!(output.lines().next(), Some("200 OK"), "{output}");
}

/// A browser frontend on another origin calling the dev server's auth proxy.
#[cfg(feature = "proxy-user")]
#[tokio::test]
async fn dev_server_answers_cors_preflights_and_credentialed_requests() {
    let dev_server = workspace_binary("authkit-dev-server");
    let client = reqwest::Client::new();
    let preflight = |base: &str, origin: &str| {
        client
            .request(reqwest::Method::OPTIONS, format!("{base}/_oxa_auth/get-me"))
            .header("origin", origin.to_owned())
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    // Default: any origin, no credentials.
    let (_any, base) = start_program(dev_server.clone(), &[("AUTHKIT_DEV_PORT", "0")]);
    let answer = preflight(&base, "http://localhost:5173").await.unwrap();
    assert!(answer.status().is_success(), "{answer:?}");
    assert_eq!(answer.headers()["access-control-allow-origin"], "*");
    assert!(answer.headers().get("access-control-allow-credentials").is_none());
    // A list: exactly those origins, with credentials (cookies).
    let (_listed, base) = start_program(
        dev_server,
        &[
            ("AUTHKIT_DEV_PORT", "0"),
            ("AUTHKIT_DEV_CORS_ORIGINS", "http://app.test:5173, https://admin.test"),
        ],
    );
    let answer = preflight(&base, "http://app.test:5173").await.unwrap();
    assert!(answer.status().is_success(), "{answer:?}");
    assert_eq!(answer.headers()["access-control-allow-origin"], "http://app.test:5173");
    assert_eq!(answer.headers()["access-control-allow-credentials"], "true");
    assert!(
        answer.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("authorization")
    );
    let credentialed = client
        .get(format!("{base}/_oxa_auth/get-me"))
        .header("origin", "http://app.test:5173")
        .header("cookie", format!("OxaigenPlatformAuthAccessToken={DEV_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(credentialed.status(), 200);
    assert_eq!(
        credentialed.headers()["access-control-allow-origin"],
        "http://app.test:5173"
    );
    assert_eq!(credentialed.headers()["access-control-allow-credentials"], "true");
    let stranger = preflight(&base, "https://evil.test").await.unwrap();
    assert!(stranger.headers().get("access-control-allow-origin").is_none());
}
