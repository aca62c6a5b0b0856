//! The one authentication pipeline: [`AuthLayer`] runs any [`Authenticator`].

mod body;
mod future;
mod guard;
mod hook;
mod service;

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use http::{Extensions, HeaderMap, Method, Uri};
use tower_layer::Layer;

pub use body::AuthBody;
#[cfg(feature = "proxy-user")]
pub(crate) use body::rejection_response;
pub use future::ResponseFuture;
pub use guard::GuardFuture;
pub use hook::{Finish, ResponseHook, Settled};
pub use service::AuthService;

use crate::principal::Principal;
use crate::rejection::{AuthError, DefaultRenderer, Renderer};
use crate::token::{Credential, TokenSource, TokenSources};

/// The parts of a request an authenticator may look at.
#[derive(Clone, Copy, Debug)]
pub struct RequestHead<'a> {
    /// The method.
    pub method: &'a Method,
    /// The URI.
    pub uri: &'a Uri,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// The extensions set by outer layers.
    pub extensions: &'a Extensions,
}

#[cfg(feature = "jwks")]
impl<F: Future<Output = Result<Principal, AuthError>>> Authentication<F> {
    /// The outcome, awaiting it if pending (for callers outside the
    /// pipeline, such as the `verify` helpers).
    pub(crate) async fn outcome(self) -> Result<Principal, AuthError> {
        match self {
            Authentication::Ready(outcome) => outcome,
            Authentication::Pending(future) => future.await,
        }
    }
}

/// A pending authentication, as the presets that call out (key fetches,
/// upstream and store calls) return it: a named, boxed future, so their
/// `Authenticator::Future` is a type of this crate rather than a trait-object
/// alias.
pub struct AuthFuture(std::pin::Pin<Box<dyn Future<Output = Result<Principal, AuthError>> + Send>>);

impl AuthFuture {
    /// Boxes `future`.
    pub fn new(future: impl Future<Output = Result<Principal, AuthError>> + Send + 'static) -> Self {
        Self(Box::pin(future))
    }
}

impl Future for AuthFuture {
    type Output = Result<Principal, AuthError>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        self.0.as_mut().poll(cx)
    }
}

impl fmt::Debug for AuthFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthFuture")
    }
}

/// An authenticator's answer: settled at once (a cache hit, a malformed
/// token), or a future to await (a key fetch, an upstream call).
#[derive(Debug)]
pub enum Authentication<F> {
    /// The outcome is known now; the pipeline continues without an extra poll.
    Ready(Result<Principal, AuthError>),
    /// The outcome needs I/O.
    Pending(F),
}

/// Turns a credential into a [`Principal`], or a rejection.
pub trait Authenticator: Send + Sync + 'static {
    /// The future of a [`Pending`](Authentication::Pending) answer.
    type Future: Future<Output = Result<Principal, AuthError>> + Send + 'static;

    /// A short, fixed name for this kind of authenticator (`"jwks"`,
    /// `"introspection"`, …): names it in combined rejections
    /// ([`first_of`](crate::first_of)) and in metrics labels.
    const NAME: &'static str = "custom";

    /// Checks `credential`, found in `request`.
    fn authenticate(&self, credential: Credential, request: &RequestHead<'_>) -> Authentication<Self::Future>;

    /// Whether `credential` has a shape this authenticator takes (a compact
    /// JWT, an API key's prefix, …), judged without verifying anything.
    /// [`first_of`](crate::first_of) asks only the members that recognize a
    /// credential. The default takes everything.
    fn recognizes(&self, _credential: &Credential) -> bool {
        true
    }

    /// Called when no token source found a credential. The default (`None`)
    /// leaves the request unauthenticated; a development bypass returns a
    /// fixed identity here.
    fn without_credential(&self, _request: &RequestHead<'_>) -> Option<Authentication<Self::Future>> {
        None
    }

    /// Whether [`response_hook`](Self::response_hook) is called. Off by
    /// default, so authenticators without response-side work pay nothing.
    const RESPONSE_HOOK: bool = false;

    /// Response-side work for this request (see [`ResponseHook`]), called
    /// once authentication settled, on public paths too. It may leave state
    /// for extractors in the request's extensions.
    fn response_hook(
        &self,
        _request: &mut http::request::Parts,
        _settled: Settled<'_>,
    ) -> Option<Box<dyn ResponseHook>> {
        None
    }
}

/// What the layer does when a request has no acceptable credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// Reject requests without a valid credential (the default).
    #[default]
    Required,
    /// Let requests without a credential through with no principal. A present
    /// but invalid credential is still rejected, unless
    /// [`AuthLayer::invalid_as_anonymous`] is set.
    Optional,
    /// Never reject: record the principal, or the rejection, in the request
    /// and let extractors and authorization layers enforce it.
    EnrichOnly,
}

/// The rejection the layer recorded in enrich-only mode (or for an invalid
/// credential treated as anonymous). Extractors and `Require*` layers render it.
#[derive(Clone, Debug)]
pub struct RecordedRejection(pub AuthError);

/// The renderer configured on the auth layer, made available to extractors and
/// authorization layers further in.
#[derive(Clone)]
pub(crate) struct RendererHandle(pub(crate) Arc<dyn Renderer>);

/// Set by a layer whose credentials are cookies only (a browser session),
/// so refusals further in name no token scheme either.
#[derive(Clone, Copy)]
pub(crate) struct CookieSession;

/// The challenge arguments of a refusal further in than the auth layer:
/// authorization runs after authentication succeeded, in whichever scheme
/// the request used; a cookie session names none.
pub(crate) fn inner_scheme(extensions: &Extensions) -> (bool, bool) {
    let cookie_session = extensions.get::<CookieSession>().is_some();
    (false, !cookie_session)
}

type SkipPredicate = Arc<dyn Fn(&RequestHead<'_>) -> bool + Send + Sync>;

#[derive(Clone)]
pub(crate) struct LayerConfig {
    pub(crate) sources: TokenSources,
    /// The sources are cookies only (a browser session): derived once when
    /// they are set, read per request.
    pub(crate) cookie_session: bool,
    pub(crate) mode: Mode,
    pub(crate) invalid_as_anonymous: bool,
    pub(crate) public_paths: Vec<String>,
    pub(crate) public_prefixes: Vec<String>,
    /// Paths (exact, or prefixes) where a required-mode layer is optional.
    pub(crate) optional_paths: Vec<String>,
    pub(crate) optional_prefixes: Vec<String>,
    pub(crate) skip: Option<SkipPredicate>,
    /// The renderer in effect, made from the three settings below.
    pub(crate) renderer: Arc<dyn Renderer>,
    /// Set when the renderer is not the default one, so inner layers use it too.
    pub(crate) custom_renderer: bool,
    /// [`AuthLayer::realm`].
    pub(crate) realm: Option<Arc<str>>,
    /// What [`AuthLayer::protected_resource`] adds to the challenges.
    pub(crate) challenge_extras: Option<ChallengeExtras>,
    /// [`AuthLayer::renderer`]: replaces the default rendering.
    pub(crate) custom: Option<Arc<dyn Renderer>>,
}

/// Adds to the default renderer's challenges (RFC 9728's `resource_metadata`).
pub(crate) type ChallengeExtras = Arc<dyn Fn(DefaultRenderer) -> DefaultRenderer + Send + Sync>;

impl LayerConfig {
    /// Rebuilds the renderer in effect: a custom one wins; otherwise the
    /// default renderer with the realm and the challenge extras, whichever
    /// order they were set in.
    fn refresh_renderer(&mut self) {
        if let Some(custom) = &self.custom {
            if self.realm.is_some() || self.challenge_extras.is_some() {
                tracing::warn!(
                    "a custom renderer decides the challenges: the layer's realm and protected-resource \
                     metadata are not added to them"
                );
            }
            self.renderer = Arc::clone(custom);
            self.custom_renderer = true;
            return;
        }
        let mut renderer = DefaultRenderer::new(self.realm.clone().unwrap_or_else(|| Arc::from("api")));
        if let Some(extras) = &self.challenge_extras {
            renderer = extras(renderer);
        }
        self.custom_renderer = self.realm.is_some() || self.challenge_extras.is_some();
        self.renderer = Arc::new(renderer);
    }
}

impl LayerConfig {
    /// The mode for a request to `path`: the layer's, except that
    /// [`optional_path`](AuthLayer::optional_path) and
    /// [`optional_prefix`](AuthLayer::optional_prefix) make a required layer
    /// optional there.
    pub(crate) fn mode_for(&self, path: &str) -> Mode {
        let optional_here = self.optional_paths.iter().any(|p| p == path)
            || self.optional_prefixes.iter().any(|p| path.starts_with(p.as_str()));
        match self.mode {
            Mode::Required if optional_here => Mode::Optional,
            mode => mode,
        }
    }

    pub(crate) fn is_public(&self, head: &RequestHead<'_>) -> bool {
        let path = head.uri.path();
        self.public_paths.iter().any(|p| p == path)
            || self.public_prefixes.iter().any(|p| path.starts_with(p.as_str()))
            || self.skip.as_ref().is_some_and(|skip| skip(head))
    }
}

/// The generic authentication layer. (guide below).
///
/// The one authentication pipeline: [`AuthLayer`] runs any [`Authenticator`].
///
/// ```text
/// request ─▶ token sources ─▶ authenticator ─▶ Principal in extensions ─▶ inner service
///                                              + SecurityContext scope
///              └──────── failure ─▶ AuthError ─▶ HTTP or gRPC response
/// ```
///
/// Presets such as [`JwksAuthLayer`](crate::jwt::JwksAuthLayer) are this layer with
/// an authenticator plugged in; required/optional/enrich-only modes, public
/// paths, rendering, gRPC and the `SecurityContext` live here once.
///
/// ```
/// use std::future::Ready;
/// use axum::{routing::get, Router};
/// use tower_authkit::{AuthError, AuthLayer, Authentication, Authenticator, Credential, Principal, RequestHead};
///
/// /// Accepts one static API key (for illustration only).
/// struct ApiKey;
///
/// impl Authenticator for ApiKey {
///     // Never pending: every answer is known at once.
///     type Future = Ready<Result<Principal, AuthError>>;
///     fn authenticate(&self, credential: Credential, _request: &RequestHead<'_>) -> Authentication<Self::Future> {
///         Authentication::Ready(if credential.expose() == "let-me-in" {
///             Ok(Principal::builder("api-key", "service-a").build())
///         } else {
///             Err(AuthError::invalid_token("unknown API key"))
///         })
///     }
/// }
///
/// let app: Router = Router::new()
///     .route("/", get(|principal: Principal| async move { principal.subject().to_owned() }))
///     .layer(AuthLayer::new(ApiKey).public_path("/health"));
/// ```
///
/// # axum
///
/// ```rust,no_run
/// use axum::{routing::get, Json, Router};
/// use tower_authkit::{Principal, RequireRole, RequireScope, SecurityContext};
/// use tower_authkit::jwt::JwksAuthLayer;
///
/// async fn me(principal: Principal) -> Json<serde_json::Value> {
///     Json(serde_json::json!({ "sub": principal.subject(), "roles": principal.roles() }))
/// }
///
/// fn audit(action: &str) {
///     // Works anywhere inside the request, without passing the principal around.
///     let who = SecurityContext::current();
///     println!("{:?} did {action}", who.principal().map(|p| p.subject().to_owned()));
/// }
///
/// #[tokio::main]
/// async fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let auth = JwksAuthLayer::builder()
///         .issuer("https://login.example.com/realms/main") // exact `iss`; discovery base
///         .audience("orders-api")
///         .build()?                                         // fail fast on bad config
///         .public_path("/health");
///
///     let app = Router::new()
///         .route("/health", get(|| async { "ok" }))
///         .route("/me", get(me))
///         .route("/admin", get(|| async { audit("admin"); "admin" }).route_layer(RequireRole::new("admin")))
///         .route("/reports", get(|| async { "reports" }).route_layer(RequireScope::new("reports:read")))
///         .layer(auth);
///
///     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
///     axum::serve(listener, app).await?;
///     Ok(())
/// }
/// ```
///
/// Modes: `.optional()` lets requests without a token through (an invalid token is
/// still 401 unless `.invalid_as_anonymous(true)`); `.enrich_only()` never rejects
/// in the layer and records the outcome for extractors to enforce. `.skip_if(..)`
/// takes a request predicate. `.renderer(..)` replaces the error rendering for the
/// layer and every extractor and `Require*` layer inside it.
///
/// **Optional on some routes.** A required layer answers 401 before a handler's
/// `Option<Principal>` could see `None`, and `public_path` does not read the
/// token at all (the caller's identity is dropped even when sent). For a route
/// that serves everyone but personalises for signed-in callers, keep the layer
/// required and mark the route optional:
///
/// ```rust,no_run
/// use axum::{routing::get, Router};
/// use tower_authkit::Principal;
/// use tower_authkit::jwt::JwksAuthLayer;
/// fn app(auth: JwksAuthLayer) -> Router {
/// Router::new()
///     .route("/feed", get(|p: Option<Principal>| async move {
///         p.map_or("the public feed".to_owned(), |p| format!("{}'s feed", p.subject()))
///     }))
///     .layer(auth.optional_path("/feed")) // or .optional_prefix("/public/")
/// }
/// ```
///
/// There: no token → `None`; a valid token → the caller; an invalid token → 401
/// (or `None` with `.invalid_as_anonymous(true)`).
///
/// **Defaults differ by provider, on purpose.** `JwksAuthLayer`, `CfAccessLayer`,
/// the Pomerium layer, `IntrospectionLayer` and `SessionLayer` are required by
/// default: they guard APIs, and forgetting a check should fail closed.
/// `ProxyUserLayer` is enrich-only by default, as the auth proxy it mirrors is:
/// its routes decide with extractors and `Require*` layers (and its
/// `strict()` mode blocks in the layer), because many of its routes mix public
/// and personal content.
///
/// # tonic
///
/// The same layers wrap a tonic server; rejections become trailers-only responses
/// with `grpc-status` 16 (UNAUTHENTICATED), 7 (PERMISSION_DENIED) or 14
/// (UNAVAILABLE). Clients send `authorization: Bearer <token>` metadata.
///
/// ```rust,no_run
/// use tower::ServiceBuilder;
/// use tower_authkit::RequireRole;
/// use tower_authkit::jwt::JwksAuthLayer;
///
/// async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let auth = JwksAuthLayer::builder().issuer("https://login.example.com").audience("grpc-api").build()?;
/// let (_reporter, health) = tonic_health::server::health_reporter();
/// tonic::transport::Server::builder()
///     .layer(ServiceBuilder::new().layer(auth).layer(RequireRole::new("admin")))
///     .add_service(health)
///     .serve("127.0.0.1:50051".parse()?)
///     .await?;
/// Ok(())
/// }
/// ```
///
/// In handlers, read the caller with `request.extensions().get::<Principal>()` or
/// `SecurityContext::current()`.
///
/// # Several layers
///
/// Each layer guards the router it wraps; put different providers on different
/// routers and merge them. A browser part on sessions and an API on JWKS:
///
/// ```rust,no_run
/// use axum::{routing::get, Router};
/// use tower_authkit::session::{store::MemoryStore, SessionLayer};
/// use tower_authkit::Principal;
/// use tower_authkit::jwt::JwksAuthLayer;
///
/// fn app() -> Result<Router, Box<dyn std::error::Error>> {
///     let api = Router::new()
///         .route("/api/orders", get(|p: Principal| async move { p.subject().to_owned() }))
///         .layer(JwksAuthLayer::builder().issuer("https://login.example.com").audience("orders-api").build()?);
///     let pages = Router::new()
///         .route("/account", get(|p: Principal| async move { format!("hello, {}", p.subject()) }))
///         .layer(SessionLayer::builder().key(std::env::var("SESSION_KEY")?.into_bytes()).store(MemoryStore::new()).build()?);
///     Ok(api.merge(pages))
/// }
/// ```
///
/// Handlers read the same `Principal` whichever layer made it; `principal.provider()`
/// says which.
///
/// # Serving notes
///
/// - The examples log through `tracing-subscriber` filtered by `RUST_LOG`
///   (default `info`) and stop on SIGTERM or Ctrl-C: they stop accepting, let
///   in-flight requests finish for at most 10 s, then exit 0
///   (`authkit_ingress::server` is the pattern to copy).
/// - `axum::serve` sets no timeout for reading request headers. Behind a proxy
///   (nginx, Envoy, a cloud load balancer) that is the proxy's job; a server
///   exposed directly should serve through hyper-util with a header-read timeout,
///   so slow clients cannot hold connections open:
///
/// ```rust,no_run
/// use std::time::Duration;
/// use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
/// use hyper_util::server::conn::auto::Builder;
/// use hyper_util::service::TowerToHyperService;
///
/// async fn serve(app: axum::Router) -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("0.0.0.0:8080").await?;
/// loop {
///     let (stream, _) = listener.accept().await?;
///     let service = TowerToHyperService::new(app.clone());
///     tokio::spawn(async move {
///         let mut builder = Builder::new(TokioExecutor::new());
///         builder
///             .http1()
///             .timer(TokioTimer::new())
///             .header_read_timeout(Duration::from_secs(10));
///         let _ = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).await;
///     });
/// }
/// }
/// ```
#[must_use = "a layer does nothing until it wraps a service"]
pub struct AuthLayer<A> {
    pub(crate) authenticator: Arc<A>,
    pub(crate) config: Arc<LayerConfig>,
}

impl<A> Clone for AuthLayer<A> {
    fn clone(&self) -> Self {
        Self {
            authenticator: Arc::clone(&self.authenticator),
            config: Arc::clone(&self.config),
        }
    }
}

impl<A> fmt::Debug for AuthLayer<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthLayer")
            .field("authenticator", &std::any::type_name::<A>())
            .field("sources", &self.config.sources)
            .field("mode", &self.config.mode)
            .field("public_paths", &self.config.public_paths)
            .finish_non_exhaustive()
    }
}

impl<A: Authenticator> AuthLayer<A> {
    /// A required-mode layer reading `Authorization: Bearer`.
    pub fn new(authenticator: A) -> Self {
        Self {
            authenticator: Arc::new(authenticator),
            config: Arc::new(LayerConfig {
                sources: TokenSources::default(),
                cookie_session: false,
                mode: Mode::Required,
                invalid_as_anonymous: false,
                public_paths: Vec::new(),
                public_prefixes: Vec::new(),
                optional_paths: Vec::new(),
                optional_prefixes: Vec::new(),
                skip: None,
                renderer: Arc::new(DefaultRenderer::default()),
                custom_renderer: false,
                realm: None,
                challenge_extras: None,
                custom: None,
            }),
        }
    }

    /// The authenticator this layer runs.
    pub fn authenticator(&self) -> &A {
        &self.authenticator
    }

    fn config_mut(&mut self) -> &mut LayerConfig {
        Arc::make_mut(&mut self.config)
    }

    /// Replaces where credentials are looked for.
    pub fn token_sources(mut self, sources: TokenSources) -> Self {
        let config = self.config_mut();
        config.cookie_session = sources.cookies_only();
        config.sources = sources;
        self
    }

    /// Also accepts the credential from a query parameter (off by default:
    /// URLs end up in logs).
    pub fn allow_query_token(self, parameter: impl Into<String>) -> Self {
        let sources = self.config.sources.clone().with(TokenSource::Query(parameter.into()));
        self.token_sources(sources)
    }

    /// Sets how the layer treats requests without a valid credential.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.config_mut().mode = mode;
        self
    }

    /// Shorthand for `mode(Mode::Optional)`.
    pub fn optional(self) -> Self {
        self.mode(Mode::Optional)
    }

    /// Shorthand for `mode(Mode::EnrichOnly)`.
    pub fn enrich_only(self) -> Self {
        self.mode(Mode::EnrichOnly)
    }

    /// Makes authentication optional on the path `path` (exact match) of a
    /// required-mode layer: a valid credential yields its principal, no
    /// credential means an anonymous request (`Option<Principal>` is
    /// `None`), and an invalid one is still 401 unless
    /// [`invalid_as_anonymous`](Self::invalid_as_anonymous) is set. Unlike
    /// [`public_path`](Self::public_path), the caller's identity is kept
    /// when a credential is sent. Each call adds a path.
    ///
    /// ```
    /// use axum::{routing::get, Router};
    /// use tower_authkit::Principal;
    /// use tower_authkit::jwt::JwksAuthLayer;
    ///
    /// # fn app() -> Result<Router, tower_authkit::ConfigError> {
    /// let auth = JwksAuthLayer::builder()
    ///     .issuer("https://login.example.com")
    ///     .audience("orders-api")
    ///     .build()?
    ///     .optional_path("/feed");
    /// let app = Router::new()
    ///     .route("/me", get(|p: Principal| async move { p.subject().to_owned() }))
    ///     .route("/feed", get(|p: Option<Principal>| async move {
    ///         p.map_or("the public feed".to_owned(), |p| format!("{}'s feed", p.subject()))
    ///     }))
    ///     .layer(auth);
    /// # Ok(app) }
    /// ```
    pub fn optional_path(mut self, path: impl Into<String>) -> Self {
        self.config_mut().optional_paths.push(path.into());
        self
    }

    /// Like [`optional_path`](Self::optional_path) for every path starting
    /// with `prefix`. Each call adds a prefix.
    pub fn optional_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.config_mut().optional_prefixes.push(prefix.into());
        self
    }

    /// In optional mode (layer-wide or on optional paths), treat a present
    /// but invalid credential as anonymous (the rejection is still recorded
    /// as a [`RecordedRejection`]).
    pub fn invalid_as_anonymous(mut self, yes: bool) -> Self {
        self.config_mut().invalid_as_anonymous = yes;
        self
    }

    /// Skips authentication for requests whose path is exactly `path`: no
    /// credential is read there, so handlers see no principal even when one
    /// is sent (use [`optional_path`](Self::optional_path) to keep it). Each
    /// call adds a path.
    pub fn public_path(mut self, path: impl Into<String>) -> Self {
        self.config_mut().public_paths.push(path.into());
        self
    }

    /// Skips authentication for requests whose path starts with `prefix`.
    /// Each call adds a prefix.
    pub fn public_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.config_mut().public_prefixes.push(prefix.into());
        self
    }

    /// Skips authentication for requests matching `predicate`. A later call
    /// replaces the predicate.
    pub fn skip_if(mut self, predicate: impl Fn(&RequestHead<'_>) -> bool + Send + Sync + 'static) -> Self {
        self.config_mut().skip = Some(Arc::new(predicate));
        self
    }

    /// Sets the realm named in `WWW-Authenticate` challenges (default `api`).
    /// Composes with [`protected_resource`](Self::protected_resource) in
    /// either order.
    pub fn realm(mut self, realm: impl Into<Arc<str>>) -> Self {
        let config = self.config_mut();
        config.realm = Some(realm.into());
        config.refresh_renderer();
        self
    }

    /// Replaces how rejections are rendered. Extractors and `Require*` layers
    /// inside this layer use the same renderer. A custom renderer decides the
    /// whole challenge: the layer's [`realm`](Self::realm) and
    /// protected-resource metadata are not added to it (a warning is logged
    /// when both are set); build them into your renderer, e.g. from
    /// [`DefaultRenderer`].
    pub fn renderer(mut self, renderer: impl Renderer) -> Self {
        let config = self.config_mut();
        config.custom = Some(Arc::new(renderer));
        config.refresh_renderer();
        self
    }

    /// Adds to the default renderer's challenges (the realm stays).
    #[cfg_attr(not(feature = "http-client"), allow(dead_code))]
    pub(crate) fn challenge_extras(mut self, extras: ChallengeExtras) -> Self {
        let config = self.config_mut();
        config.challenge_extras = Some(extras);
        config.refresh_renderer();
        self
    }
}

impl<S, A> Layer<S> for AuthLayer<A> {
    type Service = AuthService<S, A>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService::new(inner, self.clone())
    }
}

/// The principal the auth layer left in `extensions`, or the rejection that
/// stands for its absence: the recorded one (enrich-only and optional modes),
/// else "missing credentials". Extractors and `Require*` layers share this.
pub(crate) fn principal_in(extensions: &Extensions) -> Result<&Principal, AuthError> {
    if let Some(principal) = extensions.get::<Principal>() {
        return Ok(principal);
    }
    match extensions.get::<RecordedRejection>() {
        Some(RecordedRejection(error)) => Err(error.clone()),
        None => Err(AuthError::missing_credentials()),
    }
}

/// The auth layer's renderer, when it set a custom one.
pub(crate) fn renderer_in(extensions: &Extensions) -> Option<Arc<dyn Renderer>> {
    extensions
        .get::<RendererHandle>()
        .map(|RendererHandle(renderer)| Arc::clone(renderer))
}

/// Renders `error` with the auth layer's renderer when it set one.
pub(crate) fn render_in(
    extensions: &Extensions,
    headers: &HeaderMap,
    error: AuthError,
) -> http::Response<bytes::Bytes> {
    let protocol = crate::rejection::Protocol::of(headers);
    let (offers_dpop, offers_bearer) = inner_scheme(extensions);
    let error = error.in_scheme_of(headers, offers_dpop, offers_bearer);
    match renderer_in(extensions) {
        Some(renderer) => crate::rejection::rendered(&*renderer, &error, protocol),
        None => crate::rejection::rendered(&DefaultRenderer::default(), &error, protocol),
    }
}
