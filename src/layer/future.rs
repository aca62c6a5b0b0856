use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use crate::context::Scoped;
use crate::principal::BoxFuture;
use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::body::{AuthBody, rejection_response};
use super::hook::{Finish, ResponseHook, Settled};
use super::service::{Failure, on_failure};
use super::{Authenticator, LayerConfig, RecordedRejection};
use crate::context::SecurityContext;
use crate::principal::Principal;
use crate::rejection::{AuthError, Protocol, Renderer};

pin_project! {
    /// The response future of [`AuthService`](super::AuthService): authenticates,
    /// then runs the inner service inside the request's `SecurityContext`,
    /// then the authenticator's response hook, if any.
    pub struct ResponseFuture<S, A, ReqBody, ResBody>
    where
        S: Service<Request<ReqBody>>,
        A: Authenticator,
    {
        #[pin]
        state: State<S, S::Future, A, A::Future, ReqBody, ResBody>,
    }
}

/// A response hook with what it needs to render a failure of its own.
struct Hook {
    hook: Box<dyn ResponseHook>,
    renderer: Arc<dyn Renderer>,
    protocol: Protocol,
}

pin_project! {
    #[project = StateProj]
    enum State<S, SF, A, F, ReqBody, ResBody> {
        Authenticating {
            #[pin]
            authenticating: tracing::instrument::Instrumented<F>,
            authenticator: Arc<A>,
            inner: Option<S>,
            request: Option<Request<ReqBody>>,
            config: Arc<LayerConfig>,
        },
        Calling {
            #[pin]
            future: Scoped<SF>,
            hook: Option<Hook>,
        },
        Rejected {
            response: Option<Response<Bytes>>,
            hook: Option<Hook>,
        },
        Finishing {
            work: BoxFuture<'static, Result<HeaderMap, AuthError>>,
            response: Option<Response<AuthBody<ResBody>>>,
            renderer: Arc<dyn Renderer>,
            protocol: Protocol,
        },
    }
}

/// Asks the authenticator for its response hook (only when it has one).
fn hook_for<A: Authenticator, B>(
    authenticator: &A,
    config: &LayerConfig,
    request: Request<B>,
    settled: Settled<'_>,
) -> (Request<B>, Option<Hook>) {
    if !A::RESPONSE_HOOK {
        return (request, None);
    }
    let (mut parts, body) = request.into_parts();
    let hook = authenticator.response_hook(&mut parts, settled).map(|hook| Hook {
        hook,
        renderer: Arc::clone(&config.renderer),
        protocol: Protocol::of(&parts.headers),
    });
    (Request::from_parts(parts, body), hook)
}

impl<S, A, ReqBody, ResBody> ResponseFuture<S, A, ReqBody, ResBody>
where
    S: Service<Request<ReqBody>>,
    A: Authenticator,
{
    /// A public path: the inner service without authentication.
    pub(crate) fn public(inner: S, request: Request<ReqBody>, authenticator: &A, config: &LayerConfig) -> Self {
        let (request, hook) = hook_for(authenticator, config, request, Settled::Public);
        Self::call_inner(inner, request, SecurityContext::default(), hook)
    }

    fn call_inner(mut inner: S, request: Request<ReqBody>, context: SecurityContext, hook: Option<Hook>) -> Self {
        let future = context.scope(inner.call(request));
        Self {
            state: State::Calling { future, hook },
        }
    }

    pub(crate) fn authenticating(
        authenticating: A::Future,
        authenticator: Arc<A>,
        inner: S,
        request: Request<ReqBody>,
        config: Arc<LayerConfig>,
    ) -> Self {
        Self {
            state: State::Authenticating {
                // Upstream calls made while waiting log inside this span.
                authenticating: tracing::Instrument::instrument(
                    authenticating,
                    tracing::debug_span!("authenticate", provider = A::NAME),
                ),
                authenticator,
                inner: Some(inner),
                request: Some(request),
                config,
            },
        }
    }

    /// The one place an authentication outcome turns into what happens next:
    /// the inner service with the principal, the inner service with a
    /// recorded rejection, or a rendered rejection (per the layer's mode).
    pub(crate) fn settled(
        inner: S,
        request: Request<ReqBody>,
        authenticator: &A,
        config: &LayerConfig,
        outcome: Result<Principal, AuthError>,
    ) -> Self {
        crate::observe::authentication(A::NAME, &outcome);
        match outcome {
            Ok(principal) => {
                let (mut request, hook) = hook_for(authenticator, config, request, Settled::Authenticated(&principal));
                request.extensions_mut().insert(principal.clone());
                Self::call_inner(inner, request, SecurityContext::new(Some(principal)), hook)
            }
            Err(error) => match on_failure(
                config.mode_for(request.uri().path()),
                config.invalid_as_anonymous,
                error,
            ) {
                Failure::Reject(error) => {
                    let error = error.in_scheme_of(
                        request.headers(),
                        config.sources.offers_dpop(),
                        config.sources.offers_bearer(),
                    );
                    let response =
                        crate::rejection::rendered(&*config.renderer, &error, Protocol::of(request.headers()));
                    let (_, hook) = hook_for(authenticator, config, request, Settled::Rejected(&error));
                    Self {
                        state: State::Rejected {
                            response: Some(response),
                            hook,
                        },
                    }
                }
                Failure::PassRecorded(error) => {
                    let (mut request, hook) = hook_for(authenticator, config, request, Settled::Anonymous(&error));
                    request.extensions_mut().insert(RecordedRejection(error));
                    Self::call_inner(inner, request, SecurityContext::default(), hook)
                }
            },
        }
    }
}

/// A hook's async work, with the response it finishes.
struct PendingHook<B> {
    work: BoxFuture<'static, Result<HeaderMap, AuthError>>,
    response: Response<AuthBody<B>>,
    renderer: Arc<dyn Renderer>,
    protocol: Protocol,
}

/// Runs `hook` on `response`: done now, or the work still to await.
fn run_hook<B>(hook: Hook, response: Response<AuthBody<B>>) -> Result<Response<AuthBody<B>>, Box<PendingHook<B>>> {
    let (mut parts, mut body) = response.into_parts();
    let was_redirect = parts.status.is_redirection();
    let finished = hook.hook.finish(&mut parts);
    if parts.status.is_redirection() && !was_redirect {
        // A refusal the hook turned into a redirect (a signed-out browser
        // sent to the login page) carries no error body.
        body = AuthBody::rejection(bytes::Bytes::new());
        parts.headers.remove(http::header::CONTENT_TYPE);
        parts.headers.remove(http::header::CONTENT_LENGTH);
    }
    match finished {
        Finish::Done => Ok(Response::from_parts(parts, body)),
        Finish::Pending(work) => Err(Box::new(PendingHook {
            work,
            response: Response::from_parts(parts, body),
            renderer: hook.renderer,
            protocol: hook.protocol,
        })),
    }
}

impl<S, A, ReqBody, ResBody> Future for ResponseFuture<S, A, ReqBody, ResBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    A: Authenticator,
{
    type Output = Result<Response<AuthBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            let (response, hook) = match state.as_mut().project() {
                StateProj::Calling { future, hook } => {
                    let response = ready!(future.poll(cx))?;
                    (response.map(AuthBody::inner), hook.take())
                }
                StateProj::Rejected { response, hook } => {
                    let response = response.take().expect("ResponseFuture polled after completion");
                    (rejection_response(response), hook.take())
                }
                StateProj::Finishing {
                    work,
                    response,
                    renderer,
                    protocol,
                } => {
                    let outcome = ready!(work.as_mut().poll(cx));
                    let mut response = response.take().expect("ResponseFuture polled after completion");
                    return Poll::Ready(Ok(match outcome {
                        Ok(headers) => {
                            for (name, value) in headers {
                                if let Some(name) = name {
                                    response.headers_mut().append(name, value);
                                }
                            }
                            response
                        }
                        Err(error) => rejection_response(crate::rejection::rendered(&**renderer, &error, *protocol)),
                    }));
                }
                StateProj::Authenticating {
                    authenticating,
                    authenticator,
                    inner,
                    request,
                    config,
                } => {
                    let span = authenticating.span().clone();
                    let outcome = ready!(authenticating.poll(cx));
                    let (Some(service), Some(request)) = (inner.take(), request.take()) else {
                        unreachable!("ResponseFuture polled after completion")
                    };
                    let next = span.in_scope(|| Self::settled(service, request, authenticator, config, outcome));
                    state.set(next.state);
                    continue;
                }
            };
            match hook {
                None => return Poll::Ready(Ok(response)),
                Some(hook) => match run_hook(hook, response) {
                    Ok(response) => return Poll::Ready(Ok(response)),
                    Err(pending) => {
                        let PendingHook {
                            work,
                            response,
                            renderer,
                            protocol,
                        } = *pending;
                        state.set(State::Finishing {
                            work,
                            response: Some(response),
                            renderer,
                            protocol,
                        });
                    }
                },
            }
        }
    }
}
