//! DPoP replay detection shared by every replica, in Redis (feature

use std::fmt;
use std::time::{Duration, SystemTime};

use redis::aio::ConnectionManager;

use super::dpop::DpopReplayCache;
use crate::principal::BoxFuture;
use crate::rejection::AuthError;

/// A [`DpopReplayCache`] in Redis (details below). Cheap to
/// clone: clones share one connection.
///
/// DPoP replay detection shared by every replica, in Redis (feature
/// `dpop-redis`).
///
/// ```no_run
/// use tower_authkit::jwt::RedisReplayCache;
/// use tower_authkit::jwt::dpop::Dpop;
/// use tower_authkit::jwt::JwksAuthLayer;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // Inside the runtime: the connection lives there (connected on first use).
/// let replays = RedisReplayCache::new("redis://127.0.0.1:6379")?;
/// let layer = JwksAuthLayer::builder()
///     .issuer("https://login.example.com")
///     .audience("https://api.example.com")
///     .dpop(Dpop::required("https://api.example.com").replay_cache(replays))
///     .build()?;
/// # let _ = layer; Ok(()) }
/// ```
///
/// Each proof's replay id (a SHA-256 digest of the key thumbprint and the
/// `jti`, never the proof) is one key `{prefix}{hex}` written with
/// `SET … NX PX`: the first replica to write it accepts the proof, every
/// other write finds it and refuses a replay, and Redis forgets it when the
/// proof's `iat` window ends. One round trip per DPoP request that is not
/// already refused. While Redis is unreachable, DPoP requests are answered
/// 503 with `Retry-After` (a proof is never accepted unrecorded).
#[derive(Clone)]
pub struct RedisReplayCache {
    connection: ConnectionManager,
    prefix: String,
}

impl RedisReplayCache {
    /// A cache on `url` (`redis://host:port[/db]`), keys prefixed
    /// `authkit:dpop:`. Call it inside a Tokio runtime; it connects on first
    /// use, so a Redis that is down at start gives 503s until it is back.
    pub fn new(url: &str) -> Result<Self, crate::ConfigError> {
        Self::with_prefix(url, "authkit:dpop:")
    }

    /// Like [`new`](Self::new) with another key prefix (several services on
    /// one Redis that must not share replay ids).
    pub fn with_prefix(url: &str, prefix: &str) -> Result<Self, crate::ConfigError> {
        let connection = crate::redis_connection::connect(url, "RedisReplayCache").map_err(|reason| {
            crate::ConfigError::Invalid {
                setting: "dpop_replay_cache",
                reason,
            }
        })?;
        Ok(Self {
            connection,
            prefix: prefix.to_owned(),
        })
    }
}

impl fmt::Debug for RedisReplayCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password: not shown.
        f.debug_struct("RedisReplayCache")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl DpopReplayCache for RedisReplayCache {
    fn first_use<'a>(&'a self, id: [u8; 32], until: SystemTime) -> BoxFuture<'a, Result<bool, AuthError>> {
        let key = format!("{}{}", self.prefix, crate::hex::encode(&id));
        // Relative, so the replicas' clocks need not agree with Redis's.
        let ttl_ms = until
            .duration_since(SystemTime::now())
            .map_or(1, |left| u64::try_from(left.as_millis()).unwrap_or(u64::MAX).max(1));
        let mut connection = self.connection.clone();
        Box::pin(async move {
            let written: Option<String> = redis::cmd("SET")
                .arg(&key)
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(ttl_ms)
                .query_async(&mut connection)
                .await
                .map_err(|error| {
                    tracing::warn!(error = %crate::redis_connection::describe(&error), "DPoP replay cache unavailable");
                    AuthError::unavailable("DPoP replay cache unavailable", Duration::from_secs(1))
                })?;
            Ok(written.is_some())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Redis the test script started, and a prefix no other run shares.
    fn redis_url_and_prefix() -> (String, String) {
        let url = std::env::var("AUTHKIT_TEST_REDIS_URL")
            .expect("AUTHKIT_TEST_REDIS_URL is not set: scripts/test.sh starts a redis-server and sets it");
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce).unwrap();
        (url, format!("authkit-test:dpop:{}:", crate::hex::encode(&nonce)))
    }

    fn id(n: u8) -> [u8; 32] {
        [n; 32]
    }

    #[tokio::test]
    async fn a_proof_is_new_once_across_replicas() {
        let (url, prefix) = redis_url_and_prefix();
        let (a, b) = (
            RedisReplayCache::with_prefix(&url, &prefix).unwrap(),
            RedisReplayCache::with_prefix(&url, &prefix).unwrap(),
        );
        let until = SystemTime::now() + Duration::from_secs(60);
        assert!(a.first_use(id(1), until).await.unwrap());
        assert!(!b.first_use(id(1), until).await.unwrap(), "the other replica saw it");
        assert!(!a.first_use(id(1), until).await.unwrap());
        assert!(b.first_use(id(2), until).await.unwrap());
        // Another prefix is another service: its ids are its own.
        let other = RedisReplayCache::with_prefix(&url, &format!("{prefix}other:")).unwrap();
        assert!(other.first_use(id(1), until).await.unwrap());
    }

    #[tokio::test]
    async fn an_id_is_forgotten_when_its_window_ends() {
        let (url, prefix) = redis_url_and_prefix();
        let cache = RedisReplayCache::with_prefix(&url, &prefix).unwrap();
        let until = SystemTime::now() + Duration::from_millis(200);
        assert!(cache.first_use(id(3), until).await.unwrap());
        assert!(!cache.first_use(id(3), until).await.unwrap());
        // Redis expires it; bounded wait.
        let started = std::time::Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let later = SystemTime::now() + Duration::from_secs(60);
            if cache.first_use(id(3), later).await.unwrap() {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(5), "never expired");
        }
    }

    #[tokio::test]
    async fn an_unreachable_redis_is_a_503_never_an_accepted_proof() {
        // A port nothing listens on: bind one, then free it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cache = RedisReplayCache::new(&format!("redis://:secret-password@127.0.0.1:{port}")).unwrap();
        let error = cache
            .first_use(id(4), SystemTime::now() + Duration::from_secs(60))
            .await
            .unwrap_err();
        assert_eq!(error.status(), http::StatusCode::SERVICE_UNAVAILABLE);
        assert!(error.retry_after().is_some());
        assert!(!format!("{error:?}{cache:?}").contains("secret-password"));
    }

    #[test]
    fn a_bad_url_or_no_runtime_is_a_configuration_error() {
        let outside = RedisReplayCache::new("redis://127.0.0.1:6379").unwrap_err();
        assert!(outside.to_string().contains("Tokio runtime"), "{outside}");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = runtime.enter();
        let bad = RedisReplayCache::new("not a url").unwrap_err();
        assert!(bad.to_string().contains("invalid URL"), "{bad}");
    }
}
