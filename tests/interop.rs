//! Interop with implementations we did not write: oidc-provider (a certified
//! OpenID Provider, from npm) and PyJWT (from PyPI). Each test installs what it
//! needs on first run (`npm ci`, a venv) with bounded timeouts; servers run on
//! loopback and are killed when the test ends.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tower_authkit::testing::TestIdp;
use tower_authkit::{JwksAuthLayer, Principal};

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

// ---------------------------------------------------------------- oidc-provider

struct OpenIdProvider {
    _child: Child,
    issuer: String,
}

async fn start_oidc_provider(port: Option<u16>) -> OpenIdProvider {
    let dir = interop_dir().join("oidc-provider");
    // Once per test binary: two tests start a provider at the same time,
    // and two `npm ci` runs in one directory trample each other.
    static INSTALLED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    INSTALLED
        .get_or_init(|| async {
            if !dir.join("node_modules").join("oidc-provider").exists() {
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
    let response = reqwest::Client::new()
        .post(format!("{issuer}/token"))
        .basic_auth("interop", Some("interop-secret"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=client_credentials&scope=api%3Aread&resource={resource}"
        ))
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
    use tower_authkit::jwt::DpopMode;
    let idp = TestIdp::start().await;
    let layer = |mode| {
        app(idp
            .auth_builder()
            .dpop(mode)
            .dpop_public_url("https://api.example")
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

#[tokio::test]
async fn a_dpop_proof_without_the_server_nonce_gets_one_to_retry_with() {
    use tower_authkit::jwt::DpopMode;
    let idp = TestIdp::start().await;
    let app = app(idp
        .auth_builder()
        .dpop(DpopMode::Required)
        .dpop_public_url("https://api.example")
        .dpop_nonces(b"a nonce secret of at least 32 bytes".to_vec())
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
