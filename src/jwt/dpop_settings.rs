//! [`Dpop`]: one issuer's DPoP settings as one value, checked when the
//! layer is built.

use std::sync::Arc;
use std::time::Duration;

use super::dpop::{DpopMode, DpopPolicy, DpopReplayCache, MemoryReplayCache, Nonces};
use crate::error::ConfigError;
use crate::upstream::parse_url;

/// How one issuer takes DPoP-bound tokens (RFC 9449); see the
/// [`dpop`](crate::jwt::dpop) module for the rules. Give it to
/// [`JwksAuthBuilder::dpop`](crate::jwt::JwksAuthBuilder::dpop); the layer
/// then also reads `Authorization: DPoP <token>`.
///
/// ```
/// use std::time::Duration;
/// use tower_authkit::jwt::JwksAuthLayer;
/// use tower_authkit::jwt::dpop::Dpop;
///
/// let dpop = Dpop::required("https://api.example.com") // a proof's `htu` is this + the path
///     .window(Duration::from_secs(30))
///     .nonces(b"a secret of at least thirty-two bytes, shared by replicas".to_vec());
/// let builder = JwksAuthLayer::builder()
///     .issuer("https://idp.example.com")
///     .audience("orders-api")
///     .dpop(dpop);
/// # let _ = builder;
/// ```
#[derive(Clone)]
#[must_use = "a Dpop setting does nothing until a builder takes it"]
pub struct Dpop {
    mode: DpopMode,
    public_url: String,
    window: Duration,
    replay: Arc<dyn DpopReplayCache>,
    nonce_secret: Option<Vec<u8>>,
    nonce_period: Duration,
}

impl std::fmt::Debug for Dpop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The nonce secret is never shown.
        f.debug_struct("Dpop")
            .field("mode", &self.mode)
            .field("public_url", &self.public_url)
            .field("window", &self.window)
            .field("nonces", &self.nonce_secret.is_some())
            .finish_non_exhaustive()
    }
}

impl Dpop {
    /// `mode` for a service clients reach at `public_url`: the scheme, host
    /// and port (and any path prefix), e.g. `https://api.example.com`. A
    /// proof's `htu` must be this plus the request path. Configured, never
    /// taken from request headers (a proxy could change those).
    pub fn new(mode: DpopMode, public_url: impl Into<String>) -> Self {
        Dpop {
            mode,
            public_url: public_url.into(),
            window: Duration::from_secs(60),
            replay: Arc::new(MemoryReplayCache::default()),
            nonce_secret: None,
            nonce_period: Duration::from_secs(300),
        }
    }

    /// Bearer tokens, and DPoP-bound tokens with a proof ([`DpopMode::Allowed`]).
    pub fn allowed(public_url: impl Into<String>) -> Self {
        Dpop::new(DpopMode::Allowed, public_url)
    }

    /// Every token with a proof ([`DpopMode::Required`]).
    pub fn required(public_url: impl Into<String>) -> Self {
        Dpop::new(DpopMode::Required, public_url)
    }

    /// How far a proof's `iat` may be from now (default 60 s either way).
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Where proof `jti`s are remembered (default: in this process,
    /// 100 000 at most). Share one between replicas.
    pub fn replay_cache(mut self, cache: impl DpopReplayCache) -> Self {
        self.replay = Arc::new(cache);
        self
    }

    /// Requires a server nonce in every proof (RFC 9449 §8), made from
    /// `secret` (at least 32 bytes; give replicas the same one).
    pub fn nonces(mut self, secret: impl Into<Vec<u8>>) -> Self {
        self.nonce_secret = Some(secret.into());
        self
    }

    /// How long a server nonce is current (default 5 min; the previous
    /// period's is still accepted).
    pub fn nonce_period(mut self, period: Duration) -> Self {
        self.nonce_period = period;
        self
    }

    pub(crate) fn mode(&self) -> DpopMode {
        self.mode
    }

    /// The checked policy the verify path runs.
    pub(crate) fn policy(&self) -> Result<DpopPolicy, ConfigError> {
        let mut policy = DpopPolicy {
            mode: self.mode,
            public_url: None,
            window: self.window,
            replay: Arc::clone(&self.replay),
            nonces: None,
        };
        if self.mode == DpopMode::Off {
            return Ok(policy);
        }
        policy.public_url = Some(parse_url("dpop public url", &self.public_url)?);
        if let Some(secret) = &self.nonce_secret {
            let invalid = |reason: &str| ConfigError::Invalid {
                setting: "dpop nonces",
                reason: reason.to_owned(),
            };
            if secret.len() < 32 {
                return Err(invalid("the secret must be at least 32 bytes"));
            }
            if self.nonce_period.as_secs() == 0 {
                return Err(invalid("the period must be at least a second"));
            }
            let nonces = Nonces::new(secret, self.nonce_period).ok_or_else(|| invalid("unusable secret"))?;
            policy.nonces = Some(Arc::new(nonces));
        }
        Ok(policy)
    }
}
