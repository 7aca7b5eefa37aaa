#!/usr/bin/env bash
# The benchmark harness: builds release, pins the server to one core and the load
# generator to the other, runs every scenario several times against moneykit-auth and the
# floors of the same HTTP stack, and writes the figures into docs/BENCHMARKS.md.
#
#   bench/run.sh                 # the full run (about 10 minutes)
#   bench/run.sh --quick         # one short run per scenario, to check the harness works
#   bench/run.sh --peers         # also measure node oidc-provider and @node-oauth/oauth2-server
#   bench/run.sh --help          # every option
#
# Needs: wrk (installed from the distribution's packages if missing), python3; node/npm
# for --peers. The fixed-rate latency runs use bench/loadgen, built here.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v wrk >/dev/null; then
  echo "installing wrk from the distribution's packages"
  if [ "$(id -u)" = 0 ]; then apt-get install -y -q wrk >/dev/null || (apt-get update -q && apt-get install -y -q wrk >/dev/null)
  else sudo apt-get install -y -q wrk >/dev/null; fi
fi
cargo build --release --quiet -p moneykit-auth -p bench-floor -p bench-loadgen -p bench-tls
exec python3 bench/harness.py "$@"
