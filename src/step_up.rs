//! `RequireAuthContext`: step-up authentication (RFC 9470). A route asks

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tower_layer::Layer;

use crate::authz::{RequireService, Requirement};
use crate::principal::Principal;
use crate::rejection::AuthError;

/// Allowance for clocks a little apart (an `auth_time` slightly ahead of ours).
const SKEW: Duration = Duration::from_secs(5);

/// Requires an authentication context and/or a recent authentication
/// (guide below).
///
/// `RequireAuthContext`: step-up authentication (RFC 9470). A route asks
/// for an authentication context (`acr`) and/or a recent authentication
/// (`auth_time`); a token that falls short gets 401
/// `insufficient_user_authentication` with `acr_values` / `max_age` in the
/// challenge and the JSON body, so the client can send the user back to
/// the authorization server with those parameters and retry.
///
/// ```
/// use std::time::Duration;
/// use axum::{routing::post, Router};
/// use tower_authkit::{policy, RequireAuthContext};
///
/// let app: Router = Router::new().route(
///     "/payments",
///     post(|| async { "paid" })
///         .route_layer(RequireAuthContext::acr(["urn:authkit:mfa"]).max_age(Duration::from_secs(300))),
/// );
/// // Or as an extractor: `Authorized<RecentMfa>` in a handler's arguments.
/// policy!(pub RecentMfa = RequireAuthContext::acr(["urn:authkit:mfa"]).max_age(Duration::from_secs(300)));
/// ```
///
/// `acr` must be one of the listed values; `auth_time` (seconds since the
/// epoch) at most `max_age` old, a few seconds of clock skew aside. A
/// token without the claim asked for falls short.
///
/// # Step-up
///
/// `RequireAuthContext` asks for a stronger or more recent sign-in on the
/// routes that need it (RFC 9470). A token that falls short gets a 401 that
/// says what to ask the authorization server for:
///
/// ```rust,no_run
/// use std::time::Duration;
/// use axum::{routing::post, Router};
/// use tower_authkit::RequireAuthContext;
///
/// fn payments() -> Router {
///     Router::new().route(
///         "/payments",
///         post(|| async { "paid" })
///             .route_layer(RequireAuthContext::acr(["urn:authkit:mfa"]).max_age(Duration::from_secs(300))),
///     )
/// }
/// ```
///
/// ```text
/// WWW-Authenticate: Bearer realm="api", error="insufficient_user_authentication",
///   error_description="a stronger authentication is required", acr_values="urn:authkit:mfa", max_age=300
/// ```
///
/// The JSON body carries `acr_values` and `max_age` too. For an extractor,
/// `policy!(pub RecentMfa = RequireAuthContext::acr([..]).max_age(..))` and
/// `Authorized<RecentMfa>`.
#[derive(Clone, Debug, Default)]
#[must_use = "a requirement does nothing until it wraps a service"]
pub struct RequireAuthContext {
    acr: Arc<[String]>,
    max_age: Option<Duration>,
}

/// The claims a step-up check reads (typed, so no parsed claims are kept).
#[derive(serde::Deserialize)]
struct AuthContext {
    #[serde(default)]
    acr: Option<serde_json::Value>,
    #[serde(default)]
    auth_time: Option<serde_json::Value>,
}

impl RequireAuthContext {
    /// Requires `acr` to be one of `values`.
    pub fn acr<I: IntoIterator<Item = T>, T: Into<String>>(values: I) -> Self {
        Self {
            acr: values.into_iter().map(Into::into).collect(),
            max_age: None,
        }
    }

    /// Requires an authentication (`auth_time`) no older than `max_age`.
    pub fn recent(max_age: Duration) -> Self {
        Self::default().max_age(max_age)
    }

    /// Also requires `auth_time` no older than `max_age`.
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    fn falls_short(&self, why: &'static str) -> AuthError {
        let acr_values = (!self.acr.is_empty()).then(|| self.acr.join(" "));
        AuthError::insufficient_user_authentication(why, acr_values.as_deref(), self.max_age)
    }
}

impl Requirement for RequireAuthContext {
    fn check(&self, principal: &Principal) -> Result<(), AuthError> {
        // A claim of the wrong type is treated as absent.
        let context = principal.claims_as::<AuthContext>().unwrap_or(AuthContext {
            acr: None,
            auth_time: None,
        });
        if !self.acr.is_empty() {
            let acr = context.acr.as_ref().and_then(|v| v.as_str());
            if !acr.is_some_and(|acr| self.acr.iter().any(|wanted| wanted == acr)) {
                return Err(self.falls_short("a stronger authentication is required"));
            }
        }
        if let Some(max_age) = self.max_age {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            let Some(auth_time) = context.auth_time.as_ref().and_then(|v| v.as_f64()) else {
                return Err(self.falls_short("a recent authentication is required"));
            };
            if now - auth_time > max_age.as_secs_f64() || auth_time > now + SKEW.as_secs_f64() {
                return Err(self.falls_short("a more recent authentication is required"));
            }
        }
        Ok(())
    }
}

impl<S> Layer<S> for RequireAuthContext {
    type Service = RequireService<S, RequireAuthContext>;
    fn layer(&self, inner: S) -> Self::Service {
        RequireService::new(inner, Arc::new(self.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rejection::{DefaultRenderer, Protocol, Renderer};
    use serde_json::json;

    fn principal(claims: serde_json::Value) -> Principal {
        Principal::builder("test", "u1")
            .claims(claims.as_object().cloned().unwrap_or_default())
            .build()
    }

    fn now() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    }

    #[test]
    fn acr_and_auth_time_must_both_hold() {
        let mfa = RequireAuthContext::acr(["urn:authkit:mfa", "urn:authkit:hwk"]).max_age(Duration::from_secs(300));
        assert!(
            mfa.check(&principal(json!({"acr": "urn:authkit:mfa", "auth_time": now() - 10})))
                .is_ok()
        );
        for (claims, reason) in [
            (
                json!({"acr": "urn:authkit:pwd", "auth_time": now()}),
                "a stronger authentication is required",
            ),
            (json!({"auth_time": now()}), "a stronger authentication is required"),
            (
                json!({"acr": 7, "auth_time": now()}),
                "a stronger authentication is required",
            ),
            (json!({"acr": "urn:authkit:mfa"}), "a recent authentication is required"),
            (
                json!({"acr": "urn:authkit:mfa", "auth_time": now() - 301}),
                "a more recent authentication is required",
            ),
            (
                json!({"acr": "urn:authkit:mfa", "auth_time": now() + 60}),
                "a more recent authentication is required",
            ),
        ] {
            let error = mfa.check(&principal(claims.clone())).unwrap_err();
            assert_eq!(error.description(), reason, "{claims}");
            assert_eq!(error.status(), 401);
            assert_eq!(error.code(), "insufficient_user_authentication");
            assert_eq!(error.acr_values(), Some("urn:authkit:mfa urn:authkit:hwk"));
            assert_eq!(error.max_age(), Some(300));
        }
        let recent = RequireAuthContext::recent(Duration::from_secs(60));
        assert!(recent.check(&principal(json!({"auth_time": now()}))).is_ok());
        assert_eq!(recent.check(&principal(json!({}))).unwrap_err().acr_values(), None);
    }

    #[test]
    fn the_challenge_and_body_tell_the_client_what_to_ask_for() {
        let error = RequireAuthContext::acr(["urn:authkit:mfa"])
            .max_age(Duration::from_secs(300))
            .check(&principal(json!({})))
            .unwrap_err();
        let response = DefaultRenderer::new("api").render(&error, Protocol::Http);
        assert_eq!(response.status(), 401);
        assert_eq!(
            response.headers()["www-authenticate"],
            "Bearer realm=\"api\", error=\"insufficient_user_authentication\", \
             error_description=\"a stronger authentication is required\", acr_values=\"urn:authkit:mfa\", max_age=300"
        );
        let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(
            body,
            json!({
                "error": "insufficient_user_authentication",
                "error_description": "a stronger authentication is required",
                "acr_values": "urn:authkit:mfa",
                "max_age": 300
            })
        );
    }
}
