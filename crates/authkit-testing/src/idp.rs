use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use jsonwebtoken::EncodingKey;
use serde_json::{Map, Value, json};

use super::keys::{KEYS, KeyKind, KeyMaterial};

/// The generated test keys by role (`keys::KEYS` is in generation order,
/// see `scripts/gen_test_keys.py`).
mod material {
    use super::{KEYS, KeyMaterial};

    /// RS256 `rsa-1`, published from the start.
    pub(super) const RSA_PUBLISHED: &KeyMaterial = &KEYS[0];
    /// PS256 `ps-1`, published.
    pub(super) const RSA_PSS_PUBLISHED: &KeyMaterial = &KEYS[1];
    /// The RSA key `rotate` swaps in (and out again).
    pub(super) const RSA_ROTATED: &KeyMaterial = &KEYS[2];
    /// An RSA key never published: tokens it signs must be refused.
    pub(super) const RSA_FOREIGN: &KeyMaterial = &KEYS[3];
    /// ES256 `ec-1`, published.
    pub(super) const P256_PUBLISHED: &KeyMaterial = &KEYS[4];
    /// A P-256 key never published.
    pub(super) const P256_FOREIGN: &KeyMaterial = &KEYS[5];
    /// ES384 `ec384-1`, published.
    pub(super) const P384_PUBLISHED: &KeyMaterial = &KEYS[6];
    /// EdDSA `ed-1`, published.
    pub(super) const ED25519_PUBLISHED: &KeyMaterial = &KEYS[7];
    /// An Ed25519 key never published.
    pub(super) const ED25519_FOREIGN: &KeyMaterial = &KEYS[8];
}
use super::proxy_mock::ProxyMock;
use super::token::TokenBuilder;
use tower_authkit::jwt::{Algorithm, JwksAuthBuilder, JwksAuthLayer};

/// How the provider misbehaves, for resilience tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdpFailure {
    /// Serve normally.
    None,
    /// Answer every request with 500.
    Error,
    /// Never answer (until the mode changes; at most 60 s).
    Hang,
}

#[derive(Clone)]
pub(crate) struct SigningKey {
    pub(crate) kid: String,
    pub(crate) alg: Algorithm,
    pub(crate) encoding: EncodingKey,
    pub(crate) material: &'static KeyMaterial,
}

impl SigningKey {
    fn new(kid: String, alg: Algorithm, material: &'static KeyMaterial) -> Self {
        let pem = material.private_pem.as_bytes();
        let encoding = match material.kind {
            KeyKind::Rsa => EncodingKey::from_rsa_pem(pem),
            KeyKind::P256 | KeyKind::P384 => EncodingKey::from_ec_pem(pem),
            KeyKind::Ed25519 => EncodingKey::from_ed_pem(pem),
        }
        .expect("bundled test keys parse");
        Self {
            kid,
            alg,
            encoding,
            material,
        }
    }

    fn jwk(&self) -> Value {
        let (a, b) = self.material.public;
        let mut jwk = match self.material.kind {
            KeyKind::Rsa => json!({"kty": "RSA", "n": a, "e": b}),
            KeyKind::P256 => json!({"kty": "EC", "crv": "P-256", "x": a, "y": b}),
            KeyKind::P384 => json!({"kty": "EC", "crv": "P-384", "x": a, "y": b}),
            KeyKind::Ed25519 => json!({"kty": "OKP", "crv": "Ed25519", "x": a}),
        };
        jwk["kid"] = json!(self.kid);
        jwk["alg"] = json!(self.alg.as_str());
        jwk["use"] = json!("sig");
        jwk
    }
}

struct KeyRing {
    published: Vec<SigningKey>,
    rotations: usize,
}

pub(crate) struct IdpState {
    pub(crate) issuer: String,
    pub(crate) audience: String,
    keys: Mutex<KeyRing>,
    foreign: SigningKey,
    jwks_fetches: AtomicUsize,
    discovery_fetches: AtomicUsize,
    identity_fetches: AtomicUsize,
    failure: AtomicU8,
    pub(crate) proxy: ProxyMock,
    pub(crate) proxy_me_calls: AtomicUsize,
    pub(crate) proxy_permission_calls: AtomicUsize,
    pub(crate) introspections: AtomicUsize,
    opaque_issued: AtomicUsize,
    /// Where discovery says the key set is (path), see `move_jwks_uri`.
    jwks_path: Mutex<String>,
    /// Opaque tokens and their introspection answers.
    pub(crate) opaque: Mutex<HashMap<String, Map<String, Value>>>,
    /// Registered clients and authorization codes.
    pub(crate) authorization: super::authorization::Registry,
}

impl IdpState {
    fn ring(&self) -> MutexGuard<'_, KeyRing> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The newest published key for `alg`.
    pub(crate) fn signing_key(&self, alg: Algorithm) -> SigningKey {
        self.ring()
            .published
            .iter()
            .rev()
            .find(|k| k.alg == alg)
            .cloned()
            .unwrap_or_else(|| panic!("TestIdp publishes no {alg} key (retired?)"))
    }

    /// A key of the same algorithm that the provider never published.
    pub(crate) fn foreign_key(&self, alg: Algorithm) -> SigningKey {
        match alg {
            Algorithm::RS256 => self.foreign.clone(),
            Algorithm::ES256 => SigningKey::new(String::new(), alg, material::P256_FOREIGN),
            Algorithm::EdDSA => SigningKey::new(String::new(), alg, material::ED25519_FOREIGN),
            other => SigningKey::new(String::new(), other, material::RSA_FOREIGN),
        }
    }

    /// The published keys usable for `alg`, for verifying tokens it issued.
    pub(crate) fn verifying_keys(&self, alg: Algorithm) -> Vec<jsonwebtoken::DecodingKey> {
        published_with(self, &[alg])
            .iter()
            .filter_map(|k| {
                let (a, b) = k.material.public;
                match k.material.kind {
                    KeyKind::Rsa => jsonwebtoken::DecodingKey::from_rsa_components(a, b).ok(),
                    KeyKind::P256 | KeyKind::P384 => jsonwebtoken::DecodingKey::from_ec_components(a, b).ok(),
                    KeyKind::Ed25519 => jsonwebtoken::DecodingKey::from_ed_components(a).ok(),
                }
            })
            .collect()
    }

    pub(crate) fn opaque(&self) -> MutexGuard<'_, HashMap<String, Map<String, Value>>> {
        self.opaque.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn jwks_path(&self) -> String {
        self.jwks_path.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn failure(&self) -> IdpFailure {
        match self.failure.load(Ordering::SeqCst) {
            1 => IdpFailure::Error,
            2 => IdpFailure::Hang,
            _ => IdpFailure::None,
        }
    }
}

/// An in-process OpenID provider on `127.0.0.1:<ephemeral>` serving discovery
/// (`/.well-known/openid-configuration`) and a JWKS (`/jwks`) with RSA (RS256,
/// PS256), EC (ES256, ES384) and Ed25519 (EdDSA) keys. Stops when dropped.
///
/// The keys are fixed test keys shipped with the crate: never trust them
/// outside tests.
pub struct TestIdp {
    state: Arc<IdpState>,
    addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for TestIdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestIdp").field("issuer", &self.state.issuer).finish()
    }
}

impl Drop for TestIdp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl TestIdp {
    /// Starts a provider on an ephemeral loopback port with audience `test-api`.
    pub async fn start() -> TestIdp {
        TestIdpBuilder::default().start().await
    }

    /// Starts a provider whose tokens carry `audience`.
    pub async fn start_with_audience(audience: &str) -> TestIdp {
        TestIdp::builder().audience(audience).start().await
    }

    /// Configures a provider (bind address, audience, the proxy mock's users).
    pub fn builder() -> TestIdpBuilder {
        TestIdpBuilder::default()
    }
}

/// Configures a [`TestIdp`].
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until it is built"]
pub struct TestIdpBuilder {
    bind: SocketAddr,
    audience: String,
    proxy: ProxyMock,
    cors: Option<CorsOrigins>,
}

impl Default for TestIdpBuilder {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            audience: "test-api".to_owned(),
            proxy: ProxyMock::default(),
            cors: None,
        }
    }
}

/// Which browser origins may call the dev server (feature `dev-server`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CorsOrigins {
    /// Any origin, without credentials (`Access-Control-Allow-Origin: *`).
    Any,
    /// Exactly these origins (`scheme://host[:port]`), credentials allowed.
    List(Vec<String>),
}

impl CorsOrigins {
    /// Parses `*` or a comma-separated list of origins (as in
    /// `AUTHKIT_DEV_CORS_ORIGINS`).
    pub fn parse(spec: &str) -> Result<Self, String> {
        let spec = spec.trim();
        if spec == "*" {
            return Ok(CorsOrigins::Any);
        }
        let origins = spec
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(|o| {
                tower_authkit::__private::normalized_origin(o)
                    .ok_or_else(|| format!("{o:?} is not an origin (scheme://host[:port])"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if origins.is_empty() {
            return Err("no origin given (use * for any)".to_owned());
        }
        Ok(CorsOrigins::List(origins))
    }

    fn layer(&self) -> tower_http::cors::CorsLayer {
        use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, CorsLayer};
        match self {
            CorsOrigins::Any => CorsLayer::new()
                .allow_origin(AllowOrigin::any())
                .allow_methods(AllowMethods::any())
                .allow_headers(AllowHeaders::any()),
            // Credentials forbid wildcards: mirror what the browser asks for.
            CorsOrigins::List(origins) => CorsLayer::new()
                .allow_origin(AllowOrigin::list(
                    origins
                        .iter()
                        .filter_map(|o| http::HeaderValue::try_from(o.as_str()).ok()),
                ))
                .allow_methods(AllowMethods::mirror_request())
                .allow_headers(AllowHeaders::mirror_request())
                .allow_credentials(true),
        }
    }
}

impl TestIdpBuilder {
    /// Where to listen (default `127.0.0.1:0`).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// The audience of minted tokens (default `test-api`).
    pub fn audience(mut self, audience: &str) -> Self {
        self.audience = audience.to_owned();
        self
    }

    /// The auth-proxy emulation's users, tokens and permissions.
    pub fn proxy(mut self, proxy: ProxyMock) -> Self {
        self.proxy = proxy;
        self
    }

    /// Answers CORS preflights and adds CORS headers for `origins`.
    pub fn cors(mut self, origins: CorsOrigins) -> Self {
        self.cors = Some(origins);
        self
    }

    /// Starts the provider; panics when the address cannot be bound (tests).
    pub async fn start(self) -> TestIdp {
        self.try_start().await.expect("bind the test provider's address")
    }

    /// Starts the provider.
    pub async fn try_start(self) -> std::io::Result<TestIdp> {
        tower_authkit::__private::ensure_provider().map_err(std::io::Error::other)?;
        let listener = tokio::net::TcpListener::bind(self.bind).await?;
        let addr = listener.local_addr()?;
        let audience = self.audience.as_str();
        let published = vec![
            SigningKey::new("rsa-1".into(), Algorithm::RS256, material::RSA_PUBLISHED),
            SigningKey::new("ps-1".into(), Algorithm::PS256, material::RSA_PSS_PUBLISHED),
            SigningKey::new("ec-1".into(), Algorithm::ES256, material::P256_PUBLISHED),
            SigningKey::new("ec384-1".into(), Algorithm::ES384, material::P384_PUBLISHED),
            SigningKey::new("ed-1".into(), Algorithm::EdDSA, material::ED25519_PUBLISHED),
        ];
        let state = Arc::new(IdpState {
            issuer: format!("http://{addr}"),
            audience: audience.to_owned(),
            keys: Mutex::new(KeyRing {
                published,
                rotations: 0,
            }),
            foreign: SigningKey::new(String::new(), Algorithm::RS256, material::RSA_FOREIGN),
            jwks_fetches: AtomicUsize::new(0),
            discovery_fetches: AtomicUsize::new(0),
            identity_fetches: AtomicUsize::new(0),
            failure: AtomicU8::new(0),
            proxy: self.proxy,
            proxy_me_calls: AtomicUsize::new(0),
            proxy_permission_calls: AtomicUsize::new(0),
            introspections: AtomicUsize::new(0),
            opaque_issued: AtomicUsize::new(0),
            jwks_path: Mutex::new("/jwks".to_owned()),
            opaque: Mutex::new(HashMap::new()),
            authorization: Default::default(),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/t/{tenant}/.well-known/openid-configuration", get(tenant_discovery))
            .route("/jwks", get(jwks))
            .route("/moved/{name}/jwks", get(moved_jwks))
            .route("/cdn-cgi/access/certs", get(cloudflare_certs))
            .route("/cdn-cgi/access/get-identity", get(cloudflare_identity))
            .route("/.well-known/pomerium/jwks.json", get(pomerium_jwks))
            .merge(super::proxy_mock::routes())
            .merge(super::oauth::routes())
            .merge(super::authorization::routes())
            .with_state(Arc::clone(&state));
        let app = match &self.cors {
            Some(origins) => app.layer(origins.layer()),
            None => app,
        };
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(TestIdp { state, addr, server })
    }
}

impl TestIdp {
    /// The issuer, `http://127.0.0.1:<port>`.
    pub fn issuer(&self) -> &str {
        &self.state.issuer
    }

    /// The audience its tokens carry by default.
    pub fn audience(&self) -> &str {
        &self.state.audience
    }

    /// The socket address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The JWKS URL.
    pub fn jwks_url(&self) -> String {
        format!("{}/jwks", self.state.issuer)
    }

    /// A [`JwksAuthLayer`] builder preset with this provider's issuer and audience.
    pub fn auth_builder(&self) -> JwksAuthBuilder {
        JwksAuthLayer::builder().issuer(self.issuer()).audience(self.audience())
    }

    /// Starts a token: `sub` = `test-user`, this issuer and audience, `iat`
    /// now, `exp` in one hour, RS256 with the current RSA key.
    pub fn token(&self) -> TokenBuilder {
        TokenBuilder::new(Arc::clone(&self.state))
    }

    /// Publishes a new RS256 key and signs new RS256 tokens with it; the old
    /// key stays published until [`retire`](Self::retire)d. Returns the new kid.
    pub fn rotate(&self) -> String {
        let mut ring = self.state.ring();
        ring.rotations += 1;
        let kid = format!("rsa-{}", ring.rotations + 1);
        let material = if ring.rotations % 2 == 1 {
            material::RSA_ROTATED
        } else {
            material::RSA_PUBLISHED
        };
        ring.published
            .push(SigningKey::new(kid.clone(), Algorithm::RS256, material));
        kid
    }

    /// Moves the key set to `{issuer}/moved/{name}/jwks`: discovery names
    /// the new place, and the old one answers 404. Returns the new URL.
    pub fn move_jwks_uri(&self, name: &str) -> String {
        let path = format!("/moved/{name}/jwks");
        *self.state.jwks_path.lock().unwrap_or_else(|p| p.into_inner()) = path.clone();
        format!("{}{path}", self.state.issuer)
    }

    /// Stops publishing the key `kid`.
    pub fn retire(&self, kid: &str) {
        self.state.ring().published.retain(|k| k.kid != kid);
    }

    /// The private key (PKCS#8 PEM) behind a published `kid`, for minting
    /// tokens with other JWT libraries in interop tests. Test keys only.
    pub fn private_key_pem(&self, kid: &str) -> Option<String> {
        self.state
            .ring()
            .published
            .iter()
            .find(|k| k.kid == kid)
            .map(|k| k.material.private_pem.to_owned())
    }

    /// The kids currently published.
    pub fn kids(&self) -> Vec<String> {
        self.state.ring().published.iter().map(|k| k.kid.clone()).collect()
    }

    /// The JWKS document as served.
    pub fn jwks(&self) -> Value {
        jwks_document(&self.state)
    }

    /// How many JWKS requests arrived (including failed ones).
    pub fn jwks_fetches(&self) -> usize {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }

    /// The issuer of tenant `tenant`: `{issuer}/t/{tenant}`, discovered at
    /// `{issuer}/t/{tenant}/.well-known/openid-configuration` and sharing
    /// the provider's key set (as Entra ID's tenants do).
    pub fn tenant_issuer(&self, tenant: &str) -> String {
        format!("{}/t/{tenant}", self.state.issuer)
    }

    /// The tenant issuers as a [`TenantIssuers`](tower_authkit::jwt::TenantIssuers)
    /// pattern: `{issuer}/t/{tenant}`.
    pub fn tenant_pattern(&self) -> String {
        format!("{}/t/{{tenant}}", self.state.issuer)
    }

    /// How many discovery requests arrived (including failed ones and
    /// tenants').
    pub fn discovery_fetches(&self) -> usize {
        self.state.discovery_fetches.load(Ordering::SeqCst)
    }

    /// The Cloudflare Access team domain this provider emulates (its issuer):
    /// certs at `/cdn-cgi/access/certs` in Cloudflare's shape, and
    /// `/cdn-cgi/access/get-identity`.
    pub fn cf_team_domain(&self) -> &str {
        &self.state.issuer
    }

    /// A Cloudflare Access user token for application `aud_tag`: `aud` an
    /// array, `type: app`, a UUID `sub`, `email`, `country`, `identity_nonce`.
    pub fn cf_user_token(&self, aud_tag: &str) -> TokenBuilder {
        self.token()
            .audience([aud_tag])
            .sub("7335d417-61da-459d-899c-0a01c76a2f94")
            .email("user@example.com")
            .claim("type", "app")
            .claim("country", "NL")
            .claim("identity_nonce", "6ei69kawdKzMIAPF")
            .claim("nbf", super::token::now())
    }

    /// A Cloudflare Access service-token token: `common_name` =
    /// `<client_id>.access`, empty `sub`, no email.
    pub fn cf_service_token(&self, aud_tag: &str, client_id: &str) -> TokenBuilder {
        self.token()
            .audience([aud_tag])
            .sub("")
            .claim("type", "app")
            .claim("common_name", format!("{client_id}.access"))
            .claim("nbf", super::token::now())
    }

    /// How many `get-identity` requests arrived.
    pub fn identity_fetches(&self) -> usize {
        self.state.identity_fetches.load(Ordering::SeqCst)
    }

    /// The Pomerium JWKS URL this provider serves (`/.well-known/pomerium/jwks.json`).
    pub fn pomerium_jwks_url(&self) -> String {
        format!("{}/.well-known/pomerium/jwks.json", self.state.issuer)
    }

    /// A Pomerium assertion for `route_host`: ES256, `iss` = `aud` = the host,
    /// `exp` = `iat` + 5 min, `sub`/`user`/`email`/`name`/`sid`/`jti`, no groups.
    pub fn pomerium_assertion(&self, route_host: &str) -> TokenBuilder {
        let now = super::token::now();
        self.token()
            .alg(Algorithm::ES256)
            .issuer(route_host)
            .audience(route_host)
            .sub("user-123")
            .claim("user", "user-123")
            .email("user@example.com")
            .name("Test User")
            .groups(Vec::<String>::new())
            .claim("sid", "session-1")
            .claim("jti", format!("jti-{now}"))
            .claim("exp", now + 300)
    }

    /// How many `get-me` calls the auth-proxy emulation received.
    pub fn proxy_me_calls(&self) -> usize {
        self.state.proxy_me_calls.load(Ordering::SeqCst)
    }

    /// How many permission checks the auth-proxy emulation received.
    pub fn proxy_permission_calls(&self) -> usize {
        self.state.proxy_permission_calls.load(Ordering::SeqCst)
    }

    /// How many introspection requests arrived.
    pub fn introspections(&self) -> usize {
        self.state.introspections.load(Ordering::SeqCst)
    }

    /// Registers an opaque access token whose introspection answer is
    /// `active: true` with this issuer, client `dev-client`, `exp` in one hour,
    /// and `fields` on top (use `"exp"` to shorten it).
    pub fn issue_opaque_token(&self, fields: Value) -> String {
        // A counter, not the table's size: revoked tokens leave the table,
        // and a new token must never reuse one's name.
        let token = format!("opaque-{}", self.state.opaque_issued.fetch_add(1, Ordering::SeqCst) + 1);
        let mut answer = Map::new();
        answer.insert("active".into(), json!(true));
        answer.insert("iss".into(), json!(self.state.issuer));
        answer.insert("client_id".into(), json!(super::oauth::DEV_CLIENT_ID));
        answer.insert("token_type".into(), json!("Bearer"));
        answer.insert("exp".into(), json!(super::token::now() + 3600));
        if let Value::Object(fields) = fields {
            answer.extend(fields);
        }
        self.state.opaque().insert(token.clone(), answer);
        token
    }

    /// Makes an opaque token inactive.
    pub fn revoke(&self, token: &str) {
        self.state.opaque().remove(token);
    }

    /// Makes the provider fail or hang, or recover with [`IdpFailure::None`].
    pub fn set_failure(&self, failure: IdpFailure) {
        let code = match failure {
            IdpFailure::None => 0,
            IdpFailure::Error => 1,
            IdpFailure::Hang => 2,
        };
        self.state.failure.store(code, Ordering::SeqCst);
    }
}

fn jwks_document(state: &IdpState) -> Value {
    let keys: Vec<Value> = state.ring().published.iter().map(SigningKey::jwk).collect();
    json!({ "keys": keys })
}

/// Applies the failure mode; `Some(response)` short-circuits the handler.
pub(crate) async fn misbehave(state: &IdpState) -> Option<Response> {
    let started = Instant::now();
    loop {
        match state.failure() {
            IdpFailure::None => return None,
            IdpFailure::Error => {
                return Some((StatusCode::INTERNAL_SERVER_ERROR, "injected failure").into_response());
            }
            IdpFailure::Hang if started.elapsed() > Duration::from_secs(60) => {
                return Some(StatusCode::GATEWAY_TIMEOUT.into_response());
            }
            IdpFailure::Hang => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

async fn discovery(State(state): State<Arc<IdpState>>) -> Response {
    discovery_for(&state, &state.issuer).await
}

/// A tenant's discovery document (issuer `{issuer}/t/{tenant}`), with the
/// provider's one key set, as Entra ID serves its tenants.
async fn tenant_discovery(
    State(state): State<Arc<IdpState>>,
    axum::extract::Path(tenant): axum::extract::Path<String>,
) -> Response {
    discovery_for(&state, &format!("{}/t/{tenant}", state.issuer)).await
}

async fn discovery_for(state: &IdpState, issuer: &str) -> Response {
    state.discovery_fetches.fetch_add(1, Ordering::SeqCst);
    if let Some(response) = misbehave(state).await {
        return response;
    }
    let mut document = super::authorization::server_metadata(state, issuer);
    document.insert("subject_types_supported".into(), json!(["public"]));
    document.insert(
        "id_token_signing_alg_values_supported".into(),
        json!(["RS256", "PS256", "ES256", "ES384", "EdDSA"]),
    );
    Json(Value::Object(document)).into_response()
}

async fn jwks(State(state): State<Arc<IdpState>>) -> Response {
    serve_jwks_at(&state, "/jwks").await
}

async fn moved_jwks(
    State(state): State<Arc<IdpState>>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Response {
    serve_jwks_at(&state, &format!("/moved/{name}/jwks")).await
}

/// The key set, where discovery says it is; 404 at a path it left.
async fn serve_jwks_at(state: &IdpState, path: &str) -> Response {
    state.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    if state.jwks_path() != path {
        return StatusCode::NOT_FOUND.into_response();
    }
    if let Some(response) = misbehave(state).await {
        return response;
    }
    Json(jwks_document(state)).into_response()
}

fn published_with(state: &IdpState, algs: &[Algorithm]) -> Vec<SigningKey> {
    state
        .ring()
        .published
        .iter()
        .filter(|k| algs.contains(&k.alg))
        .cloned()
        .collect()
}

/// Cloudflare's exact certs shape: `keys`, plus `public_cert` and `public_certs`.
async fn cloudflare_certs(State(state): State<Arc<IdpState>>) -> Response {
    state.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    if let Some(response) = misbehave(&state).await {
        return response;
    }
    let keys = published_with(&state, &[Algorithm::RS256]);
    let certs: Vec<Value> = keys
        .iter()
        .map(|k| json!({"kid": k.kid, "cert": k.material.cert_pem}))
        .collect();
    Json(json!({
        "keys": keys.iter().map(SigningKey::jwk).collect::<Vec<_>>(),
        "public_cert": certs.last().cloned().unwrap_or(Value::Null),
        "public_certs": certs,
    }))
    .into_response()
}

/// An emulation of `get-identity`: reads the `CF_Authorization` cookie and
/// answers with a profile built from the token's claims, plus fields this
/// crate does not model (to prove they are kept).
async fn cloudflare_identity(State(state): State<Arc<IdpState>>, headers: axum::http::HeaderMap) -> Response {
    state.identity_fetches.fetch_add(1, Ordering::SeqCst);
    if let Some(response) = misbehave(&state).await {
        return response;
    }
    let token = headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().strip_prefix("CF_Authorization="))
        .next()
        .map(str::to_owned);
    let claims = token.as_deref().and_then(super::token::insecure_claims);
    let Some(claims) = claims else {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"err": "no valid CF_Authorization cookie"})),
        )
            .into_response();
    };
    let text = |name: &str| claims.get(name).cloned().unwrap_or(Value::Null);
    Json(json!({
        "email": text("email"),
        "idp": {"id": "b5ba7a8e-a1d4-4d7e-9d6f-7a2f0b4f8c11", "type": "onetimepin"},
        "geo": {"country": text("country")},
        "user_uuid": text("sub"),
        "account_id": "1a2b3c4d5e6f",
        "iat": text("iat"),
        "ip": "127.0.0.1",
        "auth_status": "NONE",
        "common_name": text("common_name"),
        "is_warp": false,
        "is_gateway": false,
        "version": 2,
        "device_sessions": {},
        "groups": [{"id": "g1", "name": "engineering"}],
        "x_unmodelled_field": {"kept": true},
    }))
    .into_response()
}

async fn pomerium_jwks(State(state): State<Arc<IdpState>>) -> Response {
    state.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    if let Some(response) = misbehave(&state).await {
        return response;
    }
    let keys = published_with(&state, &[Algorithm::ES256, Algorithm::RS256]);
    Json(json!({"keys": keys.iter().map(SigningKey::jwk).collect::<Vec<_>>()})).into_response()
}

#[cfg(test)]
mod cors_tests {
    use super::CorsOrigins;

    #[test]
    fn origins_are_any_or_an_exact_list() {
        assert_eq!(CorsOrigins::parse(" * "), Ok(CorsOrigins::Any));
        assert_eq!(
            CorsOrigins::parse("http://a.test:5173, https://b.test"),
            Ok(CorsOrigins::List(vec![
                "http://a.test:5173".into(),
                "https://b.test".into()
            ]))
        );
        for bad in ["", "a.test", "https://b.test/path", "ftp://c.test", "*,https://d.test"] {
            assert!(CorsOrigins::parse(bad).is_err(), "{bad:?}");
        }
    }
}
