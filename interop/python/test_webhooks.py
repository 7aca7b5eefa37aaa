"""Suite: signed webhooks verified with PyJWT, following MoneyKit's published receiver recipe.

moneykit-auth delivers webhooks to a receiver started here on 127.0.0.1; the
receiver verifies each one exactly as MoneyKit's own examples do:

1. take the JWT from the ``MoneyKit-Signature`` header;
2. fetch (and cache) the JWKS from ``/.well-known/jwks.json``;
3. read ``kid`` from the JWT header and look the key up in the JWKS;
4. verify the JWT with that key, ES256 only, 5 minutes of leeway on ``iat``;
5. compare ``request_body_sha256`` with the SHA-256 hex of the raw body, in constant time.

The server runs with ``--webhooks-allow-http --webhooks-allow-private-targets`` (set by
``interop/run.sh``) so that it may deliver to a loopback receiver.
"""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import threading

import jwt
import pytest
import requests
from jwt import PyJWKClient

from conftest import TIMEOUT, cli, moneykit_token, wait_until

TEST_EVENTS = (
    "link.state_changed",
    "transactions.updates_available",
    "product.state_changed",
    "link.product_refresh",
)


class Receiver:
    """A webhook endpoint recording every request; answers with the planned statuses, then 200."""

    def __init__(self, plan=()):
        self.got: list[tuple[dict, bytes]] = []
        self.plan = list(plan)
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.got.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = receiver.plan.pop(0) if receiver.plan else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/moneykit/webhooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def verify_webhook(headers: dict, body: bytes, jwk_client: PyJWKClient) -> dict:
    """MoneyKit's receiver recipe, step by step. Raises on anything that does not verify."""
    signature = headers["moneykit-signature"]
    key = jwk_client.get_signing_key_from_jwt(signature)  # kid → key from the (cached) JWKS
    claims = jwt.decode(
        signature,
        key.key,
        algorithms=["ES256"],
        leeway=300,
        options={"require": ["iat"], "verify_aud": False},
    )
    computed = hashlib.sha256(body).hexdigest()
    if not hmac.compare_digest(claims["request_body_sha256"], computed):
        raise ValueError("request_body_sha256 does not match the body")
    return claims


@pytest.fixture()
def make_receiver(app_id):
    """Starts a receiver with the given plan and points the app's webhooks at it; undone at
    the end of the test."""
    started: list[Receiver] = []

    def make(plan=()) -> Receiver:
        r = Receiver(plan)
        started.append(r)
        cli("apps", "set-webhook", app_id, r.url, "--allow-http", "--allow-private-targets")
        return r

    yield make
    if started:
        cli("apps", "set-webhook", app_id, "--clear")
    for r in started:
        r.close()


@pytest.fixture()
def receiver(make_receiver):
    return make_receiver()


@pytest.fixture(scope="module")
def jwk_client(base_url) -> PyJWKClient:
    return PyJWKClient(f"{base_url}/.well-known/jwks.json", cache_keys=True, lifespan=300, timeout=TIMEOUT)


def trigger(base_url: str, token: str, link_id: str, event: str, key: str | None = None) -> requests.Response:
    body = {"webhook_event": event}
    if key:
        body["webhook_idempotency_key"] = key
    return requests.post(
        f"{base_url}/webhooks/test/link/{link_id}",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=TIMEOUT,
    )


def access_token(base_url, client) -> str:
    response = moneykit_token(base_url, client)
    assert response.status_code == 201, response.text
    return response.json()["access_token"]


def test_every_test_event_arrives_and_verifies(base_url, client, receiver, jwk_client):
    token = access_token(base_url, client)
    for i, event in enumerate(TEST_EVENTS):
        response = trigger(base_url, token, "link_py_1", event, key=f"py-idem-{i}")
        assert response.status_code == 200, response.text
    assert wait_until(lambda: len(receiver.got) >= len(TEST_EVENTS), timeout=15), receiver.got
    seen = set()
    for headers, body in receiver.got:
        claims = verify_webhook(headers, body, jwk_client)
        payload = json.loads(body)
        assert headers["content-type"] == "application/json"
        assert headers["moneykit-delivery-attempt"] == "1"
        assert headers["moneykit-delivery-token"]
        assert payload["link_id"] == "link_py_1"
        assert payload["webhook_major_version"] == 1
        assert isinstance(claims["iat"], int)
        seen.add(payload["webhook_event"])
    assert seen == set(TEST_EVENTS)


def test_the_signature_is_es256_and_a_changed_body_does_not_verify(base_url, client, receiver, jwk_client):
    token = access_token(base_url, client)
    assert trigger(base_url, token, "link_py_2", "link.state_changed").status_code == 200
    assert wait_until(lambda: receiver.got, timeout=15), "no delivery within 15 s"
    headers, body = receiver.got[0]
    signature = headers["moneykit-signature"]
    # The recipe accepts ES256 only: the server must sign with exactly that.
    header = jwt.get_unverified_header(signature)
    assert header["alg"] == "ES256", header
    assert header.get("kid"), header
    verify_webhook(headers, body, jwk_client)
    with pytest.raises(ValueError):
        verify_webhook(headers, body.replace(b"link_py_2", b"link_py_3"), jwk_client)


def test_a_failed_delivery_is_retried_with_the_same_token(base_url, client, make_receiver, jwk_client):
    r = make_receiver(plan=[500])
    token = access_token(base_url, client)
    assert trigger(base_url, token, "link_py_4", "transactions.updates_available").status_code == 200
    assert wait_until(lambda: len(r.got) >= 2, timeout=20), r.got
    (h1, b1), (h2, b2) = r.got[:2]
    assert (h1["moneykit-delivery-attempt"], h2["moneykit-delivery-attempt"]) == ("1", "2")
    assert h1["moneykit-delivery-token"] == h2["moneykit-delivery-token"]
    assert b1 == b2
    verify_webhook(h2, b2, jwk_client)
