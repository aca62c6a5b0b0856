//! Crypto backend selection.
//!
//! jsonwebtoken panics on first use when neither or both of its backends are
//! compiled in and nobody installed a process-wide provider. We install one
//! explicitly before any verification: aws-lc-rs when its feature is on
//! (RSA verification is about ten times faster), else RustCrypto, else the
//! provider the application gave [`install_crypto_provider`]. With none of
//! those, builders return [`ConfigError::NoCryptoBackend`] instead of panicking.

use std::sync::OnceLock;

use jsonwebtoken::crypto::CryptoProvider;

use crate::error::ConfigError;

static CHOSEN: OnceLock<&'static CryptoProvider> = OnceLock::new();

/// Installs `provider` as the JWT crypto backend, for builds with neither the
/// `aws-lc-rs` nor the `rust-crypto` feature. Returns `false` when a backend
/// was already chosen (the first one stays).
pub fn install_crypto_provider(provider: &'static CryptoProvider) -> bool {
    if CHOSEN.set(provider).is_err() {
        return false;
    }
    // An application that installed its own jsonwebtoken default keeps it.
    let _ = provider.install_default();
    true
}

fn from_features() -> Option<&'static CryptoProvider> {
    #[cfg(feature = "aws-lc-rs")]
    {
        Some(&jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER)
    }
    #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
    {
        Some(&jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER)
    }
    #[cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
    {
        None
    }
}

/// Makes sure a backend is installed; called by every builder.
pub(crate) fn ensure_provider() -> Result<(), ConfigError> {
    if CHOSEN.get().is_some() {
        return Ok(());
    }
    let provider = from_features().ok_or(ConfigError::NoCryptoBackend)?;
    install_crypto_provider(provider);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both backends on (`--all-features`) or none: never a panic.
    #[test]
    fn a_backend_is_installed_or_a_config_error_is_returned() {
        match ensure_provider() {
            Ok(()) => {
                // jsonwebtoken now works even when both of its backends are compiled in.
                let key = jsonwebtoken::EncodingKey::from_secret(b"k");
                let token = jsonwebtoken::encode(&jsonwebtoken::Header::default(), &serde_json::json!({"a": 1}), &key);
                assert!(token.is_ok());
            }
            Err(error) => {
                assert!(cfg!(not(any(feature = "aws-lc-rs", feature = "rust-crypto"))));
                assert_eq!(error, ConfigError::NoCryptoBackend);
            }
        }
    }
}
