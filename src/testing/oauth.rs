//! OAuth 2.0 endpoints of the test provider: a client-credentials token
//! endpoint (JWT access tokens) and RFC 7662 introspection.

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

use super::idp::{IdpState, misbehave};
use super::token::TokenBuilder;
use crate::jwt::Algorithm;

/// The client the test provider knows.
pub const DEV_CLIENT_ID: &str = "dev-client";
/// Its secret.
pub const DEV_CLIENT_SECRET: &str = "dev-secret";

pub(crate) fn routes() -> Router<Arc<IdpState>> {
    Router::new()
        .route("/token", post(token))
        .route("/introspect", post(introspect))
}

/// Client authentication by HTTP Basic (form-encoded parts) or form fields.
fn client_of(headers: &HeaderMap, form: &Map<String, Value>) -> Option<String> {
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
    let from_form = || {
        let text = |k: &str| form.get(k).and_then(Value::as_str).map(str::to_owned);
        Some((text("client_id")?, text("client_secret")?))
    };
    let (id, secret) = from_header.or_else(from_form)?;
    (id == DEV_CLIENT_ID && secret == DEV_CLIENT_SECRET).then_some(id)
}

fn form(body: &str) -> Map<String, Value> {
    form_urlencoded::parse(body.as_bytes())
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect()
}

fn unauthorized_client() -> Response {
    (StatusCode::UNAUTHORIZED, Json(json!({"error": "invalid_client"}))).into_response()
}

async fn token(State(state): State<Arc<IdpState>>, headers: HeaderMap, body: String) -> Response {
    if let Some(response) = misbehave(&state).await {
        return response;
    }
    let form = form(&body);
    let Some(client) = client_of(&headers, &form) else {
        return unauthorized_client();
    };
    if form.get("grant_type").and_then(Value::as_str) != Some("client_credentials") {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "unsupported_grant_type"})),
        )
            .into_response();
    }
    let mut builder = TokenBuilder::new(Arc::clone(&state))
        .sub(&client)
        .claim("client_id", &client);
    if let Some(scope) = form.get("scope").and_then(Value::as_str) {
        builder = builder.scope(scope);
    }
    Json(json!({
        "access_token": builder.header("typ", "at+jwt").sign(),
        "token_type": "Bearer",
        "expires_in": 3600,
    }))
    .into_response()
}

/// The claims of a JWT this provider signed and that has not expired.
fn verified_jwt(state: &IdpState, token: &str) -> Option<Map<String, Value>> {
    let header = jsonwebtoken::decode_header(token).ok()?;
    let alg = Algorithm::from_name(&format!("{:?}", header.alg))?;
    let mut validation = jsonwebtoken::Validation::new(alg.to_jsonwebtoken());
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
    if client_of(&headers, &form).is_none() {
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
