//! [`PomeriumClientBuilder`]: the settings of a [`PomeriumClient`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::disk::DiskCache;
use super::{DEFAULT_LOGIN_TIMEOUT, Opener, PomeriumClient, Shared};
use tower_authkit::__private::{FetchPolicy, Fetcher};
use tower_authkit::ConfigError;

/// Configuration for [`PomeriumClient`].
///
/// Defaults: every https (and loopback http) host is in scope, tokens in
/// memory only, the browser opened with the `webbrowser` crate (which honours
/// `$BROWSER`), 5 minutes to sign in.
#[must_use = "a builder does nothing until it is built"]
pub struct PomeriumClientBuilder {
    domains: Option<Vec<String>>,
    cache: bool,
    cache_dir: Option<PathBuf>,
    open_browser: bool,
    opener: Option<Opener>,
    login_timeout: Duration,
    roots_pem: Vec<Vec<u8>>,
}

impl std::fmt::Debug for PomeriumClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PomeriumClientBuilder")
            .field("domains", &self.domains)
            .field("cache", &self.cache)
            .field("cache_dir", &self.cache_dir)
            .field("open_browser", &self.open_browser)
            .field("login_timeout", &self.login_timeout)
            .finish_non_exhaustive()
    }
}

impl Default for PomeriumClientBuilder {
    fn default() -> Self {
        Self {
            domains: None,
            cache: false,
            cache_dir: None,
            open_browser: true,
            opener: None,
            login_timeout: DEFAULT_LOGIN_TIMEOUT,
            roots_pem: Vec::new(),
        }
    }
}

impl PomeriumClientBuilder {
    /// Only these domains and their subdomains get tokens; requests to other
    /// hosts pass through untouched. Without it, every https (and loopback
    /// http) host the client calls is taken to be a Pomerium route: set it
    /// whenever the client also talks to other services.
    pub fn authenticated_domains<I, D>(mut self, domains: I) -> Self
    where
        I: IntoIterator<Item = D>,
        D: Into<String>,
    {
        self.domains = Some(domains.into_iter().map(Into::into).collect());
        self
    }

    /// Keep tokens on disk, one file per route, in the per-user cache
    /// directory (`~/.cache/tower-authkit/pomerium` on Linux) unless
    /// [`cache_dir`](Self::cache_dir) names another.
    pub fn cache(mut self, enabled: bool) -> Self {
        self.cache = enabled;
        self
    }

    /// The disk cache directory; setting it turns the disk cache on.
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self.cache = true;
        self
    }

    /// Open the sign-in URL in the browser (default). When off, or when the
    /// browser cannot be started, `sign in at: <URL>` is printed on stderr.
    pub fn open_browser(mut self, open: bool) -> Self {
        self.open_browser = open;
        self
    }

    /// Replaces the browser: called (on a blocking thread, not awaited) with
    /// each sign-in URL. Tests use it to follow the URL themselves; a CLI can
    /// print it its own way. When it fails the URL is printed on stderr.
    pub fn opener<F>(mut self, opener: F) -> Self
    where
        F: Fn(&str) -> std::io::Result<()> + Send + Sync + 'static,
    {
        self.opener = Some(Arc::new(opener));
        self
    }

    /// How long a sign-in may take, from the login request to the callback
    /// (default 5 minutes).
    pub fn login_timeout(mut self, timeout: Duration) -> Self {
        self.login_timeout = timeout;
        self
    }

    /// Also trust this CA (PEM, one or more certificates) for the login
    /// request, besides the system's roots: for a Pomerium behind an internal
    /// CA. The HTTP client you plug the layer into needs it too.
    pub fn root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.roots_pem.push(pem.into());
        self
    }

    /// Checks the settings.
    pub fn build(self) -> Result<PomeriumClient, ConfigError> {
        let domains = match self.domains {
            Some(domains) => Some(normalize_domains(domains)?),
            None => None,
        };
        let disk = match (self.cache, self.cache_dir) {
            (false, _) => None,
            (true, Some(dir)) => Some(DiskCache::new(dir)),
            (true, None) => Some(DiskCache::new(DiskCache::default_dir().ok_or(
                ConfigError::Invalid {
                    setting: "cache_dir",
                    reason: "no per-user cache directory on this system; set one".to_owned(),
                },
            )?)),
        };
        if self.login_timeout.is_zero() {
            return Err(ConfigError::Invalid {
                setting: "login_timeout",
                reason: "must be more than zero".to_owned(),
            });
        }
        let fetcher = Fetcher::new(FetchPolicy {
            upstream: "pomerium",
            max_body: 64 * 1024,
            extra_roots_pem: self.roots_pem,
            ..FetchPolicy::default()
        })?;
        Ok(PomeriumClient {
            shared: Arc::new(Shared {
                domains,
                disk,
                open_browser: self.open_browser,
                opener: self.opener,
                login_timeout: self.login_timeout,
                fetcher,
                routes: Mutex::new(HashMap::new()),
            }),
        })
    }
}

fn normalize_domains(domains: Vec<String>) -> Result<Vec<String>, ConfigError> {
    domains
        .into_iter()
        .map(|domain| {
            let domain = domain
                .trim()
                .trim_start_matches('.')
                .trim_end_matches('.')
                .to_ascii_lowercase();
            let valid = !domain.is_empty()
                && domain
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':'));
            if valid {
                Ok(domain)
            } else {
                Err(ConfigError::Invalid {
                    setting: "authenticated_domains",
                    reason: format!("{domain:?} is not a domain name"),
                })
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_checked_and_normalized() {
        let auth = PomeriumClient::builder()
            .authenticated_domains([" .Example.COM. "])
            .build()
            .unwrap();
        assert_eq!(auth.shared.domains.as_deref(), Some(&["example.com".to_owned()][..]));
        assert!(PomeriumClient::builder().authenticated_domains([""]).build().is_err());
        assert!(
            PomeriumClient::builder()
                .authenticated_domains(["a b"])
                .build()
                .is_err()
        );
        assert!(PomeriumClient::builder().root_certificate("not pem").build().is_err());
    }
}
