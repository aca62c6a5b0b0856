//! Authentication and authorization failures ([`AuthError`]), and their
//! HTTP / gRPC rendering (`render`).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;

/// What went wrong, as a stable category.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthErrorKind {
    /// No credential was presented (401, no RFC 6750 error code).
    MissingCredentials,
    /// The request carrying the credential is malformed, e.g. two
    /// `Authorization` headers (400, `invalid_request`).
    InvalidRequest,
    /// The credential is expired, forged, malformed or otherwise not acceptable
    /// (401, `invalid_token`).
    InvalidToken,
    /// The caller is authenticated but its token lacks an OAuth scope (403,
    /// `insufficient_scope`, named in the RFC 6750 challenge).
    InsufficientScope,
    /// The caller is authenticated but lacks a role, group or permission, or
    /// fails a policy (403, `forbidden`; the description names what is missing).
    Forbidden,
    /// The credential could not be checked because an upstream (identity
    /// provider, key endpoint, store) is unavailable (503 + `Retry-After`).
    Unavailable,
    /// An upstream answered, but not in a way we can use (502).
    BadGateway,
    /// Too many attempts (e.g. failed sign-ins) in a window (429 +
    /// `Retry-After`).
    TooManyRequests,
    /// The token is valid but the authentication behind it is not strong
    /// or recent enough (RFC 9470 step-up: 401,
    /// `insufficient_user_authentication`, with `acr_values` and/or
    /// `max_age` in the challenge so the client can re-authenticate).
    InsufficientUserAuthentication,
    /// A DPoP proof (RFC 9449) is missing, malformed, replayed or does not
    /// fit the request or the token (401, `invalid_dpop_proof`, with a
    /// `DPoP algs="…"` challenge).
    InvalidDpopProof,
    /// The DPoP proof lacks a current server nonce (401, `use_dpop_nonce`,
    /// with a fresh one in the `DPoP-Nonce` header; RFC 9449 §9).
    UseDpopNonce,
}

/// The algorithms DPoP proofs may use, as challenges list them.
const DPOP_ALGORITHMS: &str = "ES256 ES384 EdDSA RS256 RS384 RS512 PS256 PS384 PS512";

/// What a step-up challenge asks for (RFC 9470).
#[derive(Clone, Debug, PartialEq, Eq)]
struct StepUp {
    acr_values: Option<Arc<str>>,
    max_age: Option<u64>,
}

/// The `WWW-Authenticate` scheme(s) a rejection challenges with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Scheme {
    #[default]
    Bearer,
    /// The request used `Authorization: DPoP` (RFC 9449 §7.1).
    Dpop,
    /// No credential, and the layer takes DPoP too: both challenges.
    BearerAndDpop,
    /// A cookie session: no token scheme to name (`Cookie realm="…"` on
    /// 401s, nothing on 403s).
    Cookie,
    /// A cookie session refused to a browser (`Accept: text/html`): the
    /// same headers, an HTML page for a body.
    CookieHtml,
}

/// An authentication or authorization failure.
///
/// The description is written for the client: it never contains the token or
/// any secret, only a short reason such as `"token expired"`.
///
/// Authentication and authorization failures, and their HTTP / gRPC rendering.
///
/// Every layer and extractor in the crate fails with an [`AuthError`]. It renders
/// once, here: RFC 6750 `WWW-Authenticate` challenges on 401/403, a small JSON body
/// `{"error": "<code>", "error_description": "<text>"}`, `503` + `Retry-After` when
/// an upstream cannot be reached, and a trailers-only gRPC response
/// (`grpc-status` 16 / 7 / 14) when the request is gRPC. Replace the rendering with
/// your own [`Renderer`].
///
/// # Errors
///
/// | status | code (JSON `error`) | gRPC | when |
/// |---|---|---|---|
/// | 400 | `invalid_request` | 16 | malformed credentials (two `Authorization` headers, a bad header value) |
/// | 401 | `missing_token` | 16 | no credential where one is required (bare `WWW-Authenticate: Bearer` challenge) |
/// | 401 | `invalid_token` | 16 | expired, forged, wrong issuer/audience, unknown key, claims that do not fit `Claims<T>` |
/// | 403 | `insufficient_scope` | 7 | a scope is missing (named in the RFC 6750 challenge) |
/// | 403 | `forbidden` | 7 | a role, group or permission is missing (named in `error_description`), or a policy failed |
/// | 401 | `invalid_dpop_proof` / `use_dpop_nonce` | 16 | a DPoP proof is missing, malformed, replayed or does not fit (`WWW-Authenticate: DPoP algs="…"`); the second with a fresh `DPoP-Nonce` |
/// | 401 | `insufficient_user_authentication` | 16 | step-up (RFC 9470): the token's `acr` or `auth_time` falls short of `RequireAuthContext`; `acr_values` / `max_age` in the challenge and body |
/// | 429 | `too_many_requests` | 8 | sign-in attempts over the limit (`Retry-After`) |
/// | 502 | `upstream_error` | 14 | an upstream answered unusably (see below) |
/// | 503 | `temporarily_unavailable` | 14 | an upstream or the session store could not be reached (`Retry-After`) |
///
/// Bodies are `{"error": ..., "error_description": ...}`; descriptions never
/// contain tokens, cookies or secrets. `.renderer(..)` replaces the rendering.
///
/// # When an upstream fails
///
/// Every layer that calls a server (JWKS and discovery, Cloudflare
/// `get-identity`, proxy-user `get-me` and permission checks, introspection)
/// answers the same failure the same way:
///
/// | the upstream... | HTTP | gRPC | `Retry-After` |
/// |---|---|---|---|
/// | could not be reached: DNS failure, connection refused or reset, timeout, TLS failure | 503 `temporarily_unavailable` | 14 `UNAVAILABLE` | 1 s; repeats say the backoff's time left |
/// | answered with a 5xx or another unexpected status, or with a body we cannot use (too large, not JSON, missing fields, another issuer in discovery) | 502 `upstream_error` | 14 `UNAVAILABLE` | — |
/// | said the credential is not valid (401/403 from user-info, `"active": false`) | 401 `invalid_token` | 16 `UNAUTHENTICATED` | — |
/// | (the session store) is down | 503 | 14 | 1 s |
///
/// While an upstream keeps failing, it is asked about once per backoff step
/// (0.5 s, doubling to 1 s) per key set or per token, and the last failure is
/// answered meanwhile; failures are never cached as verdicts. JWKS keys that
/// are known keep serving during an outage (up to `max_staleness`). Each
/// failure is logged once per attempt with the URL and the cause (e.g.
/// `connection refused`, `DNS lookup failed`, `answered HTTP status 500`,
/// `issuer mismatch: expected "…", the discovery document says "…"`).
#[derive(Clone)]
pub struct AuthError {
    kind: AuthErrorKind,
    description: Cow<'static, str>,
    scope: Option<Arc<str>>,
    retry_after: Option<Duration>,
    step_up: Option<Box<StepUp>>,
    dpop_nonce: Option<Box<str>>,
    scheme: Scheme,
}

impl AuthError {
    fn new(kind: AuthErrorKind, description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind,
            description: description.into(),
            scope: None,
            retry_after: None,
            step_up: None,
            dpop_nonce: None,
            scheme: Scheme::Bearer,
        }
    }

    /// Challenges in the scheme the request used: `DPoP` for a request
    /// that sent `Authorization: DPoP` (RFC 9449 §7.1). When no credential
    /// came: both schemes when the layer takes DPoP (`offers_dpop`), `DPoP`
    /// alone when it takes nothing else (`offers_bearer` false).
    pub(crate) fn in_scheme_of(mut self, headers: &http::HeaderMap, offers_dpop: bool, offers_bearer: bool) -> Self {
        self.scheme = match self.kind {
            _ if !offers_dpop && !offers_bearer && accepts_html(headers) => Scheme::CookieHtml,
            _ if !offers_dpop && !offers_bearer => Scheme::Cookie,
            AuthErrorKind::MissingCredentials if offers_dpop && !offers_bearer => Scheme::Dpop,
            AuthErrorKind::MissingCredentials if offers_dpop => Scheme::BearerAndDpop,
            AuthErrorKind::MissingCredentials => Scheme::Bearer,
            _ if sent_dpop_scheme(headers) => Scheme::Dpop,
            _ => Scheme::Bearer,
        };
        self
    }

    /// Whether the challenge uses the `DPoP` scheme (the request sent
    /// `Authorization: DPoP`), for renderers of their own.
    pub fn challenges_dpop(&self) -> bool {
        self.scheme == Scheme::Dpop
            || matches!(self.kind, AuthErrorKind::InvalidDpopProof | AuthErrorKind::UseDpopNonce)
    }

    /// The token is valid, but the user must authenticate again: with one
    /// of `acr_values` (space-separated) and/or no longer ago than
    /// `max_age` (RFC 9470).
    pub fn insufficient_user_authentication(
        description: impl Into<Cow<'static, str>>,
        acr_values: Option<&str>,
        max_age: Option<Duration>,
    ) -> Self {
        let mut error = Self::new(AuthErrorKind::InsufficientUserAuthentication, description);
        error.step_up = Some(Box::new(StepUp {
            acr_values: acr_values.map(Arc::from),
            max_age: max_age.map(|age| age.as_secs()),
        }));
        error
    }

    /// The request's DPoP proof is not acceptable.
    pub fn invalid_dpop_proof(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(AuthErrorKind::InvalidDpopProof, description)
    }

    /// The proof needs a server nonce: `nonce` is the one to use (sent as
    /// `DPoP-Nonce`).
    pub fn use_dpop_nonce(description: impl Into<Cow<'static, str>>, nonce: impl Into<Box<str>>) -> Self {
        let mut error = Self::new(AuthErrorKind::UseDpopNonce, description);
        error.dpop_nonce = Some(nonce.into());
        error
    }

    /// The DPoP nonce a client should put in its next proof.
    pub fn dpop_nonce(&self) -> Option<&str> {
        self.dpop_nonce.as_deref()
    }

    /// The authentication context values a step-up challenge asks for.
    pub fn acr_values(&self) -> Option<&str> {
        self.step_up.as_ref().and_then(|step_up| step_up.acr_values.as_deref())
    }

    /// The largest authentication age (seconds) a step-up challenge allows.
    pub fn max_age(&self) -> Option<u64> {
        self.step_up.as_ref().and_then(|step_up| step_up.max_age)
    }

    /// No credential was presented.
    pub fn missing_credentials() -> Self {
        Self::new(AuthErrorKind::MissingCredentials, "authentication required")
    }

    /// The request carrying the credential is malformed.
    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(AuthErrorKind::InvalidRequest, description)
    }

    /// The credential is not acceptable.
    pub fn invalid_token(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(AuthErrorKind::InvalidToken, description)
    }

    /// The caller lacks the given space-separated scopes.
    pub fn insufficient_scope(scope: impl Into<Arc<str>>) -> Self {
        let mut error = Self::new(AuthErrorKind::InsufficientScope, "insufficient scope");
        error.scope = Some(scope.into());
        error
    }

    /// The caller lacks a role, group or permission.
    pub fn forbidden(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(AuthErrorKind::Forbidden, description)
    }

    /// The credential could not be checked because an upstream is unavailable;
    /// clients may retry after `retry_after`.
    pub fn unavailable(description: impl Into<Cow<'static, str>>, retry_after: Duration) -> Self {
        let mut error = Self::new(AuthErrorKind::Unavailable, description);
        error.retry_after = Some(retry_after);
        error
    }

    /// Too many attempts; clients may retry after `retry_after`.
    pub fn too_many_requests(description: impl Into<Cow<'static, str>>, retry_after: Duration) -> Self {
        let mut error = Self::new(AuthErrorKind::TooManyRequests, description);
        error.retry_after = Some(retry_after);
        error
    }

    /// An upstream answered with an error or an unusable body.
    pub fn bad_gateway(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(AuthErrorKind::BadGateway, description)
    }

    /// The same failure with another `Retry-After` (e.g. the time left of a
    /// backoff when an earlier failure is answered again).
    #[cfg(any(feature = "proxy-user", feature = "introspection", feature = "cloudflare"))]
    pub(crate) fn with_retry_after(mut self, retry_after: std::time::Duration) -> Self {
        self.retry_after = Some(retry_after);
        self
    }

    /// The same failure with another description.
    pub(crate) fn with_description(mut self, description: impl Into<Cow<'static, str>>) -> Self {
        self.description = description.into();
        self
    }

    /// The category of this failure.
    pub fn kind(&self) -> AuthErrorKind {
        self.kind
    }

    /// The client-facing description.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The scopes that were required, for `insufficient_scope` failures on scopes.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// How long clients should wait before retrying, for `Unavailable` failures.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The HTTP status this failure renders as.
    pub fn status(&self) -> StatusCode {
        match self.kind {
            AuthErrorKind::MissingCredentials
            | AuthErrorKind::InvalidToken
            | AuthErrorKind::InsufficientUserAuthentication
            | AuthErrorKind::InvalidDpopProof
            | AuthErrorKind::UseDpopNonce => StatusCode::UNAUTHORIZED,
            AuthErrorKind::InvalidRequest => StatusCode::BAD_REQUEST,
            AuthErrorKind::InsufficientScope | AuthErrorKind::Forbidden => StatusCode::FORBIDDEN,
            AuthErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            AuthErrorKind::BadGateway => StatusCode::BAD_GATEWAY,
            AuthErrorKind::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// The stable error code used in the JSON body (and, except for missing
    /// credentials and unavailability, in the `WWW-Authenticate` challenge).
    pub fn code(&self) -> &'static str {
        match self.kind {
            AuthErrorKind::MissingCredentials => "missing_token",
            AuthErrorKind::InvalidRequest => "invalid_request",
            AuthErrorKind::InvalidToken => "invalid_token",
            AuthErrorKind::InsufficientScope => "insufficient_scope",
            AuthErrorKind::Forbidden => "forbidden",
            AuthErrorKind::Unavailable => "temporarily_unavailable",
            AuthErrorKind::BadGateway => "upstream_error",
            AuthErrorKind::TooManyRequests => "too_many_requests",
            AuthErrorKind::InsufficientUserAuthentication => "insufficient_user_authentication",
            AuthErrorKind::InvalidDpopProof => "invalid_dpop_proof",
            AuthErrorKind::UseDpopNonce => "use_dpop_nonce",
        }
    }

    /// The gRPC status code: 16 UNAUTHENTICATED, 7 PERMISSION_DENIED, 14
    /// UNAVAILABLE or 8 RESOURCE_EXHAUSTED.
    pub fn grpc_status(&self) -> u16 {
        match self.kind {
            AuthErrorKind::MissingCredentials
            | AuthErrorKind::InvalidRequest
            | AuthErrorKind::InvalidToken
            | AuthErrorKind::InsufficientUserAuthentication
            | AuthErrorKind::InvalidDpopProof
            | AuthErrorKind::UseDpopNonce => 16,
            AuthErrorKind::InsufficientScope | AuthErrorKind::Forbidden => 7,
            AuthErrorKind::Unavailable | AuthErrorKind::BadGateway => 14,
            AuthErrorKind::TooManyRequests => 8,
        }
    }
}

impl fmt::Debug for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthError")
            .field("kind", &self.kind)
            .field("description", &self.description)
            .field("scope", &self.scope)
            .field("retry_after", &self.retry_after)
            .field("step_up", &self.step_up)
            .field("dpop_nonce", &self.dpop_nonce)
            .field("scheme", &self.scheme)
            .finish()
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.description)
    }
}

impl std::error::Error for AuthError {}

/// Whether the client takes HTML (a browser).
pub(crate) fn accepts_html(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/html"))
}

/// Whether the request's `Authorization` header uses the DPoP scheme.
fn sent_dpop_scheme(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.as_bytes().get(..5))
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case(b"DPoP "))
}

mod render;

pub use render::escape_html;
pub(crate) use render::rendered;
pub use render::{DefaultRenderer, Protocol, Renderer};
