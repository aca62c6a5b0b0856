//! Synchronous callers: the same sign-in, driven by a private
//! current-thread runtime.

use http::HeaderValue;
use http::header::AUTHORIZATION;

use super::{PomeriumClient, PomeriumClientError, refused};

/// Pomerium sign-in for synchronous code (`reqwest::blocking`, or any client
/// through [`authorization`](Self::authorization)).
///
/// ```no_run
/// use tower_authkit_pomerium::{BlockingPomeriumClient, PomeriumClient};
///
/// # fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let auth = BlockingPomeriumClient::new(PomeriumClient::builder().cache(true).build()?)?;
/// let client = reqwest::blocking::Client::new();
/// let response = auth.execute(&client, client.get("https://app.example.com/").build()?)?;
/// println!("{}", response.status());
/// # Ok(()) }
/// ```
///
/// Use it from threads that are not running async code: like
/// `reqwest::blocking`, it refuses to run inside a Tokio runtime
/// ([`PomeriumClientError::AsyncContext`]).
pub struct BlockingPomeriumClient {
    auth: PomeriumClient,
    runtime: tokio::runtime::Runtime,
}

impl BlockingPomeriumClient {
    /// Starts the private runtime the sign-in runs on.
    pub fn new(auth: PomeriumClient) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        Ok(Self { auth, runtime })
    }

    /// The async handle, shared with this one (same tokens).
    pub fn auth(&self) -> &PomeriumClient {
        &self.auth
    }

    /// The `Authorization` value for `url`, signing in first if needed;
    /// `None` when the URL is out of scope.
    pub fn authorization(&self, url: &http::Uri) -> Result<Option<HeaderValue>, PomeriumClientError> {
        self.block_on(self.auth.authorization(url))?
    }

    /// Sends `request` with `client`, signing in first if needed and once
    /// more (with one replay) if the server asks to.
    pub fn execute(
        &self,
        client: &reqwest::blocking::Client,
        mut request: reqwest::blocking::Request,
    ) -> Result<reqwest::blocking::Response, PomeriumClientError> {
        let Some(route) = self.auth.route_of_url(request.url())? else {
            return client.execute(request).map_err(PomeriumClientError::service);
        };
        let token = self.block_on(self.auth.token(&route, None))??;
        let replay = request.try_clone();
        request
            .headers_mut()
            .insert(AUTHORIZATION, token.authorization().clone());
        let response = client.execute(request).map_err(PomeriumClientError::service)?;
        if !refused(response.status(), response.headers(), response.url()) {
            return Ok(response);
        }
        let Some(mut again) = replay else {
            self.auth.drop_rejected(&route, &token);
            return Err(PomeriumClientError::BodyNotReplayable);
        };
        drop(response);
        let fresh = self.block_on(self.auth.token(&route, Some(&token)))??;
        again.headers_mut().insert(AUTHORIZATION, fresh.authorization().clone());
        client.execute(again).map_err(PomeriumClientError::service)
    }

    fn block_on<F: Future>(&self, future: F) -> Result<F::Output, PomeriumClientError> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(PomeriumClientError::AsyncContext);
        }
        Ok(self.runtime.block_on(future))
    }
}

impl std::fmt::Debug for BlockingPomeriumClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingPomeriumClient")
            .field("auth", &self.auth)
            .finish()
    }
}
