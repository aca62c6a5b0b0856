//! Running the examples and binaries as processes, as a user would.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub mod raw;
#[cfg(feature = "http-client")]
pub mod visitor;
#[cfg(feature = "http-client")]
pub mod webdriver;

/// `target/<profile>/examples/<name>`, built by `cargo test` alongside the tests.
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is not built: run the whole suite (`cargo test` builds examples), or `cargo build --examples` first",
        path.display()
    );
    path
}

/// `target/<profile>/<name>`: a binary of another crate of this workspace
/// (built by a workspace-wide `cargo test`).
pub fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path = profile_dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: run the whole suite from the workspace root (`cargo test --all-features`)",
        path.display()
    );
    path
}

/// A child process killed when the test ends, pass or fail.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts an example with `envs`, waits for its readiness line, returns its base URL.
pub fn start(name: &str, envs: &[(&str, &str)]) -> (Running, String) {
    start_program(example(name), envs)
}

pub fn start_program(program: PathBuf, envs: &[(&str, &str)]) -> (Running, String) {
    let (running, base, _banner) = launch(program, envs);
    (running, base)
}

/// `authkit-ingress serve` (the ingress crate's binary) with `envs`.
pub fn start_ingress(envs: &[(&str, &str)]) -> (Running, String) {
    let (running, base, _banner) = launch_with(workspace_binary("authkit-ingress"), &["serve"], envs);
    (running, base)
}

/// Like [`start_program`], also returning the lines printed before the
/// readiness line.
pub fn launch(program: PathBuf, envs: &[(&str, &str)]) -> (Running, String, Vec<String>) {
    launch_with(program, &[], envs)
}

/// [`launch`] with command-line arguments.
pub fn launch_with(program: PathBuf, args: &[&str], envs: &[(&str, &str)]) -> (Running, String, Vec<String>) {
    let mut command = Command::new(program);
    command
        .args(args)
        .env("AUTHKIT_BIND", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (key, value) in envs {
        command.env(key, value);
    }
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let running = Running(child);
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut banner = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("listening on ") {
                let _ = sender.send((url.to_owned(), banner));
                return;
            }
            banner.push(line);
        }
    });
    let (base, banner) = receiver.recv_timeout(Duration::from_secs(30)).expect("readiness line");
    (running, base, banner)
}
