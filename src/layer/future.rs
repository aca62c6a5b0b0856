use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tokio::task::futures::TaskLocalFuture;
use tower_service::Service;

use super::body::{AuthBody, rejection_response};
use super::service::{Failure, on_failure};
use super::{LayerConfig, RecordedRejection};
use crate::context::SecurityContext;
use crate::principal::Principal;
use crate::rejection::{AuthError, Protocol};

pin_project! {
    /// The response future of [`AuthService`](super::AuthService): authenticates,
    /// then runs the inner service inside the request's `SecurityContext`.
    pub struct ResponseFuture<S, F, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, S::Future, F, ReqBody>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, SF, F, ReqBody> {
        Authenticating {
            #[pin]
            authenticating: F,
            inner: Option<S>,
            request: Option<Request<ReqBody>>,
            config: Arc<LayerConfig>,
        },
        Calling {
            #[pin]
            future: TaskLocalFuture<SecurityContext, SF>,
        },
        Rejected {
            response: Option<Response<Bytes>>,
        },
    }
}

impl<S, F, ReqBody> ResponseFuture<S, F, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    pub(crate) fn call_inner(mut inner: S, request: Request<ReqBody>, context: SecurityContext) -> Self {
        let future = context.scope(inner.call(request));
        Self {
            state: State::Calling { future },
        }
    }

    pub(crate) fn authenticating(
        authenticating: F,
        inner: S,
        request: Request<ReqBody>,
        config: Arc<LayerConfig>,
    ) -> Self {
        Self {
            state: State::Authenticating {
                authenticating,
                inner: Some(inner),
                request: Some(request),
                config,
            },
        }
    }

    fn rejected(response: Response<Bytes>) -> Self {
        Self {
            state: State::Rejected {
                response: Some(response),
            },
        }
    }

    /// The one place an authentication outcome turns into what happens next:
    /// the inner service with the principal, the inner service with a
    /// recorded rejection, or a rendered rejection (per the layer's mode).
    pub(crate) fn settled(
        inner: S,
        mut request: Request<ReqBody>,
        config: &LayerConfig,
        outcome: Result<Principal, AuthError>,
    ) -> Self {
        match outcome {
            Ok(principal) => {
                request.extensions_mut().insert(principal.clone());
                Self::call_inner(inner, request, SecurityContext::new(Some(principal)))
            }
            Err(error) => match on_failure(config.mode, config.invalid_as_anonymous, error) {
                Failure::Reject(error) => {
                    tracing::debug!(code = error.code(), reason = error.description(), "request rejected");
                    Self::rejected(config.renderer.render(&error, Protocol::of(request.headers())))
                }
                Failure::PassRecorded(error) => {
                    request.extensions_mut().insert(RecordedRejection(error));
                    Self::call_inner(inner, request, SecurityContext::default())
                }
            },
        }
    }
}

impl<S, F, ReqBody, ResBody> Future for ResponseFuture<S, F, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    F: Future<Output = Result<Principal, AuthError>>,
{
    type Output = Result<Response<AuthBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Calling { future } => {
                    let response = ready!(future.poll(cx))?;
                    return Poll::Ready(Ok(response.map(AuthBody::inner)));
                }
                StateProj::Rejected { response } => {
                    let response = response.take().expect("ResponseFuture polled after completion");
                    return Poll::Ready(Ok(rejection_response(response)));
                }
                StateProj::Authenticating {
                    authenticating,
                    inner,
                    request,
                    config,
                } => {
                    let outcome = ready!(authenticating.poll(cx));
                    let (Some(service), Some(request)) = (inner.take(), request.take()) else {
                        unreachable!("ResponseFuture polled after completion")
                    };
                    let next = Self::settled(service, request, config, outcome);
                    state.set(next.state);
                }
            }
        }
    }
}
