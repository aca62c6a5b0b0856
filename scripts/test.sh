#!/usr/bin/env bash
# The whole test suite: formatting, lints, every test (unit, integration,
# doc), the backend-less build, the docs, and the quickstart demo.
# Needs only cargo; every server the tests use runs in-process on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, all features)"
cargo clippy --all-targets --all-features -- -D warnings

step "tests with all features (both crypto backends compiled in)"
cargo test --all-features

step "unit tests with no crypto backend (config error, never a panic)"
cargo test --no-default-features --features axum,jwks --lib

step "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --all-features

step "quickstart with default features"
cargo run --quiet --example quickstart
