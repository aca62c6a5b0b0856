//! Sign-in attempt limiting and the sign-in check that uses it.
//!
//! Failures only are counted, per account and per client address, in the
//! session store, so every replica sharing the store shares the counts (Redis
//! `INCR` + `PEXPIRE` in one script, a SQL upsert, or memory). A success
//! resets the account's count. The check and the count are separate steps:
//! a burst of parallel attempts can exceed the limit by the number that were
//! in flight at once.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::password::Passwords;
use super::store::{SessionStore, StoreError};
use crate::rejection::AuthError;

/// Why a sign-in was refused.
#[derive(Clone, Debug)]
pub enum SignInError {
    /// Unknown account or wrong password (which one is not said).
    Invalid,
    /// Too many failures for the account or the client address.
    Limited {
        /// When to try again.
        retry_after: Duration,
    },
    /// The store or the hasher failed.
    Unavailable(String),
}

impl std::fmt::Display for SignInError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SignInError::Invalid => f.write_str("invalid email or password"),
            SignInError::Limited { retry_after } => {
                write!(
                    f,
                    "too many failed sign-ins; try again in {}s",
                    retry_after.as_secs().max(1)
                )
            }
            SignInError::Unavailable(reason) => write!(f, "sign-in unavailable: {reason}"),
        }
    }
}

impl std::error::Error for SignInError {}

impl From<SignInError> for AuthError {
    /// 401, 429 + `Retry-After`, or 503 + `Retry-After`.
    fn from(error: SignInError) -> Self {
        match error {
            SignInError::Invalid => AuthError::invalid_token("invalid email or password"),
            SignInError::Limited { retry_after } => {
                AuthError::too_many_requests("too many failed sign-ins", crate::upstream::retry_after(retry_after))
            }
            SignInError::Unavailable(_) => AuthError::unavailable("sign-in unavailable", Duration::from_secs(1)),
        }
    }
}

impl From<StoreError> for SignInError {
    fn from(error: StoreError) -> Self {
        SignInError::Unavailable(error.to_string())
    }
}

/// Checks passwords with attempt limits and audit events. Cheap to clone.
#[derive(Clone)]
pub struct SignIn {
    store: Arc<dyn SessionStore>,
    passwords: Passwords,
    account_attempts: u64,
    client_attempts: u64,
    window: Duration,
}

impl std::fmt::Debug for SignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignIn")
            .field("account_attempts", &self.account_attempts)
            .field("client_attempts", &self.client_attempts)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

fn account_counter(account: &str) -> String {
    // Hashed: bounded key size, and no e-mail addresses as store keys.
    let digest = Sha256::digest(account.trim().to_lowercase().as_bytes());
    format!("signin:account:{}", crate::hex::encode(&digest[..16]))
}

fn client_counter(client: IpAddr) -> String {
    format!("signin:client:{client}")
}

impl SignIn {
    /// Limits on `store` (share it with the session layer so replicas share
    /// counts): 5 failures per account and 20 per client address per 15 min.
    pub fn new(store: Arc<dyn SessionStore>) -> Self {
        Self {
            store,
            passwords: Passwords::default(),
            account_attempts: 5,
            client_attempts: 20,
            window: Duration::from_secs(15 * 60),
        }
    }

    /// Failures allowed per account per window.
    pub fn account_attempts(mut self, attempts: u64) -> Self {
        self.account_attempts = attempts.max(1);
        self
    }

    /// Failures allowed per client address per window.
    pub fn client_attempts(mut self, attempts: u64) -> Self {
        self.client_attempts = attempts.max(1);
        self
    }

    /// The counting window.
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window.max(Duration::from_secs(1));
        self
    }

    /// The hasher used (hash new passwords with it).
    pub fn passwords(&self) -> &Passwords {
        &self.passwords
    }

    /// Checks `password` for `account` against `stored_hash` (`None`: no such
    /// account, verified against a dummy at the same cost). Refused at once
    /// while the account or the client is over its limit.
    pub async fn check(
        &self,
        account: &str,
        client: Option<IpAddr>,
        password: &str,
        stored_hash: Option<&str>,
    ) -> Result<(), SignInError> {
        let account_key = account_counter(account);
        let client_key = client.map(client_counter);
        let mut limited = Duration::ZERO;
        let counted = self.store.failures(&account_key).await?;
        if counted.count >= self.account_attempts {
            limited = limited.max(counted.resets_in);
        }
        if let Some(client_key) = &client_key {
            let counted = self.store.failures(client_key).await?;
            if counted.count >= self.client_attempts {
                limited = limited.max(counted.resets_in);
            }
        }
        if !limited.is_zero() {
            super::audit::sign_in_failed(account, "limited");
            return Err(SignInError::Limited { retry_after: limited });
        }
        let matched = match stored_hash {
            Some(hash) => self.passwords.verify(password, hash).await,
            None => self.passwords.verify_unknown(password).await,
        }
        .map_err(|e| SignInError::Unavailable(e.to_string()))?;
        if matched {
            self.store.reset_counter(&account_key).await?;
            super::audit::sign_in_succeeded(account);
            return Ok(());
        }
        self.store.count_failure(&account_key, self.window).await?;
        if let Some(client_key) = &client_key {
            self.store.count_failure(client_key, self.window).await?;
        }
        super::audit::sign_in_failed(
            account,
            if stored_hash.is_some() {
                "wrong password"
            } else {
                "unknown account"
            },
        );
        Err(SignInError::Invalid)
    }
}

/// The client's address: `socket` (the peer of the connection, e.g. from
/// axum's `ConnectInfo<SocketAddr>`), unless `trusted_header` names a header
/// your own proxy sets: then the last address in it (the one the nearest
/// proxy appended; earlier entries are whatever the client sent).
pub fn client_address(
    socket: Option<std::net::SocketAddr>,
    headers: &http::HeaderMap,
    trusted_header: Option<&str>,
) -> Option<IpAddr> {
    // Only the very last entry: if it is unusable, earlier (client-written)
    // entries must not stand in for it.
    let forwarded = trusted_header.and_then(|name| {
        headers
            .get_all(name)
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|entry| entry.trim().parse::<IpAddr>().ok())
    });
    forwarded.or(socket.map(|s| s.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_addresses_are_used_only_when_trusted_and_the_last_one_wins() {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-forwarded-for", "203.0.113.9, 198.51.100.7".parse().unwrap());
        let socket = Some("127.0.0.1:5000".parse().unwrap());
        assert_eq!(
            client_address(socket, &headers, None),
            Some("127.0.0.1".parse().unwrap())
        );
        assert_eq!(
            client_address(socket, &headers, Some("x-forwarded-for")),
            Some("198.51.100.7".parse().unwrap())
        );
        assert_eq!(
            client_address(socket, &http::HeaderMap::new(), Some("x-forwarded-for")),
            Some("127.0.0.1".parse().unwrap())
        );
        headers.insert("x-forwarded-for", "198.51.100.7, garbage".parse().unwrap());
        assert_eq!(
            client_address(socket, &headers, Some("x-forwarded-for")),
            Some("127.0.0.1".parse().unwrap()),
            "a client-written entry never stands in for the proxy's"
        );
    }

    #[test]
    fn account_counters_are_case_insensitive_hashes() {
        assert_eq!(
            account_counter("Alice@Example.com"),
            account_counter(" alice@example.com")
        );
        assert!(!account_counter("alice@example.com").contains("alice"));
    }
}
