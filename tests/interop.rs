//! Interop with implementations we did not write: oidc-provider (a certified
//! OpenID Provider, from npm) and PyJWT (from PyPI). Each test installs what it
//! needs on first run (`npm ci`, a venv) with bounded timeouts; servers run on
//! loopback and are killed when the test ends.

mod common;
mod process;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tower_authkit::Principal;
use tower_authkit::jwt::JwksAuthLayer;
use tower_authkit_testing::TestIdp;

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("interop")
}

/// Runs a setup command to completion within `limit`, or fails the test.
async fn run(program: &str, args: &[&str], cwd: &Path, limit: Duration) {
    let mut command = Command::new(program);
    command.args(args).current_dir(cwd).kill_on_drop(true);
    let output = tokio::time::timeout(limit, command.output())
        .await
        .unwrap_or_else(|_| panic!("{program} {args:?} took longer than {limit:?}"))
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn app(layer: JwksAuthLayer) -> Router {
    Router::new()
        .route("/me", get(|p: Principal| async move { p.subject().to_owned() }))
        .layer(layer)
}

/// `tests/interop/<harness>` with its locked npm packages installed.
/// Once per test binary (`once`): two tests can ask at the same time, and
/// two `npm ci` runs in one directory trample each other.
async fn npm_installed(harness: &str, package: &str, once: &'static tokio::sync::OnceCell<()>) -> PathBuf {
    let dir = interop_dir().join(harness);
    once.get_or_init(|| async {
        if !dir.join("node_modules").join(package).exists() {
            run(
                "npm",
                &["ci", "--no-audit", "--no-fund"],
                &dir,
                Duration::from_secs(300),
            )
            .await;
        }
    })
    .await;
    dir
}

// ---------------------------------------------------------------- oidc-provider

struct OpenIdProvider {
    _child: Child,
    issuer: String,
}

async fn start_oidc_provider(port: Option<u16>) -> OpenIdProvider {
    static INSTALLED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    let dir = npm_installed("oidc-provider", "oidc-provider", &INSTALLED).await;
    let mut command = Command::new("node");
    command
        .arg("server.mjs")
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    if let Some(port) = port {
        command.env("PORT", port.to_string());
    }
    let mut child = command.spawn().expect("node is installed");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let issuer = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(issuer) = line.strip_prefix("listening on ") {
                return issuer.to_owned();
            }
        }
        panic!("oidc-provider exited before listening");
    })
    .await
    .expect("oidc-provider started within 30 s");
    OpenIdProvider { _child: child, issuer }
}

async fn client_credentials_token(issuer: &str, resource: &str) -> String {
    client_credentials_token_for(issuer, resource, "api:read").await
}

/// A token for `resource` with `scope` (none when empty).
async fn client_credentials_token_for(issuer: &str, resource: &str, scope: &str) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "client_credentials")
        .append_pair("resource", resource);
    if !scope.is_empty() {
        form.append_pair("scope", scope);
    }
    let response = reqwest::Client::new()
        .post(format!("{issuer}/token"))
        .basic_auth("interop", Some("interop-secret"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.finish())
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: serde_json::Value = serde_json::from_str(&response.text().await.unwrap()).unwrap_or_default();
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().expect("an access token").to_owned()
}

const RESOURCES: [&str; 3] = ["urn:interop:rs256", "urn:interop:es256", "urn:interop:eddsa"];

#[tokio::test]
async fn oidc_provider_jwt_access_tokens_verify_through_discovery_and_rotation() {
    let provider = start_oidc_provider(None).await;
    let mut builder = JwksAuthLayer::builder().issuer(&provider.issuer);
    for resource in RESOURCES {
        builder = builder.audience(resource);
    }
    let layer = builder.build().unwrap();
    let auth = layer.authenticator().clone();
    let app = app(layer);
    for resource in RESOURCES {
        let token = client_credentials_token(&provider.issuer, resource).await;
        let header = token.split('.').next().unwrap();
        // Twice: the second verification admits the token to the cache.
        for _ in 0..2 {
            let reply = common::get(&app, "/me", Some(&token)).await;
            assert_eq!(
                (reply.status.as_u16(), reply.body.as_str()),
                (200, "interop"),
                "{resource} ({header})"
            );
        }
    }
    // A restart with a new key set on the same issuer is a rotation: new
    // tokens (new kids) are accepted on first sight.
    let port: u16 = provider.issuer.rsplit(':').next().unwrap().parse().unwrap();
    let old_token = client_credentials_token(&provider.issuer, RESOURCES[0]).await;
    drop(provider);
    let rotated = start_oidc_provider(Some(port)).await;
    for resource in RESOURCES {
        let token = client_credentials_token(&rotated.issuer, resource).await;
        let reply = common::get(&app, "/me", Some(&token)).await;
        assert_eq!(reply.status, 200, "after rotation, {resource}: {reply:?}");
    }
    // Tokens signed by the retired keys are refused once they leave the set.
    let reply = common::get(&app, "/me", Some(&old_token)).await;
    assert_eq!(reply.status, 401, "{reply:?}");
    assert!(auth.cached_tokens() >= 3);
}

/// oidc-provider mints RFC 9068 access tokens (`typ: at+jwt`, `client_id`,
/// `jti`, …): they pass the access-token profile. (ID tokens refused by
/// the profile: tests/token_checks.rs.)
#[tokio::test]
async fn oidc_provider_access_tokens_meet_the_rfc_9068_profile() {
    let provider = start_oidc_provider(None).await;
    let layer = JwksAuthLayer::builder()
        .issuer(&provider.issuer)
        .audience(RESOURCES[0])
        .access_token_profile()
        .build()
        .unwrap();
    let app = app(layer);
    let token = client_credentials_token(&provider.issuer, RESOURCES[0]).await;
    let header: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            token.split('.').next().unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(header["typ"], "at+jwt", "{header}");
    let reply = common::get(&app, "/me", Some(&token)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
}

// ------------------------------------------------------------- MCP TypeScript SDK

/// Runs the official MCP TypeScript SDK (`tests/interop/mcp-client`)
/// against an MCP server with `envs`; its report on success, its stderr on
/// failure.
async fn mcp_client(envs: &[(&str, &str)]) -> Result<serde_json::Value, String> {
    static INSTALLED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    let dir = npm_installed("mcp-client", "@modelcontextprotocol/sdk", &INSTALLED).await;
    let mut command = Command::new("node");
    command
        .arg("client.mjs")
        .current_dir(&dir)
        .envs(envs.iter().copied())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("the MCP client finished within 60 s")
        .expect("node is installed");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if !output.status.success() {
        return Err(stderr);
    }
    serde_json::from_slice(&output.stdout).map_err(|e| format!("{e}: {stderr}"))
}

/// `(method, url, status)` of each request the SDK reported.
fn requests_of(report: &serde_json::Value) -> Vec<(String, String, u64)> {
    report["requests"]
        .as_array()
        .expect("a request log")
        .iter()
        .map(|r| {
            (
                r["method"].as_str().unwrap_or_default().to_owned(),
                r["url"].as_str().unwrap_or_default().to_owned(),
                r["status"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

/// The MCP authorization flow end to end, with nothing of ours on the
/// client or the authorization server: the SDK gets a 401, follows
/// `resource_metadata` to our RFC 9728 document, reads oidc-provider's
/// metadata, obtains a token for our resource (RFC 8707) and lists and
/// calls the tools, which see the token's subject and scopes.
#[tokio::test]
async fn the_mcp_typescript_sdk_finds_the_authorization_server_and_calls_tools() {
    let provider = start_oidc_provider(None).await;
    let (_server, base) = process::start("mcp_server", &[("AUTHKIT_ISSUER", provider.issuer.as_str())]);
    let mcp_url = format!("{base}/mcp");
    let settings = [
        ("MCP_URL", mcp_url.as_str()),
        ("ISSUER", provider.issuer.as_str()),
        ("CLIENT_ID", "interop"),
        ("CLIENT_SECRET", "interop-secret"),
        ("SCOPE", "mcp:tools"),
    ];
    let report = mcp_client(&settings).await.unwrap_or_else(|stderr| panic!("{stderr}"));
    assert_eq!(report["tools"], serde_json::json!(["add", "whoami"]), "{report}");
    assert_eq!(report["add"], "42", "{report}");
    assert_eq!(
        report["whoami"],
        serde_json::json!({"sub": "interop", "client_id": "interop", "scopes": ["mcp:tools"]}),
        "{report}"
    );
    // The token was issued for this resource, by this issuer.
    assert_eq!(report["claims"]["aud"], mcp_url.as_str(), "{report}");
    assert_eq!(report["claims"]["iss"], provider.issuer.as_str(), "{report}");
    // Discovery went through our 401 and our metadata, in this order.
    let requests = requests_of(&report);
    let issuer = &provider.issuer;
    let expected_start = [
        ("POST", mcp_url.clone(), 401),
        ("GET", format!("{base}/.well-known/oauth-protected-resource/mcp"), 200),
        ("GET", format!("{issuer}/.well-known/oauth-authorization-server"), 200),
        ("POST", format!("{issuer}/token"), 200),
    ];
    assert!(requests.len() > expected_start.len(), "{requests:?}");
    for (seen, (method, url, status)) in requests.iter().zip(&expected_start) {
        assert_eq!(seen, &((*method).to_owned(), url.clone(), *status), "{requests:?}");
    }
    // Once authorized, every MCP call is accepted (405: this stateless
    // server offers no standalone SSE stream, which the SDK tolerates).
    for (method, url, status) in &requests[expected_start.len()..] {
        assert_eq!(url, &mcp_url, "{requests:?}");
        assert!(
            matches!(status, 200 | 202) || (method == "GET" && *status == 405),
            "{requests:?}"
        );
    }

    // A client whose credentials the authorization server refuses never
    // gets past the 401.
    let mut refused = settings;
    refused[3] = ("CLIENT_SECRET", "wrong");
    let stderr = mcp_client(&refused).await.expect_err("a refused client fails");
    assert!(stderr.contains("InvalidClientError"), "{stderr}");
    let log: serde_json::Value = serde_json::from_str(stderr.lines().last().unwrap_or_default()).unwrap();
    let mcp_statuses: Vec<u64> = requests_of(&log)
        .into_iter()
        .filter(|(_, url, _)| url == &mcp_url)
        .map(|(_, _, status)| status)
        .collect();
    assert_eq!(mcp_statuses, [401], "{stderr}");
}

/// The interactive flow MCP hosts use, with the SDK's own code for every
/// step: dynamic client registration, PKCE, the `resource` parameter and
/// the code exchange, against the test kit's authorization server (which
/// approves at once as `dev-user`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mcp_typescript_sdk_registers_and_authorizes_with_pkce_against_the_test_kit() {
    let idp = TestIdp::start().await;
    let (_server, base) = process::start("mcp_server", &[("AUTHKIT_ISSUER", idp.issuer())]);
    let mcp_url = format!("{base}/mcp");
    let report = mcp_client(&[
        ("FLOW", "authorization_code"),
        ("MCP_URL", mcp_url.as_str()),
        ("ISSUER", idp.issuer()),
    ])
    .await
    .unwrap_or_else(|stderr| panic!("{stderr}"));
    let client_id = report["registered_client_id"].as_str().expect("a registered client");
    assert_eq!(report["tools"], serde_json::json!(["add", "whoami"]), "{report}");
    assert_eq!(
        report["whoami"],
        serde_json::json!({"sub": "dev-user", "client_id": client_id, "scopes": ["mcp:tools"]}),
        "{report}"
    );
    // The SDK asked for our resource and the scope our challenge named, with S256.
    let authorization = &report["authorization"];
    assert_eq!(authorization["resource"], mcp_url.as_str(), "{report}");
    assert_eq!(authorization["scope"], "mcp:tools", "{report}");
    assert_eq!(authorization["code_challenge_method"], "S256", "{report}");
    assert_eq!(report["claims"]["aud"], mcp_url.as_str(), "{report}");
    let issuer = idp.issuer();
    let steps: Vec<(String, String, u64)> = requests_of(&report)
        .into_iter()
        .map(|(method, url, status)| (method, url.split('?').next().unwrap_or_default().to_owned(), status))
        .collect();
    let expected = [
        ("POST", mcp_url.clone(), 401),
        ("GET", format!("{base}/.well-known/oauth-protected-resource/mcp"), 200),
        ("GET", format!("{issuer}/.well-known/oauth-authorization-server"), 200),
        ("POST", format!("{issuer}/register"), 201),
        ("GET", format!("{issuer}/authorize"), 302),
    ];
    for (seen, (method, url, status)) in steps.iter().zip(&expected) {
        assert_eq!(seen, &((*method).to_owned(), url.clone(), *status), "{steps:?}");
    }
    let token_exchange = steps
        .iter()
        .position(|(method, url, _)| method == "POST" && url == &format!("{issuer}/token"));
    let exchanged = token_exchange.expect("the code was exchanged");
    assert_eq!(steps[exchanged].2, 200, "{steps:?}");
    assert!(
        steps[exchanged + 1..]
            .iter()
            .any(|(m, url, status)| m == "POST" && url == &mcp_url && *status == 200),
        "{steps:?}"
    );
}

/// What the MCP authorization spec asks of the server itself, checked with
/// oidc-provider's tokens: the audience binding, the scope, no query-string
/// tokens, the metadata at both paths, and rmcp's Host check kept on.
#[tokio::test]
async fn the_mcp_server_example_refuses_what_the_mcp_spec_refuses() {
    let provider = start_oidc_provider(None).await;
    let (_server, base) = process::start("mcp_server", &[("AUTHKIT_ISSUER", provider.issuer.as_str())]);
    let mcp_url = format!("{base}/mcp");
    let metadata_url = format!("{base}/.well-known/oauth-protected-resource/mcp");
    let client = reqwest::Client::new();
    let initialize = serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    });
    let call = |url: String, token: Option<String>| {
        let mut request = client
            .post(url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(initialize.to_string());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let challenge = response
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            (status, challenge, response.text().await.unwrap())
        }
    };
    let points_at_metadata = format!("resource_metadata=\"{metadata_url}\"");

    let (status, challenge, _) = call(mcp_url.clone(), None).await;
    assert_eq!(status, 401);
    assert!(challenge.contains(&points_at_metadata), "{challenge}");
    assert!(challenge.contains("scope=\"mcp:tools\""), "{challenge}");

    let good = client_credentials_token_for(&provider.issuer, &mcp_url, "mcp:tools").await;
    let (status, _, body) = call(mcp_url.clone(), Some(good.clone())).await;
    assert_eq!(status, 200, "{body}");

    // Issued for another resource: refused (RFC 8707 audience binding).
    let elsewhere = client_credentials_token_for(&provider.issuer, RESOURCES[1], "api:read").await;
    let (status, challenge, _) = call(mcp_url.clone(), Some(elsewhere)).await;
    assert_eq!(status, 401);
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(challenge.contains(&points_at_metadata), "{challenge}");

    // For this resource but without the scope: 403 naming the scope.
    let unscoped = client_credentials_token_for(&provider.issuer, &mcp_url, "").await;
    let (status, challenge, body) = call(mcp_url.clone(), Some(unscoped)).await;
    assert_eq!(status, 403, "{body}");
    assert!(challenge.contains("error=\"insufficient_scope\""), "{challenge}");
    assert!(challenge.contains("scope=\"mcp:tools\""), "{challenge}");
    assert!(challenge.contains(&points_at_metadata), "{challenge}");

    // A token in the query string is never read.
    let (status, _, _) = call(format!("{mcp_url}?access_token={good}"), None).await;
    assert_eq!(status, 401);

    // The metadata, at the path-inserted form and the bare one.
    for url in [
        metadata_url.clone(),
        format!("{base}/.well-known/oauth-protected-resource"),
    ] {
        let response = client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        let document: serde_json::Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
        assert_eq!(document["resource"], mcp_url.as_str());
        assert_eq!(document["authorization_servers"], serde_json::json!([provider.issuer]));
        assert_eq!(document["scopes_supported"], serde_json::json!(["mcp:tools"]));
        assert_eq!(document["bearer_methods_supported"], serde_json::json!(["header"]));
    }

    // Forwarding headers change nothing the server says about itself: the
    // resource URL is configured, never read from the request.
    let forwarded = [
        ("x-forwarded-host", "attacker.example"),
        ("x-forwarded-proto", "https"),
        ("forwarded", "host=attacker.example;proto=https"),
    ];
    let mut request = client.get(&metadata_url);
    let mut challenge_request = client
        .post(&mcp_url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(initialize.to_string());
    for (name, value) in forwarded {
        request = request.header(name, value);
        challenge_request = challenge_request.header(name, value);
    }
    let document = request.send().await.unwrap().text().await.unwrap();
    assert!(!document.contains("attacker"), "{document}");
    assert!(document.contains(&mcp_url), "{document}");
    let response = challenge_request.send().await.unwrap();
    let challenge = response.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains(&points_at_metadata), "{challenge}");

    // A valid token through a rebinding DNS name is still refused by rmcp.
    let response = client
        .post(&mcp_url)
        .header("host", "attacker.example")
        .header("accept", "application/json, text/event-stream")
        .bearer_auth(&good)
        .header("content-type", "application/json")
        .body(initialize.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
}

// ----------------------------------------------------------------------- PyJWT

/// A venv with PyJWT under the build directory (never a system-wide install).
/// Created once per test binary: several tests ask for it at the same time,
/// and two `python3 -m venv` runs on one directory fail (EEXIST).
async fn pyjwt_python() -> PathBuf {
    static VENV: tokio::sync::OnceCell<PathBuf> = tokio::sync::OnceCell::const_new();
    VENV.get_or_init(create_pyjwt_venv).await.clone()
}

async fn create_pyjwt_venv() -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pyjwt-venv");
    let python = venv.join("bin").join("python");
    let ready = python.exists()
        && std::process::Command::new(&python)
            .args(["-c", "import jwt, cryptography"])
            .status()
            .is_ok_and(|s| s.success());
    if !ready {
        let venv_arg = venv.to_string_lossy().into_owned();
        run(
            "python3",
            &["-m", "venv", "--clear", &venv_arg],
            &interop_dir(),
            Duration::from_secs(120),
        )
        .await;
        let pip = venv.join("bin").join("pip").to_string_lossy().into_owned();
        run(
            &pip,
            &["install", "--quiet", "pyjwt", "cryptography"],
            &interop_dir(),
            Duration::from_secs(300),
        )
        .await;
    }
    python
}

/// Runs the PyJWT script `script` (in tests/interop/) with `input` as JSON
/// on stdin, within 60 s; returns its stdout.
async fn run_pyjwt_script(script: &str, input: &serde_json::Value) -> Vec<u8> {
    let mut child = Command::new(pyjwt_python().await)
        .arg(interop_dir().join(script))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.to_string().as_bytes()).await.unwrap();
    drop(stdin);
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("PyJWT minted within 60 s")
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}

#[tokio::test]
async fn pyjwt_tokens_verify_for_every_algorithm() {
    let idp = TestIdp::start().await;
    let app = app(idp.auth_builder().build().unwrap());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let algorithms = [
        ("RS256", "rsa-1"),
        ("PS256", "ps-1"),
        ("ES256", "ec-1"),
        ("ES384", "ec384-1"),
        ("EdDSA", "ed-1"),
    ];
    let input: Vec<serde_json::Value> = algorithms
        .iter()
        .map(|(alg, kid)| {
            serde_json::json!({
                "alg": alg,
                "kid": kid,
                "pem": idp.private_key_pem(kid).unwrap(),
                "claims": {"iss": idp.issuer(), "aud": idp.audience(), "sub": format!("pyjwt-{alg}"), "iat": now, "exp": now + 300},
            })
        })
        .collect();
    let stdout = run_pyjwt_script("pyjwt_mint.py", &serde_json::Value::Array(input)).await;
    let tokens: Vec<String> = String::from_utf8(stdout).unwrap().lines().map(str::to_owned).collect();
    assert_eq!(tokens.len(), algorithms.len());
    for ((alg, _), token) in algorithms.iter().zip(&tokens) {
        let reply = common::get(&app, "/me", Some(token)).await;
        assert_eq!(
            (reply.status.as_u16(), reply.body.clone()),
            (200, format!("pyjwt-{alg}")),
            "{alg}"
        );
    }
}

// ------------------------------------------------------------ DPoP (PyJWT)

/// Runs tests/interop/dpop_proof.py: PyJWT signs the proofs of `specs`
/// with `keys` (new ones when `None`). Returns the main key's thumbprint
/// (computed on PyJWT's side), the keys, and the proofs.
async fn pyjwt_dpop(
    kty: &str,
    keys: Option<&serde_json::Value>,
    specs: &[serde_json::Value],
) -> (String, serde_json::Value, Vec<String>) {
    let mut input = serde_json::json!({"kty": kty, "proofs": specs});
    if let Some(keys) = keys {
        input["keys"] = keys.clone();
    }
    let stdout = run_pyjwt_script("dpop_proof.py", &input).await;
    let minted: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    let proofs = minted["proofs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect();
    (
        minted["jkt"].as_str().unwrap().to_owned(),
        minted["keys"].clone(),
        proofs,
    )
}

async fn dpop_request(app: &Router, scheme: &str, token: &str, proof: Option<&str>) -> common::Reply {
    let mut request = http::Request::get("/me").header("authorization", format!("{scheme} {token}"));
    if let Some(proof) = proof {
        request = request.header("dpop", proof);
    }
    common::send(app, request.body(axum::body::Body::empty()).unwrap()).await
}

fn dpop_refusal(reply: &common::Reply) -> String {
    assert_eq!(reply.status, 401, "{reply:?}");
    reply.json()["error_description"].as_str().unwrap_or("").to_owned()
}

#[tokio::test]
async fn dpop_proofs_minted_by_pyjwt_are_checked_rule_by_rule() {
    use tower_authkit::jwt::dpop::{Dpop, DpopMode};
    let idp = TestIdp::start().await;
    let layer = |mode| {
        app(idp
            .auth_builder()
            .dpop(Dpop::new(mode, "https://api.example"))
            .build()
            .unwrap())
    };
    let (allowed, required) = (layer(DpopMode::Allowed), layer(DpopMode::Required));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for kty in ["EC", "RSA", "OKP"] {
        // First the key (and its thumbprint), then a token bound to it.
        let (jkt, keys, _) = pyjwt_dpop(kty, None, &[]).await;
        let token = idp
            .token()
            .sub("bound")
            .claim("cnf", serde_json::json!({"jkt": jkt}))
            .sign();
        let other_token = idp.token().sub("other").sign();
        let spec = |jti: &str| serde_json::json!({"htm": "GET", "htu": "https://api.example/me", "jti": format!("{kty}-{jti}"), "iat": now, "ath_of": token});
        let with = |jti: &str, change: serde_json::Value| {
            let mut spec = spec(jti);
            for (name, value) in change.as_object().unwrap() {
                spec[name] = value.clone();
            }
            spec
        };
        let specs = [
            spec("good"),
            spec("second"),
            with("method", serde_json::json!({"htm": "POST"})),
            with("url", serde_json::json!({"htu": "https://api.example/other"})),
            with("host", serde_json::json!({"htu": "https://evil.example/me"})),
            with("stale", serde_json::json!({"iat": now - 600})),
            with("ath", serde_json::json!({"ath_of": other_token})),
            with("key", serde_json::json!({"key": "other"})),
            with("hs256", serde_json::json!({"alg": "HS256"})),
            with("private", serde_json::json!({"private_jwk": true})),
            with("typ", serde_json::json!({"typ": "jwt"})),
            with("query", serde_json::json!({"htu": "https://api.example/me?tab=1"})),
        ];
        let (_, _, proofs) = pyjwt_dpop(kty, Some(&keys), &specs).await;
        let reply = dpop_request(&allowed, "DPoP", &token, Some(&proofs[0])).await;
        assert_eq!(
            (reply.status.as_u16(), reply.body.as_str()),
            (200, "bound"),
            "{kty}: {reply:?}"
        );
        // A second request (cached token) with a new proof.
        assert_eq!(
            dpop_request(&allowed, "DPoP", &token, Some(&proofs[1])).await.status,
            200,
            "{kty}"
        );
        let refused = [
            (&proofs[0], "DPoP proof replayed (jti seen before)"),
            (&proofs[2], "DPoP proof htm does not match the request method"),
            (&proofs[3], "DPoP proof htu does not match the request URL"),
            (&proofs[4], "DPoP proof htu does not match the request URL"),
            (&proofs[5], "DPoP proof iat outside the accepted window"),
            (&proofs[6], "DPoP proof ath does not match the access token"),
            (&proofs[7], "DPoP proof key does not match the token's cnf.jkt"),
            (&proofs[8], "DPoP proof algorithm not allowed (asymmetric only)"),
            (&proofs[9], "DPoP proof jwk holds private key material"),
            (&proofs[10], "DPoP proof typ must be dpop+jwt"),
        ];
        for (proof, reason) in refused {
            let reply = dpop_request(&allowed, "DPoP", &token, Some(proof)).await;
            assert_eq!(dpop_refusal(&reply), reason, "{kty}");
            let challenge = reply.challenge();
            assert!(challenge.starts_with("DPoP algs=\"ES256"), "{challenge}");
            assert!(challenge.contains("error=\"invalid_dpop_proof\""), "{challenge}");
        }
        // The query never takes part in htu.
        assert_eq!(
            dpop_request(&allowed, "DPoP", &token, Some(&proofs[11])).await.status,
            200,
            "{kty}"
        );
        // No proof at all, and a bound token passed off as a bearer token.
        let reply = dpop_request(&allowed, "DPoP", &token, None).await;
        assert_eq!(dpop_refusal(&reply), "exactly one DPoP header is required");
        let reply = dpop_request(&allowed, "Bearer", &token, None).await;
        assert_eq!(dpop_refusal(&reply), "DPoP-bound token presented as a bearer token");
        // Unbound tokens: fine as bearer tokens where allowed, not where required.
        assert_eq!(dpop_request(&allowed, "Bearer", &other_token, None).await.status, 200);
        let reply = dpop_request(&required, "Bearer", &other_token, None).await;
        assert_eq!(dpop_refusal(&reply), "a DPoP proof is required");
    }
}

/// Two replicas sharing a `RedisReplayCache`: a proof one of them took is
/// a replay at the other (the in-process cache could not see it).
#[cfg(feature = "dpop-redis")]
#[tokio::test]
async fn replicas_sharing_a_redis_replay_cache_refuse_each_others_proofs() {
    use tower_authkit::jwt::RedisReplayCache;
    use tower_authkit::jwt::dpop::Dpop;
    let idp = TestIdp::start().await;
    let url = std::env::var("AUTHKIT_TEST_REDIS_URL")
        .expect("AUTHKIT_TEST_REDIS_URL is not set: scripts/test.sh starts a redis-server and sets it");
    // A prefix of this run's own: a rerun must not see the last run's ids.
    let prefix = format!("authkit-test:dpop-replicas:{}:", std::process::id());
    let replica = || {
        app(idp
            .auth_builder()
            .dpop(
                Dpop::required("https://api.example")
                    .replay_cache(RedisReplayCache::with_prefix(&url, &prefix).unwrap()),
            )
            .build()
            .unwrap())
    };
    let (a, b) = (replica(), replica());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let (jkt, keys, _) = pyjwt_dpop("EC", None, &[]).await;
    let token = idp
        .token()
        .sub("bound")
        .claim("cnf", serde_json::json!({"jkt": jkt}))
        .sign();
    let spec = |jti: &str| serde_json::json!({"htm": "GET", "htu": "https://api.example/me", "jti": jti, "iat": now, "ath_of": token});
    let (_, _, proofs) = pyjwt_dpop("EC", Some(&keys), &[spec("first"), spec("second")]).await;
    let reply = dpop_request(&a, "DPoP", &token, Some(&proofs[0])).await;
    assert_eq!(
        (reply.status.as_u16(), reply.body.as_str()),
        (200, "bound"),
        "{reply:?}"
    );
    let replayed = dpop_request(&b, "DPoP", &token, Some(&proofs[0])).await;
    assert_eq!(dpop_refusal(&replayed), "DPoP proof replayed (jti seen before)");
    // A fresh proof is fine at either.
    assert_eq!(dpop_request(&b, "DPoP", &token, Some(&proofs[1])).await.status, 200);
}

#[tokio::test]
async fn a_dpop_proof_without_the_server_nonce_gets_one_to_retry_with() {
    use tower_authkit::jwt::dpop::Dpop;
    let idp = TestIdp::start().await;
    let app = app(idp
        .auth_builder()
        .dpop(Dpop::required("https://api.example").nonces(b"a nonce secret of at least 32 bytes".to_vec()))
        .build()
        .unwrap());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (jkt, keys, _) = pyjwt_dpop("EC", None, &[]).await;
    let token = idp.token().claim("cnf", serde_json::json!({"jkt": jkt})).sign();
    let spec = |jti: &str, nonce: Option<&str>| {
        let mut spec =
            serde_json::json!({"htm": "GET", "htu": "https://api.example/me", "jti": jti, "iat": now, "ath_of": token});
        if let Some(nonce) = nonce {
            spec["nonce"] = nonce.into();
        }
        spec
    };
    let (_, _, first) = pyjwt_dpop("EC", Some(&keys), &[spec("n-1", None), spec("n-2", Some("made-up"))]).await;
    for proof in &first {
        let reply = dpop_request(&app, "DPoP", &token, Some(proof)).await;
        assert_eq!(reply.status, 401, "{reply:?}");
        assert!(reply.challenge().contains("error=\"use_dpop_nonce\""), "{reply:?}");
        assert!(reply.headers.contains_key("dpop-nonce"), "{reply:?}");
    }
    let reply = dpop_request(&app, "DPoP", &token, Some(&first[0])).await;
    let nonce = reply.headers["dpop-nonce"].to_str().unwrap().to_owned();
    let (_, _, retry) = pyjwt_dpop("EC", Some(&keys), &[spec("n-3", Some(&nonce))]).await;
    let reply = dpop_request(&app, "DPoP", &token, Some(&retry[0])).await;
    assert_eq!(reply.status, 200, "{reply:?}");
}
