//! `authkit-pomerium`: one authenticated GET to a Pomerium-protected URL.
//!
//! Prints the status line (`<code> <reason>`) and one `name: value` line per
//! response header on stdout, never the body. When the user has to sign in,
//! `sign in at: <URL>` goes to stderr (and the browser opens unless
//! `--no-browser`). Exit code 0 on any HTTP response; otherwise one error
//! line on stderr and exit code 1.

use std::error::Error;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tower_authkit_pomerium::{BlockingPomeriumClient, PomeriumClient, print_sign_in_url};

/// One authenticated GET through Pomerium: prints the status line and the
/// response headers (no body).
#[derive(Parser)]
#[command(name = "authkit-pomerium", version)]
struct Args {
    /// Print the sign-in URL instead of opening the browser.
    #[arg(long)]
    no_browser: bool,
    /// Keep tokens on disk (one file per route in the user cache directory).
    #[arg(long)]
    cache: bool,
    /// The token cache directory (implies --cache).
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Seconds to wait for the sign-in to complete.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    timeout: u64,
    /// The URL to GET.
    url: String,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Best effort: stderr may be the very thing that failed.
            let _ = writeln!(std::io::stderr(), "authkit-pomerium: {}", one_line(&*error));
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), Box<dyn Error>> {
    let url = reqwest::Url::parse(&args.url).map_err(|e| format!("invalid URL {:?}: {e}", args.url))?;
    let open_browser = !args.no_browser;
    let mut builder = PomeriumClient::builder()
        .login_timeout(Duration::from_secs(args.timeout))
        .opener(move |sign_in_url| {
            // One write that can fail (eprintln! would panic): if the user
            // cannot see the URL, the sign-in ends with an error at once.
            print_sign_in_url(sign_in_url)?;
            if open_browser && let Err(error) = webbrowser::open(sign_in_url) {
                // The URL is already shown; this note is best effort.
                let _ = writeln!(std::io::stderr(), "(could not open a browser: {error})");
            }
            Ok(())
        });
    if let Some(dir) = args.cache_dir {
        builder = builder.cache_dir(dir);
    } else if args.cache {
        builder = builder.cache(true);
    }
    let auth = BlockingPomeriumClient::new(builder.build()?)?;
    // Redirects are shown, not followed: this is a look at one response.
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let response = auth.execute(&client, client.get(url).build()?)?;

    let status = response.status();
    let reason = status.canonical_reason().unwrap_or_default();
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", format!("{} {reason}", status.as_u16()).trim_end())?;
    for (name, value) in response.headers() {
        writeln!(out, "{name}: {}", String::from_utf8_lossy(value.as_bytes()))?;
    }
    out.flush()?;
    Ok(())
}

/// The error and its causes on one line.
fn one_line(error: &dyn Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    line.replace(['\n', '\r'], " ")
}
