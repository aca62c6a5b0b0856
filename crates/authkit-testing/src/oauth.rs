//! OAuth 2.0 endpoints of the test provider: the token endpoint (JWT access
//! tokens for the client-credentials and authorization-code grants, `aud`
//! from an RFC 8707 `resource`) and RFC 7662 introspection.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use super::authorization::{oauth_error, redeem, valid_resource};
use super::idp::{IdpState, misbehave};
use super::token::TokenBuilder;
use tower_authkit::jwt::Algorithm;

/// The client the test provider knows.
pub const DEV_CLIENT_ID: &str = "dev-client";
/// Its secret.
pub const DEV_CLIENT_SECRET: &str = "dev-secret";

pub(crate) fn routes() -> Router<Arc<IdpState>> {
    Router::new()
        .route("/token", post(token))
        .route("/introspect", post(introspect))
}

/// A client that authenticated at the token endpoint.
struct Caller {
    id: String,
    /// Proved a secret (public clients only redeem codes).
    confidential: bool,
}

/// Client authentication by HTTP Basic (form-encoded parts) or form fields:
/// the dev client, a registered confidential client with its secret, or a
/// registered public client by its id alone.
fn client_of(state: &IdpState, headers: &HeaderMap, form: &Map<String, Value>) -> Option<Caller> {
    let from_header = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| {
            let (id, secret) = pair.split_once(':')?;
            let decode = |s: &str| {
                form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
            };
            Some((decode(id)?, decode(secret)?))
        });
    let text = |k: &str| form.get(k).and_then(Value::as_str).map(str::to_owned);
    let from_form = || Some((text("client_id")?, text("client_secret")?));
    if let Some((id, secret)) = from_header.or_else(from_form) {
        let known = if id == DEV_CLIENT_ID {
            Some(DEV_CLIENT_SECRET.to_owned())
        } else {
            state.authorization.client(&id).and_then(|client| client.secret)
        };
        return (known.as_deref() == Some(secret.as_str())).then_some(Caller { id, confidential: true });
    }
    let id = text("client_id")?;
    let public = state
        .authorization
        .client(&id)
        .is_some_and(|client| client.secret.is_none());
    public.then_some(Caller {
        id,
        confidential: false,
    })
}

fn form(body: &str) -> Map<String, Value> {
    form_urlencoded::parse(body.as_bytes())
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect()
}

fn unauthorized_client() -> Response {
    (StatusCode::UNAUTHORIZED, Json(json!({"error": "invalid_client"}))).into_response()
}

/// What a token is issued for.
struct Issue {
    subject: String,
    client_id: String,
    scope: Option<String>,
    /// The RFC 8707 resource: the token's `aud` (else the provider's audience).
    resource: Option<String>,
    /// Development only: roles the client asked for (`roles=a b` or `a,b`).
    roles: Vec<String>,
}

async fn token(State(state): State<Arc<IdpState>>, headers: HeaderMap, body: String) -> Response {
    if let Some(response) = misbehave(&state).await {
        return response;
    }
    let form = form(&body);
    let Some(client) = client_of(&state, &headers, &form) else {
        return unauthorized_client();
    };
    let text = |k: &str| form.get(k).and_then(Value::as_str).map(str::to_owned);
    let resource = text("resource");
    if resource.as_deref().is_some_and(|r| !valid_resource(r)) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_target",
            "resource must be an absolute URI without a fragment",
        );
    }
    let issue = match text("grant_type").as_deref() {
        Some("client_credentials") if client.confidential => Issue {
            subject: client.id.clone(),
            client_id: client.id,
            scope: text("scope"),
            resource,
            // Development only: the token carries any roles asked for, so a
            // route behind `RequireRole` can be tried by hand.
            roles: text("roles")
                .unwrap_or_default()
                .split([' ', ','])
                .filter(|role| !role.is_empty())
                .map(str::to_owned)
                .collect(),
        },
        Some("authorization_code") => match redeem(&state, &client.id, &form) {
            Ok(grant) => Issue {
                subject: grant.subject,
                client_id: grant.client_id,
                scope: grant.scope,
                resource: grant.resource.or(resource),
                roles: Vec::new(),
            },
            Err(refusal) => return refusal.into_response(),
        },
        Some("client_credentials") => {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "unauthorized_client",
                "a public client cannot use client_credentials",
            );
        }
        _ => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "grant_type must be client_credentials or authorization_code",
            );
        }
    };
    let mut builder = TokenBuilder::new(Arc::clone(&state))
        .sub(&issue.subject)
        .claim("client_id", &issue.client_id);
    if let Some(resource) = &issue.resource {
        builder = builder.audience(resource);
    }
    if let Some(scope) = &issue.scope {
        builder = builder.scope(scope);
    }
    if !issue.roles.is_empty() {
        builder = builder.roles(issue.roles.iter().map(String::as_str));
    }
    let mut answer = json!({
        "access_token": builder.header("typ", "at+jwt").sign(),
        "token_type": "Bearer",
        "expires_in": 3600,
    });
    if let Some(scope) = issue.scope {
        answer["scope"] = json!(scope);
    }
    Json(answer).into_response()
}

/// The claims of a JWT this provider signed and that has not expired.
fn verified_jwt(state: &IdpState, token: &str) -> Option<Map<String, Value>> {
    let header = jsonwebtoken::decode_header(token).ok()?;
    let alg = Algorithm::from_name(&format!("{:?}", header.alg))?;
    let mut validation = jsonwebtoken::Validation::new(tower_authkit::__private::jsonwebtoken_algorithm(alg));
    validation.validate_aud = false;
    state
        .verifying_keys(alg)
        .iter()
        .find_map(|key| jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation).ok())
        .map(|data| data.claims)
}

async fn introspect(State(state): State<Arc<IdpState>>, headers: HeaderMap, body: String) -> Response {
    state.introspections.fetch_add(1, Ordering::SeqCst);
    if let Some(response) = misbehave(&state).await {
        return response;
    }
    let form = form(&body);
    if client_of(&state, &headers, &form).is_none_or(|caller| !caller.confidential) {
        return unauthorized_client();
    }
    let token = form.get("token").and_then(Value::as_str).unwrap_or_default();
    let now = super::token::now();
    let opaque = state.opaque().get(token).cloned();
    let answer = match opaque {
        Some(answer) => answer,
        None => match verified_jwt(&state, token) {
            Some(mut claims) => {
                claims.insert("active".into(), json!(true));
                claims.insert("token_type".into(), json!("Bearer"));
                claims
            }
            None => return Json(json!({"active": false})).into_response(),
        },
    };
    // Expired tokens are inactive, as RFC 7662 requires of servers.
    let expired = answer.get("exp").and_then(Value::as_i64).is_some_and(|exp| exp <= now);
    if expired {
        return Json(json!({"active": false})).into_response();
    }
    Json(Value::Object(answer)).into_response()
}
