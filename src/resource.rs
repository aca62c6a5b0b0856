//! OAuth 2.0 Protected Resource Metadata (RFC 9728), what MCP servers must
//! publish: a JSON document naming the resource and its authorization
//! servers, served at `/.well-known/oauth-protected-resource` (and, for a
//! resource with a path, at the path-inserted form), plus
//! `resource_metadata="<url>"` in every challenge so a client that got a
//! 401 can find the authorization server.
//!
//! ```
//! use axum::{routing::post, Router};
//! use tower_authkit::resource::ProtectedResource;
//! use tower_authkit_testing::TestIdp;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let idp = TestIdp::start().await;
//! let resource = ProtectedResource::builder("http://127.0.0.1:8080/mcp")
//!     .authorization_server(idp.issuer())
//!     .scopes_supported(["mcp:tools"])
//!     .build()
//!     .expect("valid configuration");
//! // Tokens must name the resource in `aud` (RFC 8707 audience binding),
//! // and challenges point at the metadata.
//! let auth = tower_authkit::jwt::JwksAuthLayer::builder()
//!     .issuer(idp.issuer())
//!     .protected_resource(&resource)
//!     .build()
//!     .expect("valid configuration")
//!     .protected_resource(&resource);
//! let app: Router = Router::new()
//!     .route("/mcp", post(|| async { "{}" }))
//!     .layer(auth)
//!     .layer(resource.metadata_layer());
//! assert_eq!(resource.metadata_url(), "http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp");
//! # let _ = app;
//! # }
//! ```
//!
//! The resource identifier is configured (https; http only on loopback),
//! never derived from request headers, so a proxy in front cannot change
//! what the document and the challenges say. Bearer tokens are accepted in
//! the `Authorization` header only (`bearer_methods_supported: ["header"]`).
//!
//! # MCP servers
//!
//! An MCP server over streamable HTTP is an OAuth 2.1 resource server (MCP
//! authorization spec, 2025-06-18 and 2025-11-25). What the spec asks of it is
//! three calls here: publish RFC 9728 metadata naming the authorization
//! server, point at it from every 401, and accept only tokens issued for this
//! server (`aud` = the resource identifier, RFC 8707). With the official Rust
//! SDK, `rmcp`:
//!
//! ```rust,no_run
//! use std::sync::Arc;
//! use axum::Router;
//! use rmcp::handler::server::router::tool::ToolRouter;
//! use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
//! use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
//! use rmcp::{ServerHandler, model::{ServerCapabilities, ServerConfig}, tool, tool_handler, tool_router};
//! use tower::Layer;
//! use tower_authkit::resource::ProtectedResource;
//! use tower_authkit::RequireScope;
//! use tower_authkit::jwt::JwksAuthLayer;
//!
//! #[derive(Clone)]
//! struct Tools { tool_router: ToolRouter<Self> }
//!
//! #[tool_router]
//! impl Tools {
//!     #[tool(description = "Says hello")]
//!     fn hello(&self) -> String { "hello".into() }
//! }
//!
//! #[tool_handler(router = self.tool_router)]
//! impl ServerHandler for Tools {
//!     fn get_info(&self) -> ServerConfig {
//!         ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
//!     }
//! }
//!
//! fn app() -> Result<Router, Box<dyn std::error::Error>> {
//!     let resource = ProtectedResource::builder("https://mcp.example.com/mcp")
//!         .authorization_server("https://login.example.com")
//!         .scopes_supported(["mcp:tools"])
//!         .build()?;
//!     let auth = JwksAuthLayer::builder()
//!         .issuer("https://login.example.com")
//!         .protected_resource(&resource) // aud must be https://mcp.example.com/mcp
//!         .build()?
//!         .protected_resource(&resource); // resource_metadata in challenges; metadata paths public
//!     let tools = Tools { tool_router: Tools::tool_router() };
//!     let mcp = StreamableHttpService::new(
//!         move || Ok(tools.clone()),
//!         Arc::new(NeverSessionManager::default()), // stateless: every request is authenticated on its own
//!         StreamableHttpServerConfig::default()
//!             .with_legacy_session_mode(false)
//!             .with_allowed_hosts(["mcp.example.com"]),
//!     );
//!     Ok(Router::new()
//!         .route_service("/mcp", RequireScope::all(["mcp:tools"]).layer(mcp))
//!         .layer(auth)
//!         .layer(resource.metadata_layer()))
//! }
//! ```
//!
//! What a client sees:
//!
//! | request | answer |
//! |---|---|
//! | no token | 401 `WWW-Authenticate: Bearer realm="api", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp", scope="mcp:tools"` |
//! | `GET /.well-known/oauth-protected-resource/mcp` (and the bare well-known path) | the RFC 9728 document: `resource`, `authorization_servers`, `scopes_supported`, `bearer_methods_supported: ["header"]` |
//! | a token for another resource, expired, forged, or in the query string | 401 `invalid_token` (with `resource_metadata`) |
//! | a token without the scope | 403 `insufficient_scope`, `scope="mcp:tools"`, `resource_metadata` |
//!
//! Tools read the caller from the HTTP parts rmcp hands them:
//! `Extension(parts): Extension<http::request::Parts>`, then
//! `parts.extensions.get::<Principal>()`. The resource identifier is
//! configured, never taken from `Host` or `X-Forwarded-*`, so a proxy in front
//! cannot change what the metadata and the challenges say.
//!
//! `examples/mcp_server.rs` is the runnable version (tools `whoami` and `add`;
//! `AUTHKIT_ISSUER`, `AUTHKIT_RESOURCE`, `AUTHKIT_SCOPES`). To try it with a
//! real MCP client on one machine, the dev server is an authorization server
//! too (RFC 8414 metadata, dynamic client registration, authorization code
//! with PKCE approved at once as `dev-user`, `resource` → `aud`):
//!
//! ```sh
//! cargo run -p tower-authkit-testing --bin authkit-dev-server        # terminal 1: 127.0.0.1:8765
//! AUTHKIT_ISSUER=http://127.0.0.1:8765 cargo run --example mcp_server   # terminal 2: http://127.0.0.1:3000/mcp
//! ```
//!
//! The official MCP TypeScript SDK is tested against it in CI
//! (`tests/interop.rs`): with oidc-provider as the authorization server and
//! the client-credentials flow, and with the test kit and the interactive
//! flow (registration, PKCE, `resource`, code exchange). Both start from a
//! bare 401 and discover everything else.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use serde_json::json;
use tower_layer::Layer;
use tower_service::Service;

use crate::error::ConfigError;
use crate::layer::{AuthBody, GuardFuture};
use crate::rejection::DefaultRenderer;
use crate::upstream::parse_url;

/// The well-known path of RFC 9728 §3.
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// A protected resource's metadata; see the [module docs](self). Cheap to clone.
#[derive(Clone, Debug)]
pub struct ProtectedResource {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    identifier: String,
    metadata_url: String,
    /// Where the document is served: the path-inserted form first.
    paths: Vec<String>,
    document: Bytes,
    scopes: Option<String>,
}

/// Configures a [`ProtectedResource`].
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until it is built"]
pub struct ProtectedResourceBuilder {
    identifier: String,
    authorization_servers: Vec<String>,
    scopes: Vec<String>,
    documentation: Option<String>,
    name: Option<String>,
}

impl ProtectedResource {
    /// Starts configuring the resource `identifier`, its public URL (e.g.
    /// `https://api.example.com/mcp`).
    pub fn builder(identifier: impl Into<String>) -> ProtectedResourceBuilder {
        ProtectedResourceBuilder {
            identifier: identifier.into(),
            authorization_servers: Vec::new(),
            scopes: Vec::new(),
            documentation: None,
            name: None,
        }
    }

    /// The resource identifier, as configured: the audience its tokens
    /// must carry.
    pub fn identifier(&self) -> &str {
        &self.inner.identifier
    }

    /// Where the metadata document is (the path-inserted form for a
    /// resource with a path), as challenges name it.
    pub fn metadata_url(&self) -> &str {
        &self.inner.metadata_url
    }

    /// The metadata document.
    pub fn document(&self) -> &[u8] {
        &self.inner.document
    }

    /// The crate's renderer, whose challenges carry `resource_metadata`
    /// (and, on 401s, the supported scopes as `scope`).
    pub fn renderer(&self) -> DefaultRenderer {
        self.decorate(DefaultRenderer::default())
    }

    /// `renderer` with `resource_metadata` (and `scope`) added.
    pub fn decorate(&self, renderer: DefaultRenderer) -> DefaultRenderer {
        let renderer = renderer.with_resource_metadata(self.inner.metadata_url.as_str());
        match &self.inner.scopes {
            Some(scopes) => renderer.with_scope(scopes.as_str()),
            None => renderer,
        }
    }

    /// A layer that answers `GET` / `HEAD` of the metadata paths with the
    /// document (`application/json`, cacheable for an hour) and passes
    /// everything else on. Put it outside the auth layer, or make
    /// `/.well-known/` public there.
    pub fn metadata_layer(&self) -> MetadataLayer {
        MetadataLayer { resource: self.clone() }
    }

    /// The paths the document is served at.
    pub fn metadata_paths(&self) -> &[String] {
        &self.inner.paths
    }

    fn response(&self, method: &Method) -> Response<Bytes> {
        let body = if method == Method::HEAD {
            Bytes::new()
        } else {
            self.inner.document.clone()
        };
        let mut response = Response::new(body);
        *response.status_mut() = StatusCode::OK;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
        response
    }
}

impl ProtectedResourceBuilder {
    /// An authorization server (its issuer URL) whose tokens this resource
    /// accepts; call again for several.
    pub fn authorization_server(mut self, issuer: impl Into<String>) -> Self {
        self.authorization_servers.push(issuer.into());
        self
    }

    /// The scopes the resource understands (`scopes_supported`); also the
    /// `scope` of 401 challenges.
    pub fn scopes_supported<I: IntoIterator<Item = T>, T: Into<String>>(mut self, scopes: I) -> Self {
        self.scopes.extend(scopes.into_iter().map(Into::into));
        self
    }

    /// A page for developers (`resource_documentation`).
    pub fn documentation(mut self, url: impl Into<String>) -> Self {
        self.documentation = Some(url.into());
        self
    }

    /// A human-readable name (`resource_name`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Checks the URLs and builds the resource.
    pub fn build(self) -> Result<ProtectedResource, ConfigError> {
        let url = parse_url("resource", &self.identifier)?;
        if url.fragment().is_some() || url.query().is_some() {
            return Err(ConfigError::Invalid {
                setting: "resource",
                reason: "a resource identifier has no query or fragment (RFC 9728 §1.2)".into(),
            });
        }
        for server in &self.authorization_servers {
            parse_url("authorization_server", server)?;
        }
        if let Some(documentation) = &self.documentation {
            parse_url("documentation", documentation)?;
        }
        let path = url.path().trim_end_matches('/');
        let mut paths = Vec::new();
        if !path.is_empty() {
            paths.push(format!("{WELL_KNOWN}{path}"));
        }
        paths.push(WELL_KNOWN.to_owned());
        let origin = url.origin().ascii_serialization();
        let metadata_url = format!("{origin}{}", paths[0]);
        let mut document = json!({
            "resource": self.identifier,
            "authorization_servers": self.authorization_servers,
            "bearer_methods_supported": ["header"],
        });
        if !self.scopes.is_empty() {
            document["scopes_supported"] = json!(self.scopes);
        }
        if let Some(documentation) = &self.documentation {
            document["resource_documentation"] = json!(documentation);
        }
        if let Some(name) = &self.name {
            document["resource_name"] = json!(name);
        }
        Ok(ProtectedResource {
            inner: Arc::new(Inner {
                identifier: self.identifier,
                metadata_url,
                paths,
                document: Bytes::from(document.to_string()),
                scopes: (!self.scopes.is_empty()).then(|| self.scopes.join(" ")),
            }),
        })
    }
}

/// Serves the metadata document; see [`ProtectedResource::metadata_layer`].
#[derive(Clone, Debug)]
pub struct MetadataLayer {
    resource: ProtectedResource,
}

impl<S> Layer<S> for MetadataLayer {
    type Service = MetadataService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        MetadataService {
            inner,
            resource: self.resource.clone(),
        }
    }
}

/// The service of [`MetadataLayer`].
#[derive(Clone, Debug)]
pub struct MetadataService<S> {
    inner: S,
    resource: ProtectedResource,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for MetadataService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<AuthBody<ResBody>>;
    type Error = S::Error;
    type Future = GuardFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let method = request.method();
        let is_metadata = (method == Method::GET || method == Method::HEAD)
            && self
                .resource
                .inner
                .paths
                .iter()
                .any(|path| path == request.uri().path());
        if is_metadata {
            GuardFuture::refuse(self.resource.response(method))
        } else {
            GuardFuture::pass(self.inner.call(request))
        }
    }
}

impl<A: crate::layer::Authenticator> crate::layer::AuthLayer<A> {
    /// Challenges name `resource`'s metadata (`resource_metadata`, and the
    /// supported scopes on 401s), keeping the layer's [`realm`](Self::realm)
    /// whichever is set first; its metadata paths are public on this layer.
    pub fn protected_resource(self, resource: &ProtectedResource) -> Self {
        let decorating = resource.clone();
        let mut layer = self.challenge_extras(Arc::new(move |renderer| decorating.decorate(renderer)));
        for path in resource.metadata_paths() {
            layer = layer.public_path(path.clone());
        }
        layer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_and_its_urls_follow_rfc_9728() {
        let resource = ProtectedResource::builder("https://api.example.com/mcp/")
            .authorization_server("https://login.example.com")
            .scopes_supported(["mcp:tools", "mcp:read"])
            .documentation("https://docs.example.com/mcp")
            .build()
            .unwrap();
        assert_eq!(
            resource.metadata_url(),
            "https://api.example.com/.well-known/oauth-protected-resource/mcp"
        );
        let document: serde_json::Value = serde_json::from_slice(resource.document()).unwrap();
        assert_eq!(
            document,
            json!({
                "resource": "https://api.example.com/mcp/",
                "authorization_servers": ["https://login.example.com"],
                "bearer_methods_supported": ["header"],
                "scopes_supported": ["mcp:tools", "mcp:read"],
                "resource_documentation": "https://docs.example.com/mcp",
            })
        );
        let bare = ProtectedResource::builder("https://api.example.com").build().unwrap();
        assert_eq!(
            bare.metadata_url(),
            "https://api.example.com/.well-known/oauth-protected-resource"
        );
    }

    #[test]
    fn insecure_or_malformed_identifiers_are_refused() {
        for bad in [
            "http://api.example.com",
            "https://api.example.com/x?a=1",
            "https://api.example.com/#f",
            "not a url",
        ] {
            assert!(ProtectedResource::builder(bad).build().is_err(), "{bad}");
        }
        assert!(ProtectedResource::builder("http://127.0.0.1:9/mcp").build().is_ok());
        let server = ProtectedResource::builder("https://api.example.com")
            .authorization_server("http://login.example.com")
            .build();
        assert!(matches!(server, Err(ConfigError::InsecureUrl { .. })));
    }
}
