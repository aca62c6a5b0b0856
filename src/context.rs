//! `SecurityContext`: the current request's principal, readable from any code

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio::task::futures::TaskLocalFuture;

use crate::principal::Principal;
use crate::rejection::AuthError;

tokio::task_local! {
    static CURRENT: SecurityContext;
}

pin_project! {
    /// A future running with a [`SecurityContext`] as the current one; see
    /// [`SecurityContext::scope`].
    pub struct Scoped<F> {
        #[pin]
        inner: TaskLocalFuture<SecurityContext, F>,
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.project().inner.poll(cx)
    }
}

impl<F> fmt::Debug for Scoped<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Scoped")
    }
}

/// The principal of the request being served, if any. Cheap to clone.
///
/// `SecurityContext`: the current request's principal, readable from any code
/// running inside the request's future.
///
/// The auth layer runs the inner service inside a task-local scope, so a
/// repository or service function can ask who the caller is without threading
/// the principal through every signature:
///
/// ```
/// use tower_authkit::{AuthError, SecurityContext};
///
/// fn audit_log(action: &str) -> Result<String, AuthError> {
///     let caller = SecurityContext::current().require()?;
///     Ok(format!("{} did {action}", caller.subject()))
/// }
///
/// // Outside a request there is no principal:
/// assert!(SecurityContext::current().principal().is_none());
/// assert!(audit_log("delete").is_err());
/// ```
///
/// The scope covers the inner service's future. Work moved to another task
/// (`tokio::spawn`) leaves the scope: pass the [`Principal`] along, or wrap the
/// spawned future with [`SecurityContext::scope`].
#[derive(Clone, Debug, Default)]
pub struct SecurityContext {
    principal: Option<Principal>,
}

impl SecurityContext {
    /// A context for `principal` (or an anonymous one for `None`).
    pub fn new(principal: Option<Principal>) -> Self {
        Self { principal }
    }

    /// The context of the request whose future is running; empty outside one.
    pub fn current() -> Self {
        CURRENT.try_with(Clone::clone).unwrap_or_default()
    }

    /// Runs `future` with this context as the current one.
    pub fn scope<F: Future>(self, future: F) -> Scoped<F> {
        Scoped {
            inner: CURRENT.scope(self, future),
        }
    }

    /// The principal, if the request is authenticated.
    pub fn principal(&self) -> Option<&Principal> {
        self.principal.as_ref()
    }

    /// Whether the request is authenticated.
    pub fn is_authenticated(&self) -> bool {
        self.principal.is_some()
    }

    /// The principal, or a 401 rejection.
    pub fn require(&self) -> Result<Principal, AuthError> {
        self.principal.clone().ok_or_else(AuthError::missing_credentials)
    }

    /// The principal's roles (empty when anonymous).
    pub fn roles(&self) -> &[String] {
        self.principal.as_ref().map(Principal::roles).unwrap_or_default()
    }

    /// The principal's groups (empty when anonymous).
    pub fn groups(&self) -> &[String] {
        self.principal.as_ref().map(Principal::groups).unwrap_or_default()
    }

    /// Whether the principal has `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.principal.as_ref().is_some_and(|p| p.has_role(role))
    }

    /// Whether the principal is in `group`.
    pub fn has_group(&self, group: &str) -> bool {
        self.principal.as_ref().is_some_and(|p| p.has_group(group))
    }

    /// Ok when the principal has `role`; 401 when anonymous, 403 otherwise.
    pub fn require_role(&self, role: &str) -> Result<(), AuthError> {
        let principal = self.principal.as_ref().ok_or_else(AuthError::missing_credentials)?;
        if principal.has_role(role) {
            Ok(())
        } else {
            Err(AuthError::forbidden(format!("missing required role {role:?}")))
        }
    }

    /// Ok when the principal is in `group`; 401 when anonymous, 403 otherwise.
    pub fn require_group(&self, group: &str) -> Result<(), AuthError> {
        let principal = self.principal.as_ref().ok_or_else(AuthError::missing_credentials)?;
        if principal.has_group(group) {
            Ok(())
        } else {
            Err(AuthError::forbidden(format!("missing required group {group:?}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn current_is_set_inside_the_scope_and_empty_outside() {
        let principal = Principal::builder("test", "u1").roles(vec!["admin".into()]).build();
        let inside = SecurityContext::new(Some(principal))
            .scope(async {
                let context = SecurityContext::current();
                (
                    context.require().ok().map(|p| p.subject().to_owned()),
                    context.has_role("admin"),
                    context.require_group("g").is_err(),
                )
            })
            .await;
        assert_eq!(inside, (Some("u1".to_owned()), true, true));
        assert!(SecurityContext::current().require().is_err());
    }
}
