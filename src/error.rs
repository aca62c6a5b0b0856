//! Configuration errors, returned by builders (fail fast at startup).

use std::fmt;

/// A layer could not be built from its configuration. Its `Display` and
/// `Debug` both read as one line naming the setting and the problem, so a
/// `?` in `main` prints something to act on:
///
/// ```
/// let error = tower_authkit::jwt::JwksAuthLayer::builder()
///     .issuer("http://idp.example")
///     .audience("api")
///     .build()
///     .unwrap_err();
/// assert_eq!(
///     format!("{error:?}"),
///     "issuer: http://idp.example — must be https except on loopback"
/// );
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A required setting is missing, e.g. the issuer.
    Missing(&'static str),
    /// A setting has an unusable value.
    Invalid {
        /// The setting.
        setting: &'static str,
        /// Why it is unusable.
        reason: String,
    },
    /// A key, discovery or upstream URL is plain http on a non-loopback host.
    InsecureUrl {
        /// The setting that named it.
        setting: &'static str,
        /// The URL.
        url: String,
    },
    /// Neither crypto backend feature (`aws-lc-rs`, `rust-crypto`) is enabled
    /// and no provider was installed with
    /// [`install_crypto_provider`](crate::install_crypto_provider).
    NoCryptoBackend,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Missing(setting) => write!(f, "{setting}: required, but not set"),
            ConfigError::Invalid { setting, reason } => write!(f, "{setting}: {reason}"),
            ConfigError::InsecureUrl { setting, url } => {
                write!(f, "{setting}: {url} — must be https except on loopback")
            }
            ConfigError::NoCryptoBackend => write!(
                f,
                "crypto backend: none; enable the `aws-lc-rs` or `rust-crypto` feature, or call install_crypto_provider"
            ),
        }
    }
}

/// The same line as `Display`: this is what `?` in `main` shows.
impl fmt::Debug for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for ConfigError {}
