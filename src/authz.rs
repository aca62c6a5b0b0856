//! Authorization: roles, groups, scopes, permissions and custom predicates.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use crate::layer::{AuthBody, principal_in, render_in};
use crate::principal::Principal;
use crate::rejection::AuthError;

/// A check on an authenticated principal.
///
/// Authorization: roles, groups, scopes, permissions and custom predicates.
///
/// Each requirement is a Tower layer (for axum's `route_layer` and tonic) and
/// can back an extractor through a [`Policy`]. They read the principal an auth
/// layer inserted: 401 when there is none, 403 when it falls short.
///
/// ```
/// use axum::{routing::get, Router};
/// use tower_authkit::{RequireRole, RequireScope};
///
/// let app: Router = Router::new()
///     .route("/admin", get(|| async { "admin" }))
///     .route_layer(RequireRole::any(["admin", "owner"]))
///     .route("/reports", get(|| async { "reports" }).route_layer(RequireScope::all(["reports:read"])));
/// // ... then `.layer(jwks_auth_layer)` around the whole router.
/// ```
///
/// **Per method.** `route_layer` wraps every method routed on the path so
/// far: `get(list).route_layer(RequireScope::new("read")).post(create).route_layer(RequireRole::new("editor"))`
/// makes `GET` need the role too. Put a requirement on one handler with
/// axum's `Handler::layer`, or ask for it in the handler's arguments with
/// [`Authorized<P>`](crate::Authorized) and a [`policy!`](crate::policy):
///
/// ```
/// use axum::{handler::Handler, routing::get, Router};
/// use tower_authkit::{policy, Authorized, RequireRole, RequireScope};
///
/// policy!(Editor = RequireRole::new("editor"));
///
/// async fn create(Authorized(editor, _): Authorized<Editor>) -> String {
///     format!("created by {}", editor.subject())
/// }
///
/// let app: Router = Router::new().route(
///     "/articles",
///     get((|| async { "articles" }).layer(RequireScope::new("articles:read"))).post(create),
/// );
/// ```
pub trait Requirement: Send + Sync + 'static {
    /// Ok when `principal` satisfies the requirement; a 403 rejection otherwise.
    fn check(&self, principal: &Principal) -> Result<(), AuthError>;
}

#[derive(Clone, Debug)]
struct NameRequirement {
    names: Arc<[String]>,
    all: bool,
    /// The issuers whose assertions this check trusts, when it names them.
    issuers: Option<Arc<[String]>>,
}

impl NameRequirement {
    fn new<I, T>(names: I, all: bool) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        Self {
            names: names.into_iter().map(Into::into).collect(),
            all,
            issuers: None,
        }
    }

    /// Whether `principal`'s assertions count for this check: its issuer is
    /// one the check names; or, when it names none, `trusted` (for roles,
    /// groups and permissions: not from an untrusted tenant pattern).
    fn trusts(&self, principal: &Principal, trusted: bool) -> bool {
        match &self.issuers {
            Some(issuers) => principal.issuer().is_some_and(|iss| issuers.iter().any(|i| i == iss)),
            None => trusted,
        }
    }

    /// What is missing, e.g. `missing required role "admin"` or
    /// `missing required roles: all of "a", "b"`.
    fn missing(&self, what: &str) -> String {
        let quoted: Vec<String> = self.names.iter().map(|n| format!("{n:?}")).collect();
        match (quoted.len(), self.all) {
            (1, _) => format!("missing required {what} {}", quoted[0]),
            (_, true) => format!("missing required {what}s: all of {}", quoted.join(", ")),
            (_, false) => format!("missing required {what}: one of {}", quoted.join(", ")),
        }
    }

    fn satisfied_by(&self, has: impl Fn(&str) -> bool) -> bool {
        if self.all {
            self.names.iter().all(|n| has(n))
        } else {
            self.names.iter().any(|n| has(n))
        }
    }
}

macro_rules! name_requirement {
    ($(#[$doc:meta])* $name:ident, $list:ident, $trusted:expr, $what:literal, $error:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        #[must_use = "a requirement does nothing until it wraps a service"]
        pub struct $name(NameRequirement);

        impl $name {
            #[doc = concat!("Requires the ", $what, " `name`.")]
            pub fn new(name: impl Into<String>) -> Self {
                Self(NameRequirement::new([name.into()], false))
            }
            #[doc = concat!("Requires at least one of the ", $what, "s.")]
            pub fn any<I: IntoIterator<Item = T>, T: Into<String>>(names: I) -> Self {
                Self(NameRequirement::new(names, false))
            }
            #[doc = concat!("Requires every one of the ", $what, "s.")]
            pub fn all<I: IntoIterator<Item = T>, T: Into<String>>(names: I) -> Self {
                Self(NameRequirement::new(names, true))
            }
            #[doc = concat!(
                "Counts only ", $what, "s asserted by one of these issuers (exact `iss`), ",
                "whatever their trust otherwise: e.g. one tenant of a tenant pattern."
            )]
            pub fn from_issuers<I: IntoIterator<Item = T>, T: Into<String>>(mut self, issuers: I) -> Self {
                self.0.issuers = Some(issuers.into_iter().map(Into::into).collect());
                self
            }
        }

        impl Requirement for $name {
            fn check(&self, principal: &Principal) -> Result<(), AuthError> {
                let trusted: fn(&Principal) -> bool = $trusted;
                let has = |name: &str| principal.$list().iter().any(|n| n == name);
                if self.0.trusts(principal, trusted(principal)) && self.0.satisfied_by(has) {
                    Ok(())
                } else {
                    let error: fn(&NameRequirement) -> AuthError = $error;
                    Err(error(&self.0))
                }
            }
        }

        impl<S> Layer<S> for $name {
            type Service = RequireService<S, $name>;
            fn layer(&self, inner: S) -> Self::Service {
                RequireService::new(inner, Arc::new(self.clone()))
            }
        }
    };
}

name_requirement!(
    /// Requires roles (any-of or all-of). Roles from an issuer admitted
    /// through a tenant pattern count only when the pattern is trusted for
    /// roles, or when the check names the issuer
    /// ([`from_issuers`](Self::from_issuers)).
    RequireRole, roles, Principal::roles_trusted, "role", |names| AuthError::forbidden(names.missing("role"))
);
name_requirement!(
    /// Requires group membership (any-of or all-of); trusted like
    /// [`RequireRole`].
    RequireGroup, groups, Principal::roles_trusted, "group", |names| AuthError::forbidden(names.missing("group"))
);
name_requirement!(
    /// Requires OAuth scopes (any-of or all-of); failures name the scopes in
    /// the RFC 6750 `insufficient_scope` challenge. Scopes say what the token
    /// may do at this resource, whichever issuer granted it.
    RequireScope, scopes, |_| true, "scope", |names| AuthError::insufficient_scope(names.names.join(" "))
);
name_requirement!(
    /// Requires permissions (any-of or all-of); trusted like [`RequireRole`].
    RequirePermission, permissions, Principal::roles_trusted, "permission", |names| AuthError::forbidden(names.missing("permission"))
);

/// A requirement from a predicate; see [`require_fn`].
pub struct RequireFn<F>(Arc<F>);

impl<F> std::fmt::Debug for RequireFn<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequireFn").finish_non_exhaustive()
    }
}

impl<F> Clone for RequireFn<F> {
    fn clone(&self) -> Self {
        RequireFn(Arc::clone(&self.0))
    }
}

/// Requires `predicate(principal)` to hold.
///
/// ```
/// use tower_authkit::require_fn;
/// let corp_only = require_fn(|p| p.email().is_some_and(|e| e.ends_with("@example.com")));
/// ```
pub fn require_fn<F>(predicate: F) -> RequireFn<F>
where
    F: Fn(&Principal) -> bool + Send + Sync + 'static,
{
    RequireFn(Arc::new(predicate))
}

impl<F> Requirement for RequireFn<F>
where
    F: Fn(&Principal) -> bool + Send + Sync + 'static,
{
    fn check(&self, principal: &Principal) -> Result<(), AuthError> {
        if (self.0)(principal) {
            Ok(())
        } else {
            Err(AuthError::forbidden("access denied"))
        }
    }
}

impl<S, F> Layer<S> for RequireFn<F>
where
    F: Fn(&Principal) -> bool + Send + Sync + 'static,
{
    type Service = RequireService<S, RequireFn<F>>;
    fn layer(&self, inner: S) -> Self::Service {
        RequireService::new(inner, Arc::new(self.clone()))
    }
}

/// A requirement known by type, for the `Authorized<P>` extractor. Define
/// one with [`policy!`](crate::policy).
pub trait Policy: Send + Sync + 'static {
    /// Ok when `principal` satisfies the policy.
    fn check(principal: &Principal) -> Result<(), AuthError>;
}

/// Defines a unit struct implementing [`Policy`] from a requirement
/// expression, for use with the `Authorized<P>` extractor.
///
/// ```
/// use tower_authkit::{policy, RequireRole, RequireScope};
///
/// policy!(pub Admin = RequireRole::new("admin"));
/// policy!(ReportReader = RequireScope::all(["reports:read"]));
/// // async fn handler(Authorized(principal, _): Authorized<Admin>) { ... }
/// ```
#[macro_export]
macro_rules! policy {
    ($vis:vis $name:ident = $requirement:expr) => {
        #[doc = concat!("The `", stringify!($name), "` policy: `", stringify!($requirement), "`.")]
        #[derive(Clone, Copy, Debug, Default)]
        $vis struct $name;

        impl $crate::Policy for $name {
            fn check(principal: &$crate::Principal) -> ::std::result::Result<(), $crate::AuthError> {
                static REQUIREMENT: ::std::sync::LazyLock<::std::boxed::Box<dyn $crate::Requirement>> =
                    ::std::sync::LazyLock::new(|| ::std::boxed::Box::new($requirement));
                REQUIREMENT.check(principal)
            }
        }
    };
}

/// The service produced by the `Require*` layers.
pub struct RequireService<S, R> {
    inner: S,
    requirement: Arc<R>,
}

impl<S, R> RequireService<S, R> {
    pub(crate) fn new(inner: S, requirement: Arc<R>) -> Self {
        Self { inner, requirement }
    }
}

impl<S: Clone, R> Clone for RequireService<S, R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            requirement: Arc::clone(&self.requirement),
        }
    }
}

impl<S, R> std::fmt::Debug for RequireService<S, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequireService").finish_non_exhaustive()
    }
}

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for RequireService<S, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    R: Requirement,
{
    type Response = Response<AuthBody<ResBody>>;
    type Error = S::Error;
    type Future = RequireFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let verdict = principal_in(request.extensions()).and_then(|p| self.requirement.check(p));
        match verdict {
            Ok(()) => RequireFuture::pass(self.inner.call(request)),
            Err(error) => {
                if error.status() == http::StatusCode::FORBIDDEN {
                    crate::audit::emit(crate::audit::AuditEvent::AccessDenied {
                        subject: request.extensions().get::<Principal>().map(Principal::subject),
                        path: request.uri().path(),
                        reason: error.description(),
                    });
                }
                RequireFuture::refuse(render_in(request.extensions(), request.headers(), error))
            }
        }
    }
}

/// The response future of [`RequireService`].
pub type RequireFuture<F> = crate::layer::GuardFuture<F>;

#[cfg(test)]
mod tests {
    use super::*;

    fn principal() -> Principal {
        Principal::builder("test", "u1")
            .roles(vec!["user".into(), "dev".into()])
            .scopes(vec!["read".into()])
            .build()
    }

    #[test]
    fn any_and_all_of() {
        assert!(RequireRole::any(["admin", "dev"]).check(&principal()).is_ok());
        assert!(RequireRole::all(["user", "dev"]).check(&principal()).is_ok());
        assert!(RequireRole::all(["user", "admin"]).check(&principal()).is_err());
        assert!(RequireGroup::new("g").check(&principal()).is_err());
    }

    #[test]
    fn scope_failures_name_the_scopes() {
        let error = RequireScope::all(["read", "write"]).check(&principal()).unwrap_err();
        assert_eq!(error.status(), 403);
        assert_eq!(error.scope(), Some("read write"));
    }

    #[test]
    fn roles_of_untrusted_issuers_satisfy_only_checks_that_name_them() {
        let tenant = Principal::builder("jwks", "t1")
            .issuer("https://login.example/evil/v2.0")
            .roles(vec!["admin".into()])
            .groups(vec!["staff".into()])
            .permissions(vec!["delete".into()])
            .scopes(vec!["read".into()])
            .roles_trusted(false)
            .build();
        assert!(RequireRole::new("admin").check(&tenant).is_err());
        assert!(RequireGroup::new("staff").check(&tenant).is_err());
        assert!(RequirePermission::new("delete").check(&tenant).is_err());
        assert!(RequireScope::new("read").check(&tenant).is_ok(), "scopes are unchanged");
        assert!(!tenant.has_role("admin") && tenant.roles() == ["admin"]);
        let named = RequireRole::new("admin").from_issuers(["https://login.example/evil/v2.0"]);
        assert!(named.check(&tenant).is_ok());
        let other = RequireRole::new("admin").from_issuers(["https://login.example/good/v2.0"]);
        assert!(other.check(&tenant).is_err());
        // A check naming issuers refuses principals of other issuers, trusted or not.
        assert!(other.check(&principal()).is_err());
    }

    #[test]
    fn predicates() {
        assert!(require_fn(|p| p.subject() == "u1").check(&principal()).is_ok());
        assert!(require_fn(|p| p.subject() == "u2").check(&principal()).is_err());
    }
}
