"""Suite 5: schemathesis fuzzes every operation in the server's own /openapi.json.

It fetches the document, gives schemathesis a credential for each security scheme the document
declares (HTTP Basic → a client's id and secret; Bearer or OAuth2 → an access token; an
``X-Client-Id`` API key → the client id), runs ``schemathesis run`` on the fetched document
(a file: loaded from the server's URL, schemathesis leaves out ``GET /openapi.json`` itself)
with a bounded budget, then turns its JUnit report into one ``ok``/``FAIL`` line per API
operation and a closing ``N passed, N failed`` line.

Every operation the document declares must have run: one that schemathesis skipped (no phase
generated a request for it), errored on, or left out of its report is a failure, and so is a
document without operations. A run that tested nothing cannot pass.

Environment: ``BASE_URL``, ``CLIENT2_ID``, ``CLIENT2_SECRET`` (as exported by interop/run.sh);
optional ``SCHEMATHESIS_CHECKS``, ``SCHEMATHESIS_PHASES``, ``SCHEMATHESIS_MAX_EXAMPLES``,
``SCHEMATHESIS_MAX_TIME``, ``SCHEMATHESIS_WORKERS``, ``SCHEMATHESIS_SEED``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import requests

DEFAULT_CHECKS = ",".join(
    [
        "not_a_server_error",
        "response_schema_conformance",
        "status_code_conformance",
        "content_type_conformance",
    ]
)


HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def operations(schema: dict) -> list[str]:
    """Every operation the document declares, named as schemathesis' report names them
    (``POST /auth/token``)."""
    return [
        f"{method.upper()} {path}"
        for path, item in (schema.get("paths") or {}).items()
        for method in item
        if method in HTTP_METHODS
    ]


def judge(expected: list[str], junit: Path, code: int) -> tuple[int, int]:
    """One ``ok``/``FAIL`` line per operation from schemathesis' JUnit report; (passed, failed).
    An operation passes only if it is in the report, ran, and had no failure or error."""
    passed = failed = 0
    seen = set()
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = case.get("name", "?")
        seen.add(name)
        problems = case.findall("failure") + case.findall("error")
        skipped = case.find("skipped")
        if problems:
            failed += 1
            first = (problems[0].get("message") or problems[0].text or "").strip().splitlines()
            print(f"FAIL {name}: {first[0] if first else 'failed'}")
        elif skipped is not None:
            failed += 1
            why = (skipped.get("message") or skipped.text or "").strip().splitlines()
            print(f"FAIL {name}: not tested, schemathesis skipped it ({why[0] if why else 'no reason given'})")
        else:
            passed += 1
            print(f"ok {name}")
    for name in expected:
        if name not in seen:
            failed += 1
            print(f"FAIL {name}: not tested, absent from schemathesis' report")
    if not expected:
        failed += 1
        print("FAIL the document declares no operation: nothing was tested")
    if code != 0 and failed == 0:
        failed += 1
        print(f"FAIL schemathesis exited {code} without a failing operation in its report")
    return passed, failed


def toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string for these values


def main() -> int:
    base = os.environ["BASE_URL"].rstrip("/")
    client_id = os.environ["CLIENT2_ID"]
    client_secret = os.environ["CLIENT2_SECRET"]
    checks = os.environ.get("SCHEMATHESIS_CHECKS", DEFAULT_CHECKS)
    phases = os.environ.get("SCHEMATHESIS_PHASES", "examples,coverage,fuzzing")
    max_examples = os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "25")
    max_time = os.environ.get("SCHEMATHESIS_MAX_TIME", "60")
    workers = os.environ.get("SCHEMATHESIS_WORKERS", "2")
    seed = os.environ.get("SCHEMATHESIS_SEED", "20230218")
    schema_url = f"{base}/openapi.json"

    try:
        resp = requests.get(schema_url, timeout=10)
    except requests.RequestException as err:
        print(f"FAIL fetch {schema_url}: {err}")
        print("0 passed, 1 failed")
        return 1
    if resp.status_code != 200:
        print(f"FAIL fetch {schema_url}: HTTP {resp.status_code} {resp.text[:200]}")
        print("0 passed, 1 failed")
        return 1
    schema = resp.json()
    expected = operations(schema)
    print(f"ok fetch {schema_url}: OpenAPI {schema.get('openapi')}, {len(expected)} operations")

    token_resp = requests.post(
        f"{base}/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(client_id, client_secret),
        timeout=10,
    )
    if token_resp.status_code != 200:
        token_resp = requests.post(f"{base}/auth/token", auth=(client_id, client_secret), timeout=10)
    token = token_resp.json()["access_token"]

    lines = []
    for name, scheme in schema.get("components", {}).get("securitySchemes", {}).items():
        kind = scheme.get("type")
        http_scheme = str(scheme.get("scheme", "")).lower()
        section = f"[auth.openapi.{toml_str(name)}]"
        if kind == "http" and http_scheme == "basic":
            lines += [section, f"username = {toml_str(client_id)}", f"password = {toml_str(client_secret)}"]
        elif (kind == "http" and http_scheme == "bearer") or kind in ("oauth2", "openIdConnect"):
            lines += [section, f"bearer = {toml_str(token)}"]
        elif kind == "apiKey":
            value = client_id if scheme.get("name", "").lower() == "x-client-id" else token
            lines += [section, f"api_key = {toml_str(value)}"]
        else:
            print(f"note: security scheme {name!r} of type {kind!r} gets no credential")
            continue
        print(f"note: security scheme {name!r} ({kind} {http_scheme}) gets a credential")

    work = Path(tempfile.mkdtemp(prefix="interop-schemathesis-"))
    try:
        config = work / "schemathesis.toml"
        config.write_text("\n".join(lines) + "\n")
        document = work / "openapi.json"
        document.write_bytes(resp.content)
        junit = work / "junit.xml"
        exe = Path(sys.executable).with_name("schemathesis")
        cmd = [
            str(exe),
            "--config-file",
            str(config),
            "run",
            str(document),
            "--url",
            base,
            "--checks",
            checks,
            "--phases",
            phases,
            "--max-examples",
            max_examples,
            "--max-time",
            max_time,
            "--workers",
            workers,
            "--seed",
            seed,
            "--request-timeout",
            "10",
            "--suppress-health-check",
            "all",
            "--report",
            "junit",
            "--report-junit-path",
            str(junit),
        ]
        print("$ " + " ".join(cmd).replace(str(work), "$WORK"), flush=True)
        try:
            # cwd: schemathesis and hypothesis leave report and example-database folders there.
            proc = subprocess.run(cmd, cwd=work, timeout=int(max_time) + 60, env={**os.environ, "NO_COLOR": "1"})
            code = proc.returncode
        except subprocess.TimeoutExpired:
            print(f"FAIL schemathesis did not finish within {int(max_time) + 60} s")
            print("0 passed, 1 failed")
            return 1

        if not junit.exists():
            print(f"FAIL schemathesis produced no report (exit {code})")
            print("0 passed, 1 failed")
            return 1
        passed, failed = judge(expected, junit, code)
        passed += 1  # the schema fetch above
        print(f"{passed} passed, {failed} failed")
        return 1 if failed else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
