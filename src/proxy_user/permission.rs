//! Permission checks against the auth proxy (`test-app-permission/{name}`),
//! as a layer and as an extractor.

use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::ProxySession;
use crate::error::ConfigError;
use crate::layer::{AuthBody, principal_in, render_in};
use crate::principal::{BoxFuture, Principal};
use crate::rejection::AuthError;

/// Whether `name` is a valid permission name: `[A-Za-z0-9_-]+`. Usable in
/// `const` context, so [`proxy_permission!`](crate::proxy_permission) checks
/// names at compile time.
pub const fn is_valid_permission_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    if bytes.is_empty() {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !(b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return false;
        }
        i += 1;
    }
    true
}

/// The session's answer for `permission`: Ok when granted, 403 when denied,
/// 401 when unauthenticated, 502 when the upstream fails.
pub(crate) async fn check(principal: &Principal, permission: &Arc<str>) -> Result<(), AuthError> {
    let session = principal
        .attachment::<ProxySession>()
        .ok_or_else(|| AuthError::forbidden("permission checks need a ProxyUserLayer identity"))?;
    let client = session
        .client
        .upgrade()
        .ok_or_else(|| AuthError::unavailable("auth client is shut down", std::time::Duration::from_secs(30)))?;
    match client.permission(session, permission).await? {
        true => Ok(()),
        false => Err(AuthError::forbidden(format!(
            "missing required permission {:?}",
            &**permission
        ))),
    }
}

/// Requires an upstream-granted permission; a layer (`route_layer`, tonic).
#[derive(Clone, Debug)]
pub struct RequireProxyPermission {
    name: Arc<str>,
}

impl RequireProxyPermission {
    /// Requires `name`, which must match `[A-Za-z0-9_-]+`.
    pub fn new(name: &str) -> Result<Self, ConfigError> {
        if !is_valid_permission_name(name) {
            return Err(ConfigError::Invalid {
                setting: "permission",
                reason: format!("{name:?} does not match [A-Za-z0-9_-]+"),
            });
        }
        Ok(Self { name: name.into() })
    }
}

impl<S> Layer<S> for RequireProxyPermission {
    type Service = ProxyPermissionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ProxyPermissionService {
            inner,
            name: Arc::clone(&self.name),
        }
    }
}

/// The service of [`RequireProxyPermission`].
#[derive(Clone, Debug)]
pub struct ProxyPermissionService<S> {
    inner: S,
    name: Arc<str>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ProxyPermissionService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    ReqBody: Send + 'static,
{
    type Response = Response<AuthBody<ResBody>>;
    type Error = S::Error;
    // Boxed: the check awaits an upstream call (cached after the first).
    type Future = BoxFuture<'static, Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let name = Arc::clone(&self.name);
        Box::pin(async move {
            let verdict = match principal_in(request.extensions()) {
                Ok(principal) => check(principal, &name).await,
                Err(error) => Err(error),
            };
            match verdict {
                Ok(()) => Ok(inner.call(request).await?.map(AuthBody::inner)),
                Err(error) => {
                    let response = render_in(request.extensions(), request.headers(), error);
                    Ok(crate::layer::rejection_response(response))
                }
            }
        })
    }
}

/// A permission name known by type, for the [`Permitted`] extractor. Define
/// one with [`proxy_permission!`](crate::proxy_permission).
pub trait PermissionName: Send + Sync + 'static {
    /// The permission, matching `[A-Za-z0-9_-]+`.
    const NAME: &'static str;
}

/// Defines a [`PermissionName`]; the name is checked at compile time.
///
/// ```
/// tower_authkit::proxy_permission!(pub Audit = "audit");
/// // async fn handler(tower_authkit::proxy_user::Permitted(user, _): Permitted<Audit>) { ... }
/// ```
///
/// ```compile_fail
/// tower_authkit::proxy_permission!(Bad = "no spaces allowed");
/// ```
#[macro_export]
macro_rules! proxy_permission {
    ($vis:vis $name:ident = $permission:literal) => {
        #[doc = concat!("The `", $permission, "` permission.")]
        #[derive(Clone, Copy, Debug, Default)]
        $vis struct $name;

        // Evaluated where the macro is used, so a bad name fails the build.
        const _: () = assert!(
            $crate::proxy_user::is_valid_permission_name($permission),
            "permission names must match [A-Za-z0-9_-]+"
        );

        impl $crate::proxy_user::PermissionName for $name {
            const NAME: &'static str = $permission;
        }
    };
}

/// The current user, once the auth proxy granted permission `P`.
/// 401 unauthenticated, 403 denied, 502 upstream failure.
pub struct Permitted<P>(pub super::CurrentUser, pub PhantomData<P>);

impl<P> std::fmt::Debug for Permitted<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Permitted").field(&self.0).finish()
    }
}

#[cfg(feature = "axum")]
impl<S: Send + Sync, P: PermissionName> axum_core::extract::FromRequestParts<S> for Permitted<P> {
    type Rejection = crate::extract::AuthRejection;

    async fn from_request_parts(parts: &mut http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        let user =
            <super::CurrentUser as axum_core::extract::FromRequestParts<S>>::from_request_parts(parts, state).await?;
        let name: Arc<str> = Arc::from(P::NAME);
        match check(&user.principal, &name).await {
            Ok(()) => Ok(Permitted(user, PhantomData)),
            Err(error) => Err(crate::extract::AuthRejection::new(parts, error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_names_are_validated() {
        for ok in ["audit", "read_all", "a-b", "X9"] {
            assert!(
                is_valid_permission_name(ok) && RequireProxyPermission::new(ok).is_ok(),
                "{ok}"
            );
        }
        for bad in ["", "a b", "a/b", "../x", "ä", "a?b"] {
            assert!(
                !is_valid_permission_name(bad) && RequireProxyPermission::new(bad).is_err(),
                "{bad}"
            );
        }
    }
}
