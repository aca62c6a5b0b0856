//! A protected API configured from the environment.
//!
//! ```sh
//! AUTHKIT_ISSUER=https://login.example.com/realms/main AUTHKIT_AUDIENCE=orders-api \
//!   cargo run --example resource_server
//! ```
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `AUTHKIT_ISSUER` | expected `iss`; discovery base | required |
//! | `AUTHKIT_AUDIENCE` | accepted `aud` (comma-separated for several) | required |
//! | `AUTHKIT_JWKS_URL` | pinned JWKS URL (skips discovery) | discovery |
//! | `AUTHKIT_JWKS_TTL` | seconds keys stay fresh | 600 |
//! | `AUTHKIT_REFRESH_COOLDOWN` | seconds between unknown-kid refetches | 30 |
//! | `AUTHKIT_ISSUERS` | several issuers, `ISSUER=AUD1\|AUD2,ISSUER2=AUD3` (each discovered) | — |
//! | `AUTHKIT_TENANT_ISSUER` | an issuer pattern with `{tenant}`, e.g. `https://login.microsoftonline.com/{tenant}/v2.0` | — |
//! | `AUTHKIT_TENANTS` | the tenants it admits, comma-separated, or `*` for any | required with a pattern |
//! | `AUTHKIT_TENANT_AUDIENCE` | accepted `aud` for tenant tokens (comma-separated) | required with a pattern |
//! | `AUTHKIT_TENANT_TRUST_ROLES` | `1`: roles and groups in tenant tokens satisfy `/admin` and `/team` (otherwise only listed issuers' do: any tenant's admin could grant themselves `admin`) | `0` |
//! | `AUTHKIT_ACCESS_TOKEN_PROFILE` | `1`: RFC 9068 access tokens only (`typ` `at+jwt`) | off |
//! | `AUTHKIT_DPOP` | `off`, `allowed` (bearer tokens, and DPoP-bound tokens with a proof) or `required` (RFC 9449) | `off` |
//! | `AUTHKIT_PUBLIC_URL` | the URL clients use, the base of a DPoP proof's `htu` | `http://` + the bound address |
//! | `AUTHKIT_RESOURCE` | the resource identifier URL (RFC 9728): serves its metadata, names it in challenges, requires it in `aud` | — |
//! | `AUTHKIT_BIND` | listen address (port 0 = ephemeral) | `127.0.0.1:3000` |
//!
//! With `AUTHKIT_RESOURCE`, the metadata document is served at
//! `/.well-known/oauth-protected-resource` (and at the path-inserted form
//! when the URL has a path), naming `AUTHKIT_ISSUER` (and the issuers of
//! `AUTHKIT_ISSUERS`) as authorization servers; every challenge carries
//! `resource_metadata`; tokens must carry the resource in `aud`, beside
//! `AUTHKIT_AUDIENCE`, which becomes optional.
//!
//! With `AUTHKIT_ISSUERS` or `AUTHKIT_TENANT_ISSUER`, `AUTHKIT_ISSUER` and
//! `AUTHKIT_AUDIENCE` are optional (when set, that issuer is one more of
//! the set). `AUTHKIT_JWKS_URL` pins the key set of `AUTHKIT_ISSUER` only;
//! the TTL, cooldown and profile settings apply to every issuer.
//!
//! Routes: `GET /health` (public, liveness), `GET /ready` (public,
//! readiness: 200 once every configured issuer's signing keys are loaded,
//! else 503 with the reason), `GET /metrics` (public, Prometheus text;
//! only when built with the `metrics` feature),
//! `GET /me`, `GET /admin` (role `admin`), `GET /team` (group `team-a`),
//! `GET /reports` (scope `reports:read`), `GET /stepup` (step-up, RFC 9470:
//! `acr` `urn:authkit:mfa` and an `auth_time` at most 300 s old, else 401
//! `insufficient_user_authentication` naming both).

mod support;

use std::process::ExitCode;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use support::{list, required, required_list};
use tower_authkit::jwt::JwksAuthenticator;
use tower_authkit::jwt::KeyCache;
use tower_authkit::jwt::dpop::{Dpop, DpopMode};
use tower_authkit::jwt::{JwksAuthBuilder, JwksAuthLayer, TenantIssuers};
use tower_authkit::resource::ProtectedResource;
use tower_authkit::{Principal, RequireAuthContext, RequireGroup, RequireRole, RequireScope};

fn seconds(name: &str) -> Result<Option<Duration>, String> {
    match std::env::var(name) {
        Err(_) => Ok(None),
        Ok(value) => value
            .trim()
            .parse::<u64>()
            .map(|s| Some(Duration::from_secs(s)))
            .map_err(|_| format!("{name} must be a whole number of seconds, got {value:?}")),
    }
}

/// The address the server bound, known before the app is built (the
/// default DPoP `htu` base).
static BOUND: std::sync::OnceLock<std::net::SocketAddr> = std::sync::OnceLock::new();

fn dpop_mode() -> Result<DpopMode, String> {
    match std::env::var("AUTHKIT_DPOP").as_deref() {
        Err(_) | Ok("" | "off") => Ok(DpopMode::Off),
        Ok("allowed") => Ok(DpopMode::Allowed),
        Ok("required") => Ok(DpopMode::Required),
        Ok(other) => Err(format!("AUTHKIT_DPOP must be off, allowed or required, got {other:?}")),
    }
}

fn public_url() -> Option<String> {
    std::env::var("AUTHKIT_PUBLIC_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .or_else(|| BOUND.get().map(|addr| format!("http://{addr}")))
}

/// The settings every issuer shares: key timing, the token profile, DPoP.
fn shared_settings(mut builder: JwksAuthBuilder) -> Result<JwksAuthBuilder, String> {
    let dpop = dpop_mode()?;
    if dpop != DpopMode::Off {
        let url = public_url().ok_or("AUTHKIT_DPOP needs AUTHKIT_PUBLIC_URL")?;
        builder = builder.dpop(Dpop::new(dpop, url));
    }
    let mut keys = KeyCache::default();
    if let Some(ttl) = seconds("AUTHKIT_JWKS_TTL")? {
        keys = keys.max_age(ttl);
    }
    if let Some(cooldown) = seconds("AUTHKIT_REFRESH_COOLDOWN")? {
        keys = keys.refresh_cooldown(cooldown);
    }
    builder = builder.key_cache(keys);
    match std::env::var("AUTHKIT_ACCESS_TOKEN_PROFILE").as_deref() {
        Err(_) | Ok("" | "0") => {}
        Ok("1") => builder = builder.access_token_profile(),
        Ok(other) => return Err(format!("AUTHKIT_ACCESS_TOKEN_PROFILE must be 0 or 1, got {other:?}")),
    }
    Ok(builder)
}

fn with_audiences(mut builder: JwksAuthBuilder, audiences: impl IntoIterator<Item = String>) -> JwksAuthBuilder {
    for audience in audiences {
        builder = builder.audience(audience);
    }
    builder
}

/// The resource identifier (`AUTHKIT_RESOURCE`), if any.
fn resource_identifier() -> Option<String> {
    std::env::var("AUTHKIT_RESOURCE").ok().filter(|r| !r.trim().is_empty())
}

/// `AUTHKIT_ISSUER` + `AUTHKIT_AUDIENCE` (+ `AUTHKIT_JWKS_URL`); with a
/// resource, the resource is an audience too and `AUTHKIT_AUDIENCE` optional.
fn single_issuer() -> Result<JwksAuthBuilder, String> {
    let mut builder = JwksAuthLayer::builder().issuer(required("AUTHKIT_ISSUER")?);
    let audiences = match resource_identifier() {
        Some(resource) => {
            let mut audiences = list("AUTHKIT_AUDIENCE");
            audiences.push(resource);
            audiences
        }
        None => required_list("AUTHKIT_AUDIENCE")?,
    };
    builder = with_audiences(builder, audiences);
    if let Ok(url) = std::env::var("AUTHKIT_JWKS_URL") {
        builder = builder.jwks_url(url);
    }
    shared_settings(builder)
}

/// `AUTHKIT_ISSUERS`: `ISSUER=AUD1|AUD2,ISSUER2=AUD3`.
fn listed_issuers() -> Result<Vec<JwksAuthBuilder>, String> {
    list("AUTHKIT_ISSUERS")
        .into_iter()
        .map(|entry| {
            let (issuer, audiences) = entry
                .split_once('=')
                .ok_or_else(|| format!("AUTHKIT_ISSUERS: {entry:?} is not ISSUER=AUDIENCE|AUDIENCE"))?;
            let audiences: Vec<String> = audiences
                .split('|')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(str::to_owned)
                .collect();
            if audiences.is_empty() {
                return Err(format!("AUTHKIT_ISSUERS: {issuer} lists no audience"));
            }
            shared_settings(with_audiences(
                JwksAuthLayer::builder().issuer(issuer.trim()),
                audiences,
            ))
        })
        .collect()
}

/// `AUTHKIT_TENANT_ISSUER` with `AUTHKIT_TENANTS` and `AUTHKIT_TENANT_AUDIENCE`.
fn tenant_issuers(pattern: String) -> Result<TenantIssuers, String> {
    let settings = shared_settings(with_audiences(
        JwksAuthLayer::builder(),
        required_list("AUTHKIT_TENANT_AUDIENCE")?,
    ))?;
    let tenants = required_list("AUTHKIT_TENANTS")?;
    let mut pattern = TenantIssuers::new(pattern, settings);
    match std::env::var("AUTHKIT_TENANT_TRUST_ROLES").as_deref() {
        Ok("1") => pattern = pattern.trust_roles(),
        Ok("0") | Err(_) => {}
        Ok(other) => return Err(format!("AUTHKIT_TENANT_TRUST_ROLES must be 0 or 1, got {other:?}")),
    }
    Ok(if tenants == ["*"] {
        pattern.any_tenant()
    } else {
        pattern.allow(tenants)
    })
}

fn auth_layer() -> Result<JwksAuthLayer, String> {
    let listed = listed_issuers()?;
    let pattern = std::env::var("AUTHKIT_TENANT_ISSUER")
        .ok()
        .filter(|p| !p.trim().is_empty());
    let built = if listed.is_empty() && pattern.is_none() {
        single_issuer()?.build()
    } else {
        let mut set = JwksAuthLayer::issuers();
        if std::env::var("AUTHKIT_ISSUER").is_ok_and(|issuer| !issuer.trim().is_empty()) {
            set = set.issuer(single_issuer()?);
        }
        for issuer in listed {
            set = set.issuer(issuer);
        }
        if let Some(pattern) = pattern {
            set = set.tenants(tenant_issuers(pattern)?);
        }
        set.build()
    };
    built
        .map(|layer| {
            layer
                .public_path("/health")
                .public_path("/ready")
                .public_path("/metrics")
        })
        .map_err(|e| format!("invalid configuration: {e}"))
}

async fn me(principal: Principal) -> Json<Value> {
    Json(json!({
        "sub": principal.subject(),
        "email": principal.email(),
        "roles": principal.roles(),
        "groups": principal.groups(),
        "scopes": principal.scopes(),
    }))
}

/// Ready once keys are loaded. A probe that finds none asks for them (one
/// shared fetch) and answers with the real reason when that fails.
async fn ready(State(keys): State<JwksAuthenticator>) -> Response {
    if keys.is_ready() {
        return "ready".into_response();
    }
    match keys.ready().await {
        Ok(()) => "ready".into_response(),
        Err(error) => (StatusCode::SERVICE_UNAVAILABLE, error.to_string()).into_response(),
    }
}

/// `GET /metrics`: what the crate counted, in Prometheus' text format.
#[cfg(feature = "metrics")]
fn with_metrics(router: Router) -> Result<Router, String> {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
    Ok(router.route("/metrics", get(move || std::future::ready(handle.render()))))
}

#[cfg(not(feature = "metrics"))]
fn with_metrics(router: Router) -> Result<Router, String> {
    Ok(router)
}

/// `AUTHKIT_RESOURCE`'s metadata, naming the configured issuers.
fn protected_resource() -> Result<Option<ProtectedResource>, String> {
    let Some(identifier) = resource_identifier() else {
        return Ok(None);
    };
    let mut builder = ProtectedResource::builder(identifier);
    let listed = list("AUTHKIT_ISSUERS");
    let issuers = std::env::var("AUTHKIT_ISSUER").ok().into_iter().chain(
        listed
            .iter()
            .filter_map(|entry| entry.split_once('=').map(|(issuer, _)| issuer.trim().to_owned())),
    );
    for issuer in issuers.filter(|issuer| !issuer.is_empty()) {
        builder = builder.authorization_server(issuer);
    }
    builder
        .build()
        .map(Some)
        .map_err(|e| format!("invalid configuration: {e}"))
}

fn app() -> Result<Router, String> {
    let resource = protected_resource()?;
    let mut auth = auth_layer()?;
    if let Some(resource) = &resource {
        auth = auth.protected_resource(resource);
    }
    let router = with_metrics(Router::new())?;
    let router = router
        .route("/health", get(|| async { "ok" }))
        .route("/ready", get(ready).with_state(auth.authenticator().clone()))
        .route("/me", get(me))
        .route(
            "/admin",
            get(|| async { Json(json!({"admin": true})) }).route_layer(RequireRole::new("admin")),
        )
        .route(
            "/team",
            get(|| async { Json(json!({"team": "team-a"})) }).route_layer(RequireGroup::new("team-a")),
        )
        .route(
            "/stepup",
            get(|| async { Json(json!({"stepped_up": true})) })
                .route_layer(RequireAuthContext::acr(["urn:authkit:mfa"]).max_age(Duration::from_secs(300))),
        )
        .route(
            "/reports",
            get(|| async { Json(json!({"reports": []})) }).route_layer(RequireScope::new("reports:read")),
        )
        .layer(auth);
    Ok(match resource {
        Some(resource) => router.layer(resource.metadata_layer()),
        None => router,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    // Bound first, then built: the bound address is the default `htu` base.
    support::serve_bound("resource_server", |addr| {
        let _ = BOUND.set(addr);
        app()
    })
    .await
}
