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

#[cfg_attr(not(feature = "jwks"), allow(dead_code))]
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
#[cfg_attr(not(feature = "jwks"), allow(dead_code))]
pub fn ensure_provider() -> Result<(), ConfigError> {
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

    /// With a backend feature (both are on under `--all-features`), jsonwebtoken
    /// works instead of panicking on its ambiguous feature set.
    #[cfg(any(feature = "aws-lc-rs", feature = "rust-crypto"))]
    #[test]
    fn a_backend_is_installed_even_when_both_are_compiled_in() {
        ensure_provider().unwrap();
        let key = jsonwebtoken::EncodingKey::from_secret(b"k");
        let header = jsonwebtoken::Header::default();
        assert!(jsonwebtoken::encode(&header, &serde_json::json!({"a": 1}), &key).is_ok());
    }

    /// With no backend, builders report a configuration error, never a panic.
    #[cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
    #[test]
    fn no_backend_is_a_config_error() {
        assert_eq!(ensure_provider(), Err(ConfigError::NoCryptoBackend));
        #[cfg(feature = "jwks")]
        {
            let built = crate::jwt::JwksAuthLayer::builder()
                .issuer("https://idp.example")
                .audience("a")
                .build();
            assert_eq!(built.unwrap_err(), ConfigError::NoCryptoBackend);
        }
    }
}
