//! One sign-in: ask the route for a sign-in URL, show it to the user, and
//! wait for the browser to bring the token to the callback listener.

use std::io::{self, Write};

use http::HeaderValue;
use url::Url;

use super::callback::CallbackListener;
use super::token::{Route, Token};
use super::{PomeriumClientError, Shared};
use tower_authkit::__private::check_url;

pub(super) async fn sign_in(shared: &Shared, route: &Route) -> Result<Token, PomeriumClientError> {
    let listener = CallbackListener::bind()
        .await
        .map_err(|e| PomeriumClientError::Callback(e.to_string()))?;
    let timeout = shared.login_timeout;
    let flow = async {
        let sign_in_url = request_sign_in_url(shared, route, &listener.redirect_uri()).await?;
        let not_shown = present(shared, sign_in_url.as_str());
        tokio::select! {
            token = listener.token() => Ok(token),
            reason = not_shown => Err(PomeriumClientError::SignInNotShown(reason)),
        }
    };
    tokio::time::timeout(timeout, flow)
        .await
        .map_err(|_| PomeriumClientError::LoginTimeout(timeout))?
}

/// `GET <origin>/.pomerium/api/v1/login?pomerium_redirect_uri=<callback>`;
/// the text body is the sign-in URL. The shared fetcher negotiates HTTP/2 by
/// ALPN where the server offers it, retries transient failures, caps the
/// body and never follows redirects.
async fn request_sign_in_url(shared: &Shared, route: &Route, redirect_uri: &str) -> Result<Url, PomeriumClientError> {
    let endpoint_error = |reason: String| PomeriumClientError::LoginEndpoint {
        host: route.host().to_owned(),
        reason,
    };
    let mut login =
        Url::parse(&format!("{}/.pomerium/api/v1/login", route.origin())).map_err(|e| endpoint_error(e.to_string()))?;
    login
        .query_pairs_mut()
        .append_pair("pomerium_redirect_uri", redirect_uri);
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::ACCEPT, HeaderValue::from_static("text/plain"));
    let body = shared
        .fetcher
        .get_with(&login, &headers)
        .await
        .map_err(|e| endpoint_error(e.to_string()))?;
    parse_sign_in_url(&body).map_err(|reason| PomeriumClientError::BadSignInUrl {
        host: route.host().to_owned(),
        reason,
    })
}

/// The body must be one absolute https URL (http only to loopback hosts):
/// it is about to be opened in the user's browser.
fn parse_sign_in_url(body: &[u8]) -> Result<Url, String> {
    let text = std::str::from_utf8(body)
        .map_err(|_| "the body is not text".to_owned())?
        .trim();
    if text.is_empty() {
        return Err("the body is empty".to_owned());
    }
    let url = Url::parse(text).map_err(|e| format!("not an absolute URL ({e})"))?;
    check_url("sign-in URL", &url)
        .map_err(|_| format!("{}: only https URLs (http to loopback) are opened", url.scheme()))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("the URL carries credentials".to_owned());
    }
    Ok(url)
}

/// Shows the URL without waiting for it to be shown: a browser that blocks
/// until it is closed (or one that loads the page to completion first) must
/// not stall the callback listener. The returned future resolves only if the
/// URL could not be shown at all (opener and stderr both failed, or the
/// opener panicked), with the reason; the sign-in then ends at once instead
/// of waiting for a callback that cannot come.
fn present(shared: &Shared, url: &str) -> impl Future<Output = String> + use<> {
    let url = url.to_owned();
    let opener = shared.opener.clone();
    let open_browser = shared.open_browser;
    let showing = tokio::task::spawn_blocking(move || {
        let opened = match opener {
            Some(opener) => opener(&url),
            None if open_browser => webbrowser::open(&url),
            None => Err(io::Error::other("browser disabled")),
        };
        opened.or_else(|error| {
            tracing::debug!(%error, "sign-in URL not opened; printing it");
            print_sign_in_url(&url)
        })
    });
    async move {
        match showing.await {
            Ok(Ok(())) => std::future::pending().await,
            Ok(Err(error)) => format!("writing it to stderr failed ({error})"),
            Err(_) => "the opener panicked".to_owned(),
        }
    }
}

/// Writes `sign in at: <url>` and a newline to stderr in one write and
/// flushes it, so a reader of a pipe gets the whole line at once; a failed
/// write is returned, never a panic (unlike `eprintln!`). Use it in an
/// [`opener`](super::PomeriumClientBuilder::opener) that prints the URL itself.
pub fn print_sign_in_url(url: &str) -> io::Result<()> {
    write_sign_in_line(&mut io::stderr().lock(), url)
}

fn write_sign_in_line(out: &mut impl Write, url: &str) -> io::Result<()> {
    let line = format!("sign in at: {url}\n");
    out.write_all(line.as_bytes())?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records each `write` call separately.
    #[derive(Default)]
    struct Writes(Vec<Vec<u8>>);

    impl Write for Writes {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    struct Closed;

    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_sign_in_line_is_one_write_and_a_failed_write_is_an_error() {
        let mut out = Writes::default();
        write_sign_in_line(&mut out, "https://auth.example/sign_in?x=1").unwrap();
        assert_eq!(out.0, [b"sign in at: https://auth.example/sign_in?x=1\n".to_vec()]);
        let error = write_sign_in_line(&mut Closed, "https://auth.example/").unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn sign_in_urls_must_be_absolute_https() {
        let ok = parse_sign_in_url(b"https://authenticate.example.com/.pomerium/sign_in?x=1\n").unwrap();
        assert_eq!(ok.host_str(), Some("authenticate.example.com"));
        assert!(
            parse_sign_in_url(b"http://127.0.0.1:9999/sign_in").is_ok(),
            "loopback http"
        );
        for bad in [
            &b""[..],
            b"   ",
            b"/.pomerium/sign_in",
            b"http://authenticate.example.com/sign_in",
            b"javascript:alert(1)",
            b"file:///etc/passwd",
            b"https://user:pw@authenticate.example.com/",
            b"\xff\xfe",
            b"<html>please sign in</html>",
        ] {
            assert!(parse_sign_in_url(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
