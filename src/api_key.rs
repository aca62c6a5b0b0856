//! `ApiKeys`: static API keys, each standing for a fixed [`Principal`].
//!
//! ```
//! use axum::{routing::get, Router};
//! use tower_authkit::{AuthLayer, Principal};
//! use tower_authkit::api_key::ApiKeys;
//! use tower_authkit::{TokenSource, TokenSources};
//!
//! let keys = ApiKeys::new()
//!     .prefix("ak_")
//!     .key("ak_live_7Qm2", Principal::builder("api-key", "billing-job").roles(vec!["billing".into()]).build());
//! // Sent as `Authorization: Bearer ak_…` or `X-Api-Key: ak_…`.
//! let sources = TokenSources::new([TokenSource::Bearer, TokenSource::Header(http::HeaderName::from_static("x-api-key"))]);
//! let layer = AuthLayer::new(keys).token_sources(sources);
//! let app: Router = Router::new()
//!     .route("/usage", get(|p: Principal| async move { p.subject().to_owned() }))
//!     .layer(layer);
//! # let _ = app;
//! ```
//!
//! Keys are kept and looked up as SHA-256 digests, so the table holds no
//! key and a lookup's timing says nothing about a key's bytes. Keep keys
//! long and random (at least 128 bits); [`key_sha256`](ApiKeys::key_sha256)
//! takes a digest, for configuration that should not hold the key either.
//! With a [`prefix`](ApiKeys::prefix), only credentials that start with it
//! are this authenticator's (see [`first_of`](crate::first_of)); without
//! one, everything that is not a JWT.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::error::ConfigError;
use crate::layer::{Authentication, Authenticator, RequestHead};
use crate::principal::Principal;
use crate::rejection::AuthError;
use crate::token::Credential;

/// A table of API keys; see the [module docs](self).
#[derive(Clone, Default)]
pub struct ApiKeys {
    keys: Arc<HashMap<[u8; 32], Principal>>,
    prefix: Option<Arc<str>>,
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeys")
            .field("keys", &self.keys.len())
            .field("prefix", &self.prefix)
            .finish()
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl ApiKeys {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only credentials starting with `prefix` (e.g. `ak_`) are API keys.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(Arc::from(prefix.into()));
        self
    }

    /// Accepts `key` as `principal`.
    pub fn key(mut self, key: impl AsRef<str>, principal: Principal) -> Self {
        Arc::make_mut(&mut self.keys).insert(digest(key.as_ref()), principal);
        self
    }

    /// Accepts the key whose SHA-256 is `hex` (64 hex digits) as `principal`.
    pub fn key_sha256(mut self, hex: &str, principal: Principal) -> Result<Self, ConfigError> {
        let invalid = || ConfigError::Invalid {
            setting: "key_sha256",
            reason: "expected 64 hex digits".into(),
        };
        if hex.len() != 64 || !hex.is_ascii() {
            return Err(invalid());
        }
        let mut digest = [0u8; 32];
        for (byte, pair) in digest.iter_mut().zip(hex.as_bytes().chunks(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| invalid())?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| invalid())?;
        }
        Arc::make_mut(&mut self.keys).insert(digest, principal);
        Ok(self)
    }
}

impl Authenticator for ApiKeys {
    type Future = std::future::Ready<Result<Principal, AuthError>>;
    const NAME: &'static str = "api-key";

    fn recognizes(&self, credential: &Credential) -> bool {
        match &self.prefix {
            Some(prefix) => credential.expose().starts_with(&**prefix),
            None => !credential.is_compact_jwt(),
        }
    }

    fn authenticate(&self, credential: Credential, _request: &RequestHead<'_>) -> Authentication<Self::Future> {
        let found = self.keys.get(&digest(credential.expose())).cloned();
        Authentication::Ready(found.ok_or_else(|| AuthError::invalid_token("unknown API key")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::SourceKind;

    fn head() -> (http::Method, http::Uri, http::HeaderMap, http::Extensions) {
        Default::default()
    }

    fn check(keys: &ApiKeys, key: &str) -> Result<Principal, AuthError> {
        let (method, uri, headers, extensions) = head();
        let request = RequestHead {
            method: &method,
            uri: &uri,
            headers: &headers,
            extensions: &extensions,
        };
        match keys.authenticate(Credential::new(key, SourceKind::Bearer), &request) {
            Authentication::Ready(outcome) => outcome,
            Authentication::Pending(_) => panic!("API keys answer at once"),
        }
    }

    #[test]
    fn keys_map_to_their_principal_and_unknown_keys_are_refused() {
        let keys = ApiKeys::new()
            .key("ak_one", Principal::builder("api-key", "job-1").build())
            .key_sha256(
                // SHA-256 of "ak_two".
                &digest("ak_two").iter().map(|b| format!("{b:02x}")).collect::<String>(),
                Principal::builder("api-key", "job-2").build(),
            )
            .unwrap();
        assert_eq!(check(&keys, "ak_one").unwrap().subject(), "job-1");
        assert_eq!(check(&keys, "ak_two").unwrap().subject(), "job-2");
        assert_eq!(check(&keys, "ak_three").unwrap_err().description(), "unknown API key");
        assert!(!format!("{keys:?}").contains("ak_one"));
        assert!(
            ApiKeys::new()
                .key_sha256("abc", Principal::builder("a", "b").build())
                .is_err()
        );
    }

    #[test]
    fn a_prefix_decides_what_is_an_api_key() {
        let with_prefix = ApiKeys::new().prefix("ak_");
        let without = ApiKeys::new();
        let jwt = Credential::new("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln", SourceKind::Bearer);
        let key = Credential::new("ak_live", SourceKind::Bearer);
        let other = Credential::new("opaque-token", SourceKind::Bearer);
        assert!(with_prefix.recognizes(&key) && !with_prefix.recognizes(&other) && !with_prefix.recognizes(&jwt));
        assert!(without.recognizes(&key) && without.recognizes(&other) && !without.recognizes(&jwt));
    }
}
