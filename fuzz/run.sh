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
for t in $targets; do
  echo "fuzz $t for ${seconds}s"
  cargo fuzz run "$t" --sanitizer none --release -- -max_total_time="$seconds" -print_final_stats=1 2>&1 \
    | grep -E 'stat::number_of_executed_units|Done|ERROR|panicked|SUMMARY' || true
  test "${PIPESTATUS[0]}" -eq 0 || { echo "fuzz target $t failed"; exit 1; }
done
echo "fuzzing passed: $(echo $targets | wc -w) targets, ${seconds}s each"
