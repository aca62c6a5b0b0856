//! [`JwksAuthBuilder`]: one issuer's settings, checked when the layer is
//! built. The layer-wide setting (the verified-token cache) is on
//! [`IssuerSetBuilder`](super::IssuerSetBuilder), which takes one issuer
//! or many, so a setting can only be written where it applies.

use std::sync::Arc;
use std::time::Duration;

use super::algorithm::{Algorithm, AlgorithmSet};
use super::authenticator::{ClaimsProfile, Issuer, JwksAuthLayer, JwksAuthenticator, OidcProfile};
use super::checks::TokenChecks;
use super::dpop::{Dpop, DpopMode, DpopPolicy};
use super::issuers::Issuers;
use super::key_cache::KeyCache;
use super::keys::KeyStore;
use super::verify::ClaimRules;
use crate::error::ConfigError;
use crate::layer::AuthLayer;
use crate::principal::{RawClaims, RoleResolver};
use crate::token::{TokenSource, TokenSources};
use crate::upstream::{Backoff, Endpoint, FetchPolicy, Fetcher, check_issuer_url, parse_url};

impl AuthLayer<JwksAuthenticator> {
    /// Starts configuring a JWKS layer.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_authkit::jwt::JwksAuthLayer;
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
    keys: KeyCache,
    fetch: FetchPolicy,
    resolver: Option<Arc<dyn RoleResolver>>,
    profile: Option<Arc<dyn ClaimsProfile>>,
    checks: TokenChecks,
    dpop: Option<Dpop>,
    /// How metrics name this issuer (default: the issuer).
    metrics_label: Option<String>,
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
            keys: KeyCache::default(),
            fetch: FetchPolicy::default(),
            resolver: None,
            profile: None,
            checks: TokenChecks::default(),
            dpop: None,
            metrics_label: None,
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

    /// How keys are fetched and kept (freshness, stale-if-error, backoff,
    /// retries, prefetch); see [`KeyCache`].
    pub fn key_cache(mut self, keys: KeyCache) -> Self {
        self.keys = keys;
        self
    }

    /// Timeout of each HTTP attempt (default 5 s).
    pub fn http_timeout(mut self, timeout: Duration) -> Self {
        self.fetch.timeout = timeout;
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
    /// use tower_authkit::jwt::JwksAuthLayer;
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

    /// Takes DPoP-bound tokens (RFC 9449) as `dpop` says; see
    /// [`dpop`](crate::jwt::dpop). The layer then also reads
    /// `Authorization: DPoP <token>`.
    pub fn dpop(mut self, dpop: Dpop) -> Self {
        self.dpop = Some(dpop);
        self
    }

    fn dpop_mode(&self) -> DpopMode {
        self.dpop.as_ref().map_or(DpopMode::Off, Dpop::mode)
    }

    /// Whether this issuer takes DPoP tokens.
    pub(crate) fn uses_dpop(&self) -> bool {
        self.dpop_mode() != DpopMode::Off
    }

    /// Whether this issuer takes DPoP tokens only.
    pub(crate) fn requires_dpop(&self) -> bool {
        self.dpop_mode() == DpopMode::Required
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

    /// One issuer's authenticator, with the default verified-token cache
    /// (a layer of several issuers, or another cache size, comes from
    /// [`JwksAuthLayer::issuers`]).
    pub(crate) fn build_authenticator(self) -> Result<JwksAuthenticator, ConfigError> {
        let issuer = self.build_issuer(None)?;
        Ok(JwksAuthenticator::new(
            DEFAULT_TOKEN_CACHE,
            Issuers::One(Arc::new(issuer)),
        ))
    }

    /// Fetches no keys at build time (a tenant pattern's settings are
    /// checked on a stand-in issuer that must not be fetched).
    pub(crate) fn without_prefetch(mut self) -> Self {
        self.keys.prefetch = false;
        self
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
        Fetcher::new(self.fetch_policy())
    }

    fn fetch_policy(&self) -> FetchPolicy {
        FetchPolicy {
            retries: self.keys.http_retries,
            ..self.fetch.clone()
        }
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
            .clone()
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
            ("max_age", self.keys.policy.max_age),
            ("retry_failed_fetch_after", self.keys.policy.backoff.initial),
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
        let dpop = match &self.dpop {
            Some(dpop) => dpop.policy()?,
            None => DpopPolicy::default(),
        };
        let fetcher = match fetcher {
            Some(fetcher) => fetcher,
            None => Fetcher::new(self.fetch_policy())?,
        };
        let label = self.metrics_label.unwrap_or_else(|| issuer.clone());
        let store = Arc::new(KeyStore::new(source, fetcher, allowed, self.keys.policy).labelled(label));
        if self.keys.prefetch {
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
