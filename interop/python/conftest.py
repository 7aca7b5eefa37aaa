"""Shared fixtures for the Python interop suites.

`interop/run.sh` starts a moneykit-auth server of this suite's own (own database, own port)
and exports, for it:

- ``BASE_URL``: the server's base URL (also its issuer), e.g. ``http://127.0.0.1:40123``: the
  server bound port 0 and run.sh read the port back from its log
- ``APP_ID``: the app the clients below belong to
- ``CLIENT_ID`` / ``CLIENT_SECRET``: a client allowed ``accounts:read transactions:read``
- ``CLIENT2_ID`` / ``CLIENT2_SECRET``: a second client of the same app, used as the
  "resource server" that introspects other clients' tokens (RFC 7662 §2.1)
- ``MK_BIN``: the moneykit-auth binary, for CLI calls (new clients, disable, key rotation)
- ``MONEYKIT_AUTH_DATABASE_URL`` and ``MONEYKIT_AUTH_SECRET``: what the CLI needs to reach the
  same database as the server

The tests talk to that server only; nothing here starts or stops it.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from dataclasses import dataclass

import pytest
import requests

# authlib refuses plain-HTTP endpoints unless told otherwise; the server under test is on
# loopback, without TLS.
os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")

CLIENT_SCOPES = ("accounts:read", "transactions:read")
TIMEOUT = 10


@dataclass(frozen=True)
class Client:
    client_id: str
    client_secret: str
    scope: str


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.exit(f"environment variable {name} is not set: run the suites via interop/run.sh", 2)
    return value


@pytest.fixture(scope="session")
def base_url() -> str:
    return _env("BASE_URL").rstrip("/")


@pytest.fixture(scope="session")
def app_id() -> str:
    return _env("APP_ID")


@pytest.fixture(scope="session")
def client() -> Client:
    return Client(_env("CLIENT_ID"), _env("CLIENT_SECRET"), " ".join(CLIENT_SCOPES))


@pytest.fixture(scope="session")
def client2() -> Client:
    return Client(_env("CLIENT2_ID"), _env("CLIENT2_SECRET"), " ".join(CLIENT_SCOPES))


def cli(*args: str) -> dict | list:
    """Runs the moneykit-auth CLI with ``--json`` against the suite's database."""
    out = subprocess.run(
        [_env("MK_BIN"), "--json", *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    )
    return json.loads(out.stdout)


def wait_until(predicate, timeout: float = 3.0, interval: float = 0.1):
    """Polls ``predicate`` until it returns a truthy value (returned) or ``timeout`` passes.

    CLI changes reach a running server within 1 s; 3 s leaves room on a busy
    2-core machine.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def raw_token(base_url: str, c: Client, scope: str | None = None) -> requests.Response:
    """A plain-requests client_credentials request to /oauth2/token (Basic auth)."""
    data = {"grant_type": "client_credentials"}
    if scope is not None:
        data["scope"] = scope
    return requests.post(
        f"{base_url}/oauth2/token",
        data=data,
        auth=(c.client_id, c.client_secret),
        timeout=TIMEOUT,
    )


def moneykit_token(base_url: str, c: Client, scope: str | None = None) -> requests.Response:
    """A plain-requests request to the MoneyKit /auth/token (Basic auth)."""
    data = {"grant_type": "client_credentials"}
    if scope is not None:
        data["scope"] = scope
    return requests.post(
        f"{base_url}/auth/token",
        data=data,
        auth=(c.client_id, c.client_secret),
        timeout=TIMEOUT,
    )


def new_client(base_url: str, app_id: str, scope: str = "accounts:read", *extra: str) -> Client:
    """Creates a client with the CLI and waits until the running server knows it."""
    created = cli("clients", "create", "--app", app_id, "--scope", scope, *extra)
    c = Client(created["client_id"], created["client_secret"], scope)
    ok = wait_until(lambda: moneykit_token(base_url, c).status_code == 201)
    assert ok, f"the server did not pick up new client {c.client_id} within 3 s"
    return c


def jwt_parts(token: str) -> tuple[dict, dict]:
    """(header, claims) of a compact JWS, unverified."""

    def b64(part: str) -> dict:
        return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))

    header, payload, _sig = token.split(".")
    return b64(header), b64(payload)


@pytest.fixture()
def make_client(base_url, app_id):
    def make(scope: str = "accounts:read", *extra: str) -> Client:
        return new_client(base_url, app_id, scope, *extra)

    return make
