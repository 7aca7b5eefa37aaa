#!/usr/bin/env bash
# Interop suites: clients that nobody on this project wrote, against a real moneykit-auth server.
#
#   interop/run.sh [PATH_TO_BINARY]      (default: target/debug/moneykit-auth, built if missing)
#   INTEROP_ONLY="authlib pyjwt" interop/run.sh   (a subset: rust-oauth2 authlib pyjwt
#                                                 moneykit-sdk webhooks secretless sender openapi
#                                                 schemathesis)
#
# Each suite gets a server of its own: a throwaway SQLite database (or, when
# INTEROP_DATABASE_URL names an existing PostgreSQL database, a new database beside it), a
# port the server picks itself, and an app and two clients created with the CLI. After each
# suite its server is checked (still running, no panic, no secret in its log) and stopped.
# Ends with one line, `N passed, N failed`, the totals over all suites. Exits non-zero if
# anything failed. See interop/README.md for what each suite covers.
set -uo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$HERE")"
START=$(date +%s)

log() { printf '\n=== %s\n' "$*"; }
die() { echo "interop: $*" >&2; echo "0 passed, 1 failed"; exit 1; }
# INTEROP_ONLY="authlib pyjwt" runs only the named suites.
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
# The sender suite drives the moneykit SDK's example API (its access token verifier).
export RESOURCE_SERVER_BIN="$ROOT/target/debug/examples/resource_server"
if want sender; then
  log "building the moneykit SDK's example resource server"
  (cd "$ROOT" && cargo build -q -p moneykit --features axum --example resource_server) \
    || die "cargo build -p moneykit --example resource_server failed"
fi
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

# --- a server of our own for each suite -----------------------------------------------------
# Every suite gets its own server (own database, own port) and its own app and clients: a
# suite that rotates the signing key (pyjwt) or spends the per-address failure budget
# (schemathesis' fuzzing, the wrong-secret tests) changes nothing that another suite sees,
# and the order of the suites does not matter.
WORK="$(mktemp -d "${TMPDIR:-/tmp}/moneykit-interop.XXXXXX")"
SERVER_PID=""
PG_DATABASES=()
stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
  fi
  SERVER_PID=""
}
cleanup() {
  stop_server
  local db
  for db in "${PG_DATABASES[@]}"; do
    psql "$INTEROP_DATABASE_URL" -qX -c "DROP DATABASE \"$db\"" >/dev/null 2>&1
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export MONEYKIT_AUTH_SECRET="interop-$("$PY" -c 'import secrets; print(secrets.token_urlsafe(32))')"
export RUST_LOG="${RUST_LOG:-info}"
export MK_BIN="$BIN"
if [ -n "${INTEROP_DATABASE_URL:-}" ]; then
  [[ "$INTEROP_DATABASE_URL" == postgres://* || "$INTEROP_DATABASE_URL" == postgresql://* ]] \
    || die "INTEROP_DATABASE_URL must be a postgres:// URL (SQLite runs need none)"
  command -v psql >/dev/null \
    || die "INTEROP_DATABASE_URL is set: psql is needed to create a database for each suite"
fi

# database_url NAME: sets DATABASE_URL_RESULT to a new, empty database for suite NAME. SQLite:
# a file in $WORK/NAME. PostgreSQL: INTEROP_DATABASE_URL names an existing database, used only
# to connect; suite NAME gets `<that name>_<NAME>` beside it, created empty now and dropped at
# the end.
database_url() {
  local name="$1"
  DATABASE_URL_RESULT=""
  if [ -z "${INTEROP_DATABASE_URL:-}" ]; then
    DATABASE_URL_RESULT="sqlite://$WORK/$name/db.sqlite"
    return 0
  fi
  local db url
  read -r db url < <("$PY" - "$INTEROP_DATABASE_URL" "$name" <<'PYEOF'
import re, sys, urllib.parse
base, suite = sys.argv[1], sys.argv[2]
u = urllib.parse.urlsplit(base)
db = (u.path.lstrip("/") or "postgres") + "_" + re.sub(r"[^a-z0-9]", "_", suite.lower())
print(db, urllib.parse.urlunsplit(u._replace(path="/" + db)))
PYEOF
)
  [ -n "$db" ] || return 1
  PG_DATABASES+=("$db")
  psql "$INTEROP_DATABASE_URL" -qX -v ON_ERROR_STOP=1 -c "SET client_min_messages = warning" \
    -c "DROP DATABASE IF EXISTS \"$db\"" -c "CREATE DATABASE \"$db\"" >&2 || return 1
  DATABASE_URL_RESULT="$url"
}

# http_status URL [USER:PASS]: the status of a GET, or of a client_credentials POST when
# credentials are given; 000 when nothing answers. (Python, so that curl is not required.)
http_status() {
  "$PY" - "$@" <<'PYEOF' 2>/dev/null || echo 000
import sys, requests
url, creds = sys.argv[1], sys.argv[2:]
if creds:
    user, _, password = creds[0].partition(":")
    r = requests.post(url, data={"grant_type": "client_credentials"}, auth=(user, password), timeout=5)
else:
    r = requests.get(url, timeout=5)
print(r.status_code)
PYEOF
}
json_field() { "$PY" -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# start_server NAME: a new database and server for suite NAME, then an app and two clients made
# with the CLI. The server binds port 0 and the address is read back from its `listening` log
# line, so nothing can take the port between choosing it and binding it. Exports what the
# suites read: BASE_URL, MONEYKIT_AUTH_DATABASE_URL, APP_ID, CLIENT_ID/CLIENT_SECRET,
# CLIENT2_ID/CLIENT2_SECRET (MK_BIN and MONEYKIT_AUTH_SECRET are exported above).
# Returns non-zero (after a FAIL line and the server's log) when the server or the CLI fails.
start_server() {
  local name="$1" dir="$WORK/$1"
  mkdir -p "$dir"
  SERVER_LOG="$dir/server.log"
  : >"$SERVER_LOG"
  no_start() { echo "FAIL [$name] $*"; cat "$SERVER_LOG" >&2; stop_server; return 1; }
  database_url "$name" || { no_start "cannot create a database through INTEROP_DATABASE_URL"; return 1; }
  export MONEYKIT_AUTH_DATABASE_URL="$DATABASE_URL_RESULT"
  # Webhooks go to a receiver the webhooks suite starts on loopback, over plain HTTP, and
  # the secretless suite publishes a client's JWKS there too (`clients create --jwks-uri`).
  # Rate limits stay at their defaults: the suites are well-behaved clients.
  "$BIN" --log-format text serve --listen 127.0.0.1:0 --shutdown-delay 0 --webhooks-allow-http \
    --webhooks-allow-private-targets --webhook-retry-base 200ms \
    --jwks-allow-http --jwks-allow-private-targets >"$SERVER_LOG" 2>&1 &
  SERVER_PID=$!
  local addr=""
  for _ in $(seq 1 300); do
    # `<time>  INFO listening address=127.0.0.1:PORT issuer=…` (the admin listener, when
    # there is one, logs `admin API listening`, which this does not match).
    addr="$(sed -n 's/^.* INFO listening address=\([^ ]*\) .*$/\1/p' "$SERVER_LOG" | head -n 1)"
    [ -n "$addr" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { no_start "the server exited at start"; return 1; }
    sleep 0.1
  done
  [ -n "$addr" ] || { no_start "the server logged no listening address within 30 s"; return 1; }
  export BASE_URL="http://$addr"
  [ "$(http_status "$BASE_URL/healthz/live")" = 200 ] \
    || { no_start "$BASE_URL/healthz/live does not answer 200"; return 1; }

  APP_ID="$("$BIN" --json apps create --name "interop-$name" | json_field app_id)" \
    || { no_start "apps create failed"; return 1; }
  local c1 c2
  c1="$("$BIN" --json clients create --app "$APP_ID" --name "interop-$name" \
    --scope "accounts:read transactions:read")" || { no_start "clients create failed"; return 1; }
  c2="$("$BIN" --json clients create --app "$APP_ID" --name "interop-$name-resource-server" \
    --scope "accounts:read transactions:read")" || { no_start "clients create failed"; return 1; }
  CLIENT_ID="$(json_field client_id <<<"$c1")"
  CLIENT_SECRET="$(json_field client_secret <<<"$c1")"
  CLIENT2_ID="$(json_field client_id <<<"$c2")"
  CLIENT2_SECRET="$(json_field client_secret <<<"$c2")"
  export APP_ID CLIENT_ID CLIENT_SECRET CLIENT2_ID CLIENT2_SECRET
  # The CLI's changes reach the running server within 1 s: wait until both clients get tokens.
  local ready=""
  for _ in $(seq 1 50); do
    if [ "$(http_status "$BASE_URL/auth/token" "$CLIENT_ID:$CLIENT_SECRET")" = 201 ] \
      && [ "$(http_status "$BASE_URL/auth/token" "$CLIENT2_ID:$CLIENT2_SECRET")" = 201 ]; then
      ready=1
      break
    fi
    sleep 0.1
  done
  [ -n "$ready" ] || { no_start "the new clients got no token within 5 s"; return 1; }
  echo "[$name] server on $BASE_URL ($MONEYKIT_AUTH_DATABASE_URL), app $APP_ID, clients $CLIENT_ID and $CLIENT2_ID"
}

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
  counts="$("$PY" - "$xml" <<'PYEOF' 2>/dev/null
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
tests = sum(int(s.get("tests", 0)) for s in suites)
bad = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
skipped = sum(int(s.get("skipped", 0)) for s in suites)
print(tests - bad - skipped, bad)
PYEOF
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

# The suite's server, after the suite: still running, no panic in its log, and no client
# secret, master secret or full token in it. Counted as suite `server`.
SERVER_PASSED=0
SERVER_FAILED=0
SERVER_SECONDS=0
check_server() {
  local name="$1" t0=$SECONDS
  ok() { echo "ok [$name] $*"; SERVER_PASSED=$((SERVER_PASSED + 1)); }
  bad() { echo "FAIL [$name] $*"; SERVER_FAILED=$((SERVER_FAILED + 1)); }
  log "server checks after $name"
  if kill -0 "$SERVER_PID" 2>/dev/null; then ok "server still running"; else bad "server exited during the suite"; fi
  if grep -qiE 'panicked|stack backtrace' "$SERVER_LOG"; then
    bad "server log has a panic:"; grep -iE -m 5 -A 3 'panicked' "$SERVER_LOG"
  else
    ok "no panic in the server log"
  fi
  if grep -qF -e "$CLIENT_SECRET" -e "$CLIENT2_SECRET" -e "$MONEYKIT_AUTH_SECRET" "$SERVER_LOG" \
    || grep -qE 'eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{20,}' "$SERVER_LOG"; then
    bad "a secret or a full token appears in the server log"
  else
    ok "no secret or full token in the server log"
  fi
  SERVER_SECONDS=$((SERVER_SECONDS + SECONDS - t0))
}

# suite NAME RUNNER ARGS…: NAME's own server, the suite, the server checks, the server stopped.
suite() {
  local name="$1"; shift
  want "$name" || return 0
  local failed_before=$((TOTAL_FAILED + SERVER_FAILED))
  log "server for $name"
  if ! start_server "$name"; then
    record "$name" 0 1 0
    return 0
  fi
  "$@"
  check_server "$name"
  stop_server
  if [ $((TOTAL_FAILED + SERVER_FAILED)) -ne "$failed_before" ] && [ -n "${INTEROP_SHOW_SERVER_LOG:-}" ]; then
    log "server log of $name"; cat "$SERVER_LOG"
  fi
}

suite rust-oauth2 run_counted rust-oauth2 "$RUST_SUITE"
suite authlib run_pytest authlib test_authlib.py
suite pyjwt run_pytest pyjwt test_pyjwt.py
suite moneykit-sdk run_pytest moneykit-sdk test_moneykit_sdk.py
suite webhooks run_pytest webhooks test_webhooks.py
suite secretless run_pytest secretless test_secretless.py
suite sender run_pytest sender test_sender.py
suite openapi run_pytest openapi test_openapi.py
suite schemathesis run_counted schemathesis "$PY" "$HERE/schemathesis/run_schemathesis.py"
[ "${#SUMMARY[@]}" -gt 0 ] || die "INTEROP_ONLY=\"${INTEROP_ONLY:-}\" names no suite"
record server "$SERVER_PASSED" "$SERVER_FAILED" "$SERVER_SECONDS"

log "summary ($(($(date +%s) - START)) s in all)"
printf '%s\n' "${SUMMARY[@]}"
echo "$TOTAL_PASSED passed, $TOTAL_FAILED failed"
[ "$TOTAL_FAILED" -eq 0 ]
