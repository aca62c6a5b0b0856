//! Several authenticators on one layer: [`first_of`] tries them in order.

use std::sync::Arc;

use http::{Extensions, HeaderMap, Method, Uri};

use crate::layer::{AuthFuture, Authentication, Authenticator, RequestHead};
use crate::principal::Principal;
use crate::rejection::{AuthError, AuthErrorKind};
use crate::token::Credential;

/// Two authenticators tried in order (see below). Nest
/// them for more: `first_of(a, first_of(b, c))`.
///
/// Several authenticators on one layer: [`first_of`] tries them in order.
///
/// ```
/// use tower_authkit::{first_of, AuthLayer, Principal};
/// use tower_authkit::api_key::ApiKeys;
/// use tower_authkit::jwt::JwksAuthLayer;
/// use tower_authkit_testing::TestIdp;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let idp = TestIdp::start().await;
/// let jwt = JwksAuthLayer::builder()
///     .issuer(idp.issuer())
///     .audience(idp.audience())
///     .build()
///     .expect("valid configuration");
/// let keys = ApiKeys::new().key("ak_live_7Qm2", Principal::builder("api-key", "billing-job").build());
/// // JWTs go to the key set, `ak_…` keys to the key table; nothing else is tried.
/// let layer = AuthLayer::new(first_of(jwt.authenticator().clone(), keys));
/// # let _ = layer;
/// # }
/// ```
///
/// **Which member is asked.** Each authenticator says which credentials it
/// [`recognizes`](crate::Authenticator::recognizes) by their shape alone:
/// the JWT verifiers take compact JWTs, introspection and the auth proxy
/// take what is not a JWT, API keys take their prefix. Only members that
/// recognize the credential are asked, in order, so a JWT is never sent
/// to an introspection endpoint and an opaque token never costs a key
/// fetch.
///
/// **Outcomes.** The first success wins. When every member asked refuses,
/// the answer is the first refusal, unless a member could not decide
/// (502/503: its upstream failed), which is answered instead so that the
/// client retries: an outage of one never hides a success of another, and
/// never turns into a 401. Descriptions name the member, e.g.
/// `jwks: token expired`.
///
/// Members with response-side work (sessions) cannot be combined; that is
/// a compile-time error.
///
/// # Several authenticators on one layer
///
/// `first_of(a, b)` asks, in order, the members that recognize the
/// credential's shape: JWT verifiers take compact JWTs, introspection takes
/// opaque tokens, `ApiKeys` its prefix. So a JWT is verified locally and never
/// sent to the introspection endpoint. The first success wins; refusals name
/// the member (`jwks: token expired`), and one member's outage (503) never
/// hides another's success.
///
/// ```rust,no_run
/// use tower_authkit::introspection::IntrospectionLayer;
/// use tower_authkit::{first_of, AuthLayer, Principal};
/// use tower_authkit::api_key::ApiKeys;
/// use tower_authkit::jwt::JwksAuthLayer;
///
/// fn layer() -> Result<AuthLayer<impl tower_authkit::Authenticator>, tower_authkit::ConfigError> {
///     let jwt = JwksAuthLayer::builder().issuer("https://login.example.com").audience("api").build()?;
///     let opaque = IntrospectionLayer::builder()
///         .endpoint("https://login.example.com/oauth/introspect")
///         .client_credentials("api", "secret")
///         .build()?;
///     let keys = ApiKeys::new().prefix("ak_").key("ak_live_7Qm2", Principal::builder("api-key", "billing-job").build());
///     let authenticator = first_of(jwt.authenticator().clone(), first_of(keys, opaque.authenticator().clone()));
///     Ok(AuthLayer::new(authenticator))
/// }
/// ```
pub fn first_of<A: Authenticator, B: Authenticator>(first: A, second: B) -> AnyOf<A, B> {
    AnyOf {
        members: Arc::new((first, second)),
    }
}

/// What [`first_of`] builds.
pub struct AnyOf<A, B> {
    members: Arc<(A, B)>,
}

impl<A, B> Clone for AnyOf<A, B> {
    fn clone(&self) -> Self {
        Self {
            members: Arc::clone(&self.members),
        }
    }
}

impl<A, B> std::fmt::Debug for AnyOf<A, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnyOf")
            .field("first", &std::any::type_name::<A>())
            .field("second", &std::any::type_name::<B>())
            .finish()
    }
}

/// The request parts a second member may need after the first one's
/// pending answer (owned, since the pending answer outlives the borrow).
struct OwnedHead {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    extensions: Extensions,
}

impl OwnedHead {
    fn of(request: &RequestHead<'_>) -> Self {
        Self {
            method: request.method.clone(),
            uri: request.uri.clone(),
            headers: request.headers.clone(),
            extensions: request.extensions.clone(),
        }
    }

    fn head(&self) -> RequestHead<'_> {
        RequestHead {
            method: &self.method,
            uri: &self.uri,
            headers: &self.headers,
            extensions: &self.extensions,
        }
    }
}

/// The member's name in front of its refusal (a nested `first_of` has
/// named its own members already).
fn labelled(name: &'static str, error: AuthError) -> AuthError {
    if name == ANY_OF {
        return error;
    }
    let description = format!("{name}: {}", error.description());
    error.with_description(description)
}

const ANY_OF: &str = "any-of";

/// Whether a refusal means "could not decide" (its upstream failed).
fn undecided(error: &AuthError) -> bool {
    matches!(error.kind(), AuthErrorKind::Unavailable | AuthErrorKind::BadGateway)
}

/// The answer when both refused: the first, unless only the second could
/// not decide.
fn combined(first: AuthError, second: AuthError) -> AuthError {
    if undecided(&second) && !undecided(&first) {
        second
    } else {
        first
    }
}

async fn settle<F: std::future::Future<Output = Result<Principal, AuthError>>>(
    answer: Authentication<F>,
    name: &'static str,
) -> Result<Principal, AuthError> {
    match answer {
        Authentication::Ready(outcome) => outcome.map_err(|error| labelled(name, error)),
        Authentication::Pending(future) => future.await.map_err(|error| labelled(name, error)),
    }
}

impl<A: Authenticator, B: Authenticator> AnyOf<A, B> {
    /// The second member's answer, after the first refused with `refusal`.
    fn after_first(
        &self,
        refusal: AuthError,
        credential: Credential,
        request: &RequestHead<'_>,
    ) -> Authentication<AuthFuture> {
        let (_, second) = &*self.members;
        match second.authenticate(credential, request) {
            Authentication::Ready(Ok(principal)) => Authentication::Ready(Ok(principal)),
            Authentication::Ready(Err(error)) => {
                Authentication::Ready(Err(combined(refusal, labelled(B::NAME, error))))
            }
            Authentication::Pending(future) => Authentication::Pending(AuthFuture::new(async move {
                future
                    .await
                    .map_err(|error| combined(refusal, labelled(B::NAME, error)))
            })),
        }
    }
}

impl<A: Authenticator, B: Authenticator> Authenticator for AnyOf<A, B> {
    type Future = AuthFuture;
    const NAME: &'static str = ANY_OF;
    const RESPONSE_HOOK: bool = {
        assert!(
            !A::RESPONSE_HOOK && !B::RESPONSE_HOOK,
            "authenticators with response-side work (sessions) cannot be combined with first_of"
        );
        false
    };

    fn recognizes(&self, credential: &Credential) -> bool {
        let (first, second) = &*self.members;
        first.recognizes(credential) || second.recognizes(credential)
    }

    fn authenticate(&self, credential: Credential, request: &RequestHead<'_>) -> Authentication<AuthFuture> {
        let (first, second) = &*self.members;
        let second_too = second.recognizes(&credential);
        if !first.recognizes(&credential) {
            if !second_too {
                return Authentication::Ready(Err(AuthError::invalid_token("unrecognized credential")));
            }
            let answer = second.authenticate(credential, request);
            return Authentication::Pending(AuthFuture::new(settle(answer, B::NAME)));
        }
        if !second_too {
            let answer = first.authenticate(credential, request);
            return match answer {
                Authentication::Ready(outcome) => {
                    Authentication::Ready(outcome.map_err(|error| labelled(A::NAME, error)))
                }
                pending => Authentication::Pending(AuthFuture::new(settle(pending, A::NAME))),
            };
        }
        // Both recognize it: the first, then (only if it refused) the second.
        match first.authenticate(credential.clone(), request) {
            Authentication::Ready(Ok(principal)) => Authentication::Ready(Ok(principal)),
            Authentication::Ready(Err(error)) => self.after_first(labelled(A::NAME, error), credential, request),
            Authentication::Pending(future) => {
                let this = self.clone();
                let head = OwnedHead::of(request);
                Authentication::Pending(AuthFuture::new(async move {
                    match future.await {
                        Ok(principal) => Ok(principal),
                        Err(error) => {
                            let answer = this.after_first(labelled(A::NAME, error), credential, &head.head());
                            // Already labelled by `after_first`.
                            settle(answer, ANY_OF).await
                        }
                    }
                }))
            }
        }
    }

    fn without_credential(&self, request: &RequestHead<'_>) -> Option<Authentication<AuthFuture>> {
        let (first, second) = &*self.members;
        if let Some(answer) = first.without_credential(request) {
            return Some(Authentication::Pending(AuthFuture::new(settle(answer, A::NAME))));
        }
        second
            .without_credential(request)
            .map(|answer| Authentication::Pending(AuthFuture::new(settle(answer, B::NAME))))
    }
}
