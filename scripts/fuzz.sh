#!/usr/bin/env bash
# Runs every cargo-fuzz target for DURATION seconds each (default 600), one
# after the other, on one core. Needs cargo-fuzz (`cargo install cargo-fuzz`);
# RUSTC_BOOTSTRAP=1 lets the stable toolchain take the sanitizer flags.
# Crashes land in fuzz/artifacts/<target>/; add each as a regression test.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
DURATION=${DURATION:-600}
export RUSTC_BOOTSTRAP=1
for target in token_sources jws jwks ingress_path; do
  mkdir -p "corpus/$target"
  echo "==> $target for ${DURATION}s"
  cargo fuzz run -O "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$DURATION" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1
done
