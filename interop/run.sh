#!/usr/bin/env bash
# Interop suites: clients that nobody on this project wrote, against a real moneykit-auth server.
#
#   interop/run.sh [PATH_TO_BINARY]      (default: target/debug/moneykit-auth, built if missing)
#   INTEROP_ONLY="authlib pyjwt" interop/run.sh   (a subset: rust-oauth2 authlib pyjwt
#                                                 moneykit-sdk webhooks schemathesis)
#
# Starts its own server on a free loopback port with a throwaway SQLite database (or the empty
# database INTEROP_DATABASE_URL names), creates an app
# and two clients with the CLI, runs every suite against it and ends with one line,
# `N passed, N failed`, the totals over all suites. Exits non-zero if anything failed.
# See interop/README.md for what each suite covers.
set -uo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$HERE")"
START=$(date +%s)

log() { printf '\n=== %s\n' "$*"; }
die() { echo "interop: $*" >&2; echo "0 passed, 1 failed"; exit 1; }
# INTEROP_ONLY="authlib pyjwt" runs only the named suites (the server checks always run).
want() { [ -z "${INTEROP_ONLY:-}" ] || [[ " $INTEROP_ONLY " == *" $1 "* ]]; }

# --- the binary under test and the Rust suite ---------------------------------------------
if [ $# -ge 1 ]; then
  BIN="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
  [ -x "$BIN" ] || die "$1 is not an executable"
else
  BIN="$ROOT/target/debug/moneykit-auth"
  if [ ! -x "$BIN" ]; then
    log "building moneykit-auth (debug)"
    (cd "$ROOT" && cargo build -p moneykit-auth) || die "cargo build -p moneykit-auth failed"
  fi
fi
RUST_SUITE="$ROOT/target/debug/interop-rust-oauth2"
if want rust-oauth2; then
  log "building the Rust oauth2 suite"
  (cd "$ROOT" && cargo build -q -p interop-rust-oauth2) || die "cargo build -p interop-rust-oauth2 failed"
fi

# --- Python clients -------------------------------------------------------------------------
VENV="$HERE/.venv"
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  python3 -m venv "$VENV" || die "python3 -m venv failed"
fi
log "installing interop/requirements.txt"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$HERE/requirements.txt" \
  || die "pip install -r interop/requirements.txt failed"
PY="$VENV/bin/python"

# --- a server of our own ----------------------------------------------------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/moneykit-interop.XXXXXX")"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export MONEYKIT_AUTH_SECRET="interop-$("$PY" -c 'import secrets; print(secrets.token_urlsafe(32))')"
# INTEROP_DATABASE_URL runs the suites on another database (an empty PostgreSQL one, say).
export MONEYKIT_AUTH_DATABASE_URL="${INTEROP_DATABASE_URL:-sqlite://$WORK/db.sqlite}"
export RUST_LOG="${RUST_LOG:-info}"
PORT="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export BASE_URL="http://127.0.0.1:$PORT"

log "starting $BIN serve on $BASE_URL"
# Webhooks go to a receiver the webhooks suite starts on loopback, over plain HTTP.
# Rate limits stay at their defaults: the suites are well-behaved clients.
"$BIN" serve --listen "127.0.0.1:$PORT" --webhooks-allow-http --webhooks-allow-private-targets \
  --webhook-retry-base 200ms >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
# http_status URL [USER:PASS]: the status of a GET, or of a client_credentials POST when
# credentials are given; 000 when nothing answers. (Python, so that curl is not required.)
http_status() {
  "$PY" - "$@" <<'EOF' 2>/dev/null || echo 000
import sys, requests
url, creds = sys.argv[1], sys.argv[2:]
if creds:
    user, _, password = creds[0].partition(":")
    r = requests.post(url, data={"grant_type": "client_credentials"}, auth=(user, password), timeout=5)
else:
    r = requests.get(url, timeout=5)
print(r.status_code)
EOF
}
for _ in $(seq 1 150); do
  [ "$(http_status "$BASE_URL/healthz/live")" = 200 ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; die "the server exited at start"; }
  sleep 0.2
done
[ "$(http_status "$BASE_URL/healthz/live")" = 200 ] \
  || { cat "$WORK/server.log" >&2; die "the server did not answer /healthz/live within 30 s"; }

json_field() { "$PY" -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
export MK_BIN="$BIN"
APP_ID="$("$BIN" --json apps create --name interop | json_field app_id)" || die "apps create failed"
CLIENT_JSON="$("$BIN" --json clients create --app "$APP_ID" --name interop-main --scope "accounts:read transactions:read")" \
  || die "clients create failed"
CLIENT2_JSON="$("$BIN" --json clients create --app "$APP_ID" --name interop-resource-server --scope "accounts:read transactions:read")" \
  || die "clients create failed"
export APP_ID
CLIENT_ID="$(json_field client_id <<<"$CLIENT_JSON")"
CLIENT_SECRET="$(json_field client_secret <<<"$CLIENT_JSON")"
CLIENT2_ID="$(json_field client_id <<<"$CLIENT2_JSON")"
CLIENT2_SECRET="$(json_field client_secret <<<"$CLIENT2_JSON")"
export CLIENT_ID CLIENT_SECRET CLIENT2_ID CLIENT2_SECRET
# The CLI's changes reach the running server within 1 s: wait until both clients get tokens.
for _ in $(seq 1 30); do
  [ "$(http_status "$BASE_URL/auth/token" "$CLIENT_ID:$CLIENT_SECRET")" = 201 ] \
    && [ "$(http_status "$BASE_URL/auth/token" "$CLIENT2_ID:$CLIENT2_SECRET")" = 201 ] && break
  sleep 0.1
done
echo "app $APP_ID, clients $CLIENT_ID and $CLIENT2_ID"

# --- the suites -----------------------------------------------------------------------------
TOTAL_PASSED=0
TOTAL_FAILED=0
SUMMARY=()

# record NAME PASSED FAILED SECONDS
record() {
  TOTAL_PASSED=$((TOTAL_PASSED + $2))
  TOTAL_FAILED=$((TOTAL_FAILED + $3))
  SUMMARY+=("$(printf '%-16s %3d passed, %3d failed  (%ss)' "$1" "$2" "$3" "$4")")
}

# A suite that ends with its own `N passed, N failed` line. A suite that crashed before that
# line, or exited non-zero with no failure counted, counts one failure more.
run_counted() {
  local name="$1"; shift
  local t0=$SECONDS out="$WORK/$name.out"
  log "suite $name"
  "$@" 2>&1 | tee "$out"
  local code=${PIPESTATUS[0]}
  local line passed=0 failed=0
  line="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1)"
  if [ -n "$line" ]; then
    passed="${line%% passed*}"
    failed="${line#*, }"; failed="${failed%% failed*}"
  fi
  if [ -z "$line" ] || { [ "$code" -ne 0 ] && [ "$failed" -eq 0 ]; }; then
    echo "FAIL $name exited $code without counting a failure"
    failed=$((failed + 1))
  fi
  record "$name" "$passed" "$failed" $((SECONDS - t0))
}

# A pytest module; counted from its JUnit report.
run_pytest() {
  local name="$1" module="$2"
  local t0=$SECONDS xml="$WORK/$name.xml"
  log "suite $name"
  (cd "$HERE/python" && "$PY" -m pytest -p no:cacheprovider -o addopts= -q -rfE \
    --junitxml="$xml" "$module")
  local code=$?
  local counts passed=0 failed=0
  counts="$("$PY" - "$xml" <<'EOF' 2>/dev/null
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
tests = sum(int(s.get("tests", 0)) for s in suites)
bad = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
skipped = sum(int(s.get("skipped", 0)) for s in suites)
print(tests - bad - skipped, bad)
EOF
)"
  if [ -n "$counts" ]; then
    passed="${counts% *}"; failed="${counts#* }"
  fi
  if [ -z "$counts" ] || { [ "$code" -ne 0 ] && [ "$failed" -eq 0 ]; }; then
    echo "FAIL $name: pytest exited $code without counting a failure"
    failed=$((failed + 1))
  fi
  record "$name" "$passed" "$failed" $((SECONDS - t0))
}

want rust-oauth2 && run_counted rust-oauth2 "$RUST_SUITE"
want authlib && run_pytest authlib test_authlib.py
want pyjwt && run_pytest pyjwt test_pyjwt.py
want moneykit-sdk && run_pytest moneykit-sdk test_moneykit_sdk.py
want webhooks && run_pytest webhooks test_webhooks.py
want schemathesis && run_counted schemathesis "$PY" "$HERE/schemathesis/run_schemathesis.py"

# --- the server itself, after all that --------------------------------------------------------
server_checks() {
  local passed=0 failed=0
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "ok server still running"; passed=$((passed + 1))
  else
    echo "FAIL server exited during the suites"; failed=$((failed + 1))
  fi
  if grep -qiE 'panicked|stack backtrace' "$WORK/server.log"; then
    echo "FAIL server log has a panic:"; grep -iE -m 5 -A 3 'panicked' "$WORK/server.log"
    failed=$((failed + 1))
  else
    echo "ok no panic in the server log"; passed=$((passed + 1))
  fi
  # PRODUCT.md §9: no secret or full token in a log line.
  if grep -qF -e "$CLIENT_SECRET" -e "$CLIENT2_SECRET" -e "$MONEYKIT_AUTH_SECRET" "$WORK/server.log" \
    || grep -qE 'eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{20,}' "$WORK/server.log"; then
    echo "FAIL a secret or a full token appears in the server log"; failed=$((failed + 1))
  else
    echo "ok no secret or full token in the server log"; passed=$((passed + 1))
  fi
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}
run_counted server server_checks

log "summary ($(($(date +%s) - START)) s in all; server log lines: $(wc -l <"$WORK/server.log"))"
printf '%s\n' "${SUMMARY[@]}"
if [ "$TOTAL_FAILED" -ne 0 ] && [ -n "${INTEROP_SHOW_SERVER_LOG:-}" ]; then
  log "server log"; cat "$WORK/server.log"
fi
echo "$TOTAL_PASSED passed, $TOTAL_FAILED failed"
[ "$TOTAL_FAILED" -eq 0 ]
