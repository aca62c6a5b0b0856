//! The `authkit-pomerium` binary: output format, sign-in prompt, exit codes
//! and the disk cache, against the test kit's fake Pomerium route.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tower_authkit_testing::FakePomerium;

const BIN: &str = env!("CARGO_BIN_EXE_authkit-pomerium");

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: Vec<String>,
}

/// Runs the CLI; when it prints `sign in at: <URL>`, plays the user by
/// loading that URL (following the redirect to the CLI's listener) unless
/// `sign_in` is false. Bounded: the child is killed after 30 s.
async fn run_cli(args: &[&str], sign_in: bool) -> Run {
    run_cli_with_browser(args, sign_in, None).await
}

async fn run_cli_with_browser(args: &[&str], sign_in: bool, browser: Option<&str>) -> Run {
    let mut command = Command::new(BIN);
    match browser {
        Some(browser) => command.env("BROWSER", browser),
        None => command.env_remove("BROWSER"),
    };
    let mut child: Child = command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run authkit-pomerium");
    let (lines_tx, lines_rx) = mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut stderr_lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let code = loop {
        while let Ok(line) = lines_rx.try_recv() {
            if sign_in && let Some(url) = line.strip_prefix("sign in at: ") {
                let page = reqwest::get(url).await.expect("follow the sign-in URL");
                assert_eq!(page.status(), 200);
            }
            stderr_lines.push(line);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("authkit-pomerium did not finish; stderr: {stderr_lines:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // The reader thread ends with the child's stderr.
    while let Ok(line) = lines_rx.recv_timeout(Duration::from_secs(2)) {
        stderr_lines.push(line);
    }
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    Run {
        code,
        stdout,
        stderr: stderr_lines,
    }
}

#[tokio::test]
async fn prints_the_status_line_and_headers_but_no_body() {
    let route = FakePomerium::start().await;
    let run = run_cli(&["--no-browser", &route.url("/hello")], true).await;
    assert_eq!(run.code, Some(0), "stderr: {:?}", run.stderr);

    let mut lines = run.stdout.lines();
    assert_eq!(lines.next(), Some("200 OK"));
    let headers: Vec<&str> = lines.collect();
    assert!(
        headers.contains(&"content-type: text/plain; charset=utf-8"),
        "{headers:?}"
    );
    for header in &headers {
        let (name, _) = header.split_once(": ").expect("name: value");
        assert!(
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        );
    }
    assert!(!run.stdout.contains("GET /hello"), "no body");
    assert_eq!(run.stderr.len(), 1, "{:?}", run.stderr);
    assert!(run.stderr[0].starts_with(&format!("sign in at: {}/.pomerium/sign_in?", route.origin())));
    assert_eq!(route.logins(), 1);
}

#[tokio::test]
async fn any_http_response_exits_zero() {
    let route = FakePomerium::start().await;
    let run = run_cli(&["--no-browser", &route.url("/forbidden")], true).await;
    assert_eq!(run.code, Some(0));
    assert_eq!(run.stdout.lines().next(), Some("403 Forbidden"));
}

#[tokio::test]
async fn sign_in_timeout_fails_with_one_line() {
    let route = FakePomerium::start().await;
    let run = run_cli(&["--no-browser", "--timeout", "1", &route.url("/")], false).await;
    assert_eq!(run.code, Some(1));
    assert_eq!(run.stdout, "");
    assert_eq!(run.stderr.len(), 2, "{:?}", run.stderr);
    assert!(run.stderr[0].starts_with("sign in at: "));
    assert_eq!(run.stderr[1], "authkit-pomerium: sign-in did not complete within 1s");
}

#[tokio::test]
async fn network_failure_and_bad_sign_in_url_fail_with_one_line() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/", closed.local_addr().unwrap());
    drop(closed);
    let run = run_cli(&["--no-browser", &dead_url], false).await;
    assert_eq!(run.code, Some(1));
    assert_eq!(run.stderr.len(), 1, "{:?}", run.stderr);
    assert!(
        run.stderr[0].starts_with("authkit-pomerium: pomerium login endpoint of 127.0.0.1 failed: connection refused"),
        "{}",
        run.stderr[0]
    );

    let route = FakePomerium::start().await;
    route.sign_in_url("ftp://authenticate.example.com/");
    let run = run_cli(&["--no-browser", &route.url("/")], false).await;
    assert_eq!(run.code, Some(1));
    assert_eq!(run.stderr.len(), 1, "{:?}", run.stderr);
    assert!(
        run.stderr[0].contains("returned a bad sign-in URL"),
        "{}",
        run.stderr[0]
    );

    let run = run_cli(&["--no-browser", "not a url"], false).await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr[0].starts_with("authkit-pomerium: invalid URL"),
        "{:?}",
        run.stderr
    );
}

#[tokio::test]
async fn cache_dir_lets_the_next_run_skip_sign_in() {
    let route = FakePomerium::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("tokens");
    let cache = cache.to_str().unwrap();
    let url = route.url("/cached");

    let first = run_cli(&["--no-browser", "--cache-dir", cache, &url], true).await;
    assert_eq!(first.code, Some(0), "{:?}", first.stderr);
    let second = run_cli(&["--no-browser", "--cache-dir", cache, &url], false).await;
    assert_eq!(second.code, Some(0), "{:?}", second.stderr);
    assert!(second.stderr.is_empty(), "no sign-in needed: {:?}", second.stderr);
    assert_eq!(second.stdout.lines().next(), Some("200 OK"));
    assert_eq!(route.logins(), 1);

    let memory_only = run_cli(&["--no-browser", &url], true).await;
    assert_eq!(memory_only.code, Some(0));
    assert_eq!(route.logins(), 2, "without --cache tokens live only in memory");
}

/// Without `--no-browser` the CLI opens the browser named by `$BROWSER`
/// (through the `webbrowser` crate): here a script running headless Chromium,
/// which signs in by following the redirect to the CLI's listener.
#[cfg(unix)]
#[tokio::test]
async fn browser_from_the_browser_variable_completes_the_sign_in() {
    let chromium = std::env::var("AUTHKIT_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "{chromium} not found: install it with `apt-get install -y chromium` (scripts/test.sh does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let dom = dir.path().join("dom.html");
    let script = dir.path().join("browser.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nexec {chromium} --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \\\n  \
             --disable-background-networking --disable-component-update --disable-sync --timeout=20000 \\\n  \
             --user-data-dir={profile} --dump-dom \"$1\" > {dom} 2>/dev/null\n",
            profile = dir.path().join("profile").display(),
            dom = dom.display(),
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();

    let route = FakePomerium::start().await;
    let run = run_cli_with_browser(&[&route.url("/via-browser")], false, Some(script.to_str().unwrap())).await;
    assert_eq!(run.code, Some(0), "{:?}", run.stderr);
    assert_eq!(run.stdout.lines().next(), Some("200 OK"));
    assert!(run.stderr[0].starts_with("sign in at: "), "{:?}", run.stderr);
    assert_eq!(route.sign_ins(), 1);

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let page = std::fs::read_to_string(&dom).unwrap_or_default();
        if page.contains("Signed in, you can close this window.") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "chromium did not render the callback page: {page:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Regression: the sign-in URL was printed from a detached thread with
/// `eprintln!`; when stderr could not be written (a closed pipe), that thread
/// panicked unseen and the sign-in waited for a callback that could never
/// come, until the login timeout. Now the failure ends the run at once.
#[tokio::test]
async fn a_sign_in_url_that_cannot_be_shown_fails_at_once_instead_of_hanging() {
    let route = FakePomerium::start().await;
    let mut child = Command::new(BIN)
        .args(["--no-browser", "--timeout", "60", &route.url("/closed-stderr")])
        .env_remove("BROWSER")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run authkit-pomerium");
    // Nobody will read the prompt: close the pipe's read end.
    drop(child.stderr.take());
    let started = Instant::now();
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if started.elapsed() > Duration::from_secs(20) {
            child.kill().unwrap();
            panic!("authkit-pomerium waited for a sign-in nobody could see");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(code, Some(1));
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    assert_eq!(route.sign_ins(), 0);
}
