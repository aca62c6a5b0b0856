use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use super::idp::IdpState;
use tower_authkit::jwt::Algorithm;

enum KeyChoice {
    Published,
    Foreign,
}

/// Builds and signs a token for a [`TestIdp`](super::TestIdp).
#[must_use = "call .sign() to get the token"]
pub struct TokenBuilder {
    state: Arc<IdpState>,
    alg: Algorithm,
    key: KeyChoice,
    kid: Option<Option<String>>,
    header: Map<String, Value>,
    claims: Map<String, Value>,
}

impl std::fmt::Debug for TokenBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenBuilder")
            .field("alg", &self.alg)
            .field("claims", &self.claims)
            .finish_non_exhaustive()
    }
}

/// Decodes a compact JWS's claims without verifying anything (test kit only).
pub(crate) fn insecure_claims(token: &str) -> Option<Map<String, Value>> {
    let payload = token.split('.').nth(1)?;
    match serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()? {
        Value::Object(claims) => Some(claims),
        _ => None,
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl TokenBuilder {
    pub(crate) fn new(state: Arc<IdpState>) -> Self {
        let now = now();
        let mut claims = Map::new();
        claims.insert("iss".into(), json!(state.issuer));
        claims.insert("aud".into(), json!(state.audience));
        claims.insert("sub".into(), json!("test-user"));
        claims.insert("iat".into(), json!(now));
        claims.insert("exp".into(), json!(now + 3600));
        Self {
            state,
            alg: Algorithm::RS256,
            key: KeyChoice::Published,
            kid: None,
            header: Map::new(),
            claims,
        }
    }

    /// Sets any claim.
    pub fn claim(mut self, name: &str, value: impl serde::Serialize) -> Self {
        self.claims
            .insert(name.to_owned(), serde_json::to_value(value).unwrap_or(Value::Null));
        self
    }

    /// Removes a claim (e.g. `exp`).
    pub fn without_claim(mut self, name: &str) -> Self {
        self.claims.remove(name);
        self
    }

    /// Sets `sub`.
    #[allow(clippy::should_implement_trait, reason = "`sub` is the claim's name")]
    pub fn sub(self, subject: &str) -> Self {
        self.claim("sub", subject)
    }

    /// Sets `email`.
    pub fn email(self, email: &str) -> Self {
        self.claim("email", email)
    }

    /// Sets `name`.
    pub fn name(self, name: &str) -> Self {
        self.claim("name", name)
    }

    /// Sets `roles` (an array).
    pub fn roles<I: IntoIterator<Item = S>, S: Into<String>>(self, roles: I) -> Self {
        self.claim("roles", roles.into_iter().map(Into::into).collect::<Vec<String>>())
    }

    /// Sets `groups` (an array).
    pub fn groups<I: IntoIterator<Item = S>, S: Into<String>>(self, groups: I) -> Self {
        self.claim("groups", groups.into_iter().map(Into::into).collect::<Vec<String>>())
    }

    /// Sets `scope` (space-separated).
    pub fn scope(self, scope: &str) -> Self {
        self.claim("scope", scope)
    }

    /// Sets `aud` (a string or an array).
    pub fn audience(self, audience: impl serde::Serialize) -> Self {
        self.claim("aud", audience)
    }

    /// Sets `iss`.
    pub fn issuer(self, issuer: &str) -> Self {
        self.claim("iss", issuer)
    }

    /// Sets `exp` to now + `lifetime`.
    pub fn expires_in(self, lifetime: Duration) -> Self {
        self.claim("exp", now() + lifetime.as_secs() as i64)
    }

    /// Sets `exp` to `ago` in the past.
    pub fn expired_for(self, ago: Duration) -> Self {
        self.claim("exp", now() - ago.as_secs() as i64)
    }

    /// Sets `nbf` to now + `delay`.
    pub fn not_before_in(self, delay: Duration) -> Self {
        self.claim("nbf", now() + delay.as_secs() as i64)
    }

    /// Signs with the provider's current key for `alg` (default RS256).
    pub fn alg(mut self, alg: Algorithm) -> Self {
        self.alg = alg;
        self
    }

    /// Puts `kid` in the header instead of the signing key's.
    pub fn kid(mut self, kid: &str) -> Self {
        self.kid = Some(Some(kid.to_owned()));
        self
    }

    /// Leaves `kid` out of the header.
    pub fn without_kid(mut self) -> Self {
        self.kid = Some(None);
        self
    }

    /// Sets any header parameter (e.g. `jku`, `jwk`, `crit`).
    pub fn header(mut self, name: &str, value: impl serde::Serialize) -> Self {
        self.header
            .insert(name.to_owned(), serde_json::to_value(value).unwrap_or(Value::Null));
        self
    }

    /// Signs with a key of the same algorithm that the provider never
    /// published (keeping the published key's kid unless overridden).
    pub fn foreign_key(mut self) -> Self {
        self.key = KeyChoice::Foreign;
        self
    }

    /// Signs the token (compact JWS).
    pub fn sign(self) -> String {
        let published = self.state.signing_key(self.alg);
        let key = match self.key {
            KeyChoice::Published => published.clone(),
            KeyChoice::Foreign => self.state.foreign_key(self.alg),
        };
        let mut header = Map::new();
        header.insert("alg".into(), json!(self.alg.as_str()));
        header.insert("typ".into(), json!("JWT"));
        match self.kid {
            None => {
                header.insert("kid".into(), json!(published.kid));
            }
            Some(Some(kid)) => {
                header.insert("kid".into(), json!(kid));
            }
            Some(None) => {}
        }
        header.extend(self.header);
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(Value::Object(header).to_string()),
            URL_SAFE_NO_PAD.encode(Value::Object(self.claims).to_string())
        );
        let signature = jsonwebtoken::crypto::sign(
            signing_input.as_bytes(),
            &key.encoding,
            tower_authkit::__private::jsonwebtoken_algorithm(self.alg),
        )
        .expect("signing with a bundled test key");
        format!("{signing_input}.{signature}")
    }
}
