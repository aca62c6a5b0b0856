//! The one way this crate connects to Redis (the session store and the DPoP
//! replay cache): redis-rs's `ConnectionManager`, connecting on first use
//! and reconnecting by itself, with short timeouts so an unreachable Redis
//! fails a request (503) instead of holding it.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// A lazily connecting manager for `url` (`redis://host:port[/db]`). Must be
/// called inside a Tokio runtime, where the manager lives. The error never
/// repeats the URL, which may hold a password.
pub(crate) fn connect(url: &str, what: &str) -> Result<ConnectionManager, String> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(format!("redis: {what} must be created inside a Tokio runtime"));
    }
    let client = redis::Client::open(url).map_err(|_| "redis: invalid URL".to_owned())?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500));
    client
        .get_connection_manager_lazy(config)
        .map_err(|error| describe(&error))
}

/// What went wrong, for logs and errors: redis-rs errors name the command
/// and the server's reason, never values, and this keeps to their kind.
pub(crate) fn describe(error: &redis::RedisError) -> String {
    if error.is_io_error() || error.is_connection_dropped() || error.is_connection_refusal() {
        "redis: unreachable".to_owned()
    } else if error.is_timeout() {
        "redis: timed out".to_owned()
    } else {
        format!("redis: {:?}", error.kind())
    }
}
