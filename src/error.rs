//! Configuration errors, returned by builders (fail fast at startup).

use std::fmt;

/// A layer could not be built from its configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// A key or discovery URL is plain http on a non-loopback host.
    InsecureUrl(String),
    /// Neither crypto backend feature (`aws-lc-rs`, `rust-crypto`) is enabled
    /// and no provider was installed with
    /// [`install_crypto_provider`](crate::install_crypto_provider).
    NoCryptoBackend,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Missing(setting) => write!(f, "missing required setting `{setting}`"),
            ConfigError::Invalid { setting, reason } => write!(f, "invalid `{setting}`: {reason}"),
            ConfigError::InsecureUrl(url) => {
                write!(
                    f,
                    "refusing insecure URL {url}: key and discovery URLs must be https (http only on loopback)"
                )
            }
            ConfigError::NoCryptoBackend => write!(
                f,
                "no crypto backend: enable the `aws-lc-rs` or `rust-crypto` feature, or call install_crypto_provider"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}
