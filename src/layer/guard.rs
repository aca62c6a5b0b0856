//! The response future of layers that either pass a request on or refuse it
//! with a ready response (the `Require*` layers, the cross-origin layer).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::Response;
use pin_project_lite::pin_project;

use super::body::{AuthBody, rejection_response};

pin_project! {
    /// The inner service's response, or a refusal rendered up front.
    pub struct GuardFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Inner { #[pin] future: F },
        Refused { response: Option<Response<Bytes>> },
    }
}

impl<F> GuardFuture<F> {
    pub(crate) fn pass(future: F) -> Self {
        Self {
            state: State::Inner { future },
        }
    }

    pub(crate) fn refuse(response: Response<Bytes>) -> Self {
        Self {
            state: State::Refused {
                response: Some(response),
            },
        }
    }
}

impl<F, ResBody, E> Future for GuardFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<AuthBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Inner { future } => {
                let response = ready!(future.poll(cx))?;
                Poll::Ready(Ok(response.map(AuthBody::inner)))
            }
            StateProj::Refused { response } => {
                let response = response.take().expect("GuardFuture polled after completion");
                Poll::Ready(Ok(rejection_response(response)))
            }
        }
    }
}
