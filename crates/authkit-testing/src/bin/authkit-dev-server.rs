//! `authkit-dev-server`: one local server that emulates every upstream
//! tower-authkit talks to, for development with two terminals.
//!
//! ```sh
//! cargo run -p tower-authkit-testing --bin authkit-dev-server
//! ```
//!
//! Serves OIDC discovery and RFC 8414 metadata, a JWKS, a token endpoint
//! (client credentials; authorization code with PKCE for clients registered
//! at `/register`, approved at once at `/authorize` as `dev-user` or the
//! `login_hint`; `resource` becomes `aud`), RFC 7662 introspection; the auth proxy's `/_oxa_auth/*` surface; a Cloudflare
//! Access team (`/cdn-cgi/access/*`); and a Pomerium route JWKS. A second
//! port serves a Pomerium route with the programmatic login (its sign-in page
//! signs anyone in at once) in front of an echo app, for `authkit-pomerium`.
//!
//! Settings (environment, all optional): `AUTHKIT_DEV_HOST` (127.0.0.1),
//! `AUTHKIT_DEV_PORT` (8765), `AUTHKIT_DEV_POMERIUM_PORT` (the dev port + 1,
//! or any free port when the dev port is 0), `AUTHKIT_DEV_AUDIENCE` (test-api), and the
//! proxy emulation's `AUTHKIT_DEV_TOKENS`, `AUTHKIT_DEV_ACCESS_TOKEN_VALUE`,
//! `AUTHKIT_DEV_REFRESH_TOKEN_VALUE`, `AUTHKIT_DEV_ACCESS_COOKIE_NAME`,
//! `AUTHKIT_DEV_REFRESH_COOKIE_NAME`, `AUTHKIT_DEV_EXPIRES_IN`,
//! `AUTHKIT_DEV_REFRESH_EXPIRES_IN`, `AUTHKIT_DEV_RETURN_TO`,
//! `AUTHKIT_DEV_AUTHORIZE_PATH`, `AUTHKIT_DEV_AUTH_CODE`,
//! `AUTHKIT_DEV_LOGIN_AUTHORIZE_URL`, `AUTHKIT_DEV_EMAIL`,
//! `AUTHKIT_DEV_USER_NAME`, `AUTHKIT_DEV_FIRST_NAME`, `AUTHKIT_DEV_LAST_NAME`,
//! `AUTHKIT_DEV_USER_ID`, `AUTHKIT_DEV_ACCOUNT_TYPE`, `AUTHKIT_DEV_WORKSPACE_ID`,
//! `AUTHKIT_DEV_WORKSPACE_NAME`, `AUTHKIT_DEV_ROLE_NAMES`,
//! `AUTHKIT_DEV_PERMISSIONS`, `AUTHKIT_DEV_FORBIDDEN_TOKEN`, and
//! `AUTHKIT_DEV_CORS_ORIGINS`: which browser origins may call it (default
//! `*`, any origin without credentials; a comma-separated list of
//! `scheme://host[:port]` allows exactly those, with credentials, for
//! frontends that send cookies).

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;

use tower_authkit_testing::{CorsOrigins, DEV_CLIENT_ID, DEV_CLIENT_SECRET, FakePomerium, ProxyMock, TestIdp};

fn setting(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// The dev server's address and the Pomerium route's.
fn addresses() -> Result<(SocketAddr, SocketAddr), String> {
    let host = setting("AUTHKIT_DEV_HOST", "127.0.0.1");
    let ip: IpAddr = host
        .parse()
        .map_err(|_| format!("AUTHKIT_DEV_HOST must be an IP address, got {host:?}"))?;
    let port = port_setting("AUTHKIT_DEV_PORT", "8765")?;
    let next = if port == 0 { 0 } else { port.saturating_add(1) };
    let pomerium_port = port_setting("AUTHKIT_DEV_POMERIUM_PORT", &next.to_string())?;
    Ok((SocketAddr::new(ip, port), SocketAddr::new(ip, pomerium_port)))
}

fn port_setting(name: &str, default: &str) -> Result<u16, String> {
    let port = setting(name, default);
    port.parse()
        .map_err(|_| format!("{name} must be a port number, got {port:?}"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let (addr, pomerium_addr) = match addresses() {
        Ok(addrs) => addrs,
        Err(message) => {
            eprintln!("authkit-dev-server: {message}");
            return ExitCode::from(2);
        }
    };
    let cors = match CorsOrigins::parse(&setting("AUTHKIT_DEV_CORS_ORIGINS", "*")) {
        Ok(cors) => cors,
        Err(message) => {
            eprintln!("authkit-dev-server: AUTHKIT_DEV_CORS_ORIGINS: {message}");
            return ExitCode::from(2);
        }
    };
    let proxy = ProxyMock::from_env();
    let token = proxy.access_token.clone();
    let audience = setting("AUTHKIT_DEV_AUDIENCE", "test-api");
    let idp = match TestIdp::builder()
        .bind(addr)
        .audience(&audience)
        .proxy(proxy)
        .cors(cors.clone())
        .try_start()
        .await
    {
        Ok(idp) => idp,
        Err(e) => {
            eprintln!("authkit-dev-server: cannot listen on {addr}: {e}");
            return ExitCode::from(1);
        }
    };
    let pomerium = match FakePomerium::try_start_on(pomerium_addr, FakePomerium::echo_app()).await {
        Ok(route) => route,
        Err(e) => {
            eprintln!("authkit-dev-server: cannot listen on {pomerium_addr}: {e}");
            return ExitCode::from(1);
        }
    };
    let base = idp.issuer();
    println!("authkit-dev-server: development only, every key here is public");
    println!(
        "  OIDC issuer        {base}  (discovery, /jwks, /token, /introspect; client {DEV_CLIENT_ID}:{DEV_CLIENT_SECRET}, audience {audience})"
    );
    println!(
        "  OAuth / MCP        {base}/.well-known/oauth-authorization-server  (/register, /authorize with PKCE: approves at once as dev-user)"
    );
    println!("  auth proxy         {base}/_oxa_auth/*  (valid token {token})");
    match &cors {
        CorsOrigins::Any => println!("  CORS               any origin, no credentials"),
        CorsOrigins::List(origins) => println!("  CORS               {} (with credentials)", origins.join(", ")),
    }
    println!("  Cloudflare team    {base}/cdn-cgi/access/certs and /get-identity");
    println!("  Pomerium JWKS      {}", idp.pomerium_jwks_url());
    println!(
        "  Pomerium route     {}  (programmatic login; signs anyone in)",
        pomerium.origin()
    );
    println!("try:");
    println!("  curl -H 'Authorization: Bearer {token}' {base}/_oxa_auth/get-me");
    println!("  cargo run -p tower-authkit-pomerium -- {}/hello", pomerium.origin());
    println!("listening on {base}");
    match tokio::signal::ctrl_c().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("authkit-dev-server: {e}");
            ExitCode::from(1)
        }
    }
}
