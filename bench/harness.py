#!/usr/bin/env python3
"""The moneykit-auth benchmark harness (run it through bench/run.sh, which builds first).

Every figure is measured the same way: the server under test pinned to one core, wrk pinned
to the other (`-t1 -c32`), a warm-up, then N runs of D seconds; the median run is reported
with its p50/p99 latency and the server's RSS. Each run of the harness also measures the
floors of the same HTTP stack (bench/floor: bare axum, axum + one ES256 signature, axum +
one ES256 verification) and moneykit-auth's own trivial endpoint (/healthz/live), so every
figure is also a ratio to something measured minutes apart on the same machine.

Every moneykit-auth scenario is interleaved with its reference (a floor, or the baseline
endpoint): reference run, scenario run, reference run, … so each ratio compares runs taken
seconds apart. Then bench/loadgen sends a fixed 70 % of the measured peak for D seconds and
the p99 latency of that run is reported (closed-loop wrk latencies at saturation say little
about latency in service).

A scenario with any error is FAILED: a non-2xx answer or a socket error in any wrk run
(warm-up, reference runs included) or in the fixed-rate run, or a load generator that did not
finish. Its numbers would describe something other than the scenario, so a run with a failed
scenario prints which and why, leaves the document (--write) untouched and exits non-zero;
the raw results still go to bench/results/latest.json.
"""

import argparse
import base64
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target/release/moneykit-auth"
FLOOR = ROOT / "target/release/bench-floor"
TLS_LOAD = ROOT / "target/release/bench-tls"
SECRET = "bench-master-secret-0123456789abcdef0123456789"
SERVER_CORE, LOAD_CORE = "0", "1"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def basic(cid, secret):
    return "Basic " + base64.b64encode(f"{cid}:{secret}".encode()).decode()


def wait_live(url, proc, timeout=30.0):
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode} before serving {url}")
        try:
            if http("GET", url)[0] == 200:
                return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.02)
    raise SystemExit(f"{url} did not come up in {timeout} s")


def rss_kib(pid):
    """(current RSS, peak RSS) of a process, in KiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    get = lambda key: int(re.search(rf"^{key}:\s+(\d+) kB", status, re.M).group(1))
    return get("VmRSS"), get("VmHWM")


class Process:
    """A server pinned to the server core; stopped with SIGTERM."""

    def __init__(self, args, env=None, log=None):
        self.log = open(log, "w") if log else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            ["taskset", "-c", SERVER_CORE, *map(str, args)],
            env={**os.environ, **(env or {})},
            stdout=self.log,
            stderr=self.log,
        )
        self.started = time.monotonic()

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class Scenario:
    name: str
    path: str
    method: str = "GET"
    headers: dict = field(default_factory=dict)
    body: str = ""
    lua: str = ""  # a custom wrk script instead of method/headers/body
    target: str = ""  # what the result is judged against, for the report

    def script(self, workdir: Path) -> Path:
        path = workdir / f"{re.sub(r'[^a-z0-9]+', '_', self.name.lower())}.lua"
        if self.lua:
            path.write_text(self.lua)
            return path
        lines = [f'wrk.method = "{self.method}"']
        if self.body:
            lines.append(f"wrk.body = {json.dumps(self.body)}")
        for k, v in self.headers.items():
            lines.append(f'wrk.headers["{k}"] = {json.dumps(v)}')
        path.write_text("\n".join(lines) + "\n")
        return path


WRK_LATENCY = re.compile(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", re.M)
# `Socket errors: connect 0, read 3, write 0, timeout 12` (printed only when one is non-zero)
WRK_SOCKET_ERRORS = re.compile(r"Socket errors:\s*(.*)")


def to_ms(value, unit):
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(url, script, duration, connections, args=()):
    cmd = ["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{connections}", f"-d{duration}s",
           "--latency", "-s", str(script), url]
    if args:
        cmd += ["--", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    latency = {p: to_ms(v, u) for p, v, u in WRK_LATENCY.findall(out)}
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = WRK_SOCKET_ERRORS.search(out)
    socket_errors = {k: int(v) for k, v in re.findall(r"(\w+) (\d+)", errors.group(1))} if errors else {}
    return {
        "rps": rps,
        "p50_ms": latency.get("50"),
        "p99_ms": latency.get("99"),
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": socket_errors,
    }


def run_errors(label, run):
    """What went wrong in one wrk run, as text (None when nothing did)."""
    problems = []
    if run["non_2xx"]:
        problems.append(f"{run['non_2xx']} non-2xx answers")
    bad_sockets = {k: v for k, v in run["socket_errors"].items() if v}
    if bad_sockets:
        problems.append("socket errors " + ", ".join(f"{k} {v}" for k, v in bad_sockets.items()))
    return f"{label}: {'; '.join(problems)}" if problems else None


def fail(result, why):
    """Marks a scenario's result FAILED, keeping every reason."""
    result["failed"] = [*result.get("failed", []), why]


LOADGEN = ROOT / "target/release/bench-loadgen"


def fixed_rate(url, scenario, rate, duration, connections):
    """Latency at a fixed request rate (bench/loadgen: open loop, measured from each
    request's scheduled time, so stalls are not hidden)."""
    cmd = ["taskset", "-c", LOAD_CORE, str(LOADGEN), "--url", url, "--method", scenario.method,
           "--rate", str(int(rate)), "--duration", str(duration), "--connections", str(connections)]
    for k, v in scenario.headers.items():
        cmd += ["--header", f"{k}: {v}"]
    if scenario.body:
        cmd += ["--body", scenario.body]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        return {"error": f"bench-loadgen exited {out.returncode}: {out.stderr.strip()[:200]}"}
    result = json.loads(out.stdout)
    problems = [f"{result[k]} {label}" for k, label in (("non_2xx", "non-2xx answers"), ("errors", "errors"))
                if result.get(k)]
    if problems:
        result["error"] = "fixed-rate run: " + "; ".join(problems)
    return result


def with_fixed_rate(result, fixed):
    """Attaches a fixed-rate run to a scenario's result; any error in it fails the scenario."""
    result["fixed_rate"] = fixed
    if fixed.get("error"):
        fail(result, fixed["error"])


def measure(base, scenario, opts, workdir, server_pid=None, script_args_per_run=None,
            reference=None):
    """Median of `opts.runs` wrk runs of `scenario`. With `reference` (base URL, scenario),
    the reference is run before each run of the scenario, interleaved, so the ratio of
    the two medians is measured under the same conditions (this machine's throughput
    drifts by ±10 % over minutes)."""
    script = scenario.script(workdir)
    url = base + scenario.path
    warm_args = script_args_per_run(-1) if script_args_per_run else ()
    problems = [run_errors("warm-up", wrk(url, script, opts.warmup, opts.connections, warm_args))]
    ref_runs, runs = [], []
    if reference:
        ref_base, ref_scenario = reference
        ref_script, ref_url = ref_scenario.script(workdir), ref_base + ref_scenario.path
        problems.append(run_errors(f"reference {ref_scenario.name} warm-up",
                                   wrk(ref_url, ref_script, opts.warmup, opts.connections)))
    for i in range(opts.runs):
        if reference:
            ref_runs.append(wrk(ref_url, ref_script, opts.duration, opts.connections))
        args = script_args_per_run(i) if script_args_per_run else ()
        runs.append(wrk(url, script, opts.duration, opts.connections, args))
    median = sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]
    result = {**median, "runs_rps": [round(r["rps"]) for r in runs]}
    if reference:
        ref_median = sorted(r["rps"] for r in ref_runs)[len(ref_runs) // 2]
        result["reference"] = ref_scenario.name
        result["reference_rps"] = ref_median
        result["reference_runs_rps"] = [round(r["rps"]) for r in ref_runs]
    if server_pid:
        result["rss_kib"], result["peak_rss_kib"] = rss_kib(server_pid)
    problems += [run_errors(f"run {i + 1}", r) for i, r in enumerate(runs)]
    if reference:
        problems += [run_errors(f"reference {ref_scenario.name} run {i + 1}", r)
                     for i, r in enumerate(ref_runs)]
    for why in filter(None, problems):
        fail(result, why)
    return result


# --- the system under test -----------------------------------------------------------------------

class Bench:
    def __init__(self, opts):
        self.opts = opts
        self.work = Path(tempfile.mkdtemp(prefix="moneykit-bench."))
        self.db = f"sqlite://{self.work / 'bench.db'}"
        self.env = {"MONEYKIT_AUTH_SECRET": SECRET, "RUST_LOG": "warn"}
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.server = None

    def cli(self, *args):
        out = subprocess.run([BIN, *args, "--database-url", self.db, "--json"],
                             env={**os.environ, **self.env}, capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"moneykit-auth {' '.join(args)} failed: {out.stderr}")
        return json.loads(out.stdout)

    def start(self, extra=()):
        # The per-client token limit stays on, far above what one client asks for here, so
        # its cost is measured without it refusing anything.
        self.server = Process([BIN, "serve", "--listen", f"127.0.0.1:{self.port}",
                               "--database-url", self.db, "--shutdown-delay", "0",
                               "--token-rate-per-client", "1e12", "--token-burst-per-client", "1e12",
                               *extra],
                              self.env, self.work / "server.log")
        return wait_live(self.base + "/healthz/live", self.server.proc)

    def stop(self):
        if self.server:
            self.server.stop()
            self.server = None

    def token(self, cid, secret, path="/auth/token"):
        status, body = http("POST", self.base + path, b"grant_type=client_credentials",
                            {"Authorization": basic(cid, secret),
                             "Content-Type": "application/x-www-form-urlencoded"})
        assert status in (200, 201), body
        return json.loads(body)["access_token"]


# Lua expressions that send `line` as a bearer token, or as a form body.
BEARER_REQUEST = 'wrk.format("GET", nil, {["Authorization"] = "Bearer " .. line})'
FORM_REQUEST = ('wrk.format("POST", nil, {["Content-Type"] = "application/x-www-form-urlencoded"}, '
                'line)')


def fresh_lines_lua(path: Path, per_run: int, request: str):
    """A wrk script that sends each line of a file once, as `request` (Lua, with the line
    in `line`) builds it: run i uses lines [i*per_run, (i+1)*per_run); the warm-up (-1),
    and a run without arguments (a floor that does not mind repeats), the last slice."""
    return f"""
local lines = {{}}
local i = 0
function init(args)
  local run = tonumber(args[1] or "-1")
  local first = (run + 1) * {per_run}
  local n = 0
  for line in io.lines("{path}") do
    if n >= first and n < first + {per_run} then lines[#lines + 1] = line end
    n = n + 1
  end
end
function request()
  i = i + 1
  if i > #lines then i = 1 end
  local line = lines[i]
  return {request}
end
"""


def fresh_tokens_lua(path: Path, per_run: int):
    """Each token of a file presented once as a bearer token (see `fresh_lines_lua`)."""
    return fresh_lines_lua(path, per_run, BEARER_REQUEST)


def fresh_bodies_lua(path: Path, per_run: int):
    """Each form body of a file POSTed once (see `fresh_lines_lua`)."""
    return fresh_lines_lua(path, per_run, FORM_REQUEST)


def collect_tokens_lua(out: Path):
    return f"""
wrk.method = "POST"
wrk.body = "grant_type=client_credentials"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
local f = io.open("{out}", "a")
function response(status, headers, body)
  local t = string.match(body, '"access_token":"([^"]+)"')
  if t then f:write(t, "\\n") end
end
"""


FLOOR_HELLO = Scenario("floor: axum hello", "/hello")
FLOOR_SIGN_NAME = "floor: axum + ES256 JWT sign"
FLOOR_VERIFY_NAME = "floor: axum + ES256 JWT verify"


def floor_sign(like: Scenario) -> Scenario:
    """The signing floor, sent exactly the request `like` sends (headers and body)."""
    return Scenario(FLOOR_SIGN_NAME, "/sign", "POST", dict(like.headers), like.body)


def floor_verify(floor_base, work: Path, count=100_000) -> Scenario:
    """The verification floor, sent distinct bearer JWTs of the floor's own key (the same
    token every time would flatter it: the variable-time parts of ECDSA verification run
    warm on identical input)."""
    tokens = work / "floor-tokens.txt"
    if not tokens.exists():
        collector = work / "collect-floor.lua"
        collector.write_text(collect_tokens_lua(tokens))
        while not tokens.exists() or sum(1 for _ in open(tokens)) < count:
            subprocess.run(["taskset", "-c", LOAD_CORE, "wrk", "-t1", "-c32", "-d3s", "-s",
                            str(collector), floor_base + "/sign"], check=True, capture_output=True)
    return Scenario(FLOOR_VERIFY_NAME, "/verify", lua=cycle_tokens_lua(tokens))


def cycle_lines_lua(path: Path, request: str):
    """A wrk script that cycles through the lines of a file, each sent as `request` (Lua,
    the line in `line`) builds it."""
    return f"""
local lines = {{}}
local i = 0
for line in io.lines("{path}") do lines[#lines + 1] = line end
function request()
  i = i + 1
  if i > #lines then i = 1 end
  local line = lines[i]
  return {request}
end
"""


def cycle_tokens_lua(path: Path):
    return cycle_lines_lua(path, BEARER_REQUEST)


def run_moneykit(opts, results, floor_base):
    b = Bench(opts)
    app = b.cli("apps", "create", "--name", "Bench")
    client = b.cli("clients", "create", "--app", app["app_id"], "--name", "bench",
                   "--scope", "accounts:read transactions:read")
    rs = b.cli("clients", "create", "--app", app["app_id"], "--name", "resource-server")
    cid, secret = client["client_id"], client["client_secret"]
    # A client mid-rotation with the most secrets it may hold, presenting its oldest:
    # the check compares against every slot either way, so this should cost the same.
    rotating = b.cli("clients", "create", "--app", app["app_id"], "--name", "rotating")
    for _ in range(4):
        b.cli("clients", "add-secret", rotating["client_id"])
    b.start()
    token = b.token(cid, secret)
    form = "application/x-www-form-urlencoded"
    baseline = Scenario("baseline /healthz/live", "/healthz/live")
    floor = lambda s: (floor_base, s)
    own = lambda s: (b.base, s)
    token_basic = Scenario("POST /auth/token (Basic)", "/auth/token", "POST",
                           {"Authorization": basic(cid, secret), "Content-Type": form},
                           "grant_type=client_credentials")
    token_body = Scenario("POST /auth/token (body credentials)", "/auth/token", "POST",
                          {"Content-Type": form},
                          urllib.parse.urlencode({"grant_type": "client_credentials",
                                                  "client_id": cid, "client_secret": secret}))
    token_five = Scenario("POST /auth/token (Basic, 5 secrets)", "/auth/token", "POST",
                          {"Authorization": basic(rotating["client_id"], rotating["client_secret"]),
                           "Content-Type": form}, "grant_type=client_credentials")
    oauth2_token = Scenario("POST /oauth2/token", "/oauth2/token", "POST",
                            {"Authorization": basic(cid, secret), "Content-Type": form},
                            "grant_type=client_credentials")
    scenarios = [
        (baseline, floor(FLOOR_HELLO)),
        (token_basic, floor(floor_sign(token_basic))),
        (token_five, floor(floor_sign(token_five))),
        (token_body, floor(floor_sign(token_body))),
        (oauth2_token, floor(floor_sign(oauth2_token))),
        (Scenario("GET /auth/introspect (one repeated token)", "/auth/introspect",
                  headers={"Authorization": f"Bearer {token}"}), own(baseline)),
        (Scenario("POST /oauth2/introspect", "/oauth2/introspect", "POST",
                  {"Authorization": basic(rs["client_id"], rs["client_secret"]),
                   "Content-Type": form}, urllib.parse.urlencode({"token": token})), own(baseline)),
        (Scenario("GET /.well-known/jwks.json", "/.well-known/jwks.json"), own(baseline)),
    ]
    for s, reference in scenarios:
        print(f"  {s.name} …", flush=True)
        results[s.name] = measure(b.base, s, opts, b.work, b.server.pid, reference=reference)
        with_fixed_rate(results[s.name], fixed_rate(
            b.base + s.path, s, 0.7 * results[s.name]["rps"], opts.duration, opts.connections))
    results["idle_rss_kib"] = rss_kib(b.server.pid)[0]

    # Distinct fresh tokens: issued beforehand, then the server restarted so nothing it
    # remembers about them helps; each token is presented once.
    print("  GET /auth/introspect (distinct fresh tokens) …", flush=True)
    token_file = b.work / "tokens.txt"
    verify_rps = results.get(FLOOR_VERIFY_NAME, {}).get("rps", 20_000)
    per_run = int(verify_rps * 1.2 * (opts.duration + 1)) + 10_000
    collector = b.work / "collect.lua"
    collector.write_text(collect_tokens_lua(token_file))
    while not token_file.exists() or sum(1 for _ in open(token_file)) < per_run * (opts.runs + 1):
        subprocess.run(["taskset", "-c", LOAD_CORE, "wrk", "-t1", "-c32", "-d5s", "-s",
                        str(collector), "-H", f"Authorization: {basic(cid, secret)}",
                        b.base + "/auth/token"], check=True, capture_output=True)
    b.stop()
    b.start()
    fresh = Scenario("GET /auth/introspect (distinct fresh tokens)", "/auth/introspect",
                     lua=fresh_tokens_lua(token_file, per_run))
    results[fresh.name] = measure(b.base, fresh, opts, b.work, b.server.pid,
                                  script_args_per_run=lambda i: (str(i),),
                                  reference=floor(floor_verify(floor_base, FLOOR_WORK)))
    b.stop()
    shutil.rmtree(b.work, ignore_errors=True)


FLOOR_VERIFY_SIGN_NAME = "floor: axum + ES256 verify + sign"
ASSERTION_FLOOD = "assertion flood (memory)"


def run_secretless(opts, results, database_url=None):
    """`private_key_jwt`: each request presents a fresh client assertion (one ES256
    verification, then one signature for the token), judged against the verify+sign floor
    sent the same bodies. With `database_url` (PostgreSQL), the replay write is included.
    Then a flood of assertions naming unknown clients and unknown kids, with the server's
    RSS sampled before and after, to show that memory stays flat."""
    b = Bench(opts)
    on = "SQLite"
    if database_url:
        b.db, on = database_url, "PostgreSQL"
    keys = b.work / "keys"
    subprocess.run([FLOOR, "keygen", str(keys)], check=True)
    app = b.cli("apps", "create", "--name", "Secretless")
    client = b.cli("clients", "create", "--app", app["app_id"], "--name", "keyed",
                   "--scope", "accounts:read transactions:read",
                   "--auth-method", "private_key_jwt", "--jwks-file", str(keys / "jwks.json"))
    # Assertions are made before the runs, so they may live for the whole section.
    b.start(["--assertion-max-lifetime", "2h", "--auth-failures-per-address", "0",
             "--auth-failures-per-client", "0"])
    sign = results.get(FLOOR_SIGN_NAME, {}).get("rps", 20_000)
    verify = results.get(FLOOR_VERIFY_NAME, {}).get("rps", 20_000)
    expected = 1 / (1 / sign + 1 / verify)
    per_run = int(expected * 2 * (opts.duration + 1)) + 10_000
    print(f"  making {per_run * (opts.runs + 1):,} client assertions …", flush=True)
    subprocess.run([FLOOR, "assertions", str(keys), client["client_id"], b.base,
                    str(per_run * (opts.runs + 1)), "7000"], check=True)
    bodies = keys / "assertions.txt"
    port = free_port()
    floor = Process([FLOOR, f"127.0.0.1:{port}", str(keys / "key.pk8")])
    floor_base = f"http://127.0.0.1:{port}"
    wait_live(floor_base + "/hello", floor.proc)
    try:
        name = f"POST /auth/token (private_key_jwt, {on})"
        print(f"  {name} …", flush=True)
        s = Scenario(name, "/auth/token", lua=fresh_bodies_lua(bodies, per_run))
        reference = Scenario(FLOOR_VERIFY_SIGN_NAME, "/verify-sign", lua=fresh_bodies_lua(bodies, per_run))
        results[name] = measure(b.base, s, opts, b.work, b.server.pid,
                                script_args_per_run=lambda i: (str(i),),
                                reference=(floor_base, reference))
        if not database_url:
            run_assertion_flood(opts, results, b, keys, client["client_id"])
    finally:
        floor.stop()
        b.stop()
        shutil.rmtree(b.work, ignore_errors=True)


DPOP_FLOOD = "DPoP proof flood (memory)"


def dpop_lua(path: Path, per_run: int, authorization: str):
    """Each DPoP proof of a file sent once, with a client-credentials request."""
    request = ('wrk.format("POST", nil, {["Authorization"] = ' + json.dumps(authorization) +
               ', ["Content-Type"] = "application/x-www-form-urlencoded", ["DPoP"] = line}, '
               '"grant_type=client_credentials")')
    return fresh_lines_lua(path, per_run, request)


def run_dpop(opts, results, database_url=None):
    """DPoP: each token request carries a fresh proof (one ES256 verification of a key
    parsed from the proof, its thumbprint, the replay check, then the token's signature),
    judged against the verify+sign floor sent the same requests. With `database_url`
    (PostgreSQL) the replay write is included. Then a flood of distinct valid proofs, the
    server's RSS sampled before and after: the replay set is what grows, up to its cap."""
    b = Bench(opts)
    on = "SQLite"
    if database_url:
        b.db, on = database_url, "PostgreSQL"
    keys = b.work / "keys"
    subprocess.run([FLOOR, "keygen", str(keys)], check=True)
    app = b.cli("apps", "create", "--name", "Dpop")
    client = b.cli("clients", "create", "--app", app["app_id"], "--name", "dpop",
                   "--scope", "accounts:read transactions:read")
    authorization = basic(client["client_id"], client["client_secret"])
    # Proofs are made before the runs, so they must stay within the window for the section.
    # No failure budget: the flood's second pass is all replays, each refused as such.
    b.start(["--dpop-proof-window", "2h", "--auth-failures-per-address", "0"])
    sign = results.get(FLOOR_SIGN_NAME, {}).get("rps", 20_000)
    verify = results.get(FLOOR_VERIFY_NAME, {}).get("rps", 20_000)
    per_run = int(1 / (1 / sign + 1 / verify) * 2 * (opts.duration + 1)) + 10_000
    print(f"  making {per_run * (opts.runs + 1):,} DPoP proofs …", flush=True)
    subprocess.run([FLOOR, "proofs", str(keys), b.base + "/auth/token",
                    str(per_run * (opts.runs + 1))], check=True)
    proofs = keys / "proofs.txt"
    port = free_port()
    floor = Process([FLOOR, f"127.0.0.1:{port}", str(keys / "key.pk8")])
    floor_base = f"http://127.0.0.1:{port}"
    wait_live(floor_base + "/hello", floor.proc)
    try:
        name = f"POST /auth/token (DPoP, {on})"
        print(f"  {name} …", flush=True)
        s = Scenario(name, "/auth/token", lua=dpop_lua(proofs, per_run, authorization))
        reference = Scenario(FLOOR_VERIFY_SIGN_NAME, "/verify-sign",
                             lua=dpop_lua(proofs, per_run, authorization))
        results[name] = measure(b.base, s, opts, b.work, b.server.pid,
                                script_args_per_run=lambda i: (str(i),),
                                reference=(floor_base, reference))
        if not database_url:
            run_dpop_flood(opts, results, b, keys, authorization, results[name]["rps"])
    finally:
        floor.stop()
        b.stop()
        shutil.rmtree(b.work, ignore_errors=True)


def run_dpop_flood(opts, results, b, keys, authorization, rate):
    """200 000 distinct valid proofs sent at full speed for as long as one pass takes at
    the measured `rate` (each accepted and remembered), then the same again (each a
    replay, refused): the server's RSS before and after each pass."""
    subprocess.run([FLOOR, "proofs", str(keys), b.base + "/auth/token", "200000"], check=True)
    script = b.work / "dpop-flood.lua"
    script.write_text(dpop_lua(keys / "proofs.txt", 200_000, authorization))
    seconds = max(opts.duration, int(200_000 / max(rate, 1)) + 1)
    before = rss_kib(b.server.pid)[0]
    samples = []
    for _ in range(2):
        out = subprocess.run(["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{opts.connections}",
                              f"-d{seconds}s", "-s", str(script), b.base + "/auth/token"],
                             capture_output=True, text=True, check=True).stdout
        requests = int(re.search(r"(\d+) requests in", out).group(1))
        samples.append((requests, rss_kib(b.server.pid)[0]))
    results[DPOP_FLOOD] = {"rss_before_kib": before, "samples": samples}


def tls_load(mode, addr, certs, seconds, connections, client, request=None):
    """One `bench-tls` run on the load core: its JSON result."""
    cmd = ["taskset", "-c", LOAD_CORE, str(TLS_LOAD), mode, addr, str(certs), str(seconds),
           str(connections)] + (["client"] if client else []) + ([str(request)] if request else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=seconds + 60)
    return json.loads(out.stdout)


def run_mtls(opts, results):
    """TLS with and without a client certificate: new connections per second (one request
    each), and token requests over kept-alive connections — a secret client over plain TLS,
    a tls_client_auth client over mutual TLS. Each pair interleaved run by run; median."""
    b = Bench(opts)
    certs = b.work / "certs"
    subprocess.run([TLS_LOAD, "certs", str(certs)], check=True)
    app = b.cli("apps", "create", "--name", "Mtls")
    secret_client = b.cli("clients", "create", "--app", app["app_id"], "--name", "secret",
                          "--scope", "accounts:read")
    cert_client = b.cli("clients", "create", "--app", app["app_id"], "--name", "cert",
                        "--scope", "accounts:read", "--tls-subject-dn", "CN=bench,O=Acme")
    b.server = Process([BIN, "serve", "--listen", f"127.0.0.1:{b.port}", "--database-url", b.db,
                        "--shutdown-delay", "0", "--token-rate-per-client", "1e12",
                        "--token-burst-per-client", "1e12", "--max-connections-per-address", "0",
                        "--tls-cert", certs / "server.pem", "--tls-key", certs / "server.key",
                        "--client-ca-file", certs / "ca.pem"], b.env, b.work / "server.log")
    addr = f"127.0.0.1:{b.port}"
    for _ in range(300):
        try:
            if tls_load("handshakes", addr, certs, 1, 1, False)["requests"] > 0:
                break
        except subprocess.CalledProcessError:
            pass
        time.sleep(0.1)
    time.sleep(1.5)  # the CLI's clients reach the server within a second
    host = f"Host: {addr}\r\n"
    plain = b.work / "plain.http"
    plain.write_text("POST /auth/token HTTP/1.1\r\n" + host +
                     f"Authorization: {basic(secret_client['client_id'], secret_client['client_secret'])}\r\n"
                     "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 29\r\n\r\n"
                     "grant_type=client_credentials")
    body = f"grant_type=client_credentials&client_id={cert_client['client_id']}"
    mutual = b.work / "mutual.http"
    mutual.write_text("POST /auth/token HTTP/1.1\r\n" + host +
                      "Content-Type: application/x-www-form-urlencoded\r\n"
                      f"Content-Length: {len(body)}\r\n\r\n{body}")
    try:
        pairs = [
            ("new TLS connections (no client certificate)",
             "new mutual-TLS connections (client certificate)",
             lambda client: tls_load("handshakes", addr, certs, opts.duration, opts.connections, client)),
            ("POST /auth/token over kept-alive TLS (secret)",
             "POST /auth/token over kept-alive mutual TLS (tls_client_auth)",
             lambda client: tls_load("requests", addr, certs, opts.duration, opts.connections, client,
                                     mutual if client else plain)),
        ]
        for without, with_cert, run in pairs:
            print(f"  {without} / {with_cert} …", flush=True)
            run(False), run(True)  # warm-up
            runs = {without: [], with_cert: []}
            for _ in range(opts.runs):
                runs[without].append(run(False))
                runs[with_cert].append(run(True))
            for name, rs in runs.items():
                median = sorted(rs, key=lambda r: r["rps"])[len(rs) // 2]
                result = {"rps": median["rps"], "runs_rps": [round(r["rps"]) for r in rs],
                          "tls": True}
                bad = sum(r["errors"] + r["non_2xx"] for r in rs)
                if bad:
                    fail(result, f"{bad} errors or non-2xx answers")
                results[name] = result
            results[with_cert]["reference"] = without
            results[with_cert]["reference_rps"] = results[without]["rps"]
    finally:
        b.stop()
        shutil.rmtree(b.work, ignore_errors=True)


def run_assertion_flood(opts, results, b, keys, client_id):
    """Assertions naming random unknown client ids, and assertions of a real client naming
    random unknown kids, sent at full speed (all refused, no failure budget in the way):
    the server's RSS before, after one pass and after a second one."""
    flood = keys / "flood.txt"
    subprocess.run([FLOOR, "forged", str(keys), client_id, b.base, "200000"], check=True)
    script = b.work / "flood.lua"
    script.write_text(cycle_bodies_lua(flood))
    before = rss_kib(b.server.pid)[0]
    samples = []
    for _ in range(2):
        out = subprocess.run(["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{opts.connections}",
                              f"-d{opts.duration}s", "-s", str(script), b.base + "/auth/token"],
                             capture_output=True, text=True, check=True).stdout
        requests = int(re.search(r"(\d+) requests in", out).group(1))
        samples.append((requests, rss_kib(b.server.pid)[0]))
    results[ASSERTION_FLOOD] = {"rss_before_kib": before, "samples": samples}


def cycle_bodies_lua(path: Path):
    return cycle_lines_lua(path, FORM_REQUEST)


FLOOR_WORK = Path(tempfile.mkdtemp(prefix="moneykit-floor-tokens."))


def start_floor():
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    floor = Process([FLOOR, f"127.0.0.1:{port}"])
    wait_live(base + "/hello", floor.proc)
    return floor, base


def run_floors(opts, results, base):
    work = Path(tempfile.mkdtemp(prefix="moneykit-floor."))
    like_token = Scenario("", "/", "POST", {"Authorization": basic("live_x", "mks_x"),
                                            "Content-Type": "application/x-www-form-urlencoded"},
                          "grant_type=client_credentials")
    for s in [FLOOR_HELLO, floor_sign(like_token), floor_verify(base, FLOOR_WORK)]:
        print(f"  {s.name} …", flush=True)
        results[s.name] = measure(base, s, opts, work)
        # The floors' own latency at 70 % of their peak: what this machine allows at all.
        fixed = s if not s.lua else Scenario(s.name, s.path, headers={
            "Authorization": "Bearer " + (FLOOR_WORK / "floor-tokens.txt").read_text().split("\n", 1)[0]})
        with_fixed_rate(results[s.name], fixed_rate(
            base + s.path, fixed, 0.7 * results[s.name]["rps"], opts.duration, opts.connections))
    shutil.rmtree(work, ignore_errors=True)


def run_scale(opts, results, floor_base, clients=100_000):
    """Startup time, RSS and token throughput with `clients` clients in the database."""
    b = Bench(opts)
    app = b.cli("apps", "create", "--name", "Scale")
    client = b.cli("clients", "create", "--app", app["app_id"], "--name", "probe")
    secret = "mks_bench-scale-secret-0123456789abcdefghijklmnopq"
    digest = hashlib.sha256(secret.encode()).digest()
    now = int(time.time())
    with sqlite3.connect(b.work / "bench.db") as db:
        db.executemany(
            "INSERT INTO clients (id, app_id, name, scopes, token_ttl_secs, secret_hash, created_at, disabled_at)"
            " VALUES (?, ?, ?, ?, NULL, ?, ?, NULL)",
            ((f"live_scale{i:019d}", app["app_id"], f"scale {i}", "accounts:read", digest, now)
             for i in range(clients - 1)))
        db.executemany(
            "INSERT INTO client_secrets (id, client_id, hash, created_at) VALUES (?, ?, ?, ?)",
            ((f"sec_scale{i:019d}", f"live_scale{i:019d}", digest, now)
             for i in range(clients - 1)))
    startup = b.start()
    idle = rss_kib(b.server.pid)[0]
    print(f"  POST /auth/token with {clients} clients …", flush=True)
    s = Scenario(f"POST /auth/token ({clients} clients)", "/auth/token", "POST",
                 {"Authorization": basic(f"live_scale{clients // 2:019d}", secret),
                  "Content-Type": "application/x-www-form-urlencoded"},
                 "grant_type=client_credentials")
    results[s.name] = measure(b.base, s, opts, b.work, b.server.pid,
                              reference=(floor_base, floor_sign(s)))
    results["scale"] = {"clients": clients, "startup_s": round(startup, 3), "idle_rss_kib": idle}
    b.stop()
    shutil.rmtree(b.work, ignore_errors=True)
    del client


# --- peers ---------------------------------------------------------------------------------

def run_peers(opts, results):
    peers_dir = ROOT / "bench/peers"
    scratch = ROOT / "bench/.peers"
    scratch.mkdir(exist_ok=True)
    # ES modules resolve packages next to the importing file, so the scripts run from the
    # scratch folder that holds node_modules.
    for name in ["package.json", "oidc_provider.mjs", "node_oauth2_server.mjs"]:
        shutil.copy(peers_dir / name, scratch / name)
    if not (scratch / "node_modules").exists():
        print("  npm install (oidc-provider, @node-oauth/oauth2-server) …", flush=True)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=scratch,
                       check=True)
    for script, scenarios in [
        ("oidc_provider.mjs", [
            ("peer: oidc-provider client_credentials (JWT)", "/token", "resource=urn:bench:jwt"),
            ("peer: oidc-provider client_credentials (opaque)", "/token", ""),
            ("peer: oidc-provider introspection", "/token/introspection", "INTROSPECT"),
            ("peer: oidc-provider JWKS", "/jwks", None),
        ]),
        ("node_oauth2_server.mjs", [
            ("peer: @node-oauth/oauth2-server client_credentials (opaque)", "/token", ""),
        ]),
    ]:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = Process(["node", scratch / script, str(port)])
        try:
            wait_live(base + "/health", proc.proc)
            work = Path(tempfile.mkdtemp(prefix="moneykit-peer."))
            auth = {"Authorization": basic("bench", "bench-secret"),
                    "Content-Type": "application/x-www-form-urlencoded"}
            for name, path, extra in scenarios:
                print(f"  {name} …", flush=True)
                if extra is None:
                    s = Scenario(name, path)
                elif extra == "INTROSPECT":
                    _, body = http("POST", base + "/token", b"grant_type=client_credentials", auth)
                    tok = json.loads(body)["access_token"]
                    s = Scenario(name, path, "POST", auth, urllib.parse.urlencode({"token": tok}))
                else:
                    body = "grant_type=client_credentials" + (f"&{extra}" if extra else "")
                    s = Scenario(name, path, "POST", auth, body)
                results[name] = measure(base, s, opts, work, proc.pid)
            shutil.rmtree(work, ignore_errors=True)
        finally:
            proc.stop()


# --- report ----------------------------------------------------------------------------------

def cumulative(samples):
    """[(requests in pass, rss)] → [(requests so far, rss)]."""
    total, out = 0, []
    for requests, rss in samples:
        total += requests
        out.append((total, rss))
    return out


def ratio(a, b):
    return f"{a / b:.2f}×" if a and b else "—"


def counterpart(peer_scenario: str) -> str:
    """The moneykit-auth scenario a peer scenario is compared with."""
    if "introspection" in peer_scenario:
        return "POST /oauth2/introspect"
    if "JWKS" in peer_scenario:
        return "GET /.well-known/jwks.json"
    return "POST /oauth2/token"


def failed_scenarios(results) -> dict:
    """{scenario: [why, …]} for every scenario that had an error."""
    return {k: v["failed"] for k, v in results.items() if isinstance(v, dict) and v.get("failed")}


def report(results, opts) -> str:
    def row(name, label=""):
        r = results.get(name)
        if not r:
            return None
        fixed = r.get("fixed_rate") or {}
        p99_fixed = f"{fixed['p99_ms']:.2f}" if fixed.get("p99_ms") is not None else "—"
        rss = f"{r['peak_rss_kib'] / 1024:.1f}" if r.get("peak_rss_kib") else "—"
        if r.get("reference_rps"):
            ratio_text = f"{ratio(r['rps'], r['reference_rps'])} of {r['reference']} ({r['reference_rps']:,.0f})"
        elif name.startswith("peer: ") and counterpart(name) in results:
            theirs = counterpart(name)
            ratio_text = f"`{theirs}` is {results[theirs]['rps'] / r['rps']:.1f}× this"
        else:
            ratio_text = label or "—"
        if r.get("failed"):
            name = f"**FAILED** {name}"
        return (f"| {name} | {r['rps']:,.0f} | {1e6 / r['rps']:.1f} | {ratio_text} | "
                f"{r['p50_ms']:.2f} / {r['p99_ms']:.2f} | {p99_fixed} | {rss} |")

    cpu = subprocess.run(["sh", "-c", "lscpu | sed -n 's/^Model name:[ ]*//p'"],
                         capture_output=True, text=True).stdout.strip()
    lines = [
        BEGIN,
        f"Run {results.get('_run_at', '?')} on {os.cpu_count()} vCPU "
        f"({cpu}); server on core {SERVER_CORE}, `wrk -t1 -c{opts.connections}` on core "
        f"{LOAD_CORE}; {opts.runs} runs × {opts.duration} s after a {opts.warmup} s warm-up, "
        f"median run shown. Each ratio divides by the reference's median over runs "
        f"interleaved with the scenario's (its req/s in brackets). \"p99 at 70 %\" is "
        f"`bench/loadgen` at a fixed 70 % of the median rate, latency from each request's "
        f"scheduled time. RSS is the server's peak.",
        "",
        "| scenario | req/s | µs/req | ratio (same run) | p50 / p99 ms (saturated) | p99 ms at 70 % | RSS MiB |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    names = ["floor: axum hello", FLOOR_SIGN_NAME, FLOOR_VERIFY_NAME,
             "baseline /healthz/live", "POST /auth/token (Basic)",
             "POST /auth/token (Basic, 5 secrets)", "POST /auth/token (body credentials)", "POST /oauth2/token",
             "GET /auth/introspect (one repeated token)",
             "GET /auth/introspect (distinct fresh tokens)", "POST /oauth2/introspect",
             "GET /.well-known/jwks.json"]
    names += [k for k in results if k.startswith("POST /auth/token (private_key_jwt")]
    names += [k for k in results if k.startswith("POST /auth/token (DPoP")]
    names += [k for k in results if k.startswith("POST /auth/token (") and "clients)" in k]
    names += [k for k in results if k.startswith("peer: ")]
    for name in names:
        line = row(name)
        if line:
            lines.append(line)
    if "scale" in results:
        s = results["scale"]
        one = results.get("POST /auth/token (Basic)", {})
        many = results.get(f"POST /auth/token ({s['clients']} clients)", {})
        growth = ""
        if one.get("reference_rps") and many.get("reference_rps"):
            r1 = one["rps"] / one["reference_rps"]
            rn = many["rps"] / many["reference_rps"]
            growth = (f" Token throughput relative to the sign floor: {rn:.2f} with "
                      f"{s['clients']:,} clients vs {r1:.2f} with one ({rn / r1:.0%}).")
        lines += ["", f"With {s['clients']:,} clients in the database: startup (process start to "
                  f"first 200 from /healthz/live) {s['startup_s']} s, idle RSS "
                  f"{s['idle_rss_kib'] / 1024:.1f} MiB.{growth}"]
    if ASSERTION_FLOOD in results:
        f = results[ASSERTION_FLOOD]
        passes = ", ".join(f"{rss / 1024:.1f} MiB after {total:,} requests"
                           for total, rss in cumulative(f["samples"]))
        lines += ["", f"A flood of client assertions naming unknown client ids and unknown kids "
                  f"(all refused): RSS {f['rss_before_kib'] / 1024:.1f} MiB before, {passes}."]
    if DPOP_FLOOD in results:
        f = results[DPOP_FLOOD]
        passes = ", ".join(f"{rss / 1024:.1f} MiB after {total:,} requests"
                           for total, rss in cumulative(f["samples"]))
        lines += ["", f"A flood of 200 000 distinct valid DPoP proofs, sent once (each accepted "
                  f"and remembered) then again (each refused as a replay): RSS "
                  f"{f['rss_before_kib'] / 1024:.1f} MiB before, {passes}."]
    tls_rows = [k for k in results if isinstance(results[k], dict) and results[k].get("tls")]
    if tls_rows:
        lines += ["", "| TLS scenario (bench/tls, same core pinning) | per second | ratio to the one "
                  "without a client certificate |", "|---|---:|---|"]
        for k in tls_rows:
            r = results[k]
            rel = ratio(r["rps"], r["reference_rps"]) if r.get("reference_rps") else "—"
            name = f"**FAILED** {k}" if r.get("failed") else k
            lines.append(f"| {name} | {r['rps']:,.0f} | {rel} |")
    if "idle_rss_kib" in results:
        lines += ["", f"RSS after the load scenarios with a few clients: "
                  f"{results['idle_rss_kib'] / 1024:.1f} MiB."]
    failures = [f"- {k}: {why}" for k, whys in failed_scenarios(results).items() for why in whys]
    if failures:
        lines += ["", "FAILED (errors during the measurement; these numbers do not count):", *failures]
    lines.append(END)
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--duration", type=int, default=10, help="seconds per run")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--quick", action="store_true", help="1 run × 3 s: checks the harness, not the server")
    p.add_argument("--peers", action="store_true", help="also measure the node peers (npm install)")
    p.add_argument("--no-scale", action="store_true", help="skip the 100 000-client run")
    p.add_argument("--only", default="floors,moneykit,secretless,sender,scale",
                   help="comma-separated parts to run: floors, moneykit, secretless, sender "
                        "(DPoP and mutual TLS), scale (peers: --peers)")
    p.add_argument("--postgres", metavar="URL",
                   help="also run the private_key_jwt and DPoP scenarios on this (empty) "
                        "PostgreSQL database, replay write included")
    p.add_argument("--write", default=str(ROOT / "docs/BENCHMARKS.md"),
                   help="file whose bench:begin/end section is replaced ('-' to only print)")
    p.add_argument("--report-only", action="store_true",
                   help="rewrite the report from bench/results/latest.json without measuring")
    opts = p.parse_args()
    if opts.report_only:
        saved = json.loads((ROOT / "bench/results/latest.json").read_text())
        opts.runs, opts.duration, opts.warmup = saved.pop("_opts", [3, 10, 3])
        write_report(saved, opts)
        return
    if opts.quick:
        opts.runs, opts.duration, opts.warmup = 1, 3, 1
    if (os.cpu_count() or 1) < 2:
        sys.exit("the harness needs two cores: one for the server, one for the load")
    results = {}
    floor, floor_base = start_floor()
    try:
        parts = set(opts.only.split(","))
        if "floors" in parts:
            print("floors (bench-floor):")
            run_floors(opts, results, floor_base)
        if "moneykit" in parts:
            print("moneykit-auth:")
            run_moneykit(opts, results, floor_base)
        if "secretless" in parts:
            print("secretless clients:")
            run_secretless(opts, results)
            if opts.postgres:
                run_secretless(opts, results, opts.postgres)
        if "sender" in parts:
            print("sender-constrained tokens:")
            run_dpop(opts, results)
            if opts.postgres:
                run_dpop(opts, results, opts.postgres)
            run_mtls(opts, results)
        if "scale" in parts and not opts.no_scale:
            print("scale:")
            run_scale(opts, results, floor_base)
    finally:
        floor.stop()
    if opts.peers:
        print("peers:")
        run_peers(opts, results)
    out_dir = ROOT / "bench/results"
    out_dir.mkdir(exist_ok=True)
    results["_run_at"] = time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())
    saved = {**results, "_opts": [opts.runs, opts.duration, opts.warmup]}
    (out_dir / "latest.json").write_text(json.dumps(saved, indent=2))
    write_report(results, opts)


def write_report(results, opts):
    table = report(results, opts)
    print()
    print(table)
    failed = failed_scenarios(results)
    if failed:
        print(f"\n{len(failed)} scenario(s) FAILED:", file=sys.stderr)
        for name, whys in failed.items():
            print(f"  FAILED {name}: {'; '.join(whys)}", file=sys.stderr)
        if opts.write != "-":
            print(f"{opts.write} left as it was: a run with a failed scenario is not published",
                  file=sys.stderr)
        sys.exit(1)
    if opts.write != "-":
        doc = Path(opts.write)
        text = doc.read_text() if doc.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
        if BEGIN in text:
            text = text[: text.index(BEGIN)] + table + text[text.index(END) + len(END):]
        else:
            text += "\n" + table + "\n"
        doc.write_text(text)
        print(f"\nwrote {doc}")


if __name__ == "__main__":
    main()
