//! The `reqwest-middleware` middleware.

use http::Extensions;
use http::header::AUTHORIZATION;
use reqwest_middleware::{Middleware, Next};

use super::{PomeriumClient, PomeriumClientError, refused};

/// Adds Pomerium sign-in to a `reqwest_middleware::ClientWithMiddleware`.
///
/// Works whether or not the client follows redirects: a followed redirect
/// that ends on `/.pomerium/sign_in` is recognized by the final URL (reqwest
/// drops `Authorization` on cross-host redirects, so the token does not
/// follow it). Bodies that `reqwest::Request::try_clone` cannot clone
/// (streams) are not replayed after a sign-in; they get
/// [`PomeriumClientError::BodyNotReplayable`].
#[derive(Clone, Debug)]
pub struct PomeriumClientMiddleware {
    auth: PomeriumClient,
}

impl PomeriumClientMiddleware {
    /// Wraps the shared sign-in state.
    pub fn new(auth: PomeriumClient) -> Self {
        Self { auth }
    }
}

#[async_trait::async_trait]
impl Middleware for PomeriumClientMiddleware {
    async fn handle(
        &self,
        mut request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let fail = reqwest_middleware::Error::middleware;
        let Some(route) = self.auth.route_of_url(request.url()).map_err(fail)? else {
            return next.run(request, extensions).await;
        };
        let token = self.auth.token(&route, None).await.map_err(fail)?;
        let replay = request.try_clone();
        request
            .headers_mut()
            .insert(AUTHORIZATION, token.authorization().clone());
        let response = next.clone().run(request, extensions).await?;
        if !refused(response.status(), response.headers(), response.url()) {
            return Ok(response);
        }
        let Some(mut again) = replay else {
            self.auth.drop_rejected(&route, &token);
            return Err(fail(PomeriumClientError::BodyNotReplayable));
        };
        drop(response);
        let fresh = self.auth.token(&route, Some(&token)).await.map_err(fail)?;
        again.headers_mut().insert(AUTHORIZATION, fresh.authorization().clone());
        next.run(again, extensions).await
    }
}
