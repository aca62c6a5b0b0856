//! The ingress app `authkit-ingress serve` runs: the portal's routes plus
//! the service routes, configured from the environment.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authkit_ingress::portal::{App, Portal, escape};
use authkit_ingress::settings::number;
use authkit_ingress::{
    Destination, Forwarded, Identity, Limits, ServiceProxy, Standing, UnderscoreHeaders, WebSocketPolicy,
    is_websocket_upgrade,
};
use axum::Router;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::http::header::HOST;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{any, get, post};
use futures_util::future::BoxFuture;
use tower_authkit::audit::{AuditEvent, emit};
use tower_authkit::client_address::TrustedProxies;
use tower_authkit::session::{Session, SessionAuthenticator, SessionHandle};
use tower_authkit::{Principal, RequireRole};

/// Entries already audited, so "entry allowed" is logged once per session
/// and service. Bounded: cleared when full.
const AUDITED_ENTRIES: usize = 100_000;

struct Service {
    destination: Destination,
    groups: Arc<[String]>,
}

#[derive(Clone)]
struct Ingress {
    services: Arc<Vec<Service>>,
    proxy: ServiceProxy,
    websockets: WebSocketPolicy,
    sessions: SessionAuthenticator,
    proxies: Arc<TrustedProxies>,
    audited: Arc<Mutex<HashSet<(SessionHandle, String)>>>,
}

impl Ingress {
    fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.destination.name() == name)
    }
}

fn services() -> Result<Vec<Service>, String> {
    let spec = std::env::var("AUTHKIT_INGRESS_SERVICES").unwrap_or_default();
    let mut services = Vec::new();
    for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, rest) = entry
            .split_once('=')
            .ok_or_else(|| format!("AUTHKIT_INGRESS_SERVICES: {entry:?} is not name=URL|groups"))?;
        let (url, groups) = rest.split_once('|').unwrap_or((rest, ""));
        let destination =
            Destination::parse(name.trim(), url.trim()).map_err(|e| format!("AUTHKIT_INGRESS_SERVICES: {e}"))?;
        let groups = groups
            .split(';')
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .map(str::to_owned)
            .collect();
        services.push(Service { destination, groups });
    }
    Ok(services)
}

fn limits() -> Result<Limits, String> {
    let defaults = Limits::default();
    Ok(Limits {
        max_request_bytes: number("AUTHKIT_INGRESS_MAX_REQUEST_BYTES", defaults.max_request_bytes)?,
        max_response_bytes: number("AUTHKIT_INGRESS_MAX_RESPONSE_BYTES", defaults.max_response_bytes)?,
        timeout: Duration::from_secs(number("AUTHKIT_INGRESS_TIMEOUT", defaults.timeout.as_secs())?),
    })
}

fn may_enter(principal: &Principal, groups: &[String]) -> bool {
    groups.iter().any(|g| principal.has_group(g))
}

/// A WebSocket's re-check: the session as a request would see it now, and
/// the user still in one of the service's groups.
fn watch(
    sessions: SessionAuthenticator,
    handle: SessionHandle,
    groups: Arc<[String]>,
) -> impl FnMut() -> BoxFuture<'static, Standing> + Send + 'static {
    move || {
        let (sessions, groups) = (sessions.clone(), Arc::clone(&groups));
        Box::pin(async move {
            match sessions.principal_of(&handle).await {
                Ok(Some(principal)) if may_enter(&principal, &groups) => Standing::Allowed,
                Ok(_) => Standing::Ended,
                Err(_) => Standing::Unknown,
            }
        })
    }
}

async fn home(State(ingress): State<Ingress>, principal: Principal) -> Html<String> {
    let links: String = ingress
        .services
        .iter()
        .filter(|s| may_enter(&principal, &s.groups))
        .map(|s| {
            let name = escape(s.destination.name());
            format!("<li><a href=\"/s/{name}/\">{name}</a></li>")
        })
        .collect();
    Html(format!(
        "<!doctype html><html><head><title>Services</title></head><body>\
         <p id=\"email\">{}</p><ul id=\"services\">{links}</ul>\
         <form method=\"post\" action=\"/logout\"><button type=\"submit\">Sign out</button></form></body></html>",
        escape(principal.email().unwrap_or(principal.subject()))
    ))
}

async fn enter(
    State(ingress): State<Ingress>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    principal: Principal,
    session: Session,
    Path(path): Path<Vec<(String, String)>>,
    request: Request,
) -> Response {
    // The service by its routed name; the path itself goes on raw (the
    // proxy takes it from the request, never from a decoded parameter).
    let name = path
        .iter()
        .find(|(k, _)| k == "name")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let Some(service) = ingress.service(&name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if !may_enter(&principal, &service.groups) {
        emit(AuditEvent::EntryDenied {
            subject: principal.subject(),
            service: &name,
        });
        return (
            StatusCode::FORBIDDEN,
            "you are not in a group that may enter this service",
        )
            .into_response();
    }
    let Some(handle) = session.handle() else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    {
        let mut audited = ingress.audited.lock().unwrap_or_else(|p| p.into_inner());
        if audited.len() >= AUDITED_ENTRIES {
            audited.clear();
        }
        if audited.insert((handle, name.clone())) {
            emit(AuditEvent::EntryAllowed {
                subject: principal.subject(),
                service: &name,
            });
        }
    }
    let host = request
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned);
    let user = principal.email().unwrap_or(principal.subject()).to_owned();
    let identity = Identity {
        user: &user,
        groups: principal.groups(),
    };
    let forwarded = Forwarded {
        client: ingress.proxies.client(peer.ip(), request.headers()),
        proto: ingress.proxies.scheme(peer.ip(), request.headers()).unwrap_or("http"),
        host: host.as_deref(),
    };
    let cookie = ingress.sessions.cookie_name();
    let destination = &service.destination;
    if is_websocket_upgrade(&request) {
        let check = watch(ingress.sessions.clone(), handle, Arc::clone(&service.groups));
        return ingress
            .proxy
            .forward_websocket(
                destination,
                request,
                identity,
                forwarded,
                cookie,
                ingress.websockets,
                check,
            )
            .await
            .into_response();
    }
    ingress
        .proxy
        .forward(destination, request, identity, forwarded, cookie)
        .await
        .into_response()
}

/// `/s/{name}` → `/s/{name}/`, for configured services only (a decoded
/// name is never echoed into a header).
async fn to_slash(State(ingress): State<Ingress>, Path(name): Path<String>) -> Response {
    match ingress.service(&name) {
        Some(service) => Redirect::permanent(&format!("/s/{}/", service.destination.name())).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[derive(serde::Deserialize)]
struct Groups {
    email: String,
    groups: String,
}

async fn set_groups(State(app): State<App>, Query(q): Query<Groups>) -> Response {
    let groups = q
        .groups
        .split('|')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(str::to_owned)
        .collect::<Vec<_>>();
    if app
        .users
        .set_groups(&q.email.trim().to_ascii_lowercase(), groups.clone())
    {
        axum::Json(serde_json::json!({"email": q.email, "groups": groups})).into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

/// The portal's routes plus the services' (`/`, `/s/{name}/...`) and
/// `/admin/groups`.
pub async fn app(dev: bool) -> Result<Router, String> {
    let services = services()?;
    let underscores = match std::env::var("AUTHKIT_INGRESS_UNDERSCORE_HEADERS").as_deref() {
        Ok("drop") | Err(_) => UnderscoreHeaders::Drop,
        Ok("keep") => UnderscoreHeaders::Keep,
        Ok(other) => {
            return Err(format!(
                "AUTHKIT_INGRESS_UNDERSCORE_HEADERS must be drop or keep, got {other:?}"
            ));
        }
    };
    let proxy = ServiceProxy::new(limits()?).underscore_headers(underscores);
    let websockets = WebSocketPolicy {
        lifetime: Duration::from_secs(number("AUTHKIT_INGRESS_WS_LIFETIME", 3600)?),
        ..WebSocketPolicy::default()
    };
    let portal = Portal::from_env(dev).await?;
    let ingress = Ingress {
        services: Arc::new(services),
        proxy,
        websockets,
        sessions: portal.state.sessions.clone(),
        proxies: Arc::clone(&portal.state.proxies),
        audited: Arc::default(),
    };
    let services: Router<App> = Router::new()
        .route("/", get(home))
        .route("/s/{name}", get(to_slash))
        .route("/s/{name}/", any(enter))
        .route("/s/{name}/{*rest}", any(enter))
        .with_state(ingress);
    let admin: Router<App> = Router::new()
        .route("/admin/groups", post(set_groups))
        .route_layer(RequireRole::new("admin"));
    Ok(portal.router(admin.merge(services)))
}
