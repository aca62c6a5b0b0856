//! [`JwksAuthenticator`] and its builder.

use std::sync::Arc;
use std::time::Duration;

use super::algorithm::{Algorithm, AlgorithmSet};
use super::checks::TokenChecks;
use super::dpop::{DpopCheck, DpopMode, DpopPolicy, ProofContext};
use super::issuers::Issuers;
use super::jwk::VerifyingKey;
use super::keys::{CachePolicy, KeyAnswer, KeyStore};
use super::token_cache::{TokenCache, TokenDigest};
use super::verify::{self, ClaimRules, Jws};
use crate::error::ConfigError;
use crate::layer::{AuthFuture, AuthLayer, Authentication, Authenticator, RequestHead};
use crate::principal::{Principal, RawClaims, RoleResolver, principal_from_claims};
use crate::rejection::AuthError;
use crate::token::{Credential, SourceKind, TokenSource, TokenSources};
use crate::upstream::{Backoff, Endpoint, FetchPolicy, Fetcher, check_issuer_url, parse_url};

/// The JWKS preset of [`AuthLayer`]: bearer JWTs verified against an OpenID
/// provider's keys. Build it with [`JwksAuthLayer::builder`].
pub type JwksAuthLayer = AuthLayer<JwksAuthenticator>;

/// Verifies JWTs against a JWKS, for one issuer or a set of them. Cheap to
/// clone.
#[derive(Clone)]
pub struct JwksAuthenticator {
    inner: Arc<Shared>,
}

/// What every issuer of one layer shares: the verified-token cache, and
/// the table that routes a token to its issuer.
struct Shared {
    /// `None` when turned off.
    tokens: Option<TokenCache>,
    issuers: Issuers,
}

/// One trusted issuer: its key set, claim rules and mapping. Keys of one
/// issuer never verify another's tokens.
pub(crate) struct Issuer {
    pub(crate) store: Arc<KeyStore>,
    leeway: Duration,
    rules: ClaimRules,
    allowed: AlgorithmSet,
    checks: TokenChecks,
    pub(crate) dpop: DpopPolicy,
    profile: Arc<dyn ClaimsProfile>,
    resolver: Option<Arc<dyn RoleResolver>>,
    /// False for the issuers of a tenant pattern not trusted for roles:
    /// their principals' roles, groups and permissions grant nothing.
    pub(crate) roles_trusted: bool,
}

/// What a preset adds on top of the registered-claim rules: its own claim
/// checks and its own mapping to a [`Principal`]. Cloudflare Access and the
/// Pomerium assertion are this JWKS authenticator with another profile.
pub(crate) trait ClaimsProfile: Send + Sync + 'static {
    /// Checks beyond `exp`/`nbf`/`iss`/`aud`, e.g. Cloudflare's `type`.
    fn check(&self, _claims: &RawClaims) -> Result<(), AuthError> {
        Ok(())
    }

    /// Maps verified claims to the principal.
    fn principal(&self, claims: RawClaims, audiences: &[String]) -> Principal;
}

/// Plain OpenID Connect / OAuth access tokens.
struct OidcProfile;

impl ClaimsProfile for OidcProfile {
    fn principal(&self, claims: RawClaims, audiences: &[String]) -> Principal {
        principal_from_claims("jwks", claims, audiences)
    }
}

impl std::fmt::Debug for JwksAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksAuthenticator")
            .field("issuers", &self.inner.issuers)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("issuer", &self.rules.issuer)
            .field("audiences", &self.rules.audiences)
            .finish_non_exhaustive()
    }
}

impl Issuer {
    /// The `iss` this issuer's tokens carry.
    pub(crate) fn name(&self) -> &str {
        &self.rules.issuer
    }

    /// Signature, then claims, then the principal. Runs once per token.
    fn verify_and_map(&self, jws: &Jws<'_>, key: &VerifyingKey) -> Result<Principal, AuthError> {
        jws.verify_signature(key)?;
        let claims = jws.claims()?;
        self.rules.check(&claims)?;
        self.checks.check(jws.access_token_typ, &claims)?;
        self.profile.check(&claims)?;
        let principal = self.profile.principal(claims, &self.rules.audiences);
        Ok(if self.roles_trusted {
            principal
        } else {
            principal.with_untrusted_roles()
        })
    }

    async fn resolve(&self, principal: Principal) -> Result<Principal, AuthError> {
        match &self.resolver {
            None => Ok(principal),
            Some(resolver) => {
                let roles = resolver.resolve(&principal).await?;
                Ok(principal.with_roles(roles))
            }
        }
    }
}

impl Shared {
    /// Verifies, maps and resolves roles, then caches the outcome.
    async fn verify_with(
        &self,
        issuer: &Arc<Issuer>,
        token: &str,
        digest: Option<TokenDigest>,
        key: Arc<VerifyingKey>,
    ) -> Result<Principal, AuthError> {
        let jws = verify::parse(token, issuer.allowed)?;
        let principal = issuer.verify_and_map(&jws, &key)?;
        let principal = issuer.resolve(principal).await?;
        self.remember(digest, &principal, issuer, key);
        Ok(principal)
    }

    fn remember(
        &self,
        digest: Option<TokenDigest>,
        principal: &Principal,
        issuer: &Arc<Issuer>,
        key: Arc<VerifyingKey>,
    ) {
        if let (Some(tokens), Some(digest)) = (&self.tokens, digest) {
            tokens.insert(digest, principal, issuer, key, issuer.leeway);
        }
    }
}

/// The signing keys could not be loaded: where from, and why (the fetch's
/// own cause, e.g. `connection refused`, `answered HTTP status 404`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeysNotReady {
    source: String,
    cause: String,
}

impl KeysNotReady {
    /// The key set URL, or the discovery document it is read from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Why the fetch failed.
    pub fn cause(&self) -> &str {
        &self.cause
    }
}

impl std::fmt::Display for KeysNotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "signing keys from {} are not available: {}", self.source, self.cause)
    }
}

impl std::error::Error for KeysNotReady {}

impl JwksAuthenticator {
    /// Whether signing keys are loaded and usable, for every issuer
    /// configured by name (issuers found by a tenant pattern are not
    /// counted): a cheap check for readiness probes (no I/O).
    pub fn is_ready(&self) -> bool {
        self.inner.issuers.fixed().all(|issuer| issuer.store.is_ready())
    }

    /// Waits until signing keys are loaded for every issuer configured by
    /// name (fetching them if no fetch is running), or fails with the first
    /// failing fetch's real error. For start-up:
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let layer = tower_authkit::JwksAuthLayer::builder()
    ///     .issuer("https://login.example.com")
    ///     .audience("orders-api")
    ///     .build()?;
    /// layer.authenticator().ready().await?; // e.g. "signing keys from … are not available: connection refused"
    /// # Ok(()) }
    /// ```
    pub async fn ready(&self) -> Result<(), KeysNotReady> {
        let fixed: Vec<Arc<Issuer>> = self.inner.issuers.fixed().cloned().collect();
        for issuer in fixed {
            issuer.store.ready().await.map_err(|error| KeysNotReady {
                source: issuer.store.source(),
                cause: error.to_string(),
            })?;
        }
        Ok(())
    }

    /// Verifies a token outside the request pipeline (a job, a WebSocket
    /// upgrade, a test), with the same rules and key cache as the layer.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        self.verify_credential(Credential::new(token, SourceKind::Bearer), None)
            .outcome()
            .await
    }

    /// How many issuers this authenticator holds now: those configured by
    /// name plus those tenant patterns created (each pattern keeps at most
    /// its `max_issuers`).
    pub fn issuer_count(&self) -> usize {
        self.inner.issuers.count()
    }

    /// How many verified tokens are cached (0 when the cache is off).
    pub fn cached_tokens(&self) -> u64 {
        self.inner.tokens.as_ref().map_or(0, TokenCache::len)
    }

    pub(crate) fn verify_credential(
        &self,
        credential: Credential,
        request: Option<&RequestHead<'_>>,
    ) -> Authentication<AuthFuture> {
        let shared = &self.inner;
        let token = credential.expose();
        // A DPoP proof is checked against the request; taken only when sent.
        let proof = match (credential.source(), request) {
            (SourceKind::Dpop, Some(request)) => Some(ProofContext::of(request)),
            _ => None,
        };
        // One digest per request serves the lookup and a later insert.
        let digest = shared.tokens.as_ref().map(|cache| cache.digest(token));
        if let (Some(cache), Some(digest)) = (&shared.tokens, digest)
            && let Some((principal, issuer)) = cache.get(digest)
        {
            return sender_constrained(&issuer, Ok(principal), &credential, proof.as_ref());
        }
        let issuer = match shared.issuers.route(token) {
            Ok(issuer) => issuer,
            Err(error) => return Authentication::Ready(Err(error)),
        };
        let jws = match verify::parse(token, issuer.allowed) {
            Ok(jws) => jws,
            Err(error) => return Authentication::Ready(Err(error)),
        };
        match issuer.store.key_for(jws.kid.as_deref(), jws.alg) {
            KeyAnswer::Ready(Err(error)) => Authentication::Ready(Err(error)),
            KeyAnswer::Ready(Ok(key)) if issuer.resolver.is_none() => {
                let principal = issuer.verify_and_map(&jws, &key);
                if let Ok(principal) = &principal {
                    shared.remember(digest, principal, &issuer, key);
                }
                sender_constrained(&issuer, principal, &credential, proof.as_ref())
            }
            KeyAnswer::Ready(Ok(key)) => {
                let shared = Arc::clone(shared);
                Authentication::Pending(AuthFuture::new(async move {
                    let principal = shared.verify_with(&issuer, credential.expose(), digest, key).await;
                    sender_constrained(&issuer, principal, &credential, proof.as_ref())
                        .outcome()
                        .await
                }))
            }
            KeyAnswer::Wait(key) => {
                let shared = Arc::clone(shared);
                Authentication::Pending(AuthFuture::new(async move {
                    let principal = match key.await {
                        Ok(key) => shared.verify_with(&issuer, credential.expose(), digest, key).await,
                        Err(error) => Err(error),
                    };
                    sender_constrained(&issuer, principal, &credential, proof.as_ref())
                        .outcome()
                        .await
                }))
            }
        }
    }
}

/// A verified principal, after the issuer's DPoP rules (RFC 9449): as it is
/// for bearer tokens where that is allowed, after a proof check otherwise.
fn sender_constrained(
    issuer: &Issuer,
    verified: Result<Principal, AuthError>,
    credential: &Credential,
    proof: Option<&ProofContext>,
) -> Authentication<AuthFuture> {
    let principal = match verified {
        Ok(principal) => principal,
        Err(error) => return Authentication::Ready(Err(error)),
    };
    // The common case costs one comparison.
    if issuer.dpop.mode == DpopMode::Off && credential.source() != SourceKind::Dpop {
        return Authentication::Ready(Ok(principal));
    }
    match issuer
        .dpop
        .check(principal, credential.expose(), credential.source(), proof)
    {
        Ok((principal, DpopCheck::None)) => Authentication::Ready(Ok(principal)),
        Ok((_, DpopCheck::Proof(recorded))) => Authentication::Pending(recorded),
        Err(error) => Authentication::Ready(Err(error)),
    }
}

impl Authenticator for JwksAuthenticator {
    type Future = AuthFuture;
    const NAME: &'static str = "jwks";

    fn recognizes(&self, credential: &Credential) -> bool {
        credential.is_compact_jwt()
    }

    fn authenticate(&self, credential: Credential, request: &RequestHead<'_>) -> Authentication<AuthFuture> {
        self.verify_credential(credential, Some(request))
    }
}

impl AuthLayer<JwksAuthenticator> {
    /// Starts configuring a JWKS layer.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_authkit::JwksAuthLayer;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = JwksAuthLayer::builder()
    ///     .issuer("https://login.example.com/realms/main")
    ///     .audience("orders-api")
    ///     .leeway(Duration::from_secs(10))
    ///     .build()
    ///     .expect("valid configuration");
    /// # }
    /// ```
    pub fn builder() -> JwksAuthBuilder {
        JwksAuthBuilder::default()
    }
}

/// The key-cache settings of every preset built on [`JwksAuthBuilder`]
/// (Cloudflare Access, Pomerium), defined once: each delegates to the
/// builder's `jwks` field, with the same name, meaning and default as the
/// [`JwksAuthBuilder`] method it links to. A later call replaces the value.
#[cfg(any(feature = "cloudflare", feature = "pomerium"))]
macro_rules! key_cache_settings {
    () => {
        /// How long fetched keys stay fresh; see [`JwksAuthBuilder::max_age`](crate::jwt::JwksAuthBuilder::max_age).
        pub fn max_age(mut self, max_age: std::time::Duration) -> Self {
            self.jwks = self.jwks.max_age(max_age);
            self
        }

        /// Minimum time between unknown-`kid` refetches; see [`JwksAuthBuilder::refresh_cooldown`](crate::jwt::JwksAuthBuilder::refresh_cooldown).
        pub fn refresh_cooldown(mut self, cooldown: std::time::Duration) -> Self {
            self.jwks = self.jwks.refresh_cooldown(cooldown);
            self
        }

        /// How long past `max_age` known keys keep serving while the provider fails; see [`JwksAuthBuilder::max_staleness`](crate::jwt::JwksAuthBuilder::max_staleness).
        pub fn max_staleness(mut self, staleness: std::time::Duration) -> Self {
            self.jwks = self.jwks.max_staleness(staleness);
            self
        }

        /// The first pause after a failed key fetch; see [`JwksAuthBuilder::retry_failed_fetch_after`](crate::jwt::JwksAuthBuilder::retry_failed_fetch_after).
        pub fn retry_failed_fetch_after(mut self, pause: std::time::Duration) -> Self {
            self.jwks = self.jwks.retry_failed_fetch_after(pause);
            self
        }

        /// The longest pause between failed key fetches; see [`JwksAuthBuilder::max_retry_backoff`](crate::jwt::JwksAuthBuilder::max_retry_backoff).
        pub fn max_retry_backoff(mut self, max: std::time::Duration) -> Self {
            self.jwks = self.jwks.max_retry_backoff(max);
            self
        }

        /// How long a request with no usable key waits for a fetch; see [`JwksAuthBuilder::max_key_wait`](crate::jwt::JwksAuthBuilder::max_key_wait).
        pub fn max_key_wait(mut self, wait: std::time::Duration) -> Self {
            self.jwks = self.jwks.max_key_wait(wait);
            self
        }

        /// Retries of a failed key fetch; see [`JwksAuthBuilder::http_retries`](crate::jwt::JwksAuthBuilder::http_retries).
        pub fn http_retries(mut self, retries: u32) -> Self {
            self.jwks = self.jwks.http_retries(retries);
            self
        }

        /// Whether keys are fetched at build time; see [`JwksAuthBuilder::prefetch`](crate::jwt::JwksAuthBuilder::prefetch).
        pub fn prefetch(mut self, prefetch: bool) -> Self {
            self.jwks = self.jwks.prefetch(prefetch);
            self
        }
    };
}
#[cfg(any(feature = "cloudflare", feature = "pomerium"))]
pub(crate) use key_cache_settings;

/// The largest clock-skew tolerance a builder accepts (5 minutes).
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);

/// Configures a [`JwksAuthLayer`]. Missing issuer or audience is an error at
/// [`build`](JwksAuthBuilder::build) time, not at the first request.
#[derive(Clone)]
#[must_use = "a builder does nothing until it is built"]
pub struct JwksAuthBuilder {
    issuer: Option<String>,
    audiences: Vec<String>,
    audience_check_disabled: bool,
    jwks_url: Option<String>,
    algorithms: Vec<Algorithm>,
    leeway: Duration,
    cache: CachePolicy,
    fetch: FetchPolicy,
    resolver: Option<Arc<dyn RoleResolver>>,
    prefetch: bool,
    profile: Option<Arc<dyn ClaimsProfile>>,
    checks: TokenChecks,
    dpop: DpopPolicy,
    dpop_public_url: Option<String>,
    dpop_nonce_secret: Option<Vec<u8>>,
    dpop_nonce_period: Duration,
    /// How metrics name this issuer (default: the issuer).
    metrics_label: Option<String>,
    /// `None`: the default, and what members of an issuer set must leave
    /// (the set has one cache).
    token_cache: Option<u64>,
}

impl Default for JwksAuthBuilder {
    fn default() -> Self {
        Self {
            issuer: None,
            audiences: Vec::new(),
            audience_check_disabled: false,
            jwks_url: None,
            algorithms: Algorithm::ALL.to_vec(),
            leeway: Duration::from_secs(30),
            cache: CachePolicy::default(),
            fetch: FetchPolicy::default(),
            resolver: None,
            prefetch: true,
            profile: None,
            checks: TokenChecks::default(),
            dpop: DpopPolicy::default(),
            dpop_public_url: None,
            dpop_nonce_secret: None,
            dpop_nonce_period: Duration::from_secs(300),
            metrics_label: None,
            token_cache: None,
        }
    }
}

impl std::fmt::Debug for JwksAuthBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksAuthBuilder")
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field("jwks_url", &self.jwks_url)
            .finish_non_exhaustive()
    }
}

impl JwksAuthBuilder {
    /// The expected issuer, compared exactly with `iss` (a trailing slash
    /// matters). Without [`jwks_url`](Self::jwks_url), keys are found by OIDC
    /// discovery at `{issuer}/.well-known/openid-configuration`.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// An accepted audience; call again to accept several. `aud` must contain one.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Binds tokens to `resource` (RFC 8707): its identifier is an
    /// accepted audience (call [`audience`](Self::audience) too for others).
    pub fn protected_resource(self, resource: &crate::resource::ProtectedResource) -> Self {
        self.audience(resource.identifier())
    }

    /// Accepts tokens for any audience. Only for tokens that are already
    /// audience-bound some other way; the default is to require an audience.
    pub fn disable_audience_check(mut self) -> Self {
        self.audience_check_disabled = true;
        self
    }

    /// A pinned JWKS URL; skips discovery.
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.jwks_url = Some(url.into());
        self
    }

    /// The algorithm allowlist (default: RS256/384/512, PS256/384/512,
    /// ES256/384, EdDSA).
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algorithms.into_iter().collect();
        self
    }

    /// Clock-skew tolerance for `exp` and `nbf` (default 30 s, at most
    /// [`MAX_LEEWAY`]: more is a configuration error, since it would accept
    /// tokens long expired).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// How long fetched keys stay fresh (default 10 min). They are refreshed
    /// in the background at three quarters of this.
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.cache.max_age = max_age;
        self
    }

    /// Minimum time between refetches triggered by unknown `kid`s (default 30 s).
    pub fn refresh_cooldown(mut self, cooldown: Duration) -> Self {
        self.cache.cooldown = cooldown;
        self
    }

    /// How long past `max_age` the last good keys keep serving (default 24 h).
    /// Within it, requests are answered at once from the stale keys while one
    /// background refresh runs (stale-while-revalidate), so a slow or failing
    /// provider never makes a request that has a usable key wait.
    pub fn max_staleness(mut self, max_staleness: Duration) -> Self {
        self.cache.max_staleness = max_staleness;
        self
    }

    /// The first pause after a failed fetch (default 0.5 s). Each further
    /// consecutive failure doubles it, up to
    /// [`max_retry_backoff`](Self::max_retry_backoff); a success resets it. While
    /// no keys are known, 503 responses carry the time left as `Retry-After`.
    pub fn retry_failed_fetch_after(mut self, backoff: Duration) -> Self {
        self.cache.backoff.initial = backoff;
        self
    }

    /// The longest pause between fetch attempts while the provider keeps
    /// failing (default 1 s: the first request after an outage is served
    /// within about a second; one fetch per second is no load for a provider).
    pub fn max_retry_backoff(mut self, max: Duration) -> Self {
        self.cache.backoff.max = max;
        self
    }

    /// How long a request waits for keys when none are usable: at start, or
    /// for an unknown `kid` (default 2 s). After that it is answered 503 with
    /// `Retry-After` while the fetch goes on for later requests.
    pub fn max_key_wait(mut self, wait: Duration) -> Self {
        self.cache.max_wait = wait;
        self
    }

    /// Timeout of each HTTP attempt (default 5 s).
    pub fn http_timeout(mut self, timeout: Duration) -> Self {
        self.fetch.timeout = timeout;
        self
    }

    /// Retries of transient HTTP failures (default 2, with 100 ms doubling backoff).
    pub fn http_retries(mut self, retries: u32) -> Self {
        self.fetch.retries = retries;
        self
    }

    /// Whether `build` starts fetching keys right away when a Tokio runtime
    /// is running (default true).
    pub fn prefetch(mut self, prefetch: bool) -> Self {
        self.prefetch = prefetch;
        self
    }

    /// How many verified tokens to remember (default 10 000; 0 turns the
    /// cache off). A cached token skips signature verification until its
    /// `exp`, or until its key leaves the key set. Tokens are admitted on
    /// their second verification, so one-time tokens never cost an insert
    /// and a repeated token is served from the cache from its third request,
    /// even when the cache is full. An entry is keyed by a keyed 128-bit
    /// digest of the token and holds a compact copy of the principal: about
    /// 0.7 KiB for a typical access token (twice that once a handler has
    /// read its raw claims through `claims()` / `claim()`; `claims_as`
    /// keeps no parsed copy), so the default costs about 7 MiB when full.
    pub fn token_cache(mut self, capacity: u64) -> Self {
        self.token_cache = Some(capacity);
        self
    }

    /// Requires the JWT access-token profile (RFC 9068): header `typ`
    /// `at+jwt` (or `application/at+jwt`, any case) and the claims it makes
    /// mandatory (`iss`, `exp`, `aud`, `sub`, `client_id`, `iat`, `jti`).
    /// An ID token presented as an access token is then refused with a
    /// message that says so.
    ///
    /// Off by default: many providers still mint access tokens with
    /// `typ: JWT` (or none). Turn it on for providers that issue RFC 9068
    /// tokens: Keycloak, Auth0, Okta, node oidc-provider.
    pub fn access_token_profile(mut self) -> Self {
        self.checks.access_token_profile = true;
        self
    }

    /// Refuses tokens whose `exp` − `iat` exceeds `max` (and tokens
    /// without `iat`): bounds what a leaked long-lived token is worth.
    pub fn max_lifetime(mut self, max: Duration) -> Self {
        self.checks.max_lifetime = Some(max);
        self
    }

    /// Claims every token must carry (any value), e.g. `["jti", "client_id"]`;
    /// call again to add more.
    pub fn required_claims(mut self, names: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.checks.required.extend(names.into_iter().map(Into::into));
        self
    }

    /// Accepts only tokens whose `sub` satisfies `matches` (an absent
    /// `sub` is tested as `""`), e.g. `|sub| sub.starts_with("spiffe://prod/")`.
    pub fn subject_matches(mut self, matches: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        self.checks.subject = Some(Arc::new(matches));
        self
    }

    /// A check of your own over the verified raw claims; `Err(message)`
    /// refuses the token (401 `invalid_token`, `message` as the
    /// description: keep secrets out of it). Several checks run in order.
    ///
    /// ```
    /// use tower_authkit::JwksAuthLayer;
    ///
    /// // Entra ID multi-tenant apps: `tid` must be the tenant in `iss`.
    /// let settings = JwksAuthLayer::builder().audience("api://orders").claim_check(|claims| {
    ///     let iss = claims.get("iss").and_then(|v| v.as_str()).unwrap_or("");
    ///     let tid = claims.get("tid").and_then(|v| v.as_str()).unwrap_or("");
    ///     let tenant = iss.trim_end_matches("/v2.0").rsplit('/').next().unwrap_or("");
    ///     if !tid.is_empty() && tid == tenant { Ok(()) } else { Err("tid does not match the issuer".into()) }
    /// });
    /// # let _ = settings;
    /// ```
    pub fn claim_check(mut self, check: impl Fn(&RawClaims) -> Result<(), String> + Send + Sync + 'static) -> Self {
        self.checks.custom.push(Arc::new(check));
        self
    }

    /// Accepts DPoP-bound tokens (RFC 9449) per `mode`; see
    /// [`dpop`](crate::jwt::dpop). Needs [`dpop_public_url`](Self::dpop_public_url).
    /// The layer then also reads `Authorization: DPoP <token>`.
    pub fn dpop(mut self, mode: DpopMode) -> Self {
        self.dpop.mode = mode;
        self
    }

    /// The scheme, host and port (and any path prefix) clients use to
    /// reach this service, e.g. `https://api.example.com`: a proof's `htu`
    /// must be this plus the request path. Configured, never taken from
    /// request headers (a proxy could change those).
    pub fn dpop_public_url(mut self, url: impl Into<String>) -> Self {
        self.dpop_public_url = Some(url.into());
        self
    }

    /// How far a proof's `iat` may be from now (default 60 s either way).
    pub fn dpop_window(mut self, window: Duration) -> Self {
        self.dpop.window = window;
        self
    }

    /// Where proof `jti`s are remembered (default: in this process,
    /// 100 000 at most). Share one between replicas.
    pub fn dpop_replay_cache(mut self, cache: impl super::dpop::DpopReplayCache) -> Self {
        self.dpop.replay = Arc::new(cache);
        self
    }

    /// Requires a server nonce in every DPoP proof (RFC 9449 §8), made from
    /// `secret` (at least 32 bytes; give replicas the same one); see
    /// [`dpop`](crate::jwt::dpop).
    pub fn dpop_nonces(mut self, secret: impl Into<Vec<u8>>) -> Self {
        self.dpop_nonce_secret = Some(secret.into());
        self
    }

    /// How long a server nonce is current (default 5 min; the previous
    /// period's is still accepted).
    pub fn dpop_nonce_period(mut self, period: Duration) -> Self {
        self.dpop_nonce_period = period;
        self
    }

    /// Whether this issuer takes DPoP tokens.
    pub(crate) fn uses_dpop(&self) -> bool {
        self.dpop.mode != DpopMode::Off
    }

    /// Whether this issuer takes DPoP tokens only.
    pub(crate) fn requires_dpop(&self) -> bool {
        self.dpop.mode == DpopMode::Required
    }

    /// Replaces or extends the default role mapping.
    pub fn role_resolver(mut self, resolver: impl RoleResolver) -> Self {
        self.resolver = Some(Arc::new(resolver));
        self
    }

    /// Checks the configuration and builds the layer. Never contacts the
    /// provider synchronously: a provider that is down at startup gives 503s
    /// until it answers.
    pub fn build(self) -> Result<JwksAuthLayer, ConfigError> {
        let dpop = DpopOffer::of([&self]);
        self.build_authenticator()
            .map(|authenticator| with_token_sources(AuthLayer::new(authenticator), dpop))
    }

    /// Uses `profile` for preset-specific claim checks and mapping.
    #[cfg(any(feature = "cloudflare", feature = "pomerium"))]
    pub(crate) fn profile(mut self, profile: impl ClaimsProfile) -> Self {
        self.profile = Some(Arc::new(profile));
        self
    }

    pub(crate) fn build_authenticator(self) -> Result<JwksAuthenticator, ConfigError> {
        let capacity = self.token_cache.unwrap_or(DEFAULT_TOKEN_CACHE);
        let issuer = self.build_issuer(None)?;
        Ok(JwksAuthenticator::new(capacity, Issuers::One(Arc::new(issuer))))
    }

    /// Whether `token_cache` was set (members of a set must not).
    pub(crate) fn sets_token_cache(&self) -> bool {
        self.token_cache.is_some()
    }

    /// Names the issuer in metrics (a tenant pattern's issuers all use the
    /// pattern, so made-up tenants never become label values).
    pub(crate) fn metrics_label(mut self, label: impl Into<String>) -> Self {
        self.metrics_label = Some(label.into());
        self
    }

    /// Whether an issuer was set (a tenant pattern fills it in per tenant).
    pub(crate) fn has_issuer(&self) -> bool {
        self.issuer.is_some()
    }

    /// The HTTP client this configuration would use, to share among the
    /// issuers a tenant pattern creates.
    pub(crate) fn fetcher(&self) -> Result<Fetcher, ConfigError> {
        Fetcher::new(self.fetch.clone())
    }

    /// Checks the configuration and builds one issuer; `fetcher` is shared
    /// when given.
    pub(crate) fn build_issuer(self, fetcher: Option<Fetcher>) -> Result<Issuer, ConfigError> {
        crate::crypto::ensure_provider()?;
        if self.leeway > MAX_LEEWAY {
            return Err(ConfigError::Invalid {
                setting: "leeway",
                reason: format!("{:?} — at most {} s", self.leeway, MAX_LEEWAY.as_secs()),
            });
        }
        let issuer = self
            .issuer
            .filter(|i| !i.is_empty())
            .ok_or(ConfigError::Missing("issuer"))?;
        if self.audiences.is_empty() && !self.audience_check_disabled {
            return Err(ConfigError::Missing("audience"));
        }
        let allowed: AlgorithmSet = self.algorithms.iter().copied().collect();
        if allowed.is_empty() {
            return Err(ConfigError::Invalid {
                setting: "algorithms",
                reason: "the allowlist is empty".into(),
            });
        }
        for (setting, value) in [
            ("max_age", self.cache.max_age),
            ("retry_failed_fetch_after", self.cache.backoff.initial),
        ] {
            if value.is_zero() {
                return Err(ConfigError::Invalid {
                    setting,
                    reason: "must be positive".into(),
                });
            }
        }
        let source = match &self.jwks_url {
            Some(url) => Endpoint::Fixed(parse_url("jwks_url", url)?),
            None => {
                check_issuer_url(&issuer)?;
                Endpoint::discovered(issuer.clone(), "jwks_uri", Backoff::default())
            }
        };
        let mut dpop = self.dpop;
        if dpop.mode != DpopMode::Off {
            let url = self
                .dpop_public_url
                .as_deref()
                .ok_or(ConfigError::Missing("dpop_public_url"))?;
            dpop.public_url = Some(parse_url("dpop_public_url", url)?);
        }
        if let Some(secret) = &self.dpop_nonce_secret {
            let invalid = |reason: &str| ConfigError::Invalid {
                setting: "dpop_nonces",
                reason: reason.to_owned(),
            };
            if secret.len() < 32 {
                return Err(invalid("the secret must be at least 32 bytes"));
            }
            if self.dpop_nonce_period.as_secs() == 0 {
                return Err(invalid("the period must be at least a second"));
            }
            let nonces =
                super::dpop::Nonces::new(secret, self.dpop_nonce_period).ok_or_else(|| invalid("unusable secret"))?;
            dpop.nonces = Some(Arc::new(nonces));
        }
        let fetcher = match fetcher {
            Some(fetcher) => fetcher,
            None => Fetcher::new(self.fetch)?,
        };
        let label = self.metrics_label.unwrap_or_else(|| issuer.clone());
        let store = Arc::new(KeyStore::new(source, fetcher, allowed, self.cache).labelled(label));
        if self.prefetch {
            store.prefetch();
        }
        let audiences = if self.audience_check_disabled {
            Vec::new()
        } else {
            self.audiences
        };
        Ok(Issuer {
            store,
            leeway: self.leeway,
            rules: ClaimRules {
                issuer,
                audiences,
                leeway_secs: self.leeway.as_secs_f64(),
            },
            allowed,
            checks: self.checks,
            dpop,
            profile: self.profile.unwrap_or_else(|| Arc::new(OidcProfile)),
            resolver: self.resolver,
            roles_trusted: true,
        })
    }
}

/// Which DPoP tokens a layer's issuers take.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum DpopOffer {
    /// None: bearer tokens only.
    No,
    /// DPoP tokens too (some issuer allows or requires them).
    Also,
    /// DPoP tokens only (every issuer requires them).
    Only,
}

impl DpopOffer {
    /// What a layer of these issuers takes.
    pub(crate) fn of<'a>(issuers: impl IntoIterator<Item = &'a JwksAuthBuilder>) -> Self {
        let (mut any, mut all) = (false, true);
        for issuer in issuers {
            any |= issuer.uses_dpop();
            all &= issuer.requires_dpop();
        }
        match (any, all) {
            (false, _) => DpopOffer::No,
            (true, true) => DpopOffer::Only,
            (true, false) => DpopOffer::Also,
        }
    }
}

/// The layer's token sources: `Authorization: DPoP` too when an issuer
/// takes DPoP tokens. When every issuer requires DPoP, a request without
/// credentials is challenged in the DPoP scheme only (RFC 9449 §7.1): a
/// bearer token would be refused. `Bearer` is still read, so such a token
/// gets the precise refusal.
pub(crate) fn with_token_sources(layer: JwksAuthLayer, dpop: DpopOffer) -> JwksAuthLayer {
    let sources = TokenSources::new([TokenSource::Bearer, TokenSource::Dpop]);
    match dpop {
        DpopOffer::No => layer,
        DpopOffer::Also => layer.token_sources(sources),
        DpopOffer::Only => layer.token_sources(sources.challenging_dpop_only()),
    }
}

/// The verified-token cache's default capacity.
pub(crate) const DEFAULT_TOKEN_CACHE: u64 = 10_000;

impl JwksAuthenticator {
    pub(crate) fn new(token_cache: u64, issuers: Issuers) -> Self {
        JwksAuthenticator {
            inner: Arc::new(Shared {
                tokens: (token_cache > 0).then(|| TokenCache::new(token_cache)),
                issuers,
            }),
        }
    }
}

// Building needs a crypto backend; backend-less builds are covered in crypto::tests.
#[cfg(all(test, any(feature = "aws-lc-rs", feature = "rust-crypto")))]
mod tests {
    use super::*;

    #[test]
    fn missing_issuer_or_audience_fails_fast() {
        let missing_issuer = JwksAuthLayer::builder().audience("a").build().unwrap_err();
        assert_eq!(missing_issuer, ConfigError::Missing("issuer"));
        let missing_audience = JwksAuthLayer::builder()
            .issuer("https://idp.example")
            .build()
            .unwrap_err();
        assert_eq!(missing_audience, ConfigError::Missing("audience"));
        assert!(
            JwksAuthLayer::builder()
                .issuer("https://idp.example")
                .disable_audience_check()
                .build()
                .is_ok()
        );
    }

    #[test]
    fn insecure_key_urls_are_refused() {
        let plain_http = JwksAuthLayer::builder()
            .issuer("http://idp.example")
            .audience("a")
            .build()
            .unwrap_err();
        assert!(matches!(plain_http, ConfigError::InsecureUrl { .. }));
        let jwks = JwksAuthLayer::builder()
            .issuer("https://idp.example")
            .audience("a")
            .jwks_url("http://keys.example/jwks")
            .build()
            .unwrap_err();
        assert!(matches!(jwks, ConfigError::InsecureUrl { .. }));
    }
}
