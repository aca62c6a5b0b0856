//! What the runnable examples share: reading settings from the environment
//! and serving an app with the readiness line tests wait for.
#![allow(dead_code)]

use std::process::ExitCode;

use axum::Router;

/// A required environment variable, or a message naming it.
pub fn required(name: &str) -> Result<String, String> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| format!("missing required environment variable {name}"))
}

/// A comma-separated list from a required environment variable.
pub fn required_list(name: &str) -> Result<Vec<String>, String> {
    let items: Vec<String> = required(name)?
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect();
    if items.is_empty() {
        return Err(format!("{name} lists no values"));
    }
    Ok(items)
}

/// Binds `AUTHKIT_BIND` (default `127.0.0.1:3000`), prints
/// `listening on http://ADDR` once accepting, and serves `app`.
pub async fn serve(name: &str, app: Result<Router, String>) -> ExitCode {
    let app = match app {
        Ok(app) => app,
        Err(message) => {
            eprintln!("{name}: {message}");
            return ExitCode::from(2);
        }
    };
    let bind = std::env::var("AUTHKIT_BIND").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let listener = match tokio::net::TcpListener::bind(&bind).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("{name}: cannot bind {bind}: {e}");
            return ExitCode::from(1);
        }
    };
    match listener.local_addr() {
        Ok(addr) => println!("listening on http://{addr}"),
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(1);
        }
    }
    if let Err(e) = axum::serve(listener, app).await {
        eprintln!("{name}: {e}");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
