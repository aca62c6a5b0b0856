//! `authkit-ingress serve`: an authenticated ingress. People sign in once
//! (the portal routes of [`authkit_ingress::portal`], the same as the
//! `session_portal` example's), and enter internal services that have no
//! login of their own according to their groups, re-checked on every
//! request.
//!
//! ```sh
//! AUTHKIT_INGRESS_SERVICES='wiki=http://127.0.0.1:9001|staff;ops' \
//! AUTHKIT_DEMO_USERS='admin@example.com:admin-pass:admin:staff,user@example.com:user-pass::ops' \
//! AUTHKIT_SECURE_COOKIES=false \
//!   cargo run -p authkit-ingress -- serve --dev
//! ```
//!
//! Everything `session_portal` reads (store, keys, cookie flags, expiry,
//! sign-in limits), plus:
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `AUTHKIT_INGRESS_SERVICES` | `name=URL\|group1;group2,...`; internal hosts only | none |
//! | `AUTHKIT_DEMO_USERS` | `email:password:roles:groups` (`\|`-separated lists, either may be empty) | none |
//! | `AUTHKIT_INGRESS_MAX_REQUEST_BYTES` | request body limit (413) | 10 MiB |
//! | `AUTHKIT_INGRESS_MAX_RESPONSE_BYTES` | response body limit (cut, connection closed) | 50 MiB |
//! | `AUTHKIT_INGRESS_TIMEOUT` | seconds for a service to answer (504) | 30 |
//! | `AUTHKIT_INGRESS_WS_LIFETIME` | seconds a WebSocket may stay open (then closed with 1008) | 3600 |
//! | `AUTHKIT_INGRESS_UNDERSCORE_HEADERS` | `drop` or `keep` request headers whose names contain `_` (kept ones never fold to a protected name such as `X-Authkit-User`) | `drop` |
//! | `AUTHKIT_TRUSTED_PROXIES` | your reverse proxies (IPs or CIDRs): the client address and scheme come from their `X-Forwarded-For` / `-Proto` | none |
//!
//! Routes (besides the portal's): `GET /` lists the services the user may
//! enter; `/s/{name}/{rest}` (any method) proxies to the service with
//! `X-Authkit-User` / `X-Authkit-Groups` set (and any incoming `X-Authkit-*`,
//! `X-Forwarded-*`, header with `_` in its name, `Authorization` and the
//! session cookie removed); the raw path goes on byte for byte, and paths
//! with dot segments, encoded slashes or backslashes get 400 (see
//! `authkit_ingress::join_path`); `GET /s/{name}` is a 308
//! to `/s/{name}/`; `POST /admin/groups?email=E&groups=a|b` (admin) replaces
//! E's groups. WebSocket upgrades under `/s/{name}/` pass the same checks,
//! then messages are relayed both ways; every 5 s the session and the
//! user's groups are re-checked, and the connection is closed (1008) once
//! the session is revoked, signed out, expired or its user disabled or
//! moved out of the service's groups, and when its lifetime is reached.
//!
//! Services share the portal's origin: run only services you trust as much
//! as the portal behind it (a script in one service's pages acts as the
//! visitor on the portal and on every other service).

mod app;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "authkit-ingress",
    version,
    about = "An authenticated ingress: sign in once, enter internal services by group"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the portal and the services named in AUTHKIT_INGRESS_SERVICES
    /// (every setting comes from the environment; see the crate's README).
    Serve {
        /// Development defaults: a random session key (sessions end at
        /// restart) and, without AUTHKIT_DEMO_USERS, two demo users.
        #[arg(long)]
        dev: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let Cli { command } = Cli::parse();
    match command {
        Command::Serve { dev } => {
            authkit_ingress::server::init_tracing();
            let app = app::app(dev).await;
            authkit_ingress::server::serve("authkit-ingress", app).await
        }
    }
}
