//! An MCP server over streamable HTTP (the official Rust SDK, `rmcp`),
//! protected as the MCP authorization spec (2025-06-18 / 2025-11-25) asks:
//! an OAuth 2.1 resource server that publishes RFC 9728 metadata, points at
//! it from every 401, and accepts only tokens issued for it (RFC 8707).
//!
//! ```sh
//! cargo run -p tower-authkit-testing --bin authkit-dev-server &   # an authorization server on 127.0.0.1:8765
//! AUTHKIT_ISSUER=http://127.0.0.1:8765 cargo run --example mcp_server
//! ```
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `AUTHKIT_ISSUER` | the authorization server (its issuer URL); tokens come from it | required |
//! | `AUTHKIT_RESOURCE` | the resource identifier, the URL clients connect to; tokens must carry it in `aud` | `http://` + the bound address + `/mcp` |
//! | `AUTHKIT_SCOPES` | the scopes a token needs to use the server (comma-separated); advertised as `scopes_supported` and in 401 challenges | `mcp:tools` |
//! | `AUTHKIT_JWKS_URL` | pinned JWKS URL (skips discovery) | discovery |
//! | `AUTHKIT_BIND` | listen address (port 0 = ephemeral) | `127.0.0.1:3000` |
//!
//! Routes: `POST /mcp` (the MCP endpoint, at the resource identifier's
//! path), `GET /.well-known/oauth-protected-resource/mcp` (and
//! `/.well-known/oauth-protected-resource`: the metadata, public),
//! `GET /health` (public).
//!
//! What a client sees:
//! - no token → 401 `WWW-Authenticate: Bearer realm="api",
//!   resource_metadata="…/.well-known/oauth-protected-resource/mcp",
//!   scope="mcp:tools"`; the document names `AUTHKIT_ISSUER`, whose
//!   metadata gives the token endpoint;
//! - a token for another resource (wrong `aud`), expired, or in the query
//!   string → 401 `invalid_token`;
//! - a token without the scopes → 403 `insufficient_scope`, naming them
//!   and the metadata.
//!
//! Tools: `whoami` (the caller's subject, client and scopes, read from the
//! `Principal` the auth layer inserted) and `add`.
//!
//! The server is stateless (no `Mcp-Session-Id`): every request carries its
//! token and is authenticated on its own, so no session can be carried over
//! from one caller to another.

mod support;

use std::process::ExitCode;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, ServerHandler, schemars, tool, tool_handler, tool_router};
use serde_json::json;
use support::{list, required};
use tower::Layer;
use tower_authkit::jwt::JwksAuthLayer;
use tower_authkit::resource::ProtectedResource;
use tower_authkit::{Principal, RequireScope};

/// The tools this server offers (the router is built once and cloned).
#[derive(Clone)]
struct Tools {
    tool_router: ToolRouter<Self>,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct AddRequest {
    /// The first addend.
    a: i64,
    /// The second addend.
    b: i64,
}

#[tool_router]
impl Tools {
    fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
        }
    }

    /// rmcp hands a tool the request's HTTP parts; the auth layer put the
    /// caller's `Principal` in their extensions.
    #[tool(description = "Who is calling: the token's subject, client and scopes")]
    fn whoami(&self, Extension(parts): Extension<http::request::Parts>) -> Result<String, ErrorData> {
        let principal = parts
            .extensions
            .get::<Principal>()
            .ok_or_else(|| ErrorData::internal_error("no authenticated caller", None))?;
        Ok(json!({
            "sub": principal.subject(),
            "client_id": principal.claim("client_id"),
            "scopes": principal.scopes(),
        })
        .to_string())
    }

    #[tool(description = "Adds two integers")]
    fn add(&self, Parameters(AddRequest { a, b }): Parameters<AddRequest>) -> Result<String, ErrorData> {
        a.checked_add(b)
            .map(|sum| sum.to_string())
            .ok_or_else(|| ErrorData::invalid_params("the sum does not fit in 64 bits", None))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_instructions("A tower-authkit example: call whoami to see who the server thinks you are.")
    }
}

/// `AUTHKIT_RESOURCE`, or the bound address + `/mcp`.
fn resource_identifier(addr: std::net::SocketAddr) -> String {
    std::env::var("AUTHKIT_RESOURCE")
        .ok()
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| format!("http://{addr}/mcp"))
}

fn app(addr: std::net::SocketAddr) -> Result<Router, String> {
    let issuer = required("AUTHKIT_ISSUER")?;
    let mut scopes = list("AUTHKIT_SCOPES");
    if scopes.is_empty() {
        scopes.push("mcp:tools".to_owned());
    }
    let identifier = resource_identifier(addr);
    let resource = ProtectedResource::builder(identifier.clone())
        .authorization_server(issuer.clone())
        .scopes_supported(scopes.clone())
        .name("tower-authkit MCP example")
        .build()
        .map_err(|e| format!("invalid configuration: {e}"))?;
    // The identifier is the audience tokens must carry (RFC 8707).
    let mut keys = JwksAuthLayer::builder().issuer(issuer).protected_resource(&resource);
    if let Ok(url) = std::env::var("AUTHKIT_JWKS_URL") {
        keys = keys.jwks_url(url);
    }
    let auth = keys
        .build()
        .map_err(|e| format!("invalid configuration: {e}"))?
        .protected_resource(&resource)
        .public_path("/health");

    let uri: http::Uri = identifier.parse().map_err(|e| format!("AUTHKIT_RESOURCE: {e}"))?;
    let path = match uri.path().trim_end_matches('/') {
        "" => "/mcp".to_owned(),
        path => path.to_owned(),
    };
    // rmcp refuses Host headers it does not know (DNS rebinding): the
    // resource's host, and loopback for local clients.
    let mut hosts = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    hosts.extend(uri.host().map(|host| host.trim_matches(['[', ']']).to_owned()));
    // Stateless: a handler per request, cloned from one built here.
    let tools = Tools::new();
    let mcp = StreamableHttpService::new(
        move || Ok(tools.clone()),
        Arc::new(NeverSessionManager::default()),
        StreamableHttpServerConfig::default()
            .with_legacy_session_mode(false)
            .with_json_response(true)
            .with_allowed_hosts(hosts),
    );
    // Every scope is needed for any MCP call: 403 insufficient_scope names them.
    let router = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route_service(&path, RequireScope::all(scopes).layer(mcp));
    Ok(router.layer(auth).layer(resource.metadata_layer()))
}

#[tokio::main]
async fn main() -> ExitCode {
    support::serve_bound("mcp_server", app).await
}
