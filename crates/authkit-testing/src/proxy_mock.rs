//! An emulation of the auth proxy's `/_oxa_auth/*` surface: login popup flow,
//! token exchange and refresh, `get-me` and permission checks.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Path, Query, State};
use axum::http::header::{AUTHORIZATION, COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::idp::{IdpState, misbehave};

/// Settings of the auth-proxy emulation. `Default` gives the documented dev values;
/// [`ProxyMock::from_env`] reads `AUTHKIT_DEV_*` variables over them.
#[derive(Clone, Debug)]
pub struct ProxyMock {
    /// Tokens `get-me` accepts (besides the access token value).
    pub tokens: BTreeSet<String>,
    /// The access token the login flow hands out (`mock-dev-token`).
    pub access_token: String,
    /// The refresh token (`mock-dev-refresh-token`).
    pub refresh_token: String,
    /// Access cookie name (`OxaigenPlatformAuthAccessToken`).
    pub access_cookie: String,
    /// Refresh cookie name (`OxaigenPlatformAuthRefreshToken`).
    pub refresh_cookie: String,
    /// Access token lifetime in seconds (300).
    pub expires_in: u64,
    /// Refresh token lifetime in seconds (1800).
    pub refresh_expires_in: u64,
    /// Where the login flow returns when no `return_to` is given (`/`).
    pub return_to: String,
    /// Path of the mock authorize step (`/_oxa_auth/mock-authorize`).
    pub authorize_path: String,
    /// The authorization code (`mock-auth-code`).
    pub auth_code: String,
    /// Replaces the generated authorize URL when set.
    pub login_authorize_url: Option<String>,
    /// A token that is valid but holds no permission.
    pub forbidden_token: Option<String>,
    /// Permissions granted (`audit`, `read`).
    pub permissions: Vec<String>,
    /// Workspace roles (`admin`).
    pub roles: Vec<String>,
    /// The user `get-me` returns (without roles and permissions, added from above).
    pub user: Value,
}

impl Default for ProxyMock {
    fn default() -> Self {
        Self {
            tokens: BTreeSet::from(["mock-dev-token".to_owned()]),
            access_token: "mock-dev-token".to_owned(),
            refresh_token: "mock-dev-refresh-token".to_owned(),
            access_cookie: "OxaigenPlatformAuthAccessToken".to_owned(),
            refresh_cookie: "OxaigenPlatformAuthRefreshToken".to_owned(),
            expires_in: 300,
            refresh_expires_in: 1800,
            return_to: "/".to_owned(),
            authorize_path: "/_oxa_auth/mock-authorize".to_owned(),
            auth_code: "mock-auth-code".to_owned(),
            login_authorize_url: None,
            forbidden_token: Some("mock-forbidden-token".to_owned()),
            permissions: vec!["audit".to_owned(), "read".to_owned()],
            roles: vec!["admin".to_owned()],
            user: json!({
                "id": "8f14e45f-ceea-467f-a0e6-1c1e2a1b4d55",
                "user_name": "mock.user",
                "email": "mock.user@example.com",
                "first_name": "Mock",
                "last_name": "User",
                "account_type": "internal",
                "enabled": true,
                "workspace": {"id": "ws-1", "name": "Mock Workspace"},
                "is_authenticated": true,
                "x_unmodelled_field": {"kept": true},
            }),
        }
    }
}

/// A comma-separated list.
fn list<T: FromIterator<String>>(value: String) -> T {
    value
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

impl ProxyMock {
    /// The defaults, overridden by `AUTHKIT_DEV_*` environment variables
    /// (see the dev server's documentation for the list).
    pub fn from_env() -> Self {
        let env = |name: &str| {
            std::env::var(format!("AUTHKIT_DEV_{name}"))
                .ok()
                .filter(|v| !v.is_empty())
        };
        let mut mock = Self::default();
        if let Some(v) = env("ACCESS_TOKEN_VALUE") {
            mock.tokens.remove(&mock.access_token);
            mock.access_token = v;
        }
        if let Some(v) = env("TOKENS") {
            mock.tokens = list(v);
        }
        mock.tokens.insert(mock.access_token.clone());
        let text = |name: &str, target: &mut String| {
            if let Some(v) = env(name) {
                *target = v;
            }
        };
        text("REFRESH_TOKEN_VALUE", &mut mock.refresh_token);
        text("ACCESS_COOKIE_NAME", &mut mock.access_cookie);
        text("REFRESH_COOKIE_NAME", &mut mock.refresh_cookie);
        text("RETURN_TO", &mut mock.return_to);
        text("AUTHORIZE_PATH", &mut mock.authorize_path);
        text("AUTH_CODE", &mut mock.auth_code);
        if let Some(v) = env("EXPIRES_IN").and_then(|v| v.parse().ok()) {
            mock.expires_in = v;
        }
        if let Some(v) = env("REFRESH_EXPIRES_IN").and_then(|v| v.parse().ok()) {
            mock.refresh_expires_in = v;
        }
        mock.login_authorize_url = env("LOGIN_AUTHORIZE_URL");
        if let Some(v) = env("FORBIDDEN_TOKEN") {
            mock.forbidden_token = Some(v);
        }
        if let Some(v) = env("PERMISSIONS") {
            mock.permissions = list(v);
        }
        if let Some(v) = env("ROLE_NAMES") {
            mock.roles = list(v);
        }
        for (var, field) in [
            ("EMAIL", "email"),
            ("USER_NAME", "user_name"),
            ("FIRST_NAME", "first_name"),
            ("LAST_NAME", "last_name"),
            ("USER_ID", "id"),
            ("ACCOUNT_TYPE", "account_type"),
        ] {
            if let Some(v) = env(var) {
                mock.user[field] = json!(v);
            }
        }
        if let Some(v) = env("WORKSPACE_ID") {
            mock.user["workspace"]["id"] = json!(v);
        }
        if let Some(v) = env("WORKSPACE_NAME") {
            mock.user["workspace"]["name"] = json!(v);
        }
        mock
    }

    fn accepts(&self, token: &str) -> bool {
        self.tokens.contains(token) || self.forbidden_token.as_deref() == Some(token)
    }

    fn user_json(&self) -> Value {
        let mut user = self.user.clone();
        user["workspace_roles"] = self.roles.iter().map(|r| json!({"name": r})).collect();
        user["workspace_permissions"] = self.permissions.iter().map(|p| json!({"name": p})).collect();
        user
    }
}

pub(crate) fn routes() -> Router<Arc<IdpState>> {
    Router::new()
        .route("/_oxa_auth/login", get(login))
        .route("/_oxa_auth/mock-authorize", get(authorize))
        .route("/_oxa_auth/callback", get(callback))
        .route("/_oxa_auth/token-exchange", post(token_exchange))
        .route("/_oxa_auth/refresh", post(refresh))
        .route("/_oxa_auth/test-app-token", post(test_app_token))
        .route("/_oxa_auth/get-me", get(get_me))
        .route("/_oxa_auth/test-app-permission/{name}", post(permission))
        .route("/_oxa_auth/logout", post(logout))
}

/// The request's token: `Authorization: Bearer`, else the access cookie.
fn token(mock: &ProxyMock, headers: &HeaderMap) -> Option<String> {
    if let Some(bearer) = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(bearer.trim().to_owned());
    }
    cookie(headers, &mock.access_cookie)
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

fn query_param(query: &std::collections::HashMap<String, String>, name: &str) -> Option<String> {
    query.get(name).cloned()
}

async fn login(
    State(state): State<Arc<IdpState>>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let mock = &state.proxy;
    let return_to = query_param(&query, "return_to").unwrap_or_else(|| mock.return_to.clone());
    let authorize = mock.login_authorize_url.clone().unwrap_or_else(|| {
        let redirect = format!("{}/_oxa_auth/callback", state.issuer);
        format!(
            "{}{}?{}",
            state.issuer,
            mock.authorize_path,
            form_urlencoded::Serializer::new(String::new())
                .append_pair("redirect_uri", &redirect)
                .append_pair("state", &return_to)
                .finish()
        )
    });
    Json(json!({"login_url": authorize, "return_to": return_to})).into_response()
}

async fn authorize(
    State(state): State<Arc<IdpState>>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let redirect =
        query_param(&query, "redirect_uri").unwrap_or_else(|| format!("{}/_oxa_auth/callback", state.issuer));
    let return_to = query_param(&query, "state").unwrap_or_default();
    let location = format!(
        "{redirect}?{}",
        form_urlencoded::Serializer::new(String::new())
            .append_pair("code", &state.proxy.auth_code)
            .append_pair("state", &return_to)
            .finish()
    );
    (StatusCode::FOUND, [(LOCATION, location)]).into_response()
}

fn token_cookies(mock: &ProxyMock) -> [(axum::http::HeaderName, String); 2] {
    [
        (
            SET_COOKIE,
            format!(
                "{}={}; Path=/; Max-Age={}; SameSite=Lax",
                mock.access_cookie, mock.access_token, mock.expires_in
            ),
        ),
        (
            SET_COOKIE,
            format!(
                "{}={}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax",
                mock.refresh_cookie, mock.refresh_token, mock.refresh_expires_in
            ),
        ),
    ]
}

fn token_body(mock: &ProxyMock) -> Value {
    json!({
        "access_token": mock.access_token,
        "refresh_token": mock.refresh_token,
        "token_type": "Bearer",
        "expires_in": mock.expires_in,
        "refresh_expires_in": mock.refresh_expires_in,
    })
}

/// The page the popup lands on: tells the opener the outcome.
async fn callback(
    State(state): State<Arc<IdpState>>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let ok = query_param(&query, "code").as_deref() == Some(state.proxy.auth_code.as_str());
    let message = if ok { "OXA_AUTH_SUCCESS" } else { "OXA_AUTH_FAILURE" };
    let page = Html(format!(
        "<!doctype html><title>{message}</title><script>\
         if (window.opener) {{ window.opener.postMessage({{type: '{message}'}}, '*'); window.close(); }}\
         </script><p>{message}</p>"
    ));
    if ok {
        (token_cookies(&state.proxy), page).into_response()
    } else {
        (StatusCode::BAD_REQUEST, page).into_response()
    }
}

async fn token_exchange(State(state): State<Arc<IdpState>>, body: String) -> Response {
    let code = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v.get("code").and_then(Value::as_str).map(str::to_owned))
        .or_else(|| {
            form_urlencoded::parse(body.as_bytes())
                .find(|(k, _)| k == "code")
                .map(|(_, v)| v.into_owned())
        });
    if code.as_deref() != Some(state.proxy.auth_code.as_str()) {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_grant"}))).into_response();
    }
    (token_cookies(&state.proxy), Json(token_body(&state.proxy))).into_response()
}

async fn refresh(State(state): State<Arc<IdpState>>, headers: HeaderMap, body: String) -> Response {
    let mock = &state.proxy;
    let presented = cookie(&headers, &mock.refresh_cookie).or_else(|| {
        serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v.get("refresh_token").and_then(Value::as_str).map(str::to_owned))
    });
    if presented.as_deref() != Some(mock.refresh_token.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_refresh_token"})),
        )
            .into_response();
    }
    (token_cookies(mock), Json(token_body(mock))).into_response()
}

async fn test_app_token(State(state): State<Arc<IdpState>>, headers: HeaderMap) -> Response {
    let token = token(&state.proxy, &headers);
    let authenticated = token.as_deref().is_some_and(|t| state.proxy.accepts(t));
    Json(json!({"authenticated": authenticated, "token_present": token.is_some()})).into_response()
}

async fn get_me(State(state): State<Arc<IdpState>>, headers: HeaderMap) -> Response {
    state.proxy_me_calls.fetch_add(1, Ordering::SeqCst);
    if let Some(response) = misbehave(&state).await {
        return response;
    }
    match token(&state.proxy, &headers) {
        Some(token) if state.proxy.accepts(&token) => Json(state.proxy.user_json()).into_response(),
        _ => (StatusCode::UNAUTHORIZED, Json(json!({"detail": "invalid token"}))).into_response(),
    }
}

async fn permission(State(state): State<Arc<IdpState>>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    state.proxy_permission_calls.fetch_add(1, Ordering::SeqCst);
    if let Some(response) = misbehave(&state).await {
        return response;
    }
    let mock = &state.proxy;
    match token(mock, &headers) {
        Some(token) if mock.forbidden_token.as_deref() == Some(token.as_str()) => StatusCode::FORBIDDEN.into_response(),
        Some(token) if mock.accepts(&token) => {
            if mock.permissions.contains(&name) {
                Json(json!({"granted": true})).into_response()
            } else {
                StatusCode::FORBIDDEN.into_response()
            }
        }
        _ => StatusCode::UNAUTHORIZED.into_response(),
    }
}

async fn logout(State(state): State<Arc<IdpState>>) -> Response {
    let mock = &state.proxy;
    let clear = |name: &str| (SET_COOKIE, format!("{name}=; Path=/; Max-Age=0"));
    (
        [clear(&mock.access_cookie), clear(&mock.refresh_cookie)],
        Json(json!({"logged_out": true})),
    )
        .into_response()
}
