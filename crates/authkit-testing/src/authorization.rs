//! The test provider as an OAuth 2.1 authorization server for interactive
//! clients, what MCP clients expect: RFC 8414 metadata, dynamic client
//! registration (RFC 7591), and the authorization code grant with PKCE
//! (S256 only) and resource indicators (RFC 8707).
//!
//! There is no login page: `/authorize` approves at once, as the user named
//! by `login_hint` (default `dev-user`). Everything else is checked as a
//! real server would: the redirect URI exactly as registered (and never
//! redirected to before it is checked), one use per code, a short code
//! lifetime, the PKCE verifier, the client, and the resource.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::idp::{IdpState, misbehave};

/// How long an authorization code can be redeemed.
const CODE_LIFETIME: Duration = Duration::from_secs(60);
/// At most this many registered clients and outstanding codes each: a dev
/// server left running must not grow without bound.
const MAX_ENTRIES: usize = 1_000;
/// The user `/authorize` approves when the request names none.
pub(crate) const DEFAULT_USER: &str = "dev-user";

/// A client registered through `/register`.
#[derive(Clone, Debug)]
pub(crate) struct RegisteredClient {
    redirect_uris: Vec<String>,
    /// `None` for a public client (`token_endpoint_auth_method: none`).
    pub(crate) secret: Option<String>,
}

/// What a code stands for.
#[derive(Clone, Debug)]
pub(crate) struct Grant {
    pub(crate) client_id: String,
    redirect_uri: String,
    /// The authorization request named it, so the token request must too
    /// (RFC 6749 §4.1.3).
    redirect_uri_named: bool,
    code_challenge: String,
    pub(crate) subject: String,
    pub(crate) scope: Option<String>,
    pub(crate) resource: Option<String>,
    issued: Instant,
}

/// Registered clients and outstanding codes.
#[derive(Default)]
pub(crate) struct Registry {
    clients: Mutex<HashMap<String, RegisteredClient>>,
    codes: Mutex<HashMap<String, Grant>>,
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Registry {
    pub(crate) fn client(&self, client_id: &str) -> Option<RegisteredClient> {
        locked(&self.clients).get(client_id).cloned()
    }

    /// Takes the code (once), if it is still fresh.
    fn take_code(&self, code: &str) -> Option<Grant> {
        locked(&self.codes)
            .remove(code)
            .filter(|grant| grant.issued.elapsed() <= CODE_LIFETIME)
    }
}

/// Keeps a map under `MAX_ENTRIES` by dropping the oldest-looking half when
/// full (a test server: simple beats exact).
fn make_room<V>(map: &mut HashMap<String, V>) {
    if map.len() >= MAX_ENTRIES {
        let drop: Vec<String> = map.keys().take(MAX_ENTRIES / 2).cloned().collect();
        for key in drop {
            map.remove(&key);
        }
    }
}

/// 32 random bytes, base64url: client ids, secrets and codes; `None` when
/// the OS has no randomness to give.
fn random_token() -> Option<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).ok()?;
    Some(URL_SAFE_NO_PAD.encode(bytes))
}

/// The answer when no random token could be made.
fn no_randomness() -> Response {
    oauth_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        "no randomness available",
    )
}

pub(crate) fn routes() -> Router<Arc<IdpState>> {
    Router::new()
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route("/register", post(register))
        .route("/authorize", get(authorize))
}

/// The authorization server half of the provider's metadata, shared by
/// RFC 8414 and OpenID discovery.
pub(crate) fn server_metadata(state: &IdpState, issuer: &str) -> Map<String, Value> {
    let base = &state.issuer;
    let mut metadata = Map::new();
    let mut set = |name: &str, value: Value| {
        metadata.insert(name.to_owned(), value);
    };
    set("issuer", json!(issuer));
    set("authorization_endpoint", json!(format!("{base}/authorize")));
    set("token_endpoint", json!(format!("{base}/token")));
    set("registration_endpoint", json!(format!("{base}/register")));
    set("introspection_endpoint", json!(format!("{base}/introspect")));
    set("jwks_uri", json!(format!("{base}{}", state.jwks_path())));
    set("response_types_supported", json!(["code"]));
    set(
        "grant_types_supported",
        json!(["authorization_code", "client_credentials"]),
    );
    set("code_challenge_methods_supported", json!(["S256"]));
    set(
        "token_endpoint_auth_methods_supported",
        json!(["client_secret_basic", "client_secret_post", "none"]),
    );
    set("authorization_response_iss_parameter_supported", json!(true));
    metadata
}

async fn metadata(State(state): State<Arc<IdpState>>) -> Response {
    if let Some(response) = misbehave(&state).await {
        return response;
    }
    Json(Value::Object(server_metadata(&state, &state.issuer))).into_response()
}

pub(crate) fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (status, Json(json!({"error": error, "error_description": description}))).into_response()
}

/// A refused token request, rendered by [`oauth_error`].
pub(crate) struct Refusal {
    status: StatusCode,
    error: &'static str,
    description: &'static str,
}

impl Refusal {
    fn invalid_grant(description: &'static str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_grant",
            description,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        oauth_error(self.status, self.error, self.description)
    }
}

/// A redirect URI a client may register: https, or http on loopback (native
/// apps, RFC 8252 §7.3), no fragment.
fn acceptable_redirect_uri(uri: &str) -> bool {
    url::Url::parse(uri).is_ok_and(|url| {
        let loopback = url.host_str().is_some_and(tower_authkit::__private::is_loopback_host);
        url.fragment().is_none() && (url.scheme() == "https" || (url.scheme() == "http" && loopback))
    })
}

/// RFC 8707 §2: an absolute URI without a fragment.
pub(crate) fn valid_resource(resource: &str) -> bool {
    url::Url::parse(resource).is_ok_and(|url| url.fragment().is_none())
}

/// `POST /register` (RFC 7591): any client with acceptable redirect URIs.
async fn register(State(state): State<Arc<IdpState>>, body: String) -> Response {
    if let Some(response) = misbehave(&state).await {
        return response;
    }
    let Ok(Value::Object(mut request)) = serde_json::from_str::<Value>(&body) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client_metadata",
            "the body must be a JSON object",
        );
    };
    let redirect_uris: Vec<String> = match request.get("redirect_uris") {
        None => Vec::new(),
        Some(Value::Array(uris)) => match uris.iter().map(|u| u.as_str().map(str::to_owned)).collect() {
            Some(uris) => uris,
            None => {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_redirect_uri",
                    "redirect_uris must be strings",
                );
            }
        },
        Some(_) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_redirect_uri",
                "redirect_uris must be an array",
            );
        }
    };
    if let Some(bad) = redirect_uris.iter().find(|uri| !acceptable_redirect_uri(uri)) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_redirect_uri",
            &format!("{bad} is neither https nor http on loopback, or has a fragment"),
        );
    }
    let method = request
        .get("token_endpoint_auth_method")
        .and_then(Value::as_str)
        .unwrap_or("client_secret_basic")
        .to_owned();
    if !["client_secret_basic", "client_secret_post", "none"].contains(&method.as_str()) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client_metadata",
            "token_endpoint_auth_method must be client_secret_basic, client_secret_post or none",
        );
    }
    let Some(client_id) = random_token() else {
        return no_randomness();
    };
    let secret = match (method != "none").then(random_token) {
        None => None,
        Some(Some(secret)) => Some(secret),
        Some(None) => return no_randomness(),
    };
    {
        let mut clients = locked(&state.authorization.clients);
        make_room(&mut clients);
        clients.insert(
            client_id.clone(),
            RegisteredClient {
                redirect_uris: redirect_uris.clone(),
                secret: secret.clone(),
            },
        );
    }
    request.insert("client_id".into(), json!(client_id));
    request.insert("client_id_issued_at".into(), json!(super::token::now()));
    request.insert("redirect_uris".into(), json!(redirect_uris));
    request.insert("token_endpoint_auth_method".into(), json!(method));
    if let Some(secret) = secret {
        request.insert("client_secret".into(), json!(secret));
        request.insert("client_secret_expires_at".into(), json!(0));
    }
    (StatusCode::CREATED, Json(Value::Object(request))).into_response()
}

/// `GET /authorize`: approves at once and redirects with a code.
async fn authorize(State(state): State<Arc<IdpState>>, Query(query): Query<HashMap<String, String>>) -> Response {
    if let Some(response) = misbehave(&state).await {
        return response;
    }
    let param = |name: &str| query.get(name).map(String::as_str).filter(|v| !v.is_empty());
    // Until the client and its redirect URI check out, errors are shown
    // here, never sent to an unchecked URI (RFC 6749 §4.1.2.1).
    let Some(client_id) = param("client_id") else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "client_id is required");
    };
    let Some(client) = state.authorization.client(client_id) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_client", "unknown client_id");
    };
    let redirect_uri = match param("redirect_uri") {
        Some(uri) if client.redirect_uris.iter().any(|r| r == uri) => uri.to_owned(),
        None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
        _ => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "redirect_uri is not one the client registered",
            );
        }
    };
    // Registration only admits URIs that parse; should one not, it is
    // refused like an unregistered URI, never a panic.
    let Ok(redirect_base) = url::Url::parse(&redirect_uri) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "redirect_uri is not a URL");
    };
    let redirect = |outcome: &[(&str, &str)]| {
        let mut url = redirect_base.clone();
        {
            let mut pairs = url.query_pairs_mut();
            for (name, value) in outcome {
                pairs.append_pair(name, value);
            }
            if let Some(state) = param("state") {
                pairs.append_pair("state", state);
            }
            pairs.append_pair("iss", &state.issuer);
        }
        (StatusCode::FOUND, [(LOCATION, url.to_string())]).into_response()
    };
    let refuse = |error: &str, description: &str| redirect(&[("error", error), ("error_description", description)]);
    if param("response_type") != Some("code") {
        return refuse("unsupported_response_type", "response_type must be code");
    }
    let Some(code_challenge) = param("code_challenge") else {
        return refuse("invalid_request", "PKCE is required: code_challenge is missing");
    };
    if param("code_challenge_method") != Some("S256") {
        return refuse("invalid_request", "code_challenge_method must be S256");
    }
    let resource = param("resource");
    if resource.is_some_and(|r| !valid_resource(r)) {
        return refuse("invalid_target", "resource must be an absolute URI without a fragment");
    }
    let Some(code) = random_token() else {
        return no_randomness();
    };
    {
        let mut codes = locked(&state.authorization.codes);
        make_room(&mut codes);
        codes.insert(
            code.clone(),
            Grant {
                client_id: client_id.to_owned(),
                redirect_uri: redirect_uri.clone(),
                redirect_uri_named: param("redirect_uri").is_some(),
                code_challenge: code_challenge.to_owned(),
                subject: param("login_hint").unwrap_or(DEFAULT_USER).to_owned(),
                scope: param("scope").map(str::to_owned),
                resource: resource.map(str::to_owned),
                issued: Instant::now(),
            },
        );
    }
    redirect(&[("code", &code)])
}

/// Redeems a code for `client_id` (the token endpoint authenticated it):
/// the grant, or why not.
pub(crate) fn redeem(
    state: &IdpState,
    client_id: &str,
    form: &serde_json::Map<String, Value>,
) -> Result<Grant, Refusal> {
    let text = |name: &str| form.get(name).and_then(Value::as_str).unwrap_or_default();
    let invalid_grant = Refusal::invalid_grant;
    let grant = state
        .authorization
        .take_code(text("code"))
        .ok_or_else(|| invalid_grant("the code is unknown, used or expired"))?;
    if grant.client_id != client_id {
        return Err(invalid_grant("the code was issued to another client"));
    }
    let redirect_uri = form.get("redirect_uri").and_then(Value::as_str);
    let redirect_uri_fits = match redirect_uri {
        Some(uri) => uri == grant.redirect_uri,
        None => !grant.redirect_uri_named,
    };
    if !redirect_uri_fits {
        return Err(invalid_grant("redirect_uri differs from the authorization request's"));
    }
    let verifier = text("code_verifier");
    // RFC 7636 §4.1: 43 to 128 characters.
    if !(43..=128).contains(&verifier.len()) {
        return Err(invalid_grant("code_verifier must be 43 to 128 characters"));
    }
    if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != grant.code_challenge {
        return Err(invalid_grant("code_verifier does not match the code_challenge"));
    }
    // RFC 8707 §2.2: the token request may narrow to a resource, not widen.
    let requested = form.get("resource").and_then(Value::as_str);
    if let (Some(requested), Some(granted)) = (requested, &grant.resource)
        && requested != granted
    {
        return Err(Refusal {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_target",
            description: "resource differs from the one authorized",
        });
    }
    Ok(grant)
}

// The provider signs tokens: these need a crypto backend.
#[cfg(all(test, any(feature = "aws-lc-rs", feature = "rust-crypto")))]
mod tests {
    use super::*;
    use crate::TestIdp;
    use crate::token::insecure_claims;

    const REDIRECT: &str = "http://127.0.0.1:53682/callback";
    const RESOURCE: &str = "http://127.0.0.1:9/mcp";
    const VERIFIER: &str = "dBjftJeZ4CVP-mJ0kz4f2mxq6N3bAPJ-cF5r8eX0Yb1tWxC7";

    fn http() -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    fn challenge(verifier: &str) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
    }

    async fn json_of(response: reqwest::Response) -> (u16, Value) {
        let status = response.status().as_u16();
        (
            status,
            serde_json::from_str(&response.text().await.unwrap()).unwrap_or(Value::Null),
        )
    }

    /// Registers a client; its registration answer.
    async fn register(idp: &TestIdp, metadata: Value) -> (u16, Value) {
        let response = http()
            .post(format!("{}/register", idp.issuer()))
            .header("content-type", "application/json")
            .body(metadata.to_string())
            .send()
            .await
            .unwrap();
        json_of(response).await
    }

    async fn public_client(idp: &TestIdp) -> String {
        let (status, client) = register(
            idp,
            json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}),
        )
        .await;
        assert_eq!(status, 201, "{client}");
        assert!(client.get("client_secret").is_none(), "{client}");
        client["client_id"].as_str().unwrap().to_owned()
    }

    /// `/authorize` with `params`; the status and the `Location` parameters.
    async fn authorize(idp: &TestIdp, params: &[(&str, &str)]) -> (u16, HashMap<String, String>) {
        let url = url::Url::parse_with_params(&format!("{}/authorize", idp.issuer()), params).unwrap();
        let response = http().get(url).send().await.unwrap();
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get(LOCATION)
            .map(|l| url::Url::parse(l.to_str().unwrap()).unwrap());
        let params = location.map_or_else(HashMap::new, |l| l.query_pairs().into_owned().collect());
        (status, params)
    }

    async fn code_for(idp: &TestIdp, client_id: &str) -> String {
        let challenge = challenge(VERIFIER);
        let (status, landing) = authorize(
            idp,
            &[
                ("response_type", "code"),
                ("client_id", client_id),
                ("redirect_uri", REDIRECT),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
                ("state", "s1"),
                ("scope", "mcp:tools"),
                ("resource", RESOURCE),
                ("login_hint", "alice"),
            ],
        )
        .await;
        assert_eq!(status, 302);
        assert_eq!(landing.get("state").map(String::as_str), Some("s1"));
        assert_eq!(landing.get("iss").map(String::as_str), Some(idp.issuer()));
        landing["code"].clone()
    }

    async fn token(idp: &TestIdp, form: &[(&str, &str)]) -> (u16, Value) {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let response = http()
            .post(format!("{}/token", idp.issuer()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        json_of(response).await
    }

    #[tokio::test]
    async fn an_authorization_code_with_pkce_becomes_a_token_for_the_resource_once() {
        let idp = TestIdp::start().await;
        let client_id = public_client(&idp).await;
        let code = code_for(&idp, &client_id).await;
        let redeem = [
            ("grant_type", "authorization_code"),
            ("client_id", client_id.as_str()),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("resource", RESOURCE),
        ];
        let (status, answer) = token(&idp, &redeem).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["scope"], "mcp:tools");
        let claims = insecure_claims(answer["access_token"].as_str().unwrap()).unwrap();
        assert_eq!(claims["aud"], RESOURCE);
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["client_id"], client_id.as_str());
        assert_eq!(claims["scope"], "mcp:tools");
        // A code is good once.
        let (status, answer) = token(&idp, &redeem).await;
        assert_eq!((status, answer["error"].as_str()), (400, Some("invalid_grant")));
        // A client with one redirect URI may leave it out of both requests.
        let challenge = challenge(VERIFIER);
        let (status, landing) = authorize(
            &idp,
            &[
                ("response_type", "code"),
                ("client_id", &client_id),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
        )
        .await;
        assert_eq!(status, 302);
        let form = [
            ("grant_type", "authorization_code"),
            ("client_id", client_id.as_str()),
            ("code", landing["code"].as_str()),
            ("code_verifier", VERIFIER),
        ];
        let (status, answer) = token(&idp, &form).await;
        assert_eq!(status, 200, "{answer}");
        // Without a resource, the provider's audience.
        let claims = insecure_claims(answer["access_token"].as_str().unwrap()).unwrap();
        assert_eq!(claims["aud"], idp.audience());
    }

    #[tokio::test]
    async fn the_authorization_server_refuses_what_oauth_2_1_refuses() {
        let idp = TestIdp::start().await;
        let client_id = public_client(&idp).await;
        let challenge = challenge(VERIFIER);
        let base = |extra: &[(&'static str, &'static str)]| {
            let mut params: Vec<(&str, String)> = vec![
                ("response_type", "code".into()),
                ("client_id", client_id.clone()),
                ("redirect_uri", REDIRECT.into()),
                ("code_challenge", challenge.clone()),
                ("code_challenge_method", "S256".into()),
            ];
            for (name, value) in extra {
                params.retain(|(n, _)| n != name);
                if !value.is_empty() {
                    params.push((name, (*value).to_owned()));
                }
            }
            params
        };
        // Errors about the client or its redirect URI are never redirected.
        for (extra, expected) in [
            (
                &[("redirect_uri", "http://127.0.0.1:1/elsewhere")][..],
                "invalid_request",
            ),
            (&[("client_id", "nobody")][..], "invalid_client"),
        ] {
            let params = base(extra);
            let params: Vec<(&str, &str)> = params.iter().map(|(n, v)| (*n, v.as_str())).collect();
            let url = url::Url::parse_with_params(&format!("{}/authorize", idp.issuer()), &params).unwrap();
            let (status, body) = json_of(http().get(url).send().await.unwrap()).await;
            assert_eq!((status, body["error"].as_str()), (400, Some(expected)), "{extra:?}");
        }
        // Others go back to the client.
        for (extra, expected) in [
            (&[("code_challenge_method", "plain")][..], "invalid_request"),
            (&[("code_challenge", "")][..], "invalid_request"),
            (&[("response_type", "token")][..], "unsupported_response_type"),
            (&[("resource", "http://127.0.0.1:9/mcp#frag")][..], "invalid_target"),
            (&[("resource", "not a uri")][..], "invalid_target"),
        ] {
            let params = base(extra);
            let params: Vec<(&str, &str)> = params.iter().map(|(n, v)| (*n, v.as_str())).collect();
            let (status, landing) = authorize(&idp, &params).await;
            assert_eq!(status, 302, "{extra:?}");
            assert_eq!(landing.get("error").map(String::as_str), Some(expected), "{extra:?}");
            assert!(!landing.contains_key("code"), "{extra:?}");
        }
        // The verifier, the redirect URI and the resource must match.
        for (name, value, expected) in [
            ("code_verifier", "x".repeat(43), "invalid_grant"),
            (
                "redirect_uri",
                "http://127.0.0.1:53682/other".to_owned(),
                "invalid_grant",
            ),
            ("resource", "http://127.0.0.1:9/other".to_owned(), "invalid_target"),
        ] {
            let code = code_for(&idp, &client_id).await;
            let mut form = vec![
                ("grant_type", "authorization_code"),
                ("client_id", client_id.as_str()),
                ("code", code.as_str()),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
            ];
            form.retain(|(n, _)| *n != name);
            if !value.is_empty() {
                form.push((name, value.as_str()));
            }
            let (status, answer) = token(&idp, &form).await;
            assert_eq!((status, answer["error"].as_str()), (400, Some(expected)), "{name}");
        }
        // A public client has no client credentials.
        let (status, answer) = token(&idp, &[("grant_type", "client_credentials"), ("client_id", &client_id)]).await;
        assert_eq!((status, answer["error"].as_str()), (401, Some("unauthorized_client")));
        // Redirect URIs: https, or http on loopback only.
        let (status, answer) = register(&idp, json!({"redirect_uris": ["http://app.example/cb"]})).await;
        assert_eq!((status, answer["error"].as_str()), (400, Some("invalid_redirect_uri")));
        let (status, answer) = register(&idp, json!("not an object")).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some("invalid_client_metadata"))
        );
    }

    #[tokio::test]
    async fn client_credentials_name_the_requested_resource_as_audience() {
        let idp = TestIdp::start().await;
        let credentials = [
            ("grant_type", "client_credentials"),
            ("client_id", crate::DEV_CLIENT_ID),
            ("client_secret", crate::DEV_CLIENT_SECRET),
        ];
        let (status, answer) = token(&idp, &[&credentials[..], &[("resource", RESOURCE)]].concat()).await;
        assert_eq!(status, 200, "{answer}");
        let claims = insecure_claims(answer["access_token"].as_str().unwrap()).unwrap();
        assert_eq!(claims["aud"], RESOURCE);
        // Without a resource, the provider's audience, as before.
        let (_, answer) = token(&idp, &credentials).await;
        let claims = insecure_claims(answer["access_token"].as_str().unwrap()).unwrap();
        assert_eq!(claims["aud"], idp.audience());
        let (status, answer) = token(&idp, &[&credentials[..], &[("resource", "relative/path")]].concat()).await;
        assert_eq!((status, answer["error"].as_str()), (400, Some("invalid_target")));
    }
}
