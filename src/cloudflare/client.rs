//! The `get-identity` client: a user's full Cloudflare Access profile.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use http::header::{COOKIE, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::Url;

use crate::rejection::AuthError;
use crate::upstream::{FetchError, Fetcher, RETRY_AFTER, Verdict, VerdictCache};

/// The identity-provider part of a [`CfIdentity`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CfIdentityProvider {
    /// The identity provider's id.
    #[serde(default)]
    pub id: Option<String>,
    /// Its type (`google`, `azureAD`, `onetimepin`, ...).
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

/// Where the user signed in from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CfGeo {
    /// ISO country code.
    #[serde(default)]
    pub country: Option<String>,
}

/// The answer of `GET {team}/cdn-cgi/access/get-identity`. Every field is
/// optional; fields this type does not know are kept in [`extra`](Self::extra).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CfIdentity {
    /// Email address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Identity provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp: Option<CfIdentityProvider>,
    /// Sign-in location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geo: Option<CfGeo>,
    /// The user's UUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_uuid: Option<String>,
    /// The Cloudflare account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// Issued-at time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// The client IP at sign-in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Authentication status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_status: Option<String>,
    /// Service-token client id (`<id>.access`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_name: Option<String>,
    /// Service-token id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_token_id: Option<String>,
    /// Whether the service token is in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_token_status: Option<bool>,
    /// Whether the request came through WARP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_warp: Option<bool>,
    /// Whether the request came through Gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_gateway: Option<bool>,
    /// Gateway account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_account_id: Option<String>,
    /// Device id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// Identity format version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// Device sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_sessions: Option<Value>,
    /// Device posture results.
    #[serde(default, rename = "devicePosture", skip_serializing_if = "Option::is_none")]
    pub device_posture: Option<Value>,
    /// mTLS authentication details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtls_auth: Option<Value>,
    /// Group memberships (not confirmed by Cloudflare's documentation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Value>,
    /// Every field not listed above.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Calls `get-identity`, caching each token's answer for a short time.
/// Failures are upstream errors (502/503), never 401, and are not cached.
#[derive(Clone)]
pub struct CfIdentityClient {
    fetcher: Fetcher,
    url: Url,
    cache: VerdictCache<[u8; 32], Arc<CfIdentity>>,
}

impl std::fmt::Debug for CfIdentityClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CfIdentityClient")
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

impl CfIdentityClient {
    pub(crate) fn new(fetcher: Fetcher, url: Url, ttl: Duration, capacity: u64) -> Self {
        Self {
            fetcher,
            url,
            // The token was verified before the lookup: there are no
            // negative verdicts, only upstream failures.
            cache: VerdictCache::new(ttl, ttl, capacity),
        }
    }

    /// The identity behind `token` (a Cloudflare Access application token).
    /// Concurrent calls for one token share one request.
    pub async fn get(&self, token: &str) -> Result<Arc<CfIdentity>, AuthError> {
        let cookie = HeaderValue::try_from(format!("CF_Authorization={token}"))
            .map_err(|_| AuthError::invalid_request("malformed Cloudflare Access token"))?;
        let key = crate::token::digest(self.url.as_str(), token);
        self.cache.get(key, self.fetch(cookie)).await
    }

    async fn fetch(&self, mut cookie: HeaderValue) -> Result<Verdict<Arc<CfIdentity>>, AuthError> {
        cookie.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, cookie);
        let failed = |error: FetchError| {
            tracing::warn!(url = %self.url, %error, "Cloudflare Access get-identity failed");
            error.to_auth_error("identity service", RETRY_AFTER)
        };
        let body = self.fetcher.get_with(&self.url, &headers).await.map_err(failed)?;
        serde_json::from_slice::<CfIdentity>(&body)
            .map(|identity| Verdict::valid(Arc::new(identity)))
            .map_err(|_| failed(FetchError::Invalid("get-identity answer is not an identity object")))
    }
}
