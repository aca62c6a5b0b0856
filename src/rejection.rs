//! Authentication and authorization failures, and their HTTP / gRPC rendering.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, Response, StatusCode};

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

/// Which wire protocol a rejection is rendered for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Protocol {
    /// Plain HTTP: status code, challenge and JSON body.
    Http,
    /// gRPC (`content-type: application/grpc*`): a trailers-only response.
    Grpc,
}

impl Protocol {
    /// Detects gRPC from the request's `content-type`.
    pub fn of(headers: &HeaderMap) -> Self {
        match headers.get(CONTENT_TYPE) {
            Some(value) if value.as_bytes().starts_with(b"application/grpc") => Protocol::Grpc,
            _ => Protocol::Http,
        }
    }
}

/// Renders `error` with `renderer` and puts the error in the response's
/// extensions, so outer layers (access logs, metrics, error pages) can read
/// why a request was refused: `response.extensions().get::<AuthError>()`.
pub(crate) fn rendered<R: Renderer + ?Sized>(renderer: &R, error: &AuthError, protocol: Protocol) -> Response<Bytes> {
    let mut response = renderer.render(error, protocol);
    response.extensions_mut().insert(error.clone());
    response
}

/// Turns an [`AuthError`] into a response. Implement it to render your own
/// error pages; closures `Fn(&AuthError, Protocol) -> Response<Bytes>` work
/// too. Whatever it renders, the response the layers send also carries the
/// `AuthError` in its extensions, for outer layers.
pub trait Renderer: Send + Sync + 'static {
    /// Renders `error` for a request of the given protocol.
    fn render(&self, error: &AuthError, protocol: Protocol) -> Response<Bytes>;
}

impl<F> Renderer for F
where
    F: Fn(&AuthError, Protocol) -> Response<Bytes> + Send + Sync + 'static,
{
    fn render(&self, error: &AuthError, protocol: Protocol) -> Response<Bytes> {
        self(error, protocol)
    }
}

/// The crate's rendering: RFC 6750 challenges with the configured realm, JSON
/// bodies, `Retry-After`, and trailers-only gRPC responses.
#[derive(Clone, Debug)]
pub struct DefaultRenderer {
    /// The challenge's fixed opening: `realm` and, when configured,
    /// `resource_metadata`, sanitized once here, not per rejection.
    realm: Arc<str>,
    /// Added to 401 challenges that name no scope of their own.
    scope: Option<Arc<str>>,
}

fn sanitized(text: &str) -> String {
    let mut clean = String::with_capacity(text.len());
    push_sanitized(&mut clean, text);
    clean
}

impl DefaultRenderer {
    /// A renderer whose challenges name `realm`.
    pub fn new(realm: impl Into<Arc<str>>) -> Self {
        let realm: Arc<str> = realm.into();
        Self {
            realm: sanitized(&realm).into(),
            scope: None,
        }
    }

    /// Adds `resource_metadata="<url>"` (RFC 9728 §5.1) to every bearer
    /// challenge, so a client can find the authorization server.
    pub fn with_resource_metadata(mut self, url: impl AsRef<str>) -> Self {
        self.realm = format!("{}\", resource_metadata=\"{}", self.realm, sanitized(url.as_ref())).into();
        self
    }

    /// Adds `scope="<scopes>"` to 401 challenges (the scopes a client
    /// should ask for); `insufficient_scope` names its own.
    pub fn with_scope(mut self, scope: impl AsRef<str>) -> Self {
        self.scope = Some(sanitized(scope.as_ref()).into());
        self
    }
}

impl Default for DefaultRenderer {
    fn default() -> Self {
        Self::new("api")
    }
}

impl Renderer for DefaultRenderer {
    fn render(&self, error: &AuthError, protocol: Protocol) -> Response<Bytes> {
        match protocol {
            Protocol::Http => render_http(error, &self.realm, self.scope.as_deref()),
            Protocol::Grpc => render_grpc(error),
        }
    }
}

/// Appends `text` kept to printable ASCII without quotes or backslashes, so
/// a description can never break out of its quoted-string.
fn push_sanitized(out: &mut String, text: &str) {
    out.extend(text.chars().map(|c| match c {
        ' '..='~' if c != '"' && c != '\\' => c,
        _ => '?',
    }));
}

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

/// Opens a challenge: `Bearer realm="…"`, or `DPoP algs="…", realm="…"`.
fn open_challenge(value: &mut String, dpop: bool, realm: &str) {
    if dpop {
        value.push_str("DPoP algs=\"");
        value.push_str(DPOP_ALGORITHMS);
        value.push_str("\", realm=\"");
    } else {
        value.push_str("Bearer realm=\"");
    }
    value.push_str(realm);
    value.push('"');
}

/// The `WWW-Authenticate` values; `realm` (with any `resource_metadata`)
/// and `default_scope` are already sanitized. Built in one buffer:
/// rejections of garbage are a hot path for hostile traffic.
fn challenges(error: &AuthError, realm: &str, default_scope: Option<&str>) -> (Option<String>, Option<String>) {
    if matches!(error.scheme, Scheme::Cookie | Scheme::CookieHtml) {
        // A browser session: no token to ask for, no scope to name.
        let challenge = (error.status() == StatusCode::UNAUTHORIZED).then(|| format!("Cookie realm=\"{realm}\""));
        return (challenge, None);
    }
    let default_scope = default_scope.filter(|_| error.status() == StatusCode::UNAUTHORIZED);
    let push_default_scope = |value: &mut String| {
        if let Some(scope) = default_scope {
            value.push_str(", scope=\"");
            value.push_str(scope);
            value.push('"');
        }
    };
    match error.kind {
        AuthErrorKind::MissingCredentials => {
            // DPoP required: the one challenge is DPoP's (RFC 9449 §7.1).
            let only_dpop = error.scheme == Scheme::Dpop;
            let mut bearer = String::with_capacity(if only_dpop { 100 } else { 40 } + realm.len());
            open_challenge(&mut bearer, only_dpop, realm);
            push_default_scope(&mut bearer);
            let dpop = (error.scheme == Scheme::BearerAndDpop).then(|| {
                let mut dpop = String::with_capacity(100 + realm.len());
                open_challenge(&mut dpop, true, realm);
                push_default_scope(&mut dpop);
                dpop
            });
            (Some(bearer), dpop)
        }
        // Not a problem with the token: no bearer challenge.
        AuthErrorKind::Unavailable
        | AuthErrorKind::BadGateway
        | AuthErrorKind::TooManyRequests
        | AuthErrorKind::Forbidden => (None, None),
        _ => {
            let scope_len = error.scope.as_ref().map_or(0, |s| s.len() + 10);
            let mut value = String::with_capacity(120 + realm.len() + error.description.len() + scope_len);
            open_challenge(&mut value, error.challenges_dpop(), realm);
            value.push_str(", error=\"");
            value.push_str(error.code());
            value.push_str("\", error_description=\"");
            push_sanitized(&mut value, &error.description);
            value.push('"');
            if let Some(scope) = &error.scope {
                value.push_str(", scope=\"");
                push_sanitized(&mut value, scope);
                value.push('"');
            } else {
                push_default_scope(&mut value);
            }
            if let Some(acr_values) = error.acr_values() {
                value.push_str(", acr_values=\"");
                push_sanitized(&mut value, acr_values);
                value.push('"');
            }
            if let Some(max_age) = error.max_age() {
                value.push_str(", max_age=");
                value.push_str(&max_age.to_string());
            }
            (Some(value), None)
        }
    }
}

/// `{"error": code, "error_description": description}`, written directly
/// (no intermediate JSON value).
/// A minimal page for a browser: the status and the description, escaped.
fn html_body(error: &AuthError) -> Bytes {
    let status = error.status();
    let title = format!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or(""));
    let mut description = String::with_capacity(error.description().len());
    for c in error.description().chars() {
        match c {
            '<' => description.push_str("&lt;"),
            '>' => description.push_str("&gt;"),
            '&' => description.push_str("&amp;"),
            '"' => description.push_str("&quot;"),
            '\'' => description.push_str("&#39;"),
            c => description.push(c),
        }
    }
    Bytes::from(format!(
        "<!doctype html><html><head><title>{title}</title></head><body><h1>{title}</h1><p>{description}</p></body></html>"
    ))
}

fn json_body(error: &AuthError) -> Bytes {
    let mut body = Vec::with_capacity(40 + error.description.len());
    body.extend_from_slice(b"{\"error\":\"");
    // Codes are fixed snake_case words: nothing to escape.
    body.extend_from_slice(error.code().as_bytes());
    body.extend_from_slice(b"\",\"error_description\":");
    // Serializing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut body, error.description());
    if let Some(acr_values) = error.acr_values() {
        body.extend_from_slice(b",\"acr_values\":");
        let _ = serde_json::to_writer(&mut body, acr_values);
    }
    if let Some(max_age) = error.max_age() {
        body.extend_from_slice(format!(",\"max_age\":{max_age}").as_bytes());
    }
    body.push(b'}');
    Bytes::from(body)
}

fn render_http(error: &AuthError, realm: &str, default_scope: Option<&str>) -> Response<Bytes> {
    let html = error.scheme == Scheme::CookieHtml;
    let mut response = Response::new(if html { html_body(error) } else { json_body(error) });
    *response.status_mut() = error.status();
    let headers = response.headers_mut();
    let content_type = if html {
        "text/html; charset=utf-8"
    } else {
        "application/json"
    };
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    let (first, second) = challenges(error, realm, default_scope);
    for value in [first, second].into_iter().flatten() {
        if let Ok(value) = HeaderValue::try_from(value) {
            headers.append(WWW_AUTHENTICATE, value);
        }
    }
    if let Some(retry) = error.retry_after {
        headers.insert(RETRY_AFTER, HeaderValue::from(retry.as_secs().max(1)));
    }
    if let Some(nonce) = error.dpop_nonce().and_then(|n| HeaderValue::try_from(n).ok()) {
        headers.insert("dpop-nonce", nonce);
    }
    response
}

/// Percent-encodes a gRPC message as the gRPC HTTP/2 spec asks.
fn grpc_message(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn render_grpc(error: &AuthError) -> Response<Bytes> {
    let mut response = Response::new(Bytes::new());
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert("grpc-status", HeaderValue::from(error.grpc_status()));
    if let Ok(value) = HeaderValue::try_from(grpc_message(error.description())) {
        headers.insert("grpc-message", value);
    }
    if let Some(retry) = error.retry_after {
        headers.insert(RETRY_AFTER, HeaderValue::from(retry.as_secs().max(1)));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_name_the_resource_metadata_and_401s_the_scope() {
        let renderer = DefaultRenderer::new("api")
            .with_resource_metadata("https://api.example/.well-known/oauth-protected-resource/mcp")
            .with_scope("mcp:tools");
        let header = |error: &AuthError| {
            let response = renderer.render(error, Protocol::Http);
            response.headers()[WWW_AUTHENTICATE].to_str().unwrap().to_owned()
        };
        let metadata = "resource_metadata=\"https://api.example/.well-known/oauth-protected-resource/mcp\"";
        assert_eq!(
            header(&AuthError::missing_credentials()),
            format!("Bearer realm=\"api\", {metadata}, scope=\"mcp:tools\"")
        );
        assert_eq!(
            header(&AuthError::invalid_token("token expired")),
            format!(
                "Bearer realm=\"api\", {metadata}, error=\"invalid_token\", error_description=\"token expired\", scope=\"mcp:tools\""
            )
        );
        // 403: the scope the error names, not the default.
        assert_eq!(
            header(&AuthError::insufficient_scope("mcp:admin")),
            format!(
                "Bearer realm=\"api\", {metadata}, error=\"insufficient_scope\", error_description=\"insufficient scope\", scope=\"mcp:admin\""
            )
        );
        // A quote in a configured value cannot break out either.
        let odd = DefaultRenderer::new("api").with_resource_metadata("https://x/\"evil");
        let response = odd.render(&AuthError::missing_credentials(), Protocol::Http);
        assert_eq!(
            response.headers()[WWW_AUTHENTICATE],
            "Bearer realm=\"api\", resource_metadata=\"https://x/?evil\""
        );
    }

    #[test]
    fn dpop_requests_are_challenged_in_the_dpop_scheme() {
        let renderer = DefaultRenderer::new("api")
            .with_resource_metadata("https://api.example/.well-known/oauth-protected-resource");
        let mut dpop_request = http::HeaderMap::new();
        dpop_request.insert("authorization", HeaderValue::from_static("dpop abc"));
        let render = |error: AuthError, headers: &http::HeaderMap, offers_dpop: bool| {
            let response = renderer.render(&error.in_scheme_of(headers, offers_dpop, true), Protocol::Http);
            response
                .headers()
                .get_all(WWW_AUTHENTICATE)
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        let metadata = "resource_metadata=\"https://api.example/.well-known/oauth-protected-resource\"";
        assert_eq!(
            render(AuthError::invalid_token("token expired"), &dpop_request, true),
            [format!(
                "DPoP algs=\"{DPOP_ALGORITHMS}\", realm=\"api\", {metadata}, error=\"invalid_token\", error_description=\"token expired\""
            )]
        );
        // 403s after a DPoP authentication too.
        let forbidden = render(AuthError::insufficient_scope("a b"), &dpop_request, false);
        assert!(forbidden[0].starts_with("DPoP algs="), "{forbidden:?}");
        assert!(forbidden[0].ends_with("scope=\"a b\""), "{forbidden:?}");
        // No credential where DPoP is taken: both schemes are offered.
        assert_eq!(
            render(AuthError::missing_credentials(), &http::HeaderMap::new(), true),
            [
                format!("Bearer realm=\"api\", {metadata}"),
                format!("DPoP algs=\"{DPOP_ALGORITHMS}\", realm=\"api\", {metadata}"),
            ]
        );
        // DPoP required: no credential is offered the DPoP scheme alone.
        let only = renderer.render(
            &AuthError::missing_credentials().in_scheme_of(&http::HeaderMap::new(), true, false),
            Protocol::Http,
        );
        let offered: Vec<_> = only
            .headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            offered,
            [format!("DPoP algs=\"{DPOP_ALGORITHMS}\", realm=\"api\", {metadata}")]
        );
        // A DPoP header the layer does not take is no credential: Bearer only.
        assert_eq!(
            render(AuthError::missing_credentials(), &dpop_request, false),
            [format!("Bearer realm=\"api\", {metadata}")]
        );
        // Bearer requests keep the Bearer scheme.
        let mut bearer_request = http::HeaderMap::new();
        bearer_request.insert("authorization", HeaderValue::from_static("Bearer abc"));
        let bearer = render(AuthError::invalid_token("token expired"), &bearer_request, true);
        assert!(bearer[0].starts_with("Bearer realm=\"api\""), "{bearer:?}");
    }

    #[test]
    fn missing_credentials_challenge_has_no_error_code() {
        let response = DefaultRenderer::new("r").render(&AuthError::missing_credentials(), Protocol::Http);
        assert_eq!(response.status(), 401);
        assert_eq!(response.headers()[WWW_AUTHENTICATE], "Bearer realm=\"r\"");
    }

    #[test]
    fn bodies_and_challenges_stay_well_formed_for_any_description() {
        let tricky = AuthError::invalid_token("quote \" backslash \\ newline \n é");
        let response = DefaultRenderer::new("my \"realm\"").render(&tricky, Protocol::Http);
        let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(body["error"], "invalid_token");
        assert_eq!(body["error_description"], "quote \" backslash \\ newline \n é");
        let challenge = response.headers()[WWW_AUTHENTICATE].to_str().unwrap();
        assert_eq!(
            challenge,
            "Bearer realm=\"my ?realm?\", error=\"invalid_token\", error_description=\"quote ? backslash ? newline ? ?\""
        );
    }

    #[test]
    fn insufficient_scope_names_the_scope() {
        let response =
            DefaultRenderer::default().render(&AuthError::insufficient_scope("reports:read"), Protocol::Http);
        assert_eq!(response.status(), 403);
        let challenge = response.headers()[WWW_AUTHENTICATE].to_str().unwrap();
        assert!(challenge.contains("error=\"insufficient_scope\""), "{challenge}");
        assert!(challenge.contains("scope=\"reports:read\""), "{challenge}");
        let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(body["error"], "insufficient_scope");
    }

    #[test]
    fn descriptions_cannot_break_out_of_the_challenge() {
        let error = AuthError::invalid_token("bad \"quote\" \\ and\nnewline");
        let response = DefaultRenderer::default().render(&error, Protocol::Http);
        let challenge = response.headers()[WWW_AUTHENTICATE].to_str().unwrap();
        assert!(
            challenge.ends_with("error_description=\"bad ?quote? ? and?newline\""),
            "{challenge}"
        );
    }

    #[test]
    fn unavailable_sets_retry_after_and_no_challenge() {
        let error = AuthError::unavailable("keys unavailable", Duration::from_millis(200));
        let response = DefaultRenderer::default().render(&error, Protocol::Http);
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()[RETRY_AFTER], "1");
        assert!(response.headers().get(WWW_AUTHENTICATE).is_none());
    }

    #[test]
    fn grpc_rejections_are_trailers_only_with_status_codes() {
        for (error, code) in [
            (AuthError::missing_credentials(), "16"),
            (AuthError::forbidden("missing role"), "7"),
            (AuthError::unavailable("down", Duration::from_secs(3)), "14"),
        ] {
            let response = DefaultRenderer::default().render(&error, Protocol::Grpc);
            assert_eq!(response.status(), 200);
            assert_eq!(response.headers()["grpc-status"], code);
            assert!(response.body().is_empty());
        }
        assert_eq!(grpc_message("50% ü"), "50%25 %C3%BC");
    }
}
