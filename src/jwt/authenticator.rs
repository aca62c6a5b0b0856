//! [`JwksAuthenticator`]: the verify path every request of a JWKS-based
//! layer runs (cache, routing to an issuer, key, signature, claims,
//! DPoP). Its settings are built in `builder`.

use std::sync::Arc;
use std::time::Duration;

use super::algorithm::AlgorithmSet;
use super::checks::TokenChecks;
use super::dpop::{DpopCheck, DpopMode, DpopPolicy, ProofContext};
use super::issuers::Issuers;
use super::jwk::VerifyingKey;
use super::keys::{KeyAnswer, KeyStore};
use super::token_cache::{TokenCache, TokenDigest};
use super::verify::{self, ClaimRules, Jws};
use crate::layer::{AuthFuture, AuthLayer, Authentication, Authenticator, RequestHead};
use crate::principal::{Principal, RawClaims, RoleResolver, principal_from_claims};
use crate::rejection::AuthError;
use crate::token::{Credential, SourceKind};

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
    pub(crate) leeway: Duration,
    pub(crate) rules: ClaimRules,
    pub(crate) allowed: AlgorithmSet,
    pub(crate) checks: TokenChecks,
    pub(crate) dpop: DpopPolicy,
    pub(crate) profile: Arc<dyn ClaimsProfile>,
    pub(crate) resolver: Option<Arc<dyn RoleResolver>>,
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
pub(crate) struct OidcProfile;

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
    /// let layer = tower_authkit::jwt::JwksAuthLayer::builder()
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
