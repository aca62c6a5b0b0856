//! Who a Cloudflare Access token speaks for: a user, or a service token.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::jwt::ClaimsProfile;
use crate::principal::{Principal, RawClaims, default_mapping};
use crate::rejection::AuthError;

/// The provider name of Cloudflare Access principals.
pub(crate) const PROVIDER: &str = "cloudflare-access";

/// A person signed in through Cloudflare Access.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CfAccessUser {
    /// The user's UUID in Cloudflare Access.
    pub sub: String,
    /// The user's email address.
    pub email: String,
    /// The country the user signed in from, when Cloudflare sends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// The nonce that keys the user's identity for `get-identity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_nonce: Option<String>,
    /// Custom claims from the identity provider, when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<Value>,
}

impl CfAccessUser {
    /// A user with just a subject and an email, e.g. for [`dev_user`](super::CfAccessBuilder::dev_user).
    pub fn new(sub: impl Into<String>, email: impl Into<String>) -> Self {
        Self {
            sub: sub.into(),
            email: email.into(),
            country: None,
            identity_nonce: None,
            custom: None,
        }
    }
}

/// A machine calling through a Cloudflare Access service token.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CfServiceToken {
    /// `<client id>.access`.
    pub common_name: String,
}

/// The identity behind a verified Cloudflare Access token.
#[derive(Clone, Debug, PartialEq)]
pub enum CfAccess {
    /// A person.
    User(CfAccessUser),
    /// A service token (no email, empty `sub`).
    Service(CfServiceToken),
}

impl CfAccess {
    /// `"user"` or `"service"`.
    pub fn kind(&self) -> &'static str {
        match self {
            CfAccess::User(_) => "user",
            CfAccess::Service(_) => "service",
        }
    }

    /// The user's email; `None` for service tokens.
    pub fn email(&self) -> Option<&str> {
        match self {
            CfAccess::User(user) => Some(&user.email),
            CfAccess::Service(_) => None,
        }
    }

    /// Reads the identity of a principal authenticated by `CfAccessLayer`.
    pub fn from_principal(principal: &Principal) -> Result<Self, AuthError> {
        if principal.provider() != PROVIDER {
            return Err(AuthError::invalid_token("not a Cloudflare Access identity"));
        }
        let claims = principal.claims();
        let text = |name: &str| claims.get(name).and_then(Value::as_str).unwrap_or_default();
        if text("sub").is_empty() && !text("common_name").is_empty() {
            return Ok(CfAccess::Service(CfServiceToken {
                common_name: text("common_name").to_owned(),
            }));
        }
        principal
            .claims_as::<CfAccessUser>()
            .map(CfAccess::User)
            .map_err(|_| AuthError::invalid_token("Cloudflare Access token has no user identity"))
    }

    /// The claims a dev-bypass principal carries, shaped like a real token's.
    pub(crate) fn dev_principal(user: &CfAccessUser) -> Principal {
        let claims = match serde_json::to_value(user) {
            Ok(Value::Object(claims)) => claims,
            _ => Map::new(),
        };
        let mut builder = Principal::builder(PROVIDER, user.sub.clone()).email(user.email.clone());
        builder = builder.claims(claims);
        builder.build()
    }
}

/// Cloudflare Access claim rules and mapping.
pub(crate) struct CfAccessProfile {
    pub(crate) allow_org_tokens: bool,
}

impl ClaimsProfile for CfAccessProfile {
    fn check(&self, claims: &RawClaims) -> Result<(), AuthError> {
        match claims.get("type").and_then(Value::as_str) {
            Some("org") if !self.allow_org_tokens => Err(AuthError::invalid_token(
                "organization tokens are not application tokens",
            )),
            _ => Ok(()),
        }
    }

    fn principal(&self, claims: RawClaims, audiences: &[String]) -> Principal {
        let mut builder = default_mapping(PROVIDER, &claims, audiences);
        let sub = claims.get("sub").and_then(Value::as_str).unwrap_or_default();
        if sub.is_empty()
            && let Some(common_name) = claims.get("common_name").and_then(Value::as_str)
        {
            // Service tokens have no user: the client id names the caller.
            builder = builder.subject(common_name);
        }
        builder.claims(claims).build()
    }
}

#[cfg(feature = "axum")]
mod extract {
    use axum_core::extract::FromRequestParts;
    use http::request::Parts;

    use super::{CfAccess, CfAccessUser, CfServiceToken};
    use crate::extract::AuthRejection;
    use crate::layer::principal_in;
    use crate::rejection::AuthError;

    fn identity(parts: &Parts) -> Result<CfAccess, AuthRejection> {
        principal_in(&parts.extensions)
            .and_then(CfAccess::from_principal)
            .map_err(|error| AuthRejection::new(parts, error))
    }

    /// Any Cloudflare Access identity (user or service token).
    impl<S: Send + Sync> FromRequestParts<S> for CfAccess {
        type Rejection = AuthRejection;

        async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
            identity(parts)
        }
    }

    /// A user identity; service tokens get 403.
    impl<S: Send + Sync> FromRequestParts<S> for CfAccessUser {
        type Rejection = AuthRejection;

        async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
            match identity(parts)? {
                CfAccess::User(user) => Ok(user),
                CfAccess::Service(_) => Err(AuthRejection::new(
                    parts,
                    AuthError::forbidden("a user identity is required"),
                )),
            }
        }
    }

    /// A service-token identity; users get 403.
    impl<S: Send + Sync> FromRequestParts<S> for CfServiceToken {
        type Rejection = AuthRejection;

        async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
            match identity(parts)? {
                CfAccess::Service(service) => Ok(service),
                CfAccess::User(_) => Err(AuthRejection::new(
                    parts,
                    AuthError::forbidden("a service token is required"),
                )),
            }
        }
    }
}
