//! Password hashing with Argon2id (the `argon2` crate's defaults: 19 MiB,
//! 2 passes). Hashing runs on Tokio's blocking pool behind a concurrency
//! cap, so a flood of sign-ins cannot starve the runtime's other requests.

use std::sync::Arc;

use argon2::{Argon2, PasswordHasher as _, PasswordVerifier as _};
use tokio::sync::Semaphore;

/// Hashing or verification could not run.
#[derive(Clone, Debug)]
pub struct PasswordError(String);

impl std::fmt::Display for PasswordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "password hashing failed: {}", self.0)
    }
}

impl std::error::Error for PasswordError {}

/// Hashes and verifies passwords. Cheap to clone (clones share the cap).
#[derive(Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    /// A real hash of a random password: verifying unknown users against it
    /// costs what verifying a real user does.
    dummy: Arc<str>,
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passwords")
            .field("available_permits", &self.permits.available_permits())
            .finish_non_exhaustive()
    }
}

impl Default for Passwords {
    /// At most one hash per core but one at a time, so one core stays free
    /// for everything else.
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::with_concurrency(cores.saturating_sub(1).max(1))
    }
}

fn hash_now(password: &[u8]) -> Result<String, PasswordError> {
    Argon2::default()
        .hash_password(password)
        .map(|hash| hash.to_string())
        .map_err(|e| PasswordError(e.to_string()))
}

impl Passwords {
    /// At most `concurrent` hashes at a time (at least one).
    pub fn with_concurrency(concurrent: usize) -> Self {
        let mut random = [0u8; 32];
        // A failed RNG only makes the dummy predictable; it is never a valid login.
        let _ = getrandom::fill(&mut random);
        let dummy = hash_now(&random).unwrap_or_default();
        Self {
            permits: Arc::new(Semaphore::new(concurrent.max(1))),
            dummy: dummy.into(),
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, PasswordError> + Send + 'static,
    ) -> Result<T, PasswordError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| PasswordError("closed".into()))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|_| PasswordError("hashing task failed".into()))?
    }

    /// A PHC-format Argon2id hash of `password`, with a random salt.
    pub async fn hash(&self, password: &str) -> Result<String, PasswordError> {
        let password = password.as_bytes().to_vec();
        self.run(move || hash_now(&password)).await
    }

    /// Whether `password` matches `hash`. A malformed hash is `false`.
    pub async fn verify(&self, password: &str, hash: &str) -> Result<bool, PasswordError> {
        let (password, hash) = (password.as_bytes().to_vec(), hash.to_owned());
        self.run(move || Ok(Argon2::default().verify_password(&password, hash.as_str()).is_ok()))
            .await
    }

    /// For unknown accounts: costs what [`verify`](Self::verify) costs and is
    /// always `false`, so timing does not tell which accounts exist.
    pub async fn verify_unknown(&self, password: &str) -> Result<bool, PasswordError> {
        let dummy = self.dummy.to_string();
        self.verify(password, &dummy).await.map(|_| false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_unknown_users_never_do() {
        let passwords = Passwords::with_concurrency(1);
        let hash = passwords.hash("correct horse").await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(!hash.contains("correct horse"));
        assert!(passwords.verify("correct horse", &hash).await.unwrap());
        assert!(!passwords.verify("wrong", &hash).await.unwrap());
        assert!(!passwords.verify("correct horse", "not a hash").await.unwrap());
        assert!(!passwords.verify_unknown("correct horse").await.unwrap());
        assert_ne!(hash, passwords.hash("correct horse").await.unwrap(), "salted");
    }
}
