//! Sign-in attempt limiting and the sign-in check that uses it.
//!
//! Attempts are counted per account and per client address in the session
//! store, so every replica sharing the store shares the counts (Redis
//! `INCR` and `PEXPIRE` in one script, a SQL upsert, or memory). An attempt reserves
//! its place atomically *before* the password hash runs (increment, then
//! check the count it got back), for the client first and then the account:
//! with a limit of L, at most L password checks run for one account (or one
//! client) per window, however many attempts arrive at once. A refused
//! attempt hands back what it reserved, and so does a success for the
//! client (only failures count against an address); a success resets the
//! account's count.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::password::Passwords;
use super::store::{AttemptCounter, StoreError};
use crate::rejection::AuthError;

/// Why a sign-in was refused.
#[derive(Clone, Debug)]
#[non_exhaustive]
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
    store: Arc<dyn AttemptCounter>,
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
    /// Limits counted in `counter`, usually the session store (an
    /// `Arc<dyn SessionStore>` or `Arc<MemoryStore>` coerces; share it with
    /// the session layer so replicas share counts): 5 failures per account
    /// and 20 per client address per 15 min.
    pub fn new(store: Arc<dyn AttemptCounter>) -> Self {
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

    /// Hashes and verifies with `passwords` (e.g. another concurrency cap,
    /// or the test kit's `fast_passwords()` in tests).
    pub fn with_passwords(mut self, passwords: Passwords) -> Self {
        self.passwords = passwords;
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
        // Reserve first, client then account; a refusal hands back what it took.
        if let Some(client_key) = &client_key {
            let counted = self.store.count_failure(client_key, self.window).await?;
            if counted.count > self.client_attempts {
                self.store.forgive(client_key).await?;
                return Err(self.limited(account, counted.resets_in));
            }
        }
        let counted = match self.store.count_failure(&account_key, self.window).await {
            Ok(counted) => counted,
            Err(error) => return Err(self.hand_back(client_key.as_deref(), None, error.into()).await),
        };
        if counted.count > self.account_attempts {
            let refused = self.limited(account, counted.resets_in);
            return Err(self.hand_back(client_key.as_deref(), Some(&account_key), refused).await);
        }
        let matched = match stored_hash {
            Some(hash) => self.passwords.verify(password, hash).await,
            None => self.passwords.verify_unknown(password).await,
        };
        let matched = match matched {
            Ok(matched) => matched,
            Err(error) => {
                let failed = SignInError::Unavailable(error.to_string());
                return Err(self.hand_back(client_key.as_deref(), Some(&account_key), failed).await);
            }
        };
        if matched {
            self.store.reset_counter(&account_key).await?;
            if let Some(client_key) = &client_key {
                self.store.forgive(client_key).await?;
            }
            super::audit::sign_in_succeeded(account);
            return Ok(());
        }
        // The reservations stand: they are this failure's counts.
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

    fn limited(&self, account: &str, retry_after: Duration) -> SignInError {
        super::audit::sign_in_failed(account, "limited");
        SignInError::Limited {
            retry_after: retry_after.max(Duration::from_secs(1)),
        }
    }

    /// Takes back the reservations of an attempt that checked no password,
    /// then answers `error` (or the store's failure, if handing back fails).
    async fn hand_back(&self, client: Option<&str>, account: Option<&str>, error: SignInError) -> SignInError {
        for counter in client.into_iter().chain(account) {
            if let Err(failed) = self.store.forgive(counter).await {
                return failed.into();
            }
        }
        error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_counters_are_case_insensitive_hashes() {
        assert_eq!(
            account_counter("Alice@Example.com"),
            account_counter(" alice@example.com")
        );
        assert!(!account_counter("alice@example.com").contains("alice"));
    }
}
