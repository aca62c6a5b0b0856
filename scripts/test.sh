#!/usr/bin/env bash
# The whole test suite: formatting, lints, every test (unit, integration,
# doc, interop), the RustCrypto-only and backend-less builds, the docs, and
# the quickstart demo. Needs cargo, node/npm and python3: the interop tests
# run `npm ci` (oidc-provider, pinned by tests/interop/oidc-provider's lock
# file) and create a PyJWT venv under target/ on first use; the Pomerium
# client's browser test needs Chromium, installed here from Debian's packages
# when missing. Every server runs on loopback and is stopped by the test that
# started it.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

step() { printf '\n==> %s\n' "$*"; }

# Every `cargo test` run's output is kept so the closing line can sum them up.
results=$(mktemp)
trap 'rm -f "$results"' EXIT
run_tests() { cargo test "$@" 2>&1 | tee -a "$results"; }

if [ -z "${AUTHKIT_CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1; then
  step "installing chromium (headless browser for the Pomerium sign-in test)"
  sudo_cmd=""
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq chromium >/dev/null
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, all features)"
cargo clippy --all-targets --all-features -- -D warnings

step "tests with all features (both crypto backends compiled in)"
run_tests --all-features

step "JWKS tests on the RustCrypto backend alone (the non-aws-lc verification path)"
run_tests --no-default-features --features axum,jwks,rust-crypto --test jwks --test pipeline

step "unit tests with no crypto backend (config error, never a panic)"
run_tests --no-default-features --features axum,jwks --lib

step "Pomerium client and CLI alone (no JWKS, no crypto backend): builds warning-free"
cargo clippy --no-default-features --features cli -- -D warnings

step "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --all-features

step "quickstart with default features"
cargo run --quiet --example quickstart

passed=$(grep -oE '^test result: .* ([0-9]+) passed' "$results" | grep -oE '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -oE '([0-9]+) failed;' "$results" | awk '{s+=$1} END {print s+0}')
printf '\ntests: %s passed, %s failed\n' "$passed" "$failed"
