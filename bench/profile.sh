#!/usr/bin/env bash
# Where the time of one scenario goes: a `perf` profile of the release server, pinned to
# core 0, under `wrk -t1 -c32` on core 1 — the same load as bench/run.sh.
#
#   bench/profile.sh                 # POST /auth/token with HTTP Basic
#   bench/profile.sh introspect      # GET /auth/introspect, one repeated token
#
# Prints the split by shared object (kernel / crypto / our code) and the top symbols.
# Needs perf (linux-tools) and wrk; run as root or with perf_event_paranoid <= 1.
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=${1:-token}
cargo build --release --quiet -p moneykit-auth
bin=target/release/moneykit-auth
work=$(mktemp -d /tmp/moneykit-profile.XXXXXX)
trap 'kill ${server:-} 2>/dev/null || true; rm -rf "$work"' EXIT
export MONEYKIT_AUTH_SECRET=profile-secret-profile-secret-profile-secret RUST_LOG=warn
db="sqlite://$work/p.db"
app=$($bin apps create --name Profile --database-url "$db" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["app_id"])')
read -r cid secret < <($bin clients create --app "$app" --name p --database-url "$db" --json |
  python3 -c 'import json,sys; c=json.load(sys.stdin); print(c["client_id"], c["client_secret"])')
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
taskset -c 0 $bin serve --listen 127.0.0.1:$port --database-url "$db" --shutdown-delay 0 \
  --token-rate-per-client 1e12 --token-burst-per-client 1e12 &
server=$!
for _ in $(seq 1 100); do  # up to 10 s
  curl -sf http://127.0.0.1:$port/healthz/live >/dev/null && break
  kill -0 $server 2>/dev/null || { echo "the server exited at start" >&2; exit 1; }
  sleep 0.1
done
curl -sf http://127.0.0.1:$port/healthz/live >/dev/null \
  || { echo "the server did not answer /healthz/live within 10 s" >&2; exit 1; }
basic=$(printf '%s:%s' "$cid" "$secret" | base64 -w0)
case $scenario in
  token)
    cat > "$work/s.lua" <<LUA
wrk.method = "POST"
wrk.body = "grant_type=client_credentials"
wrk.headers["Authorization"] = "Basic $basic"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
LUA
    path=/auth/token ;;
  introspect)
    token=$(curl -s -X POST -H "Authorization: Basic $basic" -d grant_type=client_credentials \
      http://127.0.0.1:$port/auth/token | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
    printf 'wrk.headers["Authorization"] = "Bearer %s"\n' "$token" > "$work/s.lua"
    path=/auth/introspect ;;
  *) echo "unknown scenario $scenario (token|introspect)" >&2; exit 2 ;;
esac
taskset -c 1 wrk -t1 -c32 -d3s -s "$work/s.lua" http://127.0.0.1:$port$path >/dev/null
taskset -c 1 wrk -t1 -c32 -d12s -s "$work/s.lua" http://127.0.0.1:$port$path > "$work/wrk.txt" &
load=$!
sleep 1
perf record -q -F 2000 -g -p $server -o "$work/perf.data" -- sleep 10 2>/dev/null
wait $load
grep -E "Requests/sec" "$work/wrk.txt"
echo "--- by shared object (self time) ---"
perf report -i "$work/perf.data" --no-children --sort dso --stdio 2>/dev/null | grep -E '^ +[0-9]' | sed -E 's/[[:space:]]+$//' | head -8
echo "--- top symbols (self time) ---"
perf report -i "$work/perf.data" --no-children --sort dso,symbol --stdio -g none 2>/dev/null | grep -E '^ +[0-9]' | sed -E 's/([[:space:]]+-)*[[:space:]]*$//' | head -25
