#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (default 30 s each) on the stable toolchain.
#   fuzz/run.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-30}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
targets=$(cargo fuzz list)
cargo fuzz build --sanitizer none --release >/dev/null
log=$(mktemp "${TMPDIR:-/tmp}/fuzz-run.XXXXXX")
trap 'rm -f "$log"' EXIT
for t in $targets; do
  echo "fuzz $t for ${seconds}s"
  # The status of `cargo fuzz run` itself, not of a pipeline: a crash fails the script.
  status=0
  cargo fuzz run "$t" --sanitizer none --release -- -max_total_time="$seconds" -print_final_stats=1 \
    >"$log" 2>&1 || status=$?
  grep -E 'stat::number_of_executed_units|Done|ERROR|panicked|SUMMARY' "$log" || true
  test "$status" -eq 0 || { echo "fuzz target $t failed"; exit 1; }
done
echo "fuzzing passed: $(echo $targets | wc -w) targets, ${seconds}s each"
