#!/usr/bin/env bash
# End-to-end load: wrk against examples/resource_server on loopback, with
# keys from the dev server. Compares authenticated /me with public /health on
# the same server in the same run. Bounded: DURATION seconds per endpoint.
#
#   scripts/load.sh            # DURATION=10 CONNECTIONS=32 THREADS=1
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-1}

if ! command -v wrk >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk
fi
cargo build --release --quiet -p tower-authkit-testing --bin authkit-dev-server && cargo build --release --quiet --example resource_server

work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

# Starts a program in the background and waits (bounded) for "listening on URL".
start() {
  local log=$1; shift
  "$@" >"$log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do
    url=$(grep -o 'listening on http://[0-9.:]*' "$log" | head -1 | cut -d' ' -f3 || true)
    [ -n "$url" ] && { echo "$url"; return; }
    sleep 0.1
  done
  echo "no readiness line in $log" >&2; cat "$log" >&2; exit 1
}

idp=$(AUTHKIT_DEV_PORT=0 start "$work/idp.log" target/release/authkit-dev-server)
token=$(curl -s -u dev-client:dev-secret -d grant_type=client_credentials -d scope=reports:read "$idp/token" | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
api=$(AUTHKIT_ISSUER=$idp AUTHKIT_AUDIENCE=test-api AUTHKIT_BIND=127.0.0.1:0 start "$work/api.log" target/release/examples/resource_server)
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "$api/me")" = 200 ] || { echo "token refused" >&2; exit 1; }

run() { wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" "$@" | awk '/Requests\/sec/ {print $2}'; }
# The same request bytes everywhere: /health gets the Authorization header too
# (it is a public path, so the layer skips it), so the difference is the auth.
health=$(run -H "Authorization: Bearer $token" "$api/health")
reports=$(run -H "Authorization: Bearer $token" "$api/reports")
me=$(run -H "Authorization: Bearer $token" "$api/me")
echo "machine: $(nproc) cores; wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s; server and wrk share the machine"
echo "GET /health  (public path, same header, 2-byte body): $health req/s"
echo "GET /reports (token + scope check, small JSON):     $reports req/s"
echo "GET /me      (token, JSON of the principal):        $me req/s"
awk -v a="$reports" -v b="$health" 'BEGIN { printf "/reports / /health: %.1f%%\n", 100 * a / b }'
awk -v a="$me" -v b="$health" 'BEGIN { printf "/me / /health: %.1f%%\n", 100 * a / b }'
