#!/usr/bin/env python3
"""Many moneykit-auth replicas on one PostgreSQL: propagation, idle cost, throughput.

Starts N `moneykit-auth serve` replicas (default 8) on 127.0.0.1, all on one PostgreSQL
database with the same master secret and issuer, and measures (the idle cost first, before
anything has happened; the many clients last):

1. **Propagation** of a change made at replica 1 to *all* replicas, over `--trials` trials:
   a client disabled (and enabled again), a client secret added and revoked (when the
   build has `clients add-secret`/`revoke-secret`; otherwise reported as not available),
   a token revoked (`POST /oauth2/revoke`), and a signing key rotated with `now`.
   Every replica is probed from its own thread on a kept-alive connection, every
   `--probe-interval-ms`, from the moment the write is sent until the replica shows the
   change, for at most `--probe-timeout` seconds (then the trial is a failure).
   Times are taken from when the write was sent and from when it returned; a replica can
   show a change before the write's caller has its answer, so times from the return can be
   negative.
2. **Idle cost**: with the replicas idle for `--idle` seconds, the PostgreSQL connections
   they hold (pg_stat_activity, attributed to replicas by their sockets' local ports), the
   database's transactions per second (pg_stat_database xact_commit + xact_rollback, read
   from another database so the measuring connection adds nothing), the statements each
   replica sends (on our own cluster only: `log_statement = all` for the window, counted by
   client port), the replicas' RSS and CPU, and the PostgreSQL server's CPU. Then
   `--changes` changes in a row (a client disabled, enabled, …): what one change costs every
   replica and the database beyond idling.
3. **Token throughput**: `POST /auth/token` from the same load generator (one `wrk -t1` per
   replica, `--connections` spread over them) aimed at all N replicas, then all at replica
   1, interleaved, `--runs` runs of `--duration` seconds each. The machine is CPU-bound, so
   besides req/s it reports the replicas' CPU time (/proc/PID/stat utime + stime) and
   requests per CPU-second of the replicas: the per-core comparison.
4. **Many clients** (last; `--scale-clients`, default 100 000, 0 to skip): that many clients
   inserted in one transaction (the triggers off, the revision bumped by hand, so every
   replica reloads everything); how long until every replica has loaded them, their RSS,
   the idle cost with them (over one 30 s housekeeping), and `--scale-trials` disable and
   enable trials: what one change costs every replica with that many clients.

Usage:

    bench/replicas.py --binary target/release/moneykit-auth              # 8 replicas, own cluster
    bench/replicas.py --binary … --replicas 8 --trials 20 --write docs/BENCHMARKS.md
    bench/replicas.py --binary … --postgres postgres://user@127.0.0.1:5432/db  # an existing,
                                                         # empty database (no statement log)
    bench/replicas.py --binary … --only propagation --via admin,cli --trials 5

Without `--postgres` it starts a throwaway PostgreSQL cluster (initdb into a temporary
directory, as the `postgres` user when run as root, default settings but for the port) and
removes it at the end. `--write FILE` replaces the section between
`<!-- replicas:begin -->` and `<!-- replicas:end -->` in FILE (or appends the section);
`--write -` prints it. Raw results go to `--json` (default bench/results/replicas.json).
Needs python3 (stdlib only), psql, wrk, and the PostgreSQL server binaries without
`--postgres`. Every wait is bounded; the whole run is stopped after `--max-seconds`.
"""

import argparse
import base64
import ctypes
import glob
import http.client
import json
import math
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECRET = "replicas-bench-master-secret-0123456789abcdef"
ADMIN_TOKEN = "replicas-bench-admin-token-0123456789abcdef"
ISSUER = "https://auth.replicas.test"
DB_NAME = "moneykit"
BEGIN, END = "<!-- replicas:begin -->", "<!-- replicas:end -->"
HEADING = "## Eight replicas on one PostgreSQL"
FORM = "application/x-www-form-urlencoded"
CLK_TCK = os.sysconf("SC_CLK_TCK")


class Abort(Exception):
    """The run's overall time limit passed, or a signal asked it to stop."""


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_ports(n):
    """n distinct free loopback ports (held open together while they are picked)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def die_with_parent():
    """preexec_fn: the child gets SIGTERM when this script dies, however it dies."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def basic(cid, secret):
    return "Basic " + base64.b64encode(f"{cid}:{secret}".encode()).decode()


def jwt_header(token):
    head = token.split(".", 1)[0]
    return json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))


def percentile(values, p):
    """Nearest-rank percentile (with 20 values, p99 is the largest)."""
    values = sorted(values)
    if not values:
        return None
    return values[max(0, math.ceil(p / 100 * len(values)) - 1)]


def proc_cpu_ticks(pid):
    """utime + stime of a live process, in clock ticks (None once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])


def proc_cpu_with_children(pid):
    """utime + stime + cutime + cstime (the children it has waited for), in ticks."""
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])


def children_of(pid):
    out = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            f = Path(stat).read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(f[1]) == pid:
            out.append(int(stat.split("/")[2]))
    return out


def softirq_thread_ticks():
    """CPU of the kernel's ksoftirqd threads (network receive work deferred to them)."""
    total = 0
    for comm in glob.glob("/proc/[0-9]*/comm"):
        try:
            if Path(comm).read_text().startswith("ksoftirqd"):
                total += proc_cpu_ticks(int(comm.split("/")[2])) or 0
        except OSError:
            continue
    return total


def rss_kib(pid):
    """(VmRSS, VmHWM) in KiB."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None, None
    get = lambda key: int(re.search(rf"^{key}:\s+(\d+) kB", status, re.M).group(1))
    return get("VmRSS"), get("VmHWM")


def machine_ticks():
    """(busy, total, interrupts, steal) jiffies of the whole machine, from /proc/stat:
    interrupts is irq + softirq time (network receive work among it), which with IRQ time
    accounting belongs to no process; steal is time the hypervisor gave to others."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(f[:8])
    idle = f[3] + f[4]
    return total - idle - f[7], total, f[5] + f[6], f[7]


def tcp_local_ports_by_inode(remote_port):
    """{socket inode: local port} of loopback TCP connections to `remote_port`."""
    out = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            local, remote, inode = f[1], f[2], f[9]
            if int(remote.rsplit(":", 1)[1], 16) == remote_port:
                out[inode] = int(local.rsplit(":", 1)[1], 16)
    return out


def socket_inodes(pid):
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    except OSError:
        pass
    return inodes


# --- HTTP ---------------------------------------------------------------------------------


class Conn:
    """One kept-alive HTTP/1.1 connection to 127.0.0.1:port, reopened after an error."""

    def __init__(self, port, timeout=3.0):
        self.port, self.timeout, self.c = port, timeout, None

    def request(self, method, path, body=None, headers=None):
        for attempt in range(2):
            if self.c is None:
                self.c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            try:
                self.c.request(method, path, body=body, headers=headers or {})
                r = self.c.getresponse()
                data = r.read()
                if (r.getheader("Connection") or "").lower() == "close":
                    self.close()
                return r.status, data
            except (OSError, http.client.HTTPException):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self):
        if self.c is not None:
            self.c.close()
            self.c = None


def token_request(conn, cid, secret):
    return conn.request("POST", "/auth/token", b"grant_type=client_credentials",
                        {"Authorization": basic(cid, secret), "Content-Type": FORM})


def token_ok(status):
    return status in (200, 201)


def token_refused(status):
    return status in (400, 401)


# --- PostgreSQL ---------------------------------------------------------------------------


def pg_bin(name):
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not candidates:
        raise SystemExit(f"{name} not found (PostgreSQL server binaries; or pass --postgres URL)")
    return candidates[-1]


def as_postgres_user(cmd):
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


class OwnCluster:
    """A throwaway cluster: initdb into a temporary directory, a free loopback port, trust
    authentication, PostgreSQL's defaults otherwise (max_connections 100, fsync on)."""

    def __init__(self, keep=False):
        self.root = Path(tempfile.mkdtemp(prefix="moneykit-replicas-pg."))
        os.chmod(self.root, 0o777)
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = None
        self.keep = keep
        self.watchdog = None

    def start(self, max_seconds):
        subprocess.run(as_postgres_user([pg_bin("initdb"), "-D", str(self.data), "-U", "postgres",
                                         "--auth=trust", "-E", "UTF8", "--no-sync"]),
                       check=True, capture_output=True, timeout=120)
        for attempt in range(5):
            self.port = free_ports(1)[0]
            opts = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                    f"-c log_line_prefix='%m [%p] %d %r '")
            r = subprocess.run(as_postgres_user([pg_bin("pg_ctl"), "-D", str(self.data), "-l",
                                                 str(self.log), "-o", opts, "-w", "-t", "30",
                                                 "start"]),
                               capture_output=True, text=True, timeout=60)
            if r.returncode == 0:
                break
            text = self.log.read_text() if self.log.exists() else ""
            if "could not bind" not in text and "already in use" not in text:
                raise SystemExit(f"pg_ctl start failed: {r.stdout}{r.stderr}{text[-2000:]}")
        else:
            raise SystemExit("pg_ctl start: no free port after 5 attempts")
        # Stops the cluster if this script dies without cleaning up (bounded: it gives up
        # after max_seconds + 5 minutes either way).
        ticks = int(max_seconds) + 300
        script = (f"i=0; while kill -0 {os.getpid()} 2>/dev/null && [ $i -lt {ticks} ]; do "
                  f"sleep 1; i=$((i+1)); done; "
                  f"{' '.join(as_postgres_user([pg_bin('pg_ctl')]))} -D {self.data} -m immediate "
                  f"stop >/dev/null 2>&1; " + ("" if self.keep else f"rm -rf {self.root}"))
        self.watchdog = subprocess.Popen(["sh", "-c", script], stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                         start_new_session=True)
        admin = self.url("postgres")
        psql(admin, f"CREATE DATABASE {DB_NAME}")
        return self.url(DB_NAME)

    def url(self, db):
        return f"postgres://postgres@127.0.0.1:{self.port}/{db}"

    def postmaster_pid(self):
        try:
            return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def cpu_ticks(self):
        """The server's CPU: the postmaster with the children it has reaped, plus the live
        children."""
        pm = self.postmaster_pid()
        if not pm:
            return None
        total = proc_cpu_with_children(pm) or 0
        for child in children_of(pm):
            total += proc_cpu_ticks(child) or 0
        return total

    def log_size(self):
        return self.log.stat().st_size if self.log.exists() else 0

    def stop(self):
        if self.data.exists():
            subprocess.run(as_postgres_user([pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast",
                                             "-w", "-t", "30", "stop"]),
                           capture_output=True, timeout=60)
        if self.watchdog and self.watchdog.poll() is None:
            self.watchdog.terminate()
            try:
                self.watchdog.wait(5)
            except subprocess.TimeoutExpired:
                self.watchdog.kill()
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)


def psql(url, sql, timeout=30):
    """Rows of `sql` (unaligned, '|'-separated)."""
    r = subprocess.run(["psql", url, "-X", "-q", "-At", "-F", "|", "-v", "ON_ERROR_STOP=1",
                        "-c", sql], capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"psql failed: {r.stderr.strip()}")
    return [line.split("|") for line in r.stdout.splitlines() if line]


# --- the replicas ---------------------------------------------------------------------------


class Replica:
    def __init__(self, index, binary, database_url, port, admin_port, workdir, extra):
        self.index, self.port, self.admin_port = index, port, admin_port
        self.log_path = workdir / f"replica-{index}.log"
        self.log = open(self.log_path, "w")
        args = [binary, "serve", "--database-url", database_url,
                "--listen", f"127.0.0.1:{port}", "--admin-listen", f"127.0.0.1:{admin_port}",
                "--issuer", ISSUER, "--instance-id", f"replica-{index}",
                "--shutdown-delay", "0",
                # Probing must never be throttled.
                "--token-rate-per-client", "1e12", "--token-burst-per-client", "1e12",
                "--auth-failures-per-address", "0", "--auth-failures-per-client", "0",
                "--revocations-per-client", "0", *extra]
        env = {**os.environ, "MONEYKIT_AUTH_SECRET": SECRET,
               "MONEYKIT_AUTH_ADMIN_TOKEN": ADMIN_TOKEN, "RUST_LOG": "warn"}
        self.proc = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=self.log, preexec_fn=die_with_parent)

    @property
    def pid(self):
        return self.proc.pid

    def wait_ready(self, deadline):
        c = Conn(self.port, timeout=1.0)
        for _ in range(10_000):
            if time.monotonic() > deadline:
                break
            if self.proc.poll() is not None:
                raise SystemExit(f"replica {self.index} exited with {self.proc.returncode}: "
                                 f"{self.log_path.read_text()[-2000:]}")
            try:
                if c.request("GET", "/healthz/ready")[0] == 200:
                    c.close()
                    return
            except OSError:
                c.close()
            time.sleep(0.05)
        raise SystemExit(f"replica {self.index} not ready in time: {self.log_path.read_text()[-2000:]}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


class Deployment:
    def __init__(self, opts, database_url, cluster, workdir):
        self.opts, self.url, self.cluster, self.work = opts, database_url, cluster, workdir
        self.binary = str(Path(opts.binary).resolve())
        self.replicas = []
        # Statistics are read from another database than the replicas', so reading them
        # adds no transaction to the counters being read (on our own cluster: `postgres`).
        self.stats_url = cluster.url("postgres") if cluster else database_url
        self.stats_own_xacts = cluster is None  # each psql call then adds one
        self.pg_port = urllib.parse.urlsplit(database_url).port or 5432

    def cli(self, *args, check=True, timeout=60):
        env = {**os.environ, "MONEYKIT_AUTH_SECRET": SECRET, "RUST_LOG": "warn"}
        r = subprocess.run([self.binary, *args, "--database-url", self.url], env=env,
                           capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"moneykit-auth {' '.join(args)} failed: {r.stderr.strip()}")
        return r

    def cli_json(self, *args):
        return json.loads(self.cli(*args, "--json").stdout)

    def start(self, n):
        ports = free_ports(2 * n)
        for i in range(n):
            self.replicas.append(Replica(i + 1, self.binary, self.url, ports[2 * i],
                                         ports[2 * i + 1], self.work, self.opts.serve_arg or []))
        deadline = time.monotonic() + 60
        for r in self.replicas:
            r.wait_ready(deadline)

    def stop(self):
        for r in self.replicas:
            try:
                r.stop()
            except Exception as e:  # keep stopping the others
                log(f"stopping replica {r.index}: {e}")

    def admin(self, method, path, body=None, replica=0):
        c = Conn(self.replicas[replica].admin_port, timeout=10)
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            return c.request(method, path, data, headers)
        finally:
            c.close()

    def new_client(self, app_id, name):
        """A new secret client, once every replica issues it tokens (bounded: 10 s)."""
        c = self.cli_json("clients", "create", "--app", app_id, "--name", name,
                          "--scope", "accounts:read")
        cid, secret = c["client_id"], c["client_secret"]
        pending = list(self.replicas)
        deadline = time.monotonic() + 10
        for _ in range(1000):
            pending = [r for r in pending
                       if not token_ok(token_request(Conn(r.port), cid, secret)[0])]
            if not pending or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        if pending:
            raise RuntimeError(f"client {cid} unknown to replicas "
                               f"{[r.index for r in pending]} after 10 s")
        return cid, secret

    def replica_ports_map(self):
        """{local port of a connection to PostgreSQL: replica index}."""
        by_inode = tcp_local_ports_by_inode(self.pg_port)
        out = {}
        for r in self.replicas:
            for inode in socket_inodes(r.pid):
                if inode in by_inode:
                    out[by_inode[inode]] = r.index
        return out


# --- propagation ------------------------------------------------------------------------------


def run_trial(conns, probe, write, timeout, interval):
    """Probes every replica until it shows a change (`probe(conn)` → True), starting when
    the write is sent. The replicas must not show it before (checked first, for up to
    `timeout`). Returns the per-replica times from the write's send and its return."""
    n = len(conns)
    pre_deadline = time.monotonic() + timeout
    pending = set(range(n))
    for _ in range(int(timeout / 0.01) + 10):
        for i in list(pending):
            try:
                state = probe(conns[i])
            except OSError:
                state = None
            if state is False:
                pending.discard(i)
        if not pending or time.monotonic() > pre_deadline:
            break
        time.sleep(0.01)
    if pending:
        return {"invalid": f"replicas {sorted(i + 1 for i in pending)} did not show the state "
                           f"before the change within {timeout} s"}
    go = threading.Event()
    seen, errors, probes = [None] * n, [0] * n, [0] * n
    max_probes = int(timeout / max(interval, 0.0005)) + 100

    def worker(i):
        if not go.wait(timeout + 10):
            return
        deadline = time.monotonic() + timeout
        for _ in range(max_probes):
            if time.monotonic() > deadline:
                return
            try:
                state = probe(conns[i])
            except OSError:
                state = None
            probes[i] += 1
            if state is True:
                seen[i] = time.monotonic()
                return
            if state is None:
                errors[i] += 1
            time.sleep(interval)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    go.set()
    sent = time.monotonic()
    try:
        written = write()
        write_error = None
    except Exception as e:  # the trial fails; the probes time out
        written, write_error = None, str(e)
    returned = time.monotonic()
    for t in threads:
        t.join(timeout + 5)
    result = {
        "write_ms": (returned - sent) * 1000,
        "from_sent_ms": [(s - sent) * 1000 if s else None for s in seen],
        "from_return_ms": [(s - returned) * 1000 if s else None for s in seen],
        "probes": probes,
        "probe_errors": errors,
        "written": written,
    }
    if write_error:
        result["failed"] = f"the write failed: {write_error}"
    elif None in seen:
        result["failed"] = (f"replicas {[i + 1 for i, s in enumerate(seen) if s is None]} did not "
                            f"show the change within {timeout} s")
    return result


class Kind:
    """One kind of change: its trials and their results."""

    def __init__(self, name, via):
        self.name, self.via = name, via
        self.trials = []
        self.unavailable = None
        self.notes = []


def summarize(kind):
    good = [t for t in kind.trials if "failed" not in t and "invalid" not in t]
    last_ret = [max(t["from_return_ms"]) for t in good]
    last_sent = [max(t["from_sent_ms"]) for t in good]
    each = [v for t in good for v in t["from_return_ms"]]
    writes = [t["write_ms"] for t in kind.trials if "write_ms" in t]
    per_replica = {}
    for t in good:
        for i, v in enumerate(t["from_return_ms"]):
            per_replica.setdefault(i + 1, []).append(v)
    return {
        "trials": len(kind.trials),
        "ok": len(good),
        "failed": [t.get("failed") or t.get("invalid") for t in kind.trials
                   if "failed" in t or "invalid" in t],
        "last_from_return": [percentile(last_ret, p) for p in (50, 99, 100)],
        "last_from_sent": [percentile(last_sent, p) for p in (50, 99, 100)],
        "each_from_return": [percentile(each, p) for p in (50, 99, 100)],
        "write": [percentile(writes, p) for p in (50, 99, 100)],
        "per_replica_p50": {k: statistics.median(v) for k, v in per_replica.items()},
        "per_replica_max": {k: max(v) for k, v in per_replica.items()},
        "probes_per_trial": statistics.mean(sum(t["probes"]) for t in good) if good else None,
        # How often each replica was in fact probed: its time over its probes.
        "probe_period_ms": statistics.median(
            t["from_sent_ms"][i] / t["probes"][i] for t in good for i in range(len(t["probes"]))
            if t["probes"][i]) if good else None,
    }


def run_propagation(dep, opts, results):
    n = len(dep.replicas)
    interval, timeout = opts.probe_interval_ms / 1000, opts.probe_timeout
    app = dep.cli_json("apps", "create", "--name", "Replicas bench")["app_id"]
    conns = [Conn(r.port) for r in dep.replicas]
    kinds = []

    for via in opts.via.split(","):
        # --- a client disabled, then enabled again -------------------------------------------
        cid, secret = dep.new_client(app, f"disable-{via}")
        disable, enable = Kind("client disabled", via), Kind("client enabled again", via)

        def refused(conn, cid=cid, secret=secret):
            s, _ = token_request(conn, cid, secret)
            return True if token_refused(s) else (False if token_ok(s) else None)

        def accepted(conn, cid=cid, secret=secret):
            s, _ = token_request(conn, cid, secret)
            return True if token_ok(s) else (False if token_refused(s) else None)

        def set_disabled(disabled, cid=cid, via=via):
            if via == "cli":
                dep.cli("clients", "disable" if disabled else "enable", cid)
                return None
            s, body = dep.admin("POST", f"/admin/clients/{cid}/{'disable' if disabled else 'enable'}")
            if s != 200:
                raise RuntimeError(f"admin API answered {s}: {body[:200]!r}")
            return None

        log(f"  client disabled / enabled again via {via}: {opts.trials} trials")
        for i in range(opts.trials):
            t = run_trial(conns, refused, lambda: set_disabled(True), timeout, interval)
            disable.trials.append(t)
            time.sleep(opts.pause)
            u = run_trial(conns, accepted, lambda: set_disabled(False), timeout, interval)
            enable.trials.append(u)
            for kind, r in ((disable, t), (enable, u)):
                if "failed" in r or "invalid" in r:
                    log(f"    {kind.name} trial {i + 1}: {r.get('failed') or r.get('invalid')}")
            time.sleep(opts.pause)
        kinds += [disable, enable]

        # --- a secret added, then revoked -------------------------------------------------------
        cid, first_secret = dep.new_client(app, f"secrets-{via}")
        added, revoked = Kind("client secret added", via), Kind("client secret revoked", via)
        box = {}

        def add_secret(cid=cid, via=via):
            if via == "cli":
                r = dep.cli("clients", "add-secret", cid, "--json", check=False)
                if r.returncode != 0:
                    if re.search(r"unrecognized subcommand|unexpected argument|invalid subcommand",
                                 r.stderr):
                        return "unavailable", r.stderr.strip().splitlines()[0]
                    raise RuntimeError(f"clients add-secret failed: {r.stderr.strip()}")
                made = json.loads(r.stdout)
            else:
                s, body = dep.admin("POST", f"/admin/clients/{cid}/secrets", {})
                if s in (404, 405):
                    return "unavailable", f"POST /admin/clients/{{id}}/secrets answered {s}"
                if s not in (200, 201):
                    raise RuntimeError(f"POST …/secrets answered {s}: {body[:200]!r}")
                made = json.loads(body)
            box["secret_id"], box["secret"] = str(made["secret_id"]), made["client_secret"]
            return "ok", box["secret_id"]

        def revoke_secret(cid=cid, via=via):
            if via == "cli":
                dep.cli("clients", "revoke-secret", cid, box["secret_id"])
                return None
            s, body = dep.admin("DELETE", f"/admin/clients/{cid}/secrets/{box['secret_id']}")
            if not 200 <= s < 300:
                raise RuntimeError(f"DELETE …/secrets/{{id}} answered {s}: {body[:200]!r}")
            return None

        def new_secret_accepted(conn, cid=cid):
            secret = box.get("secret")
            if secret is None:
                return False
            s, _ = token_request(conn, cid, secret)
            return True if token_ok(s) else (False if token_refused(s) else None)

        def revoked_secret_refused(conn, cid=cid):
            s, _ = token_request(conn, cid, box["secret"])
            return True if token_refused(s) else (False if token_ok(s) else None)

        # Is it there at all? (One addition, revoked again at once.)
        try:
            state, what = add_secret()
            if state == "ok":
                revoke_secret()
        except Exception as e:  # measured as failed, the other kinds still run
            state, what = "error", str(e)
        if state == "error":
            for k in (added, revoked):
                k.unavailable = f"could not be measured: {what}"
            log(f"  client secret revocation via {via}: could not be measured: {what}")
        elif state == "unavailable":
            for k in (added, revoked):
                k.unavailable = f"not available in this build ({what})"
            log(f"  client secret revocation via {via}: not available in this build ({what})")
        else:
            log(f"  client secret added / revoked via {via}: {opts.trials} trials")
            for i in range(opts.trials):
                box.clear()
                t = run_trial(conns, new_secret_accepted, add_secret, timeout, interval)
                added.trials.append(t)
                if "secret" not in box:
                    break
                time.sleep(opts.pause)
                u = run_trial(conns, revoked_secret_refused, revoke_secret, timeout, interval)
                revoked.trials.append(u)
                for kind, r in ((added, t), (revoked, u)):
                    if "failed" in r or "invalid" in r:
                        log(f"    {kind.name} trial {i + 1}: {r.get('failed') or r.get('invalid')}")
                time.sleep(opts.pause)
            # The client's first secret still works everywhere.
            if not all(token_ok(token_request(c, cid, first_secret)[0]) for c in conns):
                revoked.notes.append("the client's first secret stopped working")
        kinds += [added, revoked]

        # --- a signing key rotated now -------------------------------------------------------------
        cid, secret = dep.new_client(app, f"rotate-{via}")
        rotation = Kind("signing key rotated (now)", via)
        old = {}

        def signs_with_new_key(conn, cid=cid, secret=secret):
            s, body = token_request(conn, cid, secret)
            if not token_ok(s):
                return None
            return jwt_header(json.loads(body)["access_token"])["kid"] != old["kid"]

        def rotate(via=via):
            if via == "cli":
                dep.cli("keys", "rotate", "--now")
                return None
            s, body = dep.admin("POST", "/admin/keys/rotate", {"now": True})
            if s != 200:
                raise RuntimeError(f"POST /admin/keys/rotate answered {s}: {body[:200]!r}")
            return json.loads(body).get("kid")

        jwks_missing = 0
        log(f"  signing key rotated (now) via {via}: {opts.trials} trials")
        for i in range(opts.trials):
            s, body = token_request(conns[0], cid, secret)
            old["kid"] = jwt_header(json.loads(body)["access_token"])["kid"]
            t = run_trial(conns, signs_with_new_key, rotate, timeout, interval)
            rotation.trials.append(t)
            if "failed" in t or "invalid" in t:
                log(f"    trial {i + 1}: {t.get('failed') or t.get('invalid')}")
            else:
                # Once a replica signs with the new key, its JWKS must publish it.
                s, body = token_request(conns[0], cid, secret)
                new_kid = jwt_header(json.loads(body)["access_token"])["kid"]
                if t["written"] and t["written"] != new_kid:
                    rotation.notes.append(f"trial {i + 1}: admin API said {t['written']}, tokens "
                                          f"carry {new_kid}")
                for c in conns:
                    s, body = c.request("GET", "/.well-known/jwks.json")
                    if new_kid not in {k.get("kid") for k in json.loads(body).get("keys", [])}:
                        jwks_missing += 1
            time.sleep(opts.pause)
        rotation.notes.append(f"replicas whose JWKS lacked the new kid once they signed with it: "
                              f"{jwks_missing} (of {n} × {len(rotation.trials)})")
        kinds.append(rotation)

    # --- a token revoked at replica 1 (the public endpoint; no CLI path) --------------------------
    cid, secret = dep.new_client(app, "revoke")
    revocation = Kind("token revoked (POST /oauth2/revoke at replica 1)", "public API")
    current = {}

    def refused_token(conn):
        s, _ = conn.request("GET", "/auth/introspect",
                            headers={"Authorization": f"Bearer {current['token']}"})
        return True if s == 401 else (False if s == 200 else None)

    # Its own thread's connection to replica 1 would be busy probing: the revocation goes on
    # a connection of its own.
    revoke_conn = Conn(dep.replicas[0].port)

    def revoke_token_own_conn():
        s, body = revoke_conn.request("POST", "/oauth2/revoke",
                                      urllib.parse.urlencode({"token": current["token"]}).encode(),
                                      {"Authorization": basic(cid, secret), "Content-Type": FORM})
        if s != 200:
            raise RuntimeError(f"/oauth2/revoke answered {s}: {body[:200]!r}")
        return None

    log(f"  token revoked: {opts.trials} trials")
    for i in range(opts.trials):
        s, body = token_request(revoke_conn, cid, secret)
        current["token"] = json.loads(body)["access_token"]
        t = run_trial(conns, refused_token, revoke_token_own_conn, timeout, interval)
        revocation.trials.append(t)
        if "failed" in t or "invalid" in t:
            log(f"    trial {i + 1}: {t.get('failed') or t.get('invalid')}")
        time.sleep(opts.pause)
    kinds.append(revocation)
    for c in conns + [revoke_conn]:
        c.close()

    results["propagation"] = [
        {"kind": k.name, "via": k.via, "unavailable": k.unavailable, "notes": k.notes,
         "summary": summarize(k) if k.trials else None, "trials": k.trials}
        for k in kinds
    ]


# --- idle cost ------------------------------------------------------------------------------------


def activity(dep):
    """Connections to the replicas' database: [(client_port, application_name, state,
    backend_type, query, pid)]."""
    rows = psql(dep.stats_url,
                "SELECT coalesce(client_port, -1), application_name, coalesce(state, ''), "
                "backend_type, replace(left(query, 60), '|', '/'), pid FROM pg_stat_activity "
                f"WHERE datname = '{DB_NAME}'")
    return [(int(r[0]), r[1], r[2], r[3], r[4], int(r[5])) for r in rows]


def xacts(dep):
    rows = psql(dep.stats_url, "SELECT xact_commit + xact_rollback, numbackends FROM "
                               f"pg_stat_database WHERE datname = '{DB_NAME}'")
    return int(rows[0][0]), int(rows[0][1])


def connections_by_replica(dep, rows):
    ports = dep.replica_ports_map()
    per = {r.index: 0 for r in dep.replicas}
    listen = {r.index: 0 for r in dep.replicas}
    other = 0
    for port, app, state, btype, query, pid in rows:
        i = ports.get(port)
        if i is None:
            other += 1
            continue
        per[i] += 1
        if query.upper().startswith("LISTEN"):
            listen[i] += 1
    return per, listen, other


STATEMENT = re.compile(r"^\S+ \S+ \S+ \[(\d+)\] (\S*) (\S+)\((\d+)\) LOG:  (?:statement|execute [^:]*): (.*)$")


class Window:
    """Counters read at the start of a window; `close()` gives what happened in it."""

    def __init__(self, dep):
        self.dep = dep
        self.own = dep.cluster is not None
        self.log_from = dep.cluster.log_size() if self.own else 0
        self.rows0 = activity(dep)
        self.x0, _ = xacts(dep)
        self.psql_calls = 1  # the counter read above commits after it has read
        self.t0 = time.monotonic()
        self.cpu0 = {r.index: proc_cpu_ticks(r.pid) for r in dep.replicas}
        self.pg0 = dep.cluster.cpu_ticks() if self.own else None

    def sample_connections(self):
        self.psql_calls += 1
        return connections_by_replica(self.dep, activity(self.dep))

    def close(self):
        dep = self.dep
        x1, numbackends = xacts(dep)
        t1 = time.monotonic()
        cpu1 = {r.index: proc_cpu_ticks(r.pid) for r in dep.replicas}
        pg1 = dep.cluster.cpu_ticks() if self.own else None
        log_to = dep.cluster.log_size() if self.own else 0
        seconds = t1 - self.t0
        # Our own reads add nothing when the statistics come from another database;
        # otherwise one transaction per psql call between the two counter reads.
        own_xacts = self.psql_calls if dep.stats_own_xacts else 0
        out = {
            "seconds": seconds,
            "xacts": x1 - self.x0 - own_xacts,
            "numbackends": numbackends,
            "replica_cpu_ms": {i: (cpu1[i] - self.cpu0[i]) / CLK_TCK * 1000 for i in self.cpu0
                               if self.cpu0[i] is not None and cpu1[i] is not None},
        }
        if self.pg0 is not None and pg1 is not None:
            out["pg_cpu_ms"] = (pg1 - self.pg0) / CLK_TCK * 1000
        if self.own:
            with open(dep.cluster.log, "rb") as f:
                f.seek(self.log_from)
                text = f.read(log_to - self.log_from).decode(errors="replace")
            ports = dep.replica_ports_map()
            by_replica, by_text, unattributed = {r.index: 0 for r in dep.replicas}, {}, 0
            for line in text.splitlines():
                m = STATEMENT.match(line)
                if not m or m.group(2) != DB_NAME:
                    continue
                i = ports.get(int(m.group(4)))
                if i is None:
                    unattributed += 1
                else:
                    by_replica[i] += 1
                q = re.sub(r"\s+", " ", m.group(5)).strip()[:90]
                by_text[q] = by_text.get(q, 0) + 1
            out["statements"] = by_replica
            out["statements_unattributed"] = unattributed
            out["statements_by_text"] = by_text
        return out


def statement_log(dep, on):
    """`log_statement = all` on our own cluster (every backend reads it at its next
    command; the pause lets the idle ones get there)."""
    if dep.cluster is None:
        return
    psql(dep.stats_url, "ALTER SYSTEM SET log_statement = 'all'" if on
         else "ALTER SYSTEM RESET log_statement")
    psql(dep.stats_url, "SELECT pg_reload_conf()")
    time.sleep(1)


def run_idle(dep, opts, results):
    n = len(dep.replicas)
    app = dep.cli_json("apps", "create", "--name", "Replicas idle")["app_id"]
    cid, _ = dep.new_client(app, "toggled")
    log(f"  settling {opts.settle:g} s, then {opts.idle:g} s idle")
    time.sleep(opts.settle)
    statement_log(dep, True)
    try:
        start_conns = connections_by_replica(dep, activity(dep))
        w = Window(dep)
        samples = []
        end = w.t0 + opts.idle
        for _ in range(int(opts.idle / 10) + 2):
            left = end - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(10, left))
            per, listen, other = w.sample_connections()
            samples.append({"per_replica": per, "listen": listen, "other": other})
        quiet = w.close()
        rows1 = activity(dep)
        # Then changes, one every --change-gap: what one change costs, beyond idling.
        changes = []
        if opts.changes:
            log(f"  {opts.changes} changes, one every {opts.change_gap:g} s")
            w = Window(dep)
            for i in range(opts.changes):
                action = "disable" if i % 2 == 0 else "enable"
                s, body = dep.admin("POST", f"/admin/clients/{cid}/{action}")
                if s != 200:
                    raise RuntimeError(f"admin API answered {s}: {body[:200]!r}")
                time.sleep(opts.change_gap)
            changes = w.close()
    finally:
        statement_log(dep, False)
    per, listen, other = connections_by_replica(dep, rows1)
    idle = {
        "window": quiet,
        "seconds": quiet["seconds"],
        "xacts_per_s": quiet["xacts"] / quiet["seconds"],
        "connections_start": start_conns[0],
        "connections_end": per,
        "listen_end": listen,
        "other_connections_end": other,
        "connections_samples": samples,
        "replica_cpu_ms_per_s": {i: v / quiet["seconds"] for i, v in quiet["replica_cpu_ms"].items()},
        "rss_kib": {r.index: rss_kib(r.pid)[0] for r in dep.replicas},
        "activity_end": [list(r) for r in rows1],
    }
    if "pg_cpu_ms" in quiet:
        idle["pg_cpu_ms_per_s"] = quiet["pg_cpu_ms"] / quiet["seconds"]
    if "statements" in quiet:
        idle["statements_per_s"] = {i: c / quiet["seconds"] for i, c in quiet["statements"].items()}
        idle["statements_unattributed"] = quiet["statements_unattributed"]
        idle["statements_top"] = sorted(((c / quiet["seconds"] / n, q)
                                         for q, c in quiet["statements_by_text"].items()),
                                        reverse=True)[:12]
    if changes:
        # What the changes added to idling, per change.
        k, secs = opts.changes, changes["seconds"]
        rate = lambda key: quiet[key] / quiet["seconds"]
        per_change = {
            "changes": k,
            "seconds": secs,
            "xacts": (changes["xacts"] - rate("xacts") * secs) / k,
            "replica_cpu_ms": statistics.mean(
                (changes["replica_cpu_ms"][i] - idle["replica_cpu_ms_per_s"][i] * secs) / k
                for i in changes["replica_cpu_ms"] if i in idle["replica_cpu_ms_per_s"]),
        }
        if "pg_cpu_ms" in changes and "pg_cpu_ms" in quiet:
            per_change["pg_cpu_ms"] = (changes["pg_cpu_ms"] - rate("pg_cpu_ms") * secs) / k
        if "statements" in changes:
            per_change["statements_per_replica"] = {
                i: (c - quiet["statements"][i] / quiet["seconds"] * secs) / k
                for i, c in changes["statements"].items()}
            base = quiet["statements_by_text"]
            extra = {q: (c - base.get(q, 0) / quiet["seconds"] * secs) / k / n
                     for q, c in changes["statements_by_text"].items()}
            per_change["statements_top"] = sorted(((v, q) for q, v in extra.items() if v > 0.05),
                                                  reverse=True)[:15]
        idle["per_change"] = per_change
    results["idle"] = idle


# --- throughput -----------------------------------------------------------------------------------


WRK_REQUESTS = re.compile(r"(\d+) requests in ([\d.]+)(us|ms|s|m)")


def run_throughput(dep, opts, results):
    app = dep.cli_json("apps", "create", "--name", "Replicas throughput")["app_id"]
    cid, secret = dep.new_client(app, "load")
    lua = dep.work / "token.lua"
    lua.write_text("wrk.method = \"POST\"\nwrk.body = \"grant_type=client_credentials\"\n"
                   f"wrk.headers[\"Content-Type\"] = \"{FORM}\"\n"
                   f"wrk.headers[\"Authorization\"] = \"{basic(cid, secret)}\"\n")
    n = len(dep.replicas)
    per_wrk = max(1, opts.connections // n)

    def run(targets, duration):
        """One wrk per entry of `targets` (replica indices, 0-based), concurrently."""
        busy0, total0, irq0, steal0 = machine_ticks()
        cpu0 = {r.index: proc_cpu_ticks(r.pid) for r in dep.replicas}
        pg0 = dep.cluster.cpu_ticks() if dep.cluster else None
        kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        soft0 = softirq_thread_ticks()
        t0 = time.monotonic()
        procs = [subprocess.Popen(["wrk", "-t1", f"-c{per_wrk}", f"-d{duration}s", "-s", str(lua),
                                   f"http://127.0.0.1:{dep.replicas[i].port}/auth/token"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  preexec_fn=die_with_parent)
                 for i in targets]
        outs = []
        for p in procs:
            try:
                outs.append(p.communicate(timeout=duration + 30)[0])
            except subprocess.TimeoutExpired:
                p.kill()
                outs.append(p.communicate()[0])
        t1 = time.monotonic()
        kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        soft1 = softirq_thread_ticks()
        pg1 = dep.cluster.cpu_ticks() if dep.cluster else None
        cpu1 = {r.index: proc_cpu_ticks(r.pid) for r in dep.replicas}
        busy1, total1, irq1, steal1 = machine_ticks()
        requests, problems = 0, []
        for i, out in zip(targets, outs):
            m = WRK_REQUESTS.search(out)
            if not m:
                problems.append(f"wrk to replica {i + 1} printed no result")
                continue
            requests += int(m.group(1))
            bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
            if bad:
                problems.append(f"replica {i + 1}: {bad.group(1)} non-2xx answers")
            errs = re.search(r"Socket errors:\s*(.*)", out)
            if errs and any(int(v) for v in re.findall(r"\d+", errs.group(1))):
                problems.append(f"replica {i + 1}: socket errors {errs.group(1)}")
        loaded = {i + 1 for i in targets}
        cpu = {k: (cpu1[k] - cpu0[k]) / CLK_TCK for k in cpu0}
        return {
            "requests": requests,
            "seconds": duration,
            "rps": requests / duration,
            "wall_s": t1 - t0,
            "loaded_cpu_s": sum(v for k, v in cpu.items() if k in loaded),
            "idle_replicas_cpu_s": sum(v for k, v in cpu.items() if k not in loaded),
            "wrk_cpu_s": (kids1.ru_utime + kids1.ru_stime) - (kids0.ru_utime + kids0.ru_stime),
            "pg_cpu_s": (pg1 - pg0) / CLK_TCK if pg0 is not None and pg1 is not None else None,
            "softirq_cpu_s": (soft1 - soft0) / CLK_TCK,
            "machine_busy_cores": (busy1 - busy0) / (total1 - total0) * (os.cpu_count() or 1),
            "interrupt_cores": (irq1 - irq0) / (total1 - total0) * (os.cpu_count() or 1),
            "steal_cores": (steal1 - steal0) / (total1 - total0) * (os.cpu_count() or 1),
            "problems": problems,
            "peak_rss_kib": {k: rss_kib(dep.replicas[k - 1].pid)[1] for k in loaded},
        }

    spread = list(range(n))
    single = [0] * n
    log(f"  warm-up ({opts.warmup} s each)")
    run(spread, opts.warmup)
    run(single, opts.warmup)
    out = {"all": [], "one": [], "connections_per_wrk": per_wrk, "wrk_processes": n}
    for i in range(opts.runs):
        log(f"  run {i + 1}/{opts.runs}: {n} replicas, then replica 1 alone ({opts.duration} s each)")
        out["all"].append(run(spread, opts.duration))
        out["one"].append(run(single, opts.duration))
    results["throughput"] = out


# --- many clients -----------------------------------------------------------------------------------


def run_scale(dep, opts, results):
    """`--scale-clients` secret clients inserted in one statement; how long until every
    replica has loaded them, their RSS, an idle window long enough for one housekeeping,
    then a client disabled and enabled again `--scale-trials` times."""
    import hashlib
    k, n = opts.scale_clients, len(dep.replicas)
    app = dep.cli_json("apps", "create", "--name", "Replicas scale")["app_id"]
    secret = "mks_replicas-scale-secret-0123456789abcdefghijklmn"
    digest = hashlib.sha256(secret.encode()).hexdigest()
    probe_id = f"live_scale{k // 2:019d}"
    conns = [Conn(r.port, timeout=30) for r in dep.replicas]
    rss_before = {r.index: rss_kib(r.pid)[0] for r in dep.replicas}
    log(f"  inserting {k:,} clients")
    t0 = time.monotonic()
    # The row trigger would bump the one revision row once per client (minutes for 100 000):
    # off for this insert, then one bump and one notification, in the same transaction. A
    # bump without a journal entry tells every replica to reload everything.
    insert = ("INSERT INTO clients (id, app_id, name, scopes, token_ttl_secs, secret_hash, "
              "created_at, disabled_at) SELECT 'live_scale' || lpad(i::text, 19, '0'), "
              f"'{app}', 'scale ' || i, 'accounts:read', NULL, decode('{digest}', 'hex'), "
              f"{int(time.time())}, NULL FROM generate_series(0, {k - 1}) AS i")
    # Each client's secret is a row of its own (migration 0009).
    secrets = ("INSERT INTO client_secrets (id, client_id, hash, created_at) SELECT "
               "'sec_scale' || lpad(i::text, 19, '0'), 'live_scale' || lpad(i::text, 19, '0'), "
               f"decode('{digest}', 'hex'), {int(time.time())} FROM generate_series(0, {k - 1}) AS i")
    r = subprocess.run(["psql", dep.url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-1",
                        "-c", "ALTER TABLE clients DISABLE TRIGGER clients_changed",
                        "-c", "ALTER TABLE client_secrets DISABLE TRIGGER client_secrets_changed",
                        "-c", insert,
                        "-c", secrets,
                        "-c", "ALTER TABLE client_secrets ENABLE TRIGGER client_secrets_changed",
                        "-c", "ALTER TABLE clients ENABLE TRIGGER clients_changed",
                        "-c", "UPDATE revision SET value = value + 1 WHERE id = 1",
                        "-c", "NOTIFY moneykit_auth_changes, 'state'"],
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"inserting the clients failed: {r.stderr.strip()}")
    inserted = time.monotonic()
    seen = {}
    for _ in range(100_000):
        now = time.monotonic()
        if len(seen) == n or now - inserted > opts.scale_timeout:
            break
        for i, c in enumerate(conns):
            if i not in seen:
                try:
                    if token_ok(token_request(c, probe_id, secret)[0]):
                        seen[i] = time.monotonic() - inserted
                except OSError:
                    pass
        time.sleep(0.02)
    out = {"clients": k, "insert_s": inserted - t0,
           "loaded_s": {i + 1: v for i, v in sorted(seen.items())},
           "rss_before_kib": rss_before}
    if len(seen) < n:
        out["failed"] = f"only {len(seen)} of {n} replicas knew the clients after {opts.scale_timeout:g} s"
        results["scale"] = out
        return
    time.sleep(2)
    out["rss_kib"] = {r.index: rss_kib(r.pid)[0] for r in dep.replicas}
    log(f"  {opts.scale_idle:g} s idle with {k:,} clients")
    statement_log(dep, True)
    try:
        w = Window(dep)
        time.sleep(opts.scale_idle)
        quiet = w.close()
        out["idle"] = quiet
        kind_d = Kind("client disabled", "admin")
        kind_e = Kind("client enabled again", "admin")

        def refused(conn):
            s, _ = token_request(conn, probe_id, secret)
            return True if token_refused(s) else (False if token_ok(s) else None)

        def accepted(conn):
            s, _ = token_request(conn, probe_id, secret)
            return True if token_ok(s) else (False if token_refused(s) else None)

        def toggle(action):
            s, body = dep.admin("POST", f"/admin/clients/{probe_id}/{action}")
            if s != 200:
                raise RuntimeError(f"admin API answered {s}: {body[:200]!r}")

        log(f"  client disabled / enabled again with {k:,} clients: {opts.scale_trials} trials")
        w = Window(dep)
        for i in range(opts.scale_trials):
            kind_d.trials.append(run_trial(conns, refused, lambda: toggle("disable"),
                                           opts.scale_timeout, opts.probe_interval_ms / 1000))
            kind_e.trials.append(run_trial(conns, accepted, lambda: toggle("enable"),
                                           opts.scale_timeout, opts.probe_interval_ms / 1000))
        busy = w.close()
    finally:
        statement_log(dep, False)
    changes = 2 * opts.scale_trials
    secs = busy["seconds"]
    per_change = {
        "replica_cpu_ms": statistics.mean(
            (busy["replica_cpu_ms"][i] - quiet["replica_cpu_ms"][i] / quiet["seconds"] * secs) / changes
            for i in busy["replica_cpu_ms"] if i in quiet["replica_cpu_ms"]),
    }
    if "pg_cpu_ms" in busy and "pg_cpu_ms" in quiet:
        per_change["pg_cpu_ms"] = (busy["pg_cpu_ms"] - quiet["pg_cpu_ms"] / quiet["seconds"] * secs) / changes
    out["per_change"] = per_change
    out["peak_rss_kib"] = {r.index: rss_kib(r.pid)[1] for r in dep.replicas}
    out["propagation"] = [{"kind": kd.name, "via": kd.via, "summary": summarize(kd),
                           "trials": kd.trials} for kd in (kind_d, kind_e)]
    for c in conns:
        c.close()
    results["scale"] = out


# --- report -----------------------------------------------------------------------------------


def fmt_ms(v):
    if v is None:
        return "—"
    return f"{v:.1f}" if abs(v) < 100 else f"{v:.0f}"


def triple(vals):
    return " / ".join(fmt_ms(v) for vals_ in [vals] for v in vals_)


def median_run(runs):
    return sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]


def report(results, opts):
    meta = results["meta"]
    n = meta["replicas"]
    lines = [
        f"Run {meta['date']} on {meta['nproc']} vCPU ({meta['cpu_model']}): `{meta['version']}` "
        f"built from commit `{meta.get('binary_commit', '?')}`, this script at `{meta['commit']}`, "
        f"{meta['postgres']}"
        f"{' (a throwaway cluster, default settings: max_connections ' + meta['max_connections'] + ', fsync on)' if meta['own_cluster'] else ''}. "
        f"{n} replicas of `serve` and PostgreSQL share the machine's cores with the load "
        f"generator and the probes; every replica runs with its default pool "
        f"(`--db-max-connections` 5) and `--refresh-interval` "
        f"({meta['refresh_interval']}), and rate limits lifted so probes are never refused "
        f"for their number. Load average before the run: {' '.join(meta['loadavg_before'])}.",
        "",
    ]
    if "propagation" in results:
        lines += [
            f"**Propagation to all {n} replicas**, {opts.trials} trials per change. Each replica "
            f"is probed from its own thread every {opts.probe_interval_ms:g} ms (a probe itself "
            f"takes a round trip), for at most {opts.probe_timeout:g} s; a replica's time is "
            f"when the first probe answer showing the change came back. \"Last replica\" is the "
            f"slowest of the {n} in a trial; percentiles are over trials (nearest rank: with "
            f"{opts.trials} trials p99 is the largest). \"Each replica\" pools every replica's "
            f"time of every trial. Negative: the replica showed the change before the caller "
            f"had the write's answer.",
            "",
            "| change | through | trials ok | last replica, ms from the write's return: p50 / p99 / max "
            "| last replica, ms from the write's send: p50 / p99 / max | each replica, ms from "
            "the return: p50 / p99 / max | the write itself, ms: p50 / p99 |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        notes = []
        for k in results["propagation"]:
            if k["unavailable"]:
                lines.append(f"| {k['kind']} | {k['via']} | — | {k['unavailable']} | | | |")
                continue
            s = k["summary"]
            if not s:
                continue
            lines.append(
                f"| {k['kind']} | {k['via']} | {s['ok']}/{s['trials']} | "
                f"{triple(s['last_from_return'])} | {triple(s['last_from_sent'])} | "
                f"{triple(s['each_from_return'])} | {fmt_ms(s['write'][0])} / {fmt_ms(s['write'][1])} |")
            for why in s["failed"]:
                notes.append(f"- {k['kind']} ({k['via']}): {why}")
            for note in k["notes"]:
                notes.append(f"- {k['kind']} ({k['via']}): {note}")
        if notes:
            lines += ["", *notes]
        shown = [k for k in results["propagation"] if k["summary"] and k["summary"]["ok"]]
        if shown:
            periods = [k["summary"]["probe_period_ms"] for k in shown]
            lines += [
                "",
                f"Each replica was in fact probed every {min(periods):.1f}–{max(periods):.1f} ms "
                f"(median per change; a probe's round trip included). Each replica's median, ms "
                f"from the write's return:",
                "",
                "| change | through | " + " | ".join(f"r{i}" for i in range(1, n + 1)) + " |",
                "|---|---|" + "---:|" * n,
            ]
            for k in shown:
                med = k["summary"]["per_replica_p50"]
                lines.append(f"| {k['kind']} | {k['via']} | "
                             + " | ".join(fmt_ms(med.get(i, med.get(str(i)))) for i in range(1, n + 1))
                             + " |")
    if "idle" in results:
        i = results["idle"]
        conns = i["connections_end"]
        total = sum(conns.values())
        samples = i["connections_samples"]
        lo = min(sum(s["per_replica"].values()) for s in samples) if samples else total
        hi = max(sum(s["per_replica"].values()) for s in samples) if samples else total
        rss = [v for v in i["rss_kib"].values() if v]
        cpu = list(i["replica_cpu_ms_per_s"].values())
        lines += [
            "",
            f"**Idle cost**, the {n} replicas doing nothing for {i['seconds']:.0f} s "
            f"(after {opts.settle:g} s to settle, before any other measurement):",
            "",
            "| measure | all replicas | per replica |",
            "|---|---:|---:|",
            f"| PostgreSQL connections held, at the start of the window | "
            f"{sum(i['connections_start'].values())} | "
            f"{min(i['connections_start'].values())}–{max(i['connections_start'].values())} |",
            f"| PostgreSQL connections held, at the end (min–max over {len(samples)} samples "
            f"every 10 s) | {total} ({lo}–{hi}) | {min(conns.values())}–{max(conns.values())} |",
            f"| of which `LISTEN` connections | {sum(i['listen_end'].values())} | "
            f"{min(i['listen_end'].values())}–{max(i['listen_end'].values())} |",
            f"| transactions/s in the database (pg_stat_database commits + rollbacks) | "
            f"{i['xacts_per_s']:.1f} | {i['xacts_per_s'] / n:.1f} |",
        ]
        if "statements_per_s" in i:
            st = list(i["statements_per_s"].values())
            lines.append(f"| statements/s (`log_statement = all`, by client port) | {sum(st):.1f} | "
                         f"{min(st):.1f}–{max(st):.1f} |")
        lines += [
            f"| replica CPU, ms per s | {sum(cpu):.1f} | {min(cpu):.1f}–{max(cpu):.1f} |",
        ]
        if i.get("pg_cpu_ms_per_s") is not None:
            lines.append(f"| PostgreSQL CPU, ms per s (every process of the server) | "
                         f"{i['pg_cpu_ms_per_s']:.1f} | {i['pg_cpu_ms_per_s'] / n:.1f} |")
        lines.append(f"| replica RSS, MiB | {sum(rss) / 1024:.1f} | "
                     f"{min(rss) / 1024:.1f}–{max(rss) / 1024:.1f} |")
        c = i.get("per_change")
        if c:
            lines += [
                "",
                f"**What one change costs**: {c['changes']} changes through replica 1's admin API "
                f"(a client disabled, enabled, …), one every {opts.change_gap:g} s, right after "
                f"the idle window; the idle rates subtracted, divided by the changes:",
                "",
                "| per change | all replicas | per replica |",
                "|---|---:|---:|",
                f"| transactions (the write's own included) | {c['xacts']:.1f} | {c['xacts'] / n:.1f} |",
            ]
            if c.get("statements_per_replica"):
                st = c["statements_per_replica"]
                others = [v for k, v in st.items() if int(k) != 1]
                lines.append(f"| statements (replica 1 also runs the write) | {sum(st.values()):.1f} | "
                             f"{min(others or st.values()):.1f}–{max(others or st.values()):.1f} "
                             f"(replica 1: {st.get(1, st.get('1', 0)):.1f}) |")
            lines.append(f"| replica CPU, ms | {c['replica_cpu_ms'] * n:.1f} | "
                         f"{c['replica_cpu_ms']:.1f} (mean) |")
            if c.get("pg_cpu_ms") is not None:
                lines.append(f"| PostgreSQL CPU, ms | {c['pg_cpu_ms']:.1f} | {c['pg_cpu_ms'] / n:.1f} |")
        if i.get("statements_top"):
            lines += ["", "What an idle replica sends, per second (statement text as logged, "
                          "truncated):", "", "| per s per replica | statement |", "|---:|---|"]
            for rate, q in i["statements_top"]:
                lines.append(f"| {rate:.2f} | `{q.replace('|', '/')}` |")
        if c and c.get("statements_top"):
            lines += ["", "What one change adds, per replica (statements beyond the idle rate):",
                      "", "| per change per replica | statement |", "|---:|---|"]
            for rate, q in c["statements_top"]:
                lines.append(f"| {rate:.2f} | `{q.replace('|', '/')}` |")
    if "throughput" in results:
        t = results["throughput"]
        a, o = median_run(t["all"]), median_run(t["one"])

        def row(label, r):
            per_cpu = r["requests"] / r["loaded_cpu_s"] if r["loaded_cpu_s"] else 0
            return (f"| {label} | {r['rps']:,.0f} | {r['loaded_cpu_s'] / r['seconds']:.2f} | "
                    f"{per_cpu:,.0f} | {r['idle_replicas_cpu_s'] / r['seconds']:.2f} | "
                    f"{r['wrk_cpu_s'] / r['seconds']:.2f} | "
                    f"{(r['pg_cpu_s'] or 0) / r['seconds']:.2f} | "
                    f"{r.get('softirq_cpu_s', 0) / r['seconds']:.2f} | "
                    f"{r.get('interrupt_cores', 0):.2f} | {other(r):.2f} | "
                    f"{r['machine_busy_cores']:.2f} |")

        def other(r):
            ours = (r["loaded_cpu_s"] + r["idle_replicas_cpu_s"] + r["wrk_cpu_s"]
                    + (r["pg_cpu_s"] or 0) + r.get("softirq_cpu_s", 0)) / r["seconds"]
            return max(0.0, r["machine_busy_cores"] - ours - r.get("interrupt_cores", 0))

        lines += [
            "",
            f"**Token throughput** (`POST /auth/token`, Basic, one client): the same load "
            f"generator both ways, {t['wrk_processes']} × `wrk -t1 -c{t['connections_per_wrk']}`, "
            f"aimed one per replica at all {n}, or all at replica 1 (the other replicas idle); "
            f"{opts.runs} interleaved runs × {opts.duration} s after a {opts.warmup} s warm-up each, "
            f"median run by req/s. \"Cores\" are CPU-seconds per second from /proc (utime + "
            f"stime); req per CPU-second divides the requests by the loaded replicas' CPU time.",
            "",
            "| setup | req/s | cores used by the loaded replicas | req per replica CPU-second "
            "| cores, idle replicas | cores, wrk | cores, PostgreSQL | cores, ksoftirqd "
            "| cores, irq + softirq (no process) | cores, anything else | cores busy, whole "
            "machine (steal excluded) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            row(f"{n} replicas", a),
            row("replica 1 alone", o),
            "",
            f"Runs (req/s): {n} replicas {rates(t['all'])}; replica 1 alone {rates(t['one'])}. "
            f"Per replica CPU-second, {n} replicas do {per_core_ratio(a, o):.2f}× what one "
            f"does; in req/s, {a['rps'] / o['rps']:.2f}×.",
        ]
        problems = [p for r in t["all"] + t["one"] for p in r["problems"]]
        if problems:
            lines += ["", "Load errors (these runs do not count): " + "; ".join(problems)]
    if "scale" in results:
        sc = results["scale"]
        loaded = list(sc["loaded_s"].values())
        lines += ["", f"**With {sc['clients']:,} clients** (inserted in one transaction, "
                      f"{sc['insert_s']:.1f} s, after the measures above, with the triggers off "
                      f"and the revision bumped by hand, so that every replica reloads them all; "
                      f"after that, a change is caught up from the journal):", ""]
        if sc.get("failed"):
            lines.append(f"FAILED: {sc['failed']}")
        else:
            q = sc["idle"]
            cpu = [v / q["seconds"] for v in q["replica_cpu_ms"].values()]
            rss = [v / 1024 for v in sc["rss_kib"].values()]
            before = [v / 1024 for v in sc["rss_before_kib"].values() if v]
            peak = [v / 1024 for v in sc["peak_rss_kib"].values() if v]
            lines += [
                "| measure | value |",
                "|---|---:|",
                f"| from the insert's commit until every replica issued tokens to the new "
                f"clients | {max(loaded):.2f} s (first replica {min(loaded):.2f} s) |",
                f"| replica RSS, MiB, before → after → peak (VmHWM), per replica | "
                f"{statistics.mean(before):.1f} → {statistics.mean(rss):.1f} → "
                f"{max(peak):.1f} |",
                f"| replica CPU at idle, ms per s per replica ({q['seconds']:.0f} s, so at least "
                f"one 30 s housekeeping) | {min(cpu):.1f}–{max(cpu):.1f} |",
            ]
            if q.get("pg_cpu_ms") is not None:
                lines.append(f"| PostgreSQL CPU at idle, ms per s | {q['pg_cpu_ms'] / q['seconds']:.1f} |")
            pc = sc["per_change"]
            lines.append(f"| one change: replica CPU, ms per replica (idle rate subtracted) | "
                         f"{pc['replica_cpu_ms']:.0f} |")
            if pc.get("pg_cpu_ms") is not None:
                lines.append(f"| one change: PostgreSQL CPU, ms (every replica's reads) | "
                             f"{pc['pg_cpu_ms']:.0f} |")
            for k in sc["propagation"]:
                s_ = k["summary"]
                lines.append(f"| {k['kind']} ({s_['ok']}/{s_['trials']} trials): last of {n} "
                             f"replicas, ms from the write's return, p50 / max | "
                             f"{fmt_ms(s_['last_from_return'][0])} / {fmt_ms(s_['last_from_return'][2])} |")
                for why in s_["failed"]:
                    lines.append(f"| {k['kind']}: failed trial | {why} |")
    return "\n".join(lines)


def rates(runs):
    return ", ".join(f"{r['rps']:,.0f}" for r in runs)


def per_core_ratio(a, o):
    pa = a["requests"] / a["loaded_cpu_s"] if a["loaded_cpu_s"] else 0
    po = o["requests"] / o["loaded_cpu_s"] if o["loaded_cpu_s"] else 0
    return pa / po if po else 0


def write_report(text, target):
    if target == "-":
        print(text)
        return
    doc = Path(target)
    body = f"{BEGIN}\n{text}\n{END}"
    old = doc.read_text() if doc.exists() else ""
    if BEGIN in old and END in old:
        new = old[: old.index(BEGIN)] + body + old[old.index(END) + len(END):]
    else:
        new = old.rstrip("\n") + f"\n\n{HEADING}\n\n{body}\n"
    doc.write_text(new)
    log(f"wrote {doc}")


# --- main -----------------------------------------------------------------------------------------


def meta(opts, dep, cluster):
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip() or "unknown"
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    version = subprocess.run([dep.binary, "--version"], capture_output=True,
                             text=True).stdout.strip() or "unknown"
    # The commit the binary was built from, as it reports it itself.
    built = "unknown"
    try:
        status, body = dep.admin("GET", "/metrics")
        m = re.search(r'moneykit_auth_build_info\{[^}]*commit="([^"]*)"', body.decode())
        if status == 200 and m:
            built = m.group(1)
    except OSError:
        pass
    server = psql(dep.stats_url, "SHOW server_version")[0][0]
    max_conn = psql(dep.stats_url, "SHOW max_connections")[0][0]
    refresh = next((a.split("=", 1)[1] for a in (opts.serve_arg or [])
                    if a.startswith("--refresh-interval=")), "200ms, the default")
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "commit": commit + ("+changes" if dirty else ""),
        "binary_commit": built,
        "version": version,
        "postgres": f"PostgreSQL {server}",
        "max_connections": max_conn,
        "own_cluster": cluster is not None,
        "replicas": opts.replicas,
        "refresh_interval": refresh,
        "loadavg_before": Path("/proc/loadavg").read_text().split()[0:3],
        "command": " ".join(sys.argv),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", default=str(ROOT / "target/release/moneykit-auth"),
                   help="the release moneykit-auth binary")
    p.add_argument("--replicas", type=int, default=8)
    p.add_argument("--trials", type=int, default=30, help="trials per kind of change")
    p.add_argument("--postgres", metavar="URL",
                   help="an existing, empty database (its user may create tables); default: a "
                        "throwaway cluster of our own")
    p.add_argument("--write", metavar="FILE|-", default="-",
                   help="replace (or append) the section in FILE; '-' prints it (default)")
    p.add_argument("--json", default=str(ROOT / "bench/results/replicas.json"),
                   help="raw results")
    p.add_argument("--only", default="idle,propagation,throughput,scale",
                   help="comma-separated: idle, propagation, throughput, scale")
    p.add_argument("--via", default="admin",
                   help="comma-separated ways to make the changes: admin (replica 1's admin "
                        "API), cli (the moneykit-auth CLI); token revocation always uses "
                        "POST /oauth2/revoke")
    p.add_argument("--probe-interval-ms", type=float, default=3.0)
    p.add_argument("--probe-timeout", type=float, default=5.0, help="seconds")
    p.add_argument("--pause", type=float, default=0.05, help="seconds between trials")
    p.add_argument("--idle", type=float, default=60.0, help="seconds of idleness measured")
    p.add_argument("--settle", type=float, default=5.0, help="seconds before the idle window")
    p.add_argument("--changes", type=int, default=20,
                   help="after the idle window: this many changes (a client disabled, enabled, "
                        "…), to measure what one change costs every replica (0: none)")
    p.add_argument("--change-gap", type=float, default=0.25, help="seconds between those changes")
    p.add_argument("--runs", type=int, default=3, help="throughput runs per setup")
    p.add_argument("--duration", type=int, default=10, help="seconds per throughput run")
    p.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per setup")
    p.add_argument("--connections", type=int, default=32,
                   help="wrk connections in all, spread over one wrk per replica")
    p.add_argument("--scale-clients", type=int, default=100_000,
                   help="last: insert this many clients, measure reload, RSS, idle cost and "
                        "propagation (0: skip)")
    p.add_argument("--scale-idle", type=float, default=35.0,
                   help="seconds idle with those clients (over 30 s: one housekeeping)")
    p.add_argument("--scale-trials", type=int, default=5,
                   help="disable/enable trials with those clients")
    p.add_argument("--scale-timeout", type=float, default=60.0,
                   help="seconds a replica may take to show a change with those clients")
    p.add_argument("--serve-arg", action="append", metavar="ARG",
                   help="an extra argument for every `serve` (repeat; e.g. "
                        "--serve-arg=--refresh-interval=1s)")
    p.add_argument("--max-seconds", type=float, default=1200,
                   help="stop everything after this long")
    p.add_argument("--keep", action="store_true", help="keep the work directory and logs")
    opts = p.parse_args()
    if not Path(opts.binary).is_file():
        raise SystemExit(f"{opts.binary}: no such binary (build it: cargo build --release -p moneykit-auth)")
    for tool in ("psql", "wrk"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is needed (apt-get install postgresql-client wrk)")

    def stop_now(signum, frame):
        raise Abort(f"signal {signum}" if signum != signal.SIGALRM
                    else f"--max-seconds ({opts.max_seconds:g} s) passed")

    for sig in (signal.SIGALRM, signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop_now)
    signal.alarm(int(opts.max_seconds))

    work = Path(tempfile.mkdtemp(prefix="moneykit-replicas."))
    cluster = None if opts.postgres else OwnCluster(keep=opts.keep)
    dep = None
    results = {}
    started = time.monotonic()
    failed = False
    try:
        if cluster:
            log("starting a throwaway PostgreSQL cluster")
            url = cluster.start(opts.max_seconds)
        else:
            url = opts.postgres
        dep = Deployment(opts, url, cluster, work)
        log("moneykit-auth init")
        dep.cli("init")
        log(f"starting {opts.replicas} replicas")
        dep.start(opts.replicas)
        results["meta"] = meta(opts, dep, cluster)
        parts = opts.only.split(",")
        if "idle" in parts:
            log("idle cost:")
            run_idle(dep, opts, results)
        if "propagation" in parts:
            log("propagation:")
            run_propagation(dep, opts, results)
        if "throughput" in parts:
            log("throughput:")
            run_throughput(dep, opts, results)
        if "scale" in parts and opts.scale_clients:
            log("many clients:")
            run_scale(dep, opts, results)
        for r in dep.replicas:
            if r.proc.poll() is not None:
                failed = True
                log(f"replica {r.index} exited during the run ({r.proc.returncode})")
    except Abort as e:
        failed = True
        log(f"stopped: {e}")
    finally:
        signal.alarm(0)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        if dep:
            dep.stop()
        if cluster:
            cluster.stop()
        if not opts.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"logs kept in {work}")
    results["elapsed_s"] = time.monotonic() - started
    Path(opts.json).parent.mkdir(parents=True, exist_ok=True)
    Path(opts.json).write_text(json.dumps(results, indent=1, default=str))
    log(f"raw results in {opts.json}; {results['elapsed_s']:.0f} s in all")
    if failed or "meta" not in results:
        raise SystemExit(1)
    write_report(report(results, opts), opts.write)


if __name__ == "__main__":
    main()
