//! Password hashing: [`Passwords`] (Argon2id) and its [`PasswordCost`].

use std::sync::Arc;

use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use tokio::sync::{OnceCell, Semaphore};

use crate::error::ConfigError;

/// How much work one Argon2id hash costs: memory and passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasswordCost {
    memory_kib: u32,
    passes: u32,
}

impl Default for PasswordCost {
    /// 19 MiB, 2 passes (OWASP's minimum for Argon2id).
    fn default() -> Self {
        PasswordCost {
            memory_kib: Params::DEFAULT_M_COST,
            passes: Params::DEFAULT_T_COST,
        }
    }
}

impl PasswordCost {
    /// `memory_kib` KiB and `passes` passes; an error when Argon2 refuses
    /// them (at least 8 KiB and 1 pass).
    pub fn new(memory_kib: u32, passes: u32) -> Result<Self, ConfigError> {
        Params::new(memory_kib, passes, 1, None).map_err(|e| ConfigError::Invalid {
            setting: "password cost",
            reason: e.to_string(),
        })?;
        Ok(PasswordCost { memory_kib, passes })
    }

    fn hasher(self) -> Argon2<'static> {
        // Checked in `new` (or the crate's own defaults).
        let params = Params::new(self.memory_kib, self.passes, 1, None).unwrap_or_default();
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
    }
}

/// Hashing or verification could not run.
#[derive(Clone, Debug)]
pub struct PasswordError(String);

impl std::fmt::Display for PasswordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "password hashing failed: {}", self.0)
    }
}

impl std::error::Error for PasswordError {}

/// Password hashing with Argon2id (by default the `argon2` crate's
/// parameters, OWASP's minimum: 19 MiB, 2 passes). Hashing runs on Tokio's
/// blocking pool behind a concurrency cap, so a flood of sign-ins cannot
/// starve the runtime's other requests; nothing is hashed while the app is
/// built.
///
/// **Debug builds.** Argon2 is slow on purpose, and unoptimised it takes
/// seconds per hash, so session tests in a debug build crawl. Give your
/// `Cargo.toml` `[profile.dev.package.argon2] opt-level = 3` (a
/// dependency's profile settings do not reach your build), and in tests use
/// the test kit's `tower_authkit_testing::fast_passwords()` (the lowest
/// cost Argon2id allows; never for production). Verification reads the
/// cost from the stored hash, so hashes of either cost verify anywhere.
///
/// Cheap to clone (clones share the cap).
#[derive(Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    cost: PasswordCost,
    /// A real hash of a random password, made on first need: verifying
    /// unknown users against it costs what verifying a real user does.
    dummy: Arc<OnceCell<String>>,
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passwords")
            .field("cost", &self.cost)
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

fn hash_now(cost: PasswordCost, password: &[u8]) -> Result<String, PasswordError> {
    cost.hasher()
        .hash_password(password)
        .map(|hash| hash.to_string())
        .map_err(|e| PasswordError(e.to_string()))
}

impl Passwords {
    /// At most `concurrent` hashes at a time (at least one), at the default cost.
    pub fn with_concurrency(concurrent: usize) -> Self {
        Self::new(concurrent, PasswordCost::default())
    }

    /// At most `concurrent` hashes at a time (at least one), each costing `cost`.
    pub fn new(concurrent: usize, cost: PasswordCost) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(concurrent.max(1))),
            cost,
            dummy: Arc::new(OnceCell::new()),
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
        let (password, cost) = (password.as_bytes().to_vec(), self.cost);
        self.run(move || hash_now(cost, &password)).await
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
        let dummy = self
            .dummy
            .get_or_try_init(|| async {
                let mut random = [0u8; 32];
                // A failed RNG only makes the dummy predictable; it is never a valid login.
                let _ = getrandom::fill(&mut random);
                let cost = self.cost;
                self.run(move || hash_now(cost, &random)).await
            })
            .await?;
        self.verify(password, dummy).await.map(|_| false)
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

    #[tokio::test]
    async fn a_cheaper_cost_hashes_what_the_default_verifies_and_back() {
        let cheap = Passwords::new(1, PasswordCost::new(8, 1).unwrap());
        let default = Passwords::with_concurrency(1);
        let hash = cheap.hash("pw").await.unwrap();
        assert!(hash.contains("m=8,t=1"), "{hash}");
        assert!(
            default.verify("pw", &hash).await.unwrap(),
            "the cost is read from the hash"
        );
        let hash = default.hash("pw").await.unwrap();
        assert!(cheap.verify("pw", &hash).await.unwrap());
        assert!(!cheap.verify_unknown("pw").await.unwrap());
        assert!(PasswordCost::new(1, 1).is_err(), "below Argon2's minimum memory");
    }
}
