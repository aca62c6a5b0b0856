#!/usr/bin/env bash
# The whole test suite: formatting, lints, every test (unit, integration,
# doc, interop), the RustCrypto-only and backend-less builds, the docs, and
# the quickstart demo. Needs cargo, node/npm and python3: the interop tests
# run `npm ci` (oidc-provider, pinned by tests/interop/oidc-provider's lock
# file) and create a PyJWT venv under target/ on first use; the Pomerium
# client's and the session portal's browser tests need Chromium (and
# chromedriver), the Redis session store's tests a redis-server, all installed here from Debian's packages when missing. Every
# server runs on loopback: tests stop the ones they start, and this script
# starts one redis-server on a free port and stops it when it exits.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
# CI machines can be short of disk (one run died with "No space left on
# device"): the suite builds five feature sets, so it keeps no incremental
# cache and only line tables for backtraces, which cuts target/ several-fold.
export CARGO_INCREMENTAL=0
export CARGO_PROFILE_DEV_DEBUG=line-tables-only

# Each step says how much disk is left, so a failing run shows where it went.
step() { printf '\n==> %s (disk: %s free)\n' "$*" "$(df -Ph . | awk 'NR==2 {print $4}')"; }

# Every `cargo test` run's output is kept so the closing line can sum them up.
results=$(mktemp)
redis_dir=$(mktemp -d)
cleanup() {
  if [ -f "$redis_dir/redis.pid" ]; then kill "$(cat "$redis_dir/redis.pid")" 2>/dev/null || true; fi
  rm -rf "$results" "$redis_dir"
}
trap cleanup EXIT
run_tests() { cargo test "$@" 2>&1 | tee -a "$results"; }

sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then $sudo_cmd apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "$@" >/dev/null
}

if [ -z "${AUTHKIT_CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1; then
  step "installing chromium (headless browser for the Pomerium and session portal tests)"
  apt_install chromium
fi

if [ -z "${AUTHKIT_CHROMEDRIVER:-}" ] && ! command -v chromedriver >/dev/null 2>&1; then
  step "installing chromium-driver (WebDriver for the session portal's form test)"
  apt_install chromium-driver
fi

if ! command -v redis-server >/dev/null 2>&1; then
  step "installing redis-server (the Redis session store's tests)"
  apt_install redis-server
fi

step "starting redis-server on a free loopback port (stopped when this script ends)"
redis_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
  --daemonize yes --pidfile "$redis_dir/redis.pid" --dir "$redis_dir" >/dev/null
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null; then break; fi
  sleep 0.1
done
export AUTHKIT_TEST_REDIS_URL="redis://127.0.0.1:$redis_port"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, all features; and the benches crate)"
cargo clippy --all-targets --all-features -- -D warnings
cargo clippy -p tower-authkit-benches --all-targets -- -D warnings

step "the workspace's binaries (process tests start those of other crates: the dev server, the Pomerium CLI)"
cargo build --all-features --bins

step "tests with all features (both crypto backends compiled in)"
run_tests --all-features

step "JWKS tests on the RustCrypto backend alone (the non-aws-lc verification path)"
run_tests -p tower-authkit --no-default-features --features axum,jwks,rust-crypto --test it

step "unit tests with no crypto backend (config error, never a panic)"
run_tests -p tower-authkit --no-default-features --features axum,jwks --lib

step "the Pomerium client crate and CLI alone (the core without JWKS or a crypto backend): builds warning-free"
cargo clippy -p tower-authkit-pomerium -- -D warnings

step "the test kit and dev server alone: build warning-free"
cargo clippy -p tower-authkit-testing -- -D warnings

step "sessions alone (no JWKS, no axum), and the ingress crate alone: build warning-free"
cargo clippy -p tower-authkit --no-default-features --features session -- -D warnings
cargo clippy -p authkit-ingress -- -D warnings

step "API keys alone, and metrics on the JWKS layer alone: build warning-free"
cargo clippy -p tower-authkit --no-default-features --features api-key -- -D warnings
cargo clippy -p tower-authkit --no-default-features --features axum,jwks,aws-lc-rs,metrics -- -D warnings

step "the Redis DPoP replay cache alone (no sessions): builds warning-free"
cargo clippy -p tower-authkit --no-default-features --features dpop-redis,aws-lc-rs -- -D warnings

step "public API names no third-party type beyond the allowlists in Cargo.toml (cargo-check-external-types, on nightly)"
if rustup run nightly rustc --version >/dev/null 2>&1; then
  if ! command -v cargo-check-external-types >/dev/null 2>&1; then
    cargo install --locked cargo-check-external-types --version 0.5.0
  fi
  cargo +nightly check-external-types --all-features
  for crate in authkit-ingress authkit-pomerium authkit-testing; do
    cargo +nightly check-external-types --all-features --manifest-path "crates/$crate/Cargo.toml"
  done
else
  echo "no nightly toolchain on this machine: cargo-check-external-types needs one (rustdoc JSON); not checked here"
fi

step "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --all-features

step "package contents: no CI files, scripts, interop harnesses, TLS keys, benches or integration tests"
listed=$(cargo package --list --allow-dirty -p tower-authkit 2>/dev/null)
unwanted=$(printf '%s\n' "$listed" | grep -E '^(\.ci/|scripts/|benches/|fuzz/|tests/(interop|fixtures/tls|common|process)/|tests/[^/]+\.rs$)|\.(key|pem)$' || true)
if [ -n "$unwanted" ]; then
  printf 'the package would ship files users do not need:\n%s\n' "$unwanted"
  exit 1
fi
printf '%s files, none unwanted\n' "$(printf '%s\n' "$listed" | wc -l)"
for crate in authkit-ingress tower-authkit-pomerium tower-authkit-testing; do
  # A satellite ships its sources, README and licences: nothing else.
  extra=$(cargo package --list --allow-dirty -p "$crate" 2>/dev/null \
    | grep -vE '^(src/|README\.md$|LICENSE-(APACHE|MIT)$|Cargo\.(toml|toml\.orig|lock)$|\.cargo_vcs_info\.json$)' || true)
  if [ -n "$extra" ]; then
    printf '%s would ship files users do not need:\n%s\n' "$crate" "$extra"
    exit 1
  fi
done

step "quickstart with default features"
cargo run --quiet --example quickstart

passed=$(grep -oE '^test result: .* ([0-9]+) passed' "$results" | grep -oE '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -oE '([0-9]+) failed;' "$results" | awk '{s+=$1} END {print s+0}')
printf '\ntests: %s passed, %s failed\n' "$passed" "$failed"
