//! Serving an axum app the way the `authkit-ingress` binary (and the
//! repository's examples) do: logging from `RUST_LOG`, `AUTHKIT_BIND`, a
//! readiness line (`listening on http://ADDR`) once accepting, and a
//! graceful stop on SIGTERM or Ctrl-C.

use std::process::ExitCode;
use std::time::Duration;

use axum::Router;

/// How long in-flight requests may take to finish after a shutdown signal.
const DRAIN: Duration = Duration::from_secs(10);

/// Logs to stderr, filtered by `RUST_LOG` (default `info`; rmcp, which logs
/// every stateless MCP request at info, `warn`), so the crate's
/// warnings (a failing provider, a refused host) are seen.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rmcp=warn"));
    // A second call (or a subscriber set elsewhere) keeps the first one.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

/// Binds `AUTHKIT_BIND` (default `127.0.0.1:3000`), prints
/// `listening on http://ADDR` once accepting, and serves `app` until SIGTERM
/// or Ctrl-C; then stops accepting and lets in-flight requests finish (at
/// most 10 s).
pub async fn serve(name: &str, app: Result<Router, String>) -> ExitCode {
    init_tracing();
    // Configuration errors first (exit 2), before anything is bound.
    let app = match app {
        Ok(app) => app,
        Err(message) => {
            eprintln!("{name}: {message}");
            return ExitCode::from(2);
        }
    };
    serve_bound(name, move |_| Ok(app)).await
}

/// Binds `AUTHKIT_BIND`, then builds the app for the bound address (for an
/// app whose configuration names its own URL, e.g. a DPoP `htu` base).
pub async fn serve_bound(name: &str, app: impl FnOnce(std::net::SocketAddr) -> Result<Router, String>) -> ExitCode {
    init_tracing();
    let bind = std::env::var("AUTHKIT_BIND").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let listener = match tokio::net::TcpListener::bind(&bind).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("{name}: cannot bind {bind}: {e}");
            return ExitCode::from(1);
        }
    };
    let addr = match listener.local_addr() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(1);
        }
    };
    let app = match app(addr) {
        Ok(app) => app,
        Err(message) => {
            eprintln!("{name}: {message}");
            return ExitCode::from(2);
        }
    };
    tracing::info!(%addr, "{name} listening");
    println!("listening on http://{addr}");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut server = tokio::spawn(async move {
        // Connect info: handlers can read the peer address (`ConnectInfo<SocketAddr>`).
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(async {
            let _ = stopped.await;
        })
        .await
    });
    let served = tokio::select! {
        served = &mut server => served,
        () = shutdown_signal() => {
            tracing::info!("shutting down: finishing in-flight requests (at most {}s)", DRAIN.as_secs());
            let _ = stop.send(());
            match tokio::time::timeout(DRAIN, &mut server).await {
                Ok(served) => served,
                Err(_) => {
                    tracing::warn!("in-flight requests did not finish in time; exiting");
                    server.abort();
                    return ExitCode::SUCCESS;
                }
            }
        }
    };
    match served {
        Ok(Ok(())) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("{name}: {e}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("{name}: server task failed: {e}");
            ExitCode::from(1)
        }
    }
}
