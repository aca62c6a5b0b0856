//! Several trusted issuers on one layer: a token is routed by its

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::authenticator::{Issuer, JwksAuthLayer, JwksAuthenticator};
use super::builder::{DEFAULT_TOKEN_CACHE, DpopOffer, JwksAuthBuilder, with_token_sources};
use super::verify;
use crate::error::ConfigError;
use crate::layer::AuthLayer;
use crate::rejection::AuthError;
use crate::upstream::{Fetcher, retry_after};

/// The issuers one layer trusts.
pub(crate) enum Issuers {
    /// The plain layer: every token goes to this issuer (whose exact-`iss`
    /// rule refuses others), with no need to read `iss` first.
    One(Arc<Issuer>),
    Set(IssuerSet),
}

impl std::fmt::Debug for Issuers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Issuers::One(issuer) => f.debug_list().entry(issuer).finish(),
            Issuers::Set(set) => f
                .debug_list()
                .entries(set.by_name.values())
                .entries(set.patterns.iter().map(|pattern| &pattern.pattern))
                .finish(),
        }
    }
}

impl Issuers {
    /// The issuer that verifies `token`, chosen by its unverified `iss`.
    pub(crate) fn route(&self, token: &str) -> Result<Arc<Issuer>, AuthError> {
        match self {
            Issuers::One(issuer) => Ok(Arc::clone(issuer)),
            Issuers::Set(set) => set.route(token),
        }
    }

    /// How many issuers are held now: those configured by name and those
    /// a tenant pattern created (bounded by its `max_issuers`).
    pub(crate) fn count(&self) -> usize {
        match self {
            Issuers::One(_) => 1,
            Issuers::Set(set) => set.by_name.len() + set.patterns.iter().map(TenantPattern::known).sum::<usize>(),
        }
    }

    /// The issuers configured by name (not those of tenant patterns).
    pub(crate) fn fixed(&self) -> Box<dyn Iterator<Item = &Arc<Issuer>> + '_> {
        match self {
            Issuers::One(issuer) => Box::new(std::iter::once(issuer)),
            Issuers::Set(set) => Box::new(set.by_name.values()),
        }
    }
}

pub(crate) struct IssuerSet {
    by_name: HashMap<String, Arc<Issuer>>,
    patterns: Vec<TenantPattern>,
}

fn untrusted() -> AuthError {
    AuthError::invalid_token("token issuer is not trusted")
}

impl IssuerSet {
    fn route(&self, token: &str) -> Result<Arc<Issuer>, AuthError> {
        let iss = verify::unverified_issuer(token)?;
        if let Some(issuer) = self.by_name.get(&iss) {
            return Ok(Arc::clone(issuer));
        }
        for pattern in &self.patterns {
            if pattern.admits(&iss) {
                return pattern.issuer_for(&iss);
            }
        }
        tracing::debug!("token refused: its issuer matches no configured issuer");
        Err(untrusted())
    }
}

/// Which tenants a pattern admits.
#[derive(Clone, Debug)]
enum Tenants {
    Listed(HashSet<String>),
    Any,
}

/// Issuers that differ only in a tenant segment, e.g. Entra ID's
/// `https://login.microsoftonline.com/{tenant}/v2.0`; see
/// [`IssuerSetBuilder`].
#[derive(Clone, Debug)]
#[must_use = "add it to an issuer set with IssuerSetBuilder::tenants"]
pub struct TenantIssuers {
    pattern: String,
    settings: JwksAuthBuilder,
    trust_roles: bool,
    tenants: Tenants,
    max_issuers: usize,
    new_issuer_cooldown: Duration,
}

impl TenantIssuers {
    /// Issuers matching `pattern` (one `{tenant}` placeholder), each
    /// verified with `settings` (audience, algorithms, leeway, …; leave its
    /// issuer unset). No tenant is admitted until [`allow`](Self::allow) or
    /// [`any_tenant`](Self::any_tenant).
    pub fn new(pattern: impl Into<String>, settings: JwksAuthBuilder) -> Self {
        Self {
            pattern: pattern.into(),
            settings,
            trust_roles: false,
            tenants: Tenants::Listed(HashSet::new()),
            max_issuers: 100,
            new_issuer_cooldown: Duration::from_secs(1),
        }
    }

    /// Admits these tenants; call again to add more.
    pub fn allow(mut self, tenants: impl IntoIterator<Item = impl Into<String>>) -> Self {
        let added = tenants.into_iter().map(Into::into);
        match &mut self.tenants {
            Tenants::Listed(listed) => listed.extend(added),
            Tenants::Any => {}
        }
        self
    }

    /// Lets the roles, groups and permissions in these issuers' tokens
    /// satisfy plain `Require*` checks. Off by default: whoever runs a
    /// tenant writes its tokens, so with [`any_tenant`](Self::any_tenant)
    /// any tenant's admin could grant themselves `admin` here. Scopes are
    /// not affected. A check can also trust one issuer by name
    /// ([`RequireRole::from_issuers`](crate::RequireRole::from_issuers)).
    pub fn trust_roles(mut self) -> Self {
        self.trust_roles = true;
        self
    }

    /// Admits every tenant that matches the pattern (multi-tenant apps).
    pub fn any_tenant(mut self) -> Self {
        self.tenants = Tenants::Any;
        self
    }

    /// How many of these issuers are kept at once (default 100; the least
    /// recently used is evicted).
    pub fn max_issuers(mut self, max: usize) -> Self {
        self.max_issuers = max;
        self
    }

    /// With [`any_tenant`](Self::any_tenant), at most one new issuer is
    /// admitted (and discovered) per this long (default 1 s).
    pub fn new_issuer_cooldown(mut self, cooldown: Duration) -> Self {
        self.new_issuer_cooldown = cooldown;
        self
    }

    fn build(self) -> Result<TenantPattern, ConfigError> {
        let invalid = |reason: &str| ConfigError::Invalid {
            setting: "tenant pattern",
            reason: reason.to_owned(),
        };
        let (prefix, suffix) = self
            .pattern
            .split_once("{tenant}")
            .ok_or_else(|| invalid("needs one {tenant} placeholder"))?;
        if suffix.contains("{tenant}") {
            return Err(invalid("has more than one {tenant} placeholder"));
        }
        if self.settings.has_issuer() {
            return Err(ConfigError::Invalid {
                setting: "issuer",
                reason: "a tenant pattern's settings leave the issuer unset; the pattern gives it".into(),
            });
        }
        if self.max_issuers == 0 {
            return Err(ConfigError::Invalid {
                setting: "max_issuers",
                reason: "must be positive".into(),
            });
        }
        if let Tenants::Listed(listed) = &self.tenants
            && let Some(bad) = listed.iter().find(|tenant| !valid_tenant(tenant))
        {
            return Err(invalid(&format!("tenant {bad:?} is not 1-64 of A-Z a-z 0-9 . _ -")));
        }
        // Every setting is checked once now, on a stand-in tenant, so
        // creating a tenant's issuer later cannot fail.
        let fetcher = self.settings.fetcher()?;
        self.settings
            .clone()
            .without_prefetch()
            .issuer(format!("{prefix}tenant{suffix}"))
            .build_issuer(Some(fetcher.clone()))?;
        Ok(TenantPattern {
            prefix: prefix.to_owned(),
            suffix: suffix.to_owned(),
            pattern: self.pattern.clone(),
            settings: self.settings.metrics_label(self.pattern.clone()),
            trust_roles: self.trust_roles,
            fetcher,
            tenants: self.tenants,
            max_issuers: self.max_issuers,
            new_issuer_cooldown: self.new_issuer_cooldown,
            known: Mutex::new(Known::default()),
        })
    }
}

fn valid_tenant(tenant: &str) -> bool {
    (1..=64).contains(&tenant.len())
        && tenant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

struct TenantPattern {
    prefix: String,
    suffix: String,
    pattern: String,
    settings: JwksAuthBuilder,
    trust_roles: bool,
    /// One HTTP client for all of the pattern's issuers.
    fetcher: Fetcher,
    tenants: Tenants,
    max_issuers: usize,
    new_issuer_cooldown: Duration,
    known: Mutex<Known>,
}

#[derive(Default)]
struct Known {
    /// Issuer name → issuer and when it was last used (a tick).
    issuers: HashMap<String, (Arc<Issuer>, u64)>,
    tick: u64,
    last_admission: Option<Instant>,
}

impl TenantPattern {
    /// Whether `iss` is this pattern with an admitted tenant.
    fn admits(&self, iss: &str) -> bool {
        let Some(tenant) = iss
            .strip_prefix(&self.prefix)
            .and_then(|rest| rest.strip_suffix(&self.suffix))
        else {
            return false;
        };
        valid_tenant(tenant)
            && match &self.tenants {
                Tenants::Any => true,
                Tenants::Listed(listed) => listed.contains(tenant),
            }
    }

    fn issuer_for(&self, iss: &str) -> Result<Arc<Issuer>, AuthError> {
        // Held briefly, never across I/O: creating an issuer fetches nothing
        // here (its key store starts a background fetch).
        let mut known = self.known.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        known.tick += 1;
        let tick = known.tick;
        if let Some((issuer, used)) = known.issuers.get_mut(iss) {
            if !issuer.store.failed_without_keys() {
                *used = tick;
                return Ok(Arc::clone(issuer));
            }
            // Its first discovery failed: it is new again, and waits its turn.
            known.issuers.remove(iss);
        }
        let now = Instant::now();
        // Listed tenants are bounded by the list; only "any tenant" can be
        // flooded with made-up ones.
        if let (Tenants::Any, Some(last)) = (&self.tenants, known.last_admission) {
            let waited = now.saturating_duration_since(last);
            if waited < self.new_issuer_cooldown {
                return Err(AuthError::unavailable(
                    "new token issuers are admitted one at a time",
                    retry_after(self.new_issuer_cooldown - waited),
                ));
            }
        }
        let issuer = self
            .settings
            .clone()
            .issuer(iss)
            .build_issuer(Some(self.fetcher.clone()))
            .map(|mut issuer| {
                issuer.roles_trusted = self.trust_roles;
                Arc::new(issuer)
            })
            .map_err(|error| {
                // Checked at build time on a stand-in; not expected.
                tracing::warn!(%error, "could not create an issuer for a tenant");
                AuthError::unavailable("token issuer unavailable", retry_after(self.new_issuer_cooldown))
            })?;
        known.last_admission = Some(now);
        if known.issuers.len() >= self.max_issuers
            && let Some(oldest) = known
                .issuers
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(name, _)| name.clone())
        {
            known.issuers.remove(&oldest);
        }
        known.issuers.insert(iss.to_owned(), (Arc::clone(&issuer), tick));
        Ok(issuer)
    }

    fn known(&self) -> usize {
        self.known.lock().map_or(0, |known| known.issuers.len())
    }
}

/// Configures a [`JwksAuthLayer`] of one or more issuers, and what they
/// share (the verified-token cache); start with [`JwksAuthLayer::issuers`].
///
/// Several trusted issuers on one layer: a token is routed by its
/// (unverified) `iss` to exactly one issuer, whose own audiences,
/// algorithms, rules and key set then verify it.
///
/// ```
/// use tower_authkit::jwt::{JwksAuthLayer, TenantIssuers};
/// use tower_authkit_testing::TestIdp;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let (staff, partners) = (TestIdp::start().await, TestIdp::start().await);
/// let layer = JwksAuthLayer::issuers()
///     .issuer(JwksAuthLayer::builder().issuer(staff.issuer()).audience("orders-api"))
///     .issuer(JwksAuthLayer::builder().issuer(partners.issuer()).audience("partner-api"))
///     // Entra-style multi-tenant issuers, discovered on first sight.
///     .tenants(
///         TenantIssuers::new(
///             "https://login.microsoftonline.com/{tenant}/v2.0",
///             JwksAuthLayer::builder().audience("api://orders"),
///         )
///         .allow(["72f988bf-86f1-41af-91ab-2d7cd011db47"]),
///     )
///     .build()
///     .expect("valid configuration");
/// # let _ = layer;
/// # }
/// ```
///
/// Routing never crosses issuers: the key set of issuer B is never asked
/// about a token that says issuer A, and a token whose `iss` matches no
/// configured issuer is refused (401) before anything is fetched. The
/// verified-token cache is shared by the set (an entry remembers its issuer).
///
/// **Tenant patterns.** An issuer URL with one `{tenant}` placeholder stands
/// for many issuers, created on first sight from one [`JwksAuthBuilder`]
/// (the same settings for each; its issuer left unset) and kept in a
/// bounded set (default 100, least recently used evicted). A tenant is
/// 1–64 characters of `A-Z a-z 0-9 . _ -` and, unless
/// [`any_tenant`](TenantIssuers::any_tenant) is chosen, on the allowlist.
/// Each such issuer has its own single-flight discovery, cooldowns and
/// stale-if-error. With [`any_tenant`](TenantIssuers::any_tenant), new
/// issuers are admitted at most one per
/// [`new_issuer_cooldown`](TenantIssuers::new_issuer_cooldown) (default
/// 1 s) for the whole pattern, and one whose first discovery failed is
/// forgotten, so a flood of made-up tenants causes at most one discovery
/// per cooldown and bounded memory; requests for a new issuer inside the
/// cooldown get 503 with `Retry-After`. Listed tenants are admitted at once
/// (the list bounds them).
///
/// **Trust across issuers.** Authorization never merges trust domains
/// silently. Roles, groups and permissions in tokens of an explicitly
/// listed issuer satisfy `RequireRole` / `RequireGroup` /
/// `RequirePermission` (and `Principal::has_role` …) as usual. Those in
/// tokens of issuers admitted through a tenant pattern do not, unless the
/// pattern is trusted for them ([`trust_roles`](TenantIssuers::trust_roles)),
/// or the check names the issuers it trusts
/// ([`RequireRole::from_issuers`](crate::RequireRole::from_issuers)):
/// whoever runs a tenant writes its tokens. Scopes are unchanged.
///
/// **Entra ID.** With "any tenant", also check that the token's `tid`
/// equals the tenant in its `iss` (Microsoft's rule for multi-tenant
/// apps): a [`claim_check`](JwksAuthBuilder::claim_check) on the settings,
/// whose docs show it.
///
/// # Several issuers
///
/// One layer can trust several issuers, each with its own audiences,
/// algorithms, rules, role resolver and key set. A token goes to the one
/// issuer its `iss` names; a key of one issuer never verifies a token that
/// names another, and an `iss` no issuer matches is refused (401) before
/// anything is fetched. Issuers that differ in a tenant segment (Entra ID)
/// are a pattern, discovered on first sight and kept in a bounded set:
///
/// ```rust,no_run
/// use tower_authkit::jwt::{JwksAuthLayer, TenantIssuers};
///
/// fn layer() -> Result<JwksAuthLayer, tower_authkit::ConfigError> {
///     // Recommended where the provider mints RFC 9068 access tokens
///     // (Keycloak, Auth0, Okta, oidc-provider): `typ` must be `at+jwt`,
///     // so an ID token is never taken for an access token.
///     let staff = JwksAuthLayer::builder()
///         .issuer("https://login.example.com/realms/staff")
///         .audience("orders-api")
///         .access_token_profile();
///     let partners = JwksAuthLayer::builder()
///         .issuer("https://partners.example.com")
///         .audience("partner-api")
///         .max_lifetime(std::time::Duration::from_secs(3600))
///         .required_claims(["jti", "client_id"]);
///     // Entra ID multi-tenant: `tid` must be the tenant in `iss`.
///     let entra = JwksAuthLayer::builder().audience("api://orders").claim_check(|claims| {
///         let iss = claims.get("iss").and_then(|v| v.as_str()).unwrap_or("");
///         let tid = claims.get("tid").and_then(|v| v.as_str()).unwrap_or("");
///         match iss.strip_suffix("/v2.0").and_then(|rest| rest.rsplit('/').next()) {
///             Some(tenant) if tenant == tid => Ok(()),
///             _ => Err("tid does not match the issuer".into()),
///         }
///     });
///     JwksAuthLayer::issuers()
///         .issuer(staff)
///         .issuer(partners)
///         .tenants(TenantIssuers::new("https://login.microsoftonline.com/{tenant}/v2.0", entra).any_tenant())
///         .build()
/// }
/// ```
///
/// With `any_tenant()`, at most one new issuer is admitted per
/// `new_issuer_cooldown` (1 s) and at most `max_issuers` (100) are kept, least
/// recently used evicted: a flood of made-up tenants costs at most one
/// discovery a second and bounded memory. `is_ready()` / `ready()` cover every
/// issuer configured by name. The verified-token cache is shared by the set
/// (`.token_cache(n)` on the set). Every `JwksAuthBuilder` setting means the
/// same per issuer.
///
/// **Who may grant a role.** Authorization never merges trust domains
/// silently. With a tenant pattern, whoever administers *any* admitted tenant
/// writes that tenant's tokens, and with `any_tenant()` that is anyone who
/// signs up for one. So:
///
/// | assertion in the token | listed issuer (`.issuer(..)`) | tenant-pattern issuer |
/// |---|---|---|
/// | scopes (`RequireScope`) | counts | counts |
/// | roles, groups, permissions (`RequireRole`, `RequireGroup`, `RequirePermission`, `Principal::has_role` …) | counts | counts only with `TenantIssuers::trust_roles()` |
/// | any of them, in a check that names issuers (`RequireRole::new("admin").from_issuers([iss])`) | counts if `iss` is named | counts if `iss` is named |
///
/// `Principal::roles()` still lists what the token asserted;
/// `Principal::roles_trusted()` says whether it grants anything. In
/// `resource_server`, `AUTHKIT_TENANT_TRUST_ROLES=1` turns `trust_roles` on: without it, a
/// tenant token with `roles: ["admin"]` gets 200 on `/me` and 403 on
/// `/admin` (and on `/team` for groups).
#[derive(Debug, Default)]
#[must_use = "a builder does nothing until it is built"]
pub struct IssuerSetBuilder {
    issuers: Vec<JwksAuthBuilder>,
    patterns: Vec<TenantIssuers>,
    token_cache: Option<u64>,
}

impl IssuerSetBuilder {
    /// Trusts one more issuer, configured like a single-issuer layer
    /// (its issuer, audiences, algorithms, leeway, key settings, …).
    pub fn issuer(mut self, issuer: JwksAuthBuilder) -> Self {
        self.issuers.push(issuer);
        self
    }

    /// Trusts the issuers of a tenant pattern.
    pub fn tenants(mut self, tenants: TenantIssuers) -> Self {
        self.patterns.push(tenants);
        self
    }

    /// How many verified tokens the layer remembers (default 10 000; 0
    /// turns the cache off); its issuers share it (an entry remembers its
    /// issuer). A cached token skips signature verification until its
    /// `exp`, or until its key leaves the key set. Tokens are admitted on
    /// their second verification, so one-time tokens never cost an insert
    /// and a repeated token is served from the cache from its third request,
    /// even when the cache is full. An entry is keyed by a keyed 128-bit
    /// digest of the token and holds a compact copy of the principal: about
    /// 0.7 KiB for a typical access token (twice that once a handler has
    /// read its raw claims through `claims()` / `claim()`; `claims_as`
    /// keeps no parsed copy), so the default costs about 7 MiB when full.
    ///
    /// ```
    /// use tower_authkit::jwt::JwksAuthLayer;
    ///
    /// // One issuer, a smaller cache.
    /// let layer = JwksAuthLayer::issuers()
    ///     .issuer(JwksAuthLayer::builder().issuer("https://idp.example.com").audience("orders-api"))
    ///     .token_cache(1_000);
    /// # let _ = layer;
    /// ```
    pub fn token_cache(mut self, capacity: u64) -> Self {
        self.token_cache = Some(capacity);
        self
    }

    /// Checks every issuer's configuration and builds the layer. Never
    /// contacts a provider synchronously.
    pub fn build(mut self) -> Result<JwksAuthLayer, ConfigError> {
        if self.issuers.is_empty() && self.patterns.is_empty() {
            return Err(ConfigError::Missing("issuer"));
        }
        let dpop = DpopOffer::of(
            self.issuers
                .iter()
                .chain(self.patterns.iter().map(|pattern| &pattern.settings)),
        );
        let capacity = self.token_cache.unwrap_or(DEFAULT_TOKEN_CACHE);
        if self.issuers.len() == 1
            && self.patterns.is_empty()
            && let Some(member) = self.issuers.pop()
        {
            // One issuer: its exact-`iss` rule refuses the others, with no
            // need to read `iss` to route.
            let issuer = member.build_issuer(None)?;
            let authenticator = JwksAuthenticator::new(capacity, Issuers::One(Arc::new(issuer)));
            return Ok(with_token_sources(AuthLayer::new(authenticator), dpop));
        }
        let mut by_name = HashMap::new();
        for member in self.issuers {
            let issuer = member.build_issuer(None)?;
            let name = issuer.name().to_owned();
            if by_name.insert(name.clone(), Arc::new(issuer)).is_some() {
                return Err(ConfigError::Invalid {
                    setting: "issuer",
                    reason: format!("{name} is configured twice"),
                });
            }
        }
        let patterns = self
            .patterns
            .into_iter()
            .map(TenantIssuers::build)
            .collect::<Result<Vec<_>, _>>()?;
        let issuers = Issuers::Set(IssuerSet { by_name, patterns });
        let authenticator = JwksAuthenticator::new(capacity, issuers);
        Ok(with_token_sources(AuthLayer::new(authenticator), dpop))
    }
}

impl AuthLayer<JwksAuthenticator> {
    /// Starts configuring a layer of one or more issuers, or one with
    /// another verified-token cache size.
    pub fn issuers() -> IssuerSetBuilder {
        IssuerSetBuilder::default()
    }
}

#[cfg(all(test, any(feature = "aws-lc-rs", feature = "rust-crypto")))]
mod tests {
    use super::*;
    use crate::jwt::JwksAuthLayer;

    fn pattern(tenants: TenantIssuers) -> TenantPattern {
        tenants.build().unwrap()
    }

    fn settings() -> JwksAuthBuilder {
        JwksAuthLayer::builder()
            .audience("api")
            .key_cache(crate::jwt::KeyCache::default().prefetch(false))
    }

    #[test]
    fn a_pattern_admits_only_listed_well_formed_tenants() {
        let listed = pattern(TenantIssuers::new("https://login.example/{tenant}/v2.0", settings()).allow(["acme"]));
        assert!(listed.admits("https://login.example/acme/v2.0"));
        assert!(!listed.admits("https://login.example/other/v2.0"));
        assert!(!listed.admits("https://login.example/acme/v2.0/"));
        let any = pattern(TenantIssuers::new("https://login.example/{tenant}/v2.0", settings()).any_tenant());
        assert!(any.admits("https://login.example/other/v2.0"));
        for bad in ["", "a/b", "..%2f", "a b", &"x".repeat(65)] {
            assert!(!any.admits(&format!("https://login.example/{bad}/v2.0")), "{bad:?}");
        }
    }

    #[test]
    fn bad_patterns_are_configuration_errors() {
        let no_placeholder = TenantIssuers::new("https://login.example/v2.0", settings()).any_tenant();
        assert!(matches!(no_placeholder.build(), Err(ConfigError::Invalid { .. })));
        let two = TenantIssuers::new("https://{tenant}.example/{tenant}", settings()).any_tenant();
        assert!(matches!(two.build(), Err(ConfigError::Invalid { .. })));
        let insecure = TenantIssuers::new("http://login.example/{tenant}", settings()).any_tenant();
        assert!(matches!(insecure.build(), Err(ConfigError::InsecureUrl { .. })));
        let with_issuer = TenantIssuers::new("https://login.example/{tenant}", settings().issuer("https://x"));
        assert!(matches!(
            with_issuer.build(),
            Err(ConfigError::Invalid { setting: "issuer", .. })
        ));
    }

    #[tokio::test]
    async fn new_issuers_are_admitted_one_per_cooldown_and_the_set_stays_bounded() {
        let any = pattern(
            TenantIssuers::new("https://login.example/{tenant}/v2.0", settings())
                .any_tenant()
                .max_issuers(3)
                .new_issuer_cooldown(Duration::from_millis(200)),
        );
        let name = |i: usize| format!("https://login.example/t{i}/v2.0");
        assert!(any.issuer_for(&name(0)).is_ok());
        // Within the cooldown: known issuers are served, new ones wait.
        assert!(any.issuer_for(&name(0)).is_ok());
        let refused = any.issuer_for(&name(1)).unwrap_err();
        assert_eq!(refused.status(), http::StatusCode::SERVICE_UNAVAILABLE);
        // Sleeps longer than the cooldown; the refusal above came right after
        // an admission, far inside 200 ms even on a loaded machine.
        for i in 1..6 {
            std::thread::sleep(Duration::from_millis(210));
            assert!(any.issuer_for(&name(i)).is_ok());
            assert!(any.known() <= 3);
        }
        // The least recently used went first: t3, t4, t5 remain.
        std::thread::sleep(Duration::from_millis(210));
        assert_eq!(any.known(), 3);
        assert!(any.issuer_for(&name(5)).is_ok(), "known: no admission needed");
        assert!(any.issuer_for(&name(0)).is_ok(), "re-admitted after the cooldown");
    }
}
