#!/usr/bin/env bash
# Before/after figures from one run: builds the verify bench at two git
# revisions, BASE and HEAD, each in a worktree of its own, with the *same*
# bench code (HEAD's benches/verify.rs is used for both), then runs each
# filter on BASE and on HEAD back to back, alternating, ROUNDS times.
# Machines drift; alternating within one run keeps the two sides comparable.
#
#   scripts/bench_compare.sh BASE HEAD [ROUNDS] [FILTER...]
#   scripts/bench_compare.sh bc3856d 25ad761 2 repeated fresh rejection memory
#
# Needs the bench code to compile against BASE's public API. Build output
# stays in /tmp/authkit-bench-target-{base,head} for the next run. The
# summary at the end lists each bench's median per side and round.
set -euo pipefail

usage="usage: scripts/bench_compare.sh BASE HEAD [ROUNDS] [FILTER...]"
base=${1:?$usage}
head_rev=${2:?$usage}
rounds=${3:-2}
shift $(( $# >= 3 ? 3 : 2 ))
filters=("$@")
[ ${#filters[@]} -gt 0 ] || filters=(repeated fresh rejection memory)

repo=$(git rev-parse --show-toplevel)
out=${BENCH_COMPARE_OUT:-/tmp/authkit-bench-compare.log}
criterion_args=(--warm-up-time 1 --measurement-time 3)
declare -A dirs=([base]=/tmp/authkit-bench-base [head]=/tmp/authkit-bench-head)
declare -A revs=([base]=$base [head]=$head_rev)

cleanup() {
    for side in base head; do
        git -C "$repo" worktree remove --force "${dirs[$side]}" >/dev/null 2>&1 || true
    done
}
trap cleanup EXIT
git -C "$repo" worktree prune
export CARGO_INCREMENTAL=0
for side in base head; do
    rm -rf "${dirs[$side]}"
    git -C "$repo" worktree add --detach --force "${dirs[$side]}" "${revs[$side]}" >/dev/null
    git -C "$repo" show "$head_rev:benches/verify.rs" >"${dirs[$side]}/benches/verify.rs"
    (cd "${dirs[$side]}" && CARGO_TARGET_DIR=/tmp/authkit-bench-target-$side \
        cargo bench -q -p tower-authkit-benches --bench verify --no-run)
done

: >"$out"
for round in $(seq 1 "$rounds"); do
    for filter in "${filters[@]}"; do
        for side in base head; do
            echo "### round $round, $side, $filter" | tee -a "$out"
            (cd "${dirs[$side]}" && CARGO_TARGET_DIR=/tmp/authkit-bench-target-$side \
                cargo bench -q -p tower-authkit-benches --bench verify -- \
                "${criterion_args[@]}" --noplot "$filter" 2>&1) | tee -a "$out"
        done
    done
done

echo
echo "== summary (median per bench; base = $(git -C "$repo" rev-parse --short "$base"), head = $(git -C "$repo" rev-parse --short "$head_rev"))"
awk '
    /^### round/ { round = $3; side = $4; sub(",", "", round); sub(",", "", side); next }
    /^memory_per_token/ { print "round " round " " side ": " $0; next }
    /time:/ {
        at = index($0, "time:"); before = substr($0, 1, at - 1); gsub(/^ +| +$/, "", before)
        if (before != "") name = before
        rest = substr($0, at + 5); gsub(/[][]/, "", rest); split(rest, f, " ")
        print "round " round " " side ": " name "  " f[3] " " f[4]; next
    }
    /^[^ ]/ && !/^(Benchmarking|Found|Gnuplot|change|No change|Performance|Change|###)/ { name = $0 }
' "$out"
