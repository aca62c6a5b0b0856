//! The authenticated identity every layer inserts into request extensions.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use crate::rejection::AuthError;

/// Verified claims as the provider sent them (a JSON object).
pub type RawClaims = Map<String, Value>;

/// A normalized, authenticated identity plus the verified raw claims.
///
/// Cheap to clone (one `Arc`). Handlers read it with the `Principal` or
/// `Option<Principal>` extractors; any code inside the request can read it
/// through [`SecurityContext`](crate::SecurityContext).
///
/// The authenticated identity every layer inserts into request extensions.
#[derive(Clone)]
pub struct Principal {
    inner: Arc<Inner>,
}

// Boxed strings and slices, not `String`s and `Vec`s: principals live on in
// the verified-token cache, where every word of every entry counts.
#[derive(Default)]
struct Inner {
    provider: &'static str,
    subject: Box<str>,
    issuer: Option<Box<str>>,
    audiences: Box<[String]>,
    email: Option<Box<str>>,
    name: Option<Box<str>>,
    roles: Box<[String]>,
    groups: Box<[String]>,
    scopes: Box<[String]>,
    permissions: Box<[String]>,
    expires_at: Option<SystemTime>,
    claims: Claims,
    attachment: Option<Arc<dyn Any + Send + Sync>>,
    /// Its issuer was admitted through a tenant pattern not trusted for
    /// roles: its roles, groups and permissions satisfy no plain check.
    roles_untrusted: bool,
}

/// How a principal holds its raw claims.
#[derive(Clone)]
// Only the JWT verifiers' token cache writes the text form.
#[cfg_attr(not(feature = "jwks"), allow(dead_code))]
enum Claims {
    /// Parsed, shared with the principals derived from this one.
    Parsed(Arc<Value>),
    /// Compact JSON text, parsed on the first read that needs a `Value`.
    /// What the verified-token cache keeps: a parsed map costs several
    /// times the text (a B-tree node alone is over 600 bytes).
    Text { json: Box<str>, parsed: OnceLock<Value> },
}

impl Default for Claims {
    fn default() -> Self {
        Claims::Parsed(Arc::new(Value::Object(Map::new())))
    }
}

impl Claims {
    fn value(&self) -> &Value {
        match self {
            Claims::Parsed(value) => value,
            // The text was written from a parsed object, so it parses back;
            // an empty object stands in should that ever fail.
            Claims::Text { json, parsed } => {
                parsed.get_or_init(|| serde_json::from_str(json).unwrap_or_else(|_| Value::Object(Map::new())))
            }
        }
    }
}

impl Principal {
    /// Starts a principal for `subject`, authenticated by `provider`
    /// (e.g. `"jwks"`). Authenticators build principals with it; so can tests.
    pub fn builder(provider: &'static str, subject: impl Into<String>) -> PrincipalBuilder {
        PrincipalBuilder {
            inner: Inner {
                provider,
                subject: subject.into().into_boxed_str(),
                ..Inner::default()
            },
        }
    }

    /// Which authenticator produced this principal (`"jwks"`, ...).
    pub fn provider(&self) -> &'static str {
        self.inner.provider
    }
    /// The subject (`sub`).
    pub fn subject(&self) -> &str {
        &self.inner.subject
    }
    /// The issuer (`iss`), when the credential has one.
    pub fn issuer(&self) -> Option<&str> {
        self.inner.issuer.as_deref()
    }
    /// The audiences (`aud`).
    pub fn audiences(&self) -> &[String] {
        &self.inner.audiences
    }
    /// The email address, when known.
    pub fn email(&self) -> Option<&str> {
        self.inner.email.as_deref()
    }
    /// The display name, when known.
    pub fn name(&self) -> Option<&str> {
        self.inner.name.as_deref()
    }
    /// Roles after mapping and any [`RoleResolver`].
    pub fn roles(&self) -> &[String] {
        &self.inner.roles
    }
    /// Groups.
    pub fn groups(&self) -> &[String] {
        &self.inner.groups
    }
    /// OAuth scopes.
    pub fn scopes(&self) -> &[String] {
        &self.inner.scopes
    }
    /// Fine-grained permissions (e.g. Auth0's `permissions` claim).
    pub fn permissions(&self) -> &[String] {
        &self.inner.permissions
    }
    /// When the credential expires.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.inner.expires_at
    }
    /// The verified raw claims, a JSON object.
    pub fn claims(&self) -> &Value {
        self.inner.claims.value()
    }
    /// Provider-specific data the authenticator attached (e.g. the proxy
    /// user's session), by type.
    pub fn attachment<T: Any>(&self) -> Option<&T> {
        self.inner.attachment.as_deref().and_then(|a| a.downcast_ref())
    }
    /// One raw claim.
    pub fn claim(&self, name: &str) -> Option<&Value> {
        self.claims().get(name)
    }
    /// Whether this principal's roles, groups and permissions may grant
    /// access: true, except for tokens of issuers admitted through a
    /// [tenant pattern](crate::jwt::TenantIssuers) that is not trusted for roles
    /// (anyone can run a tenant and write any role into its tokens). Scopes
    /// are not affected: they say what the token may do at this resource.
    pub fn roles_trusted(&self) -> bool {
        !self.inner.roles_untrusted
    }
    /// Whether the principal has `role`, as an authorization check: false
    /// when its roles are not [trusted](Self::roles_trusted) (the role is
    /// still listed in [`roles`](Self::roles), as asserted).
    pub fn has_role(&self, role: &str) -> bool {
        self.roles_trusted() && self.inner.roles.iter().any(|r| r == role)
    }
    /// Whether the principal is in `group`, as an authorization check (see
    /// [`has_role`](Self::has_role)).
    pub fn has_group(&self, group: &str) -> bool {
        self.roles_trusted() && self.inner.groups.iter().any(|g| g == group)
    }
    /// Whether the principal was granted `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.inner.scopes.iter().any(|s| s == scope)
    }
    /// Whether the principal has `permission`, as an authorization check
    /// (see [`has_role`](Self::has_role)).
    pub fn has_permission(&self, permission: &str) -> bool {
        self.roles_trusted() && self.inner.permissions.iter().any(|p| p == permission)
    }
    /// Deserializes the raw claims into a typed struct. A mismatch is an
    /// `invalid_token` failure naming the missing or mistyped claim (never
    /// its value), e.g. ``token claims do not fit: missing field `tenant` ``.
    pub fn claims_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, AuthError> {
        let fitted = match &self.inner.claims {
            // Straight from the text: no parsed copy is kept for this.
            Claims::Text { json, parsed } if parsed.get().is_none() => {
                serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(json)).map_err(|error| {
                    // The same message as from a parsed value: without the text position.
                    let inner = error.inner();
                    let message = inner.to_string();
                    let position = format!(" at line {} column {}", inner.line(), inner.column());
                    claims_mismatch(
                        error.path().to_string(),
                        message.strip_suffix(&position).unwrap_or(&message),
                    )
                })
            }
            claims => serde_path_to_error::deserialize(claims.value())
                .map_err(|error| claims_mismatch(error.path().to_string(), &error.inner().to_string())),
        };
        fitted.map_err(|reason| {
            tracing::info!(subject = %self.subject(), %reason, "token claims do not fit the requested type");
            AuthError::invalid_token(format!("token claims do not fit: {reason}"))
        })
    }
    /// A copy of this principal with `roles` replacing its roles.
    pub fn with_roles(&self, roles: Vec<String>) -> Principal {
        self.derive(|inner| inner.roles = roles.into_boxed_slice())
    }

    /// A copy of this principal carrying `data` as its attachment.
    #[cfg(feature = "session")]
    pub(crate) fn with_attachment<T: Any + Send + Sync>(&self, data: T) -> Principal {
        self.derive(|inner| inner.attachment = Some(Arc::new(data)))
    }

    fn derive(&self, change: impl FnOnce(&mut Inner)) -> Principal {
        let inner = &self.inner;
        let mut copy = Inner {
            subject: inner.subject.clone(),
            issuer: inner.issuer.clone(),
            audiences: inner.audiences.clone(),
            email: inner.email.clone(),
            name: inner.name.clone(),
            roles: inner.roles.clone(),
            groups: inner.groups.clone(),
            scopes: inner.scopes.clone(),
            permissions: inner.permissions.clone(),
            claims: inner.claims.clone(),
            attachment: inner.attachment.clone(),
            ..**inner
        };
        change(&mut copy);
        Principal { inner: Arc::new(copy) }
    }

    /// A copy whose roles, groups and permissions grant nothing.
    #[cfg(feature = "jwks")]
    pub(crate) fn with_untrusted_roles(&self) -> Principal {
        self.derive(|inner| inner.roles_untrusted = true)
    }

    /// A copy that holds its claims as compact JSON text, for long-lived
    /// caches: readers see the same claims, parsed again on first use.
    #[cfg(feature = "jwks")]
    pub(crate) fn compact(&self) -> Principal {
        let json = match &self.inner.claims {
            Claims::Text { json, .. } => json.clone(),
            Claims::Parsed(value) => value.to_string().into_boxed_str(),
        };
        self.derive(|inner| {
            inner.claims = Claims::Text {
                json,
                parsed: OnceLock::new(),
            }
        })
    }
}

impl fmt::Debug for Principal {
    // Claims are left out on purpose: they may carry personal data.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("provider", &self.inner.provider)
            .field("subject", &self.inner.subject)
            .field("issuer", &self.inner.issuer)
            .field("roles", &self.inner.roles)
            .field("groups", &self.inner.groups)
            .field("scopes", &self.inner.scopes)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Principal`].
#[must_use = "a builder does nothing until it is built"]
pub struct PrincipalBuilder {
    inner: Inner,
}

impl std::fmt::Debug for PrincipalBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Claims may carry personal data: the subject and provider only.
        f.debug_struct("PrincipalBuilder")
            .field("provider", &self.inner.provider)
            .field("subject", &self.inner.subject)
            .finish_non_exhaustive()
    }
}

impl PrincipalBuilder {
    /// Replaces the subject.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.inner.subject = subject.into().into_boxed_str();
        self
    }
    /// Sets the issuer.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.inner.issuer = Some(issuer.into().into_boxed_str());
        self
    }
    /// Sets the audiences.
    pub fn audiences(mut self, audiences: Vec<String>) -> Self {
        self.inner.audiences = audiences.into_boxed_slice();
        self
    }
    /// Sets the email.
    pub fn email(mut self, email: impl Into<String>) -> Self {
        self.inner.email = Some(email.into().into_boxed_str());
        self
    }
    /// Sets the display name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.inner.name = Some(name.into().into_boxed_str());
        self
    }
    /// Sets the roles.
    pub fn roles(mut self, roles: Vec<String>) -> Self {
        self.inner.roles = roles.into_boxed_slice();
        self
    }
    /// Sets the groups.
    pub fn groups(mut self, groups: Vec<String>) -> Self {
        self.inner.groups = groups.into_boxed_slice();
        self
    }
    /// Sets the scopes.
    pub fn scopes(mut self, scopes: Vec<String>) -> Self {
        self.inner.scopes = scopes.into_boxed_slice();
        self
    }
    /// Sets the permissions.
    pub fn permissions(mut self, permissions: Vec<String>) -> Self {
        self.inner.permissions = permissions.into_boxed_slice();
        self
    }
    /// Sets the expiry.
    pub fn expires_at(mut self, at: SystemTime) -> Self {
        self.inner.expires_at = Some(at);
        self
    }
    /// Sets the raw claims (a JSON object).
    pub fn claims(mut self, claims: RawClaims) -> Self {
        self.inner.claims = Claims::Parsed(Arc::new(Value::Object(claims)));
        self
    }
    /// Whether its roles, groups and permissions may grant access (default
    /// true); see [`Principal::roles_trusted`].
    pub fn roles_trusted(mut self, trusted: bool) -> Self {
        self.inner.roles_untrusted = !trusted;
        self
    }
    /// Attaches provider-specific data, read back with [`Principal::attachment`].
    pub fn attach<T: Any + Send + Sync>(mut self, data: T) -> Self {
        self.inner.attachment = Some(Arc::new(data));
        self
    }
    /// Finishes the principal.
    pub fn build(self) -> Principal {
        Principal {
            inner: Arc::new(self.inner),
        }
    }
}

/// Maps verified JWT claims to a [`Principal`] the default way:
///
/// - roles from `roles` (array or space-separated string), Keycloak
///   `realm_access.roles` and `resource_access.<audience>.roles` for each
///   configured audience;
/// - groups from `groups`; scopes from `scope` (space-separated) and `scp`
///   (array or string); permissions from `permissions`.
pub fn principal_from_claims(provider: &'static str, claims: RawClaims, audiences: &[String]) -> Principal {
    default_mapping(provider, &claims, audiences).claims(claims).build()
}

/// The default mapping, as a builder a preset can adjust before adding the claims.
pub(crate) fn default_mapping(provider: &'static str, claims: &RawClaims, audiences: &[String]) -> PrincipalBuilder {
    let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
    let mut roles = strings(claims.get("roles"));
    if let Some(realm) = claims.get("realm_access") {
        roles.extend(strings(realm.get("roles")));
    }
    if let Some(Value::Object(resources)) = claims.get("resource_access") {
        for audience in audiences {
            if let Some(resource) = resources.get(audience) {
                roles.extend(strings(resource.get("roles")));
            }
        }
    }
    dedup(&mut roles);
    let mut scopes = strings(claims.get("scope"));
    scopes.extend(strings(claims.get("scp")));
    dedup(&mut scopes);
    let mut builder = Principal::builder(provider, text("sub").unwrap_or_default())
        .audiences(strings(claims.get("aud")))
        .roles(roles)
        .groups(strings(claims.get("groups")))
        .scopes(scopes)
        .permissions(strings(claims.get("permissions")));
    if let Some(issuer) = text("iss") {
        builder = builder.issuer(issuer);
    }
    if let Some(email) = text("email") {
        builder = builder.email(email);
    }
    if let Some(name) = text("name") {
        builder = builder.name(name);
    }
    if let Some(exp) = claims
        .get("exp")
        .and_then(Value::as_f64)
        .filter(|e| e.is_finite() && *e >= 0.0)
    {
        builder = builder.expires_at(UNIX_EPOCH + Duration::from_secs_f64(exp.min(1e12)));
    }
    builder
}

/// A string list from a claim that may be an array of strings or a
/// space-separated string; anything else is empty.
fn strings(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

fn dedup(items: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::with_capacity(items.len());
    items.retain(|item| seen.insert(item.clone()));
}

/// A boxed, sendable future, as returned by [`RoleResolver::resolve`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Replaces or extends the roles of a freshly authenticated principal.
///
/// `resolve` receives the principal with the default-mapped roles and returns
/// the roles it should have: return `principal.roles()` plus yours to extend,
/// or a new list to replace. It runs once per verified credential (not on
/// cache hits), and may call out (a database, a directory); an error rejects
/// the request.
///
/// ```
/// use tower_authkit::{BoxFuture, Principal, RoleResolver, AuthError};
///
/// struct DepartmentRoles;
///
/// impl RoleResolver for DepartmentRoles {
///     fn resolve<'a>(&'a self, principal: &'a Principal) -> BoxFuture<'a, Result<Vec<String>, AuthError>> {
///         Box::pin(async move {
///             let mut roles = principal.roles().to_vec();
///             if principal.claim("department").and_then(|d| d.as_str()) == Some("finance") {
///                 roles.push("finance".to_owned());
///             }
///             Ok(roles)
///         })
///     }
/// }
/// ```
pub trait RoleResolver: Send + Sync + 'static {
    /// Returns the roles `principal` should have.
    fn resolve<'a>(&'a self, principal: &'a Principal) -> BoxFuture<'a, Result<Vec<String>, AuthError>>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(value: Value) -> RawClaims {
        match value {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    #[test]
    fn roles_come_from_every_documented_place() {
        let principal = principal_from_claims(
            "jwks",
            claims(json!({
                "sub": "u1",
                "roles": "a b",
                "realm_access": {"roles": ["c", "a"]},
                "resource_access": {"api": {"roles": ["d"]}, "other": {"roles": ["x"]}},
            })),
            &["api".to_owned()],
        );
        assert_eq!(principal.roles(), ["a", "b", "c", "d"]);
    }

    #[test]
    fn scopes_from_scope_and_scp() {
        let principal = principal_from_claims(
            "jwks",
            claims(json!({"sub": "u1", "scope": "read write", "scp": ["admin"], "groups": ["g"], "aud": "api"})),
            &[],
        );
        assert_eq!(principal.scopes(), ["read", "write", "admin"]);
        assert_eq!(principal.groups(), ["g"]);
        assert_eq!(principal.audiences(), ["api"]);
        let principal = principal_from_claims("jwks", claims(json!({"scp": "one two"})), &[]);
        assert_eq!(principal.scopes(), ["one", "two"]);
    }

    #[test]
    fn debug_hides_claims() {
        let principal = principal_from_claims("jwks", claims(json!({"sub": "u1", "secret": "hunter2"})), &[]);
        assert!(!format!("{principal:?}").contains("hunter2"));
    }
}

/// Describes a claims mismatch by its path and serde's message, keeping
/// only what names the claim and the expected type: serde quotes the
/// offending value in "invalid type" and "invalid value" messages.
fn claims_mismatch(path: String, message: &str) -> String {
    let at = if path == "." {
        String::new()
    } else {
        format!("`{path}`: ")
    };
    if message.starts_with("missing field") || message.starts_with("unknown field") {
        // Only field names: safe to show.
        let message = message.split(", expected").next().unwrap_or(message);
        return format!("{at}{message}");
    }
    match message.split_once(", expected ") {
        Some((_, expected)) => format!("{at}wrong type or value, expected {expected}"),
        None => format!("{at}unusable value"),
    }
}

#[cfg(test)]
mod claims_tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Tenant {
        tenant: String,
        seats: u32,
    }

    fn with_claims(claims: serde_json::Value) -> Principal {
        Principal::builder("test", "alice")
            .claims(claims.as_object().unwrap().clone())
            .build()
    }

    #[test]
    fn mismatched_claims_name_the_claim_but_never_its_value() {
        let missing = with_claims(serde_json::json!({"seats": 3}))
            .claims_as::<Tenant>()
            .unwrap_err();
        assert_eq!(missing.description(), "token claims do not fit: missing field `tenant`");
        let mistyped = with_claims(serde_json::json!({"tenant": "acme", "seats": "secret-ish"}))
            .claims_as::<Tenant>()
            .unwrap_err();
        assert_eq!(
            mistyped.description(),
            "token claims do not fit: `seats`: wrong type or value, expected u32"
        );
        assert!(!mistyped.description().contains("secret-ish"));
        assert_eq!(mistyped.status(), http::StatusCode::UNAUTHORIZED);
    }

    /// The compact copy the token cache keeps reads exactly like the original.
    #[cfg(feature = "jwks")]
    #[test]
    fn a_compact_principal_reads_like_the_original() {
        let claims = serde_json::json!({"tenant": "acme", "seats": 3, "nested": {"a": [1, "b"]}});
        let original = with_claims(claims.clone());
        let compact = original.compact();
        assert_eq!(compact.subject(), "alice");
        // Typed reads straight from the text, before anything parsed it.
        assert_eq!(compact.claims_as::<Tenant>().unwrap().tenant, "acme");
        let mistyped = with_claims(serde_json::json!({"tenant": "acme", "seats": "secret-ish"})).compact();
        assert_eq!(
            mistyped.claims_as::<Tenant>().unwrap_err().description(),
            "token claims do not fit: `seats`: wrong type or value, expected u32"
        );
        assert_eq!(compact.claims(), &claims);
        assert_eq!(compact.claim("seats"), Some(&serde_json::json!(3)));
        // Parsed once, then the typed read uses the parsed form.
        assert_eq!(compact.claims_as::<Tenant>().unwrap().seats, 3);
        assert_eq!(compact.compact().claims(), &claims);
        assert_eq!(compact.with_roles(vec!["r".into()]).claims(), &claims);
    }
}
