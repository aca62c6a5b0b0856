//! axum extractors: [`Principal`], `Option<Principal>`, [`Claims<T>`],

use std::marker::PhantomData;
use std::sync::Arc;

use axum_core::body::Body;
use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;

use crate::authz::Policy;
use crate::context::SecurityContext;
use crate::layer::{principal_in, renderer_in};
use crate::principal::Principal;
use crate::rejection::{AuthError, AuthErrorKind, DefaultRenderer, Protocol, Renderer};

/// The rejection of the crate's extractors: an [`AuthError`], rendered with
/// the auth layer's renderer when it has a custom one.
pub struct AuthRejection {
    error: AuthError,
    protocol: Protocol,
    renderer: Option<Arc<dyn Renderer>>,
}

impl AuthRejection {
    pub(crate) fn new(parts: &Parts, error: AuthError) -> Self {
        let (offers_dpop, offers_bearer) = crate::layer::inner_scheme(&parts.extensions);
        Self {
            error: error.in_scheme_of(&parts.headers, offers_dpop, offers_bearer),
            protocol: Protocol::of(&parts.headers),
            renderer: renderer_in(&parts.extensions),
        }
    }

    /// The underlying error.
    pub fn error(&self) -> &AuthError {
        &self.error
    }
}

impl std::fmt::Debug for AuthRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthRejection")
            .field("error", &self.error)
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        let response = match &self.renderer {
            Some(renderer) => crate::rejection::rendered(&**renderer, &self.error, self.protocol),
            None => crate::rejection::rendered(&DefaultRenderer::default(), &self.error, self.protocol),
        };
        response.map(Body::from)
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        crate::rejection::rendered(&DefaultRenderer::default(), &self, Protocol::Http).map(Body::from)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        principal_in(&parts.extensions)
            .cloned()
            .map_err(|error| AuthRejection::new(parts, error))
    }
}

/// `None` when the request is anonymous or its credential was invalid; an
/// error only when the credential could not be checked (an upstream failure).
impl<S: Send + Sync> OptionalFromRequestParts<S> for Principal {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, Self::Rejection> {
        match principal_in(&parts.extensions) {
            Ok(principal) => Ok(Some(principal.clone())),
            Err(error) if matches!(error.kind(), AuthErrorKind::Unavailable | AuthErrorKind::BadGateway) => {
                Err(AuthRejection::new(parts, error))
            }
            Err(_) => Ok(None),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for SecurityContext {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(SecurityContext::new(parts.extensions.get::<Principal>().cloned()))
    }
}

/// Typed custom claims, deserialized from the principal's verified raw claims.
/// 401 when unauthenticated or when the claims do not fit `T`.
#[derive(Clone, Debug)]
pub struct Claims<T>(pub T);

impl<S, T> FromRequestParts<S> for Claims<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        principal_in(&parts.extensions)
            .and_then(Principal::claims_as)
            .map(Claims)
            .map_err(|error| AuthRejection::new(parts, error))
    }
}

/// The principal, once it satisfied policy `P` (see [`policy!`](crate::policy)).
/// 401 when unauthenticated, 403 when the policy fails.
///
/// axum extractors: [`Principal`], `Option<Principal>`, [`Claims<T>`],
/// [`SecurityContext`] and [`Authorized<P>`].
///
/// ```
/// use axum::{routing::get, Json, Router};
/// use serde::Deserialize;
/// use tower_authkit::{policy, Authorized, Claims, Principal, RequireRole};
///
/// #[derive(Deserialize)]
/// struct TenantClaims { tenant: String }
///
/// policy!(Admin = RequireRole::new("admin"));
///
/// async fn me(principal: Principal) -> String { principal.subject().to_owned() }
/// async fn maybe(principal: Option<Principal>) -> &'static str {
///     if principal.is_some() { "hello, you" } else { "hello, stranger" }
/// }
/// async fn tenant(Claims(claims): Claims<TenantClaims>) -> String { claims.tenant }
/// async fn admin(Authorized(principal, _): Authorized<Admin>) -> String { principal.subject().to_owned() }
///
/// # fn app(auth: tower_authkit::jwt::JwksAuthLayer) -> Router {
/// let app = Router::new()
///     .route("/me", get(me))
///     .route("/hello", get(maybe))
///     .route("/tenant", get(tenant))
///     .route("/admin", get(admin))
///     // Required everywhere, optional on /hello: without it, a required
///     // layer answers 401 before `Option<Principal>` could see `None`.
///     .layer(auth.optional_path("/hello"));
/// # app }
/// ```
pub struct Authorized<P>(pub Principal, pub PhantomData<P>);

impl<P> std::fmt::Debug for Authorized<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Authorized").field(&self.0).finish()
    }
}

impl<S: Send + Sync, P: Policy> FromRequestParts<S> for Authorized<P> {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        principal_in(&parts.extensions)
            .and_then(|principal| P::check(principal).map(|()| principal.clone()))
            .map(|principal| Authorized(principal, PhantomData))
            .map_err(|error| AuthRejection::new(parts, error))
    }
}
