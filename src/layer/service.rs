use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::body::AuthBody;
use super::future::ResponseFuture;
use super::{AuthLayer, Authentication, Authenticator, CookieSession, Mode, RendererHandle, RequestHead};
use crate::rejection::{AuthError, AuthErrorKind};

/// The service produced by [`AuthLayer`].
pub struct AuthService<S, A> {
    inner: S,
    layer: AuthLayer<A>,
}

impl<S: Clone, A> Clone for AuthService<S, A> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S, A> std::fmt::Debug for AuthService<S, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthService")
            .field("layer", &self.layer)
            .finish_non_exhaustive()
    }
}

impl<S, A> AuthService<S, A> {
    pub(crate) fn new(inner: S, layer: AuthLayer<A>) -> Self {
        Self { inner, layer }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// What the pipeline does with a request whose authentication failed.
pub(crate) enum Failure {
    /// Render the rejection now.
    Reject(AuthError),
    /// Let the request through anonymously, with the rejection recorded.
    PassRecorded(AuthError),
}

/// The mode's verdict on a rejection; one place for the rules.
pub(crate) fn on_failure(mode: Mode, invalid_as_anonymous: bool, error: AuthError) -> Failure {
    match mode {
        Mode::Required => Failure::Reject(error),
        Mode::EnrichOnly => Failure::PassRecorded(error),
        Mode::Optional => match error.kind() {
            AuthErrorKind::MissingCredentials => Failure::PassRecorded(error),
            AuthErrorKind::InvalidToken | AuthErrorKind::InvalidRequest if invalid_as_anonymous => {
                Failure::PassRecorded(error)
            }
            _ => Failure::Reject(error),
        },
    }
}

impl<S, A, ReqBody, ResBody> Service<Request<ReqBody>> for AuthService<S, A>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    A: Authenticator,
{
    type Response = Response<AuthBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, A, ReqBody, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // Take the service that was driven to readiness; leave a clone behind.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let config = &self.layer.config;
        if config.custom_renderer {
            request
                .extensions_mut()
                .insert(RendererHandle(Arc::clone(&config.renderer)));
        }
        if config.cookie_session {
            request.extensions_mut().insert(CookieSession);
        }
        let head = RequestHead {
            method: request.method(),
            uri: request.uri(),
            headers: request.headers(),
            extensions: request.extensions(),
        };
        let authenticator = &self.layer.authenticator;
        if config.is_public(&head) {
            return ResponseFuture::public(inner, request, authenticator, config);
        }
        let answer = match config.sources.extract(head.headers, head.uri) {
            Ok(Some(credential)) => authenticator.authenticate(credential, &head),
            Ok(None) => authenticator
                .without_credential(&head)
                .unwrap_or(Authentication::Ready(Err(AuthError::missing_credentials()))),
            Err(error) => Authentication::Ready(Err(error)),
        };
        match answer {
            // Cache hits and cheap rejections never enter the async state.
            Authentication::Ready(outcome) => ResponseFuture::settled(inner, request, authenticator, config, outcome),
            Authentication::Pending(future) => {
                ResponseFuture::authenticating(future, Arc::clone(authenticator), inner, request, Arc::clone(config))
            }
        }
    }
}
