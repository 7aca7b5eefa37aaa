"""Suite `sender`: sender-constrained access tokens with clients nobody here wrote.

- **DPoP** (RFC 9449) with requests-oauth2client (``OAuth2Client(dpop_bound_access_tokens=True)``,
  its ``DPoPKey`` proofs and its ``DPoPToken`` as a ``requests`` auth): bound tokens from
  ``/oauth2/token`` (200) and the MoneyKit ``/auth/token`` (201), with every algorithm the
  metadata advertises but RFC 9864's ``Ed25519`` (unknown to jwskate 0.12.2); ``cnf.jkt``
  checked against the library's thumbprint and one computed here (RFC 7638, hashlib) and by
  jwskate; the token used at ``GET /auth/introspect`` with the library's own proofs
  (``ath``), refused there as a Bearer; replayed proofs refused at both token endpoints and at
  ``/auth/introspect``; ``/oauth2/introspect`` shows ``cnf``; and a server started with
  ``--dpop-nonce``, whose ``use_dpop_nonce`` the library answers by itself.
- **mTLS** (RFC 8705): a PKI made here with ``cryptography`` (a CA, a server certificate for
  127.0.0.1, client certificates: CN=billing,O=Acme from the CA, a self-signed one, an expired
  one, one from a foreign CA, one with another subject), a TLS server started with
  ``--client-ca-file``, a ``tls_client_auth`` and a ``self_signed_tls_client_auth`` client made
  with the CLI. requests-oauth2client (``PublicApp``: ``client_id`` only, through a
  ``requests.Session`` holding the certificate) and curl get certificate-bound tokens
  (``cnf["x5t#S256"]``) from both surfaces; refused certificates get 401 ``invalid_client``; the
  token works at ``/auth/introspect`` only over a connection with its certificate. Behind a
  proxy: servers started with ``--client-cert-header X-Client-Cert`` believe the header (URL-encoded
  PEM, or Envoy's XFCC) from a trusted peer only.

Authlib 1.9.10 has no DPoP (and no ``tls_client_auth``), so it has no test here (see
interop/README.md).

The suite's own server (started by run.sh, ``BASE_URL``) serves the DPoP tests. The other
configurations need servers started with other flags: this module starts them itself (the
``ExtraServer`` class: the same binary, database and master secret as the suite's server, as
replicas would have, ``--listen 127.0.0.1:0`` and the address read back from the ``listening``
log line as run.sh does), stops each one when the module ends and checks its log as run.sh
checks the suite's server (no panic, no secret, no full token).
"""

from __future__ import annotations

import base64
import ctypes
import datetime
import hashlib
import ipaddress
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from jwskate import Jwk
from requests_oauth2client import DPoPKey, DPoPToken, OAuth2Client, PublicApp
from requests_oauth2client.exceptions import InvalidClient

from conftest import TIMEOUT, cli, jwt_parts, wait_until

SURFACES = {"oauth2": ("/oauth2/token", 200), "moneykit": ("/auth/token", 201)}
CURL = "/usr/bin/curl"
BILLING_DN = "CN=billing,O=Acme"
CERT_SCOPE = "accounts:read"
JWT_RE = re.compile(r"eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{20,}")


# --- helpers --------------------------------------------------------------------------------


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64u_json(part: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


# RFC 7638 §3.2: the required members of each key type, nothing else.
THUMBPRINT_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x"), "RSA": ("e", "kty", "n")}


def rfc7638_thumbprint(jwk: dict) -> str:
    """SHA-256 JWK thumbprint computed here: required members, sorted, no whitespace."""
    members = {name: jwk[name] for name in THUMBPRINT_MEMBERS[jwk["kty"]]}
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return b64u(hashlib.sha256(canonical.encode()).digest())


def proof_parts(proof: str) -> tuple[dict, dict]:
    header, payload, _sig = proof.split(".")
    return b64u_json(header), b64u_json(payload)


def x5t_s256(cert_pem: Path) -> str:
    """RFC 8705 §3.1: base64url(SHA-256(DER of the certificate))."""
    cert = x509.load_pem_x509_certificate(cert_pem.read_bytes())
    return b64u(hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest())


def recording(session: requests.Session) -> list[requests.Response]:
    """Every response the session gets from now on, in order (with ``.request`` as sent)."""
    seen: list[requests.Response] = []
    session.hooks["response"].append(lambda r, *a, **k: seen.append(r))
    return seen


def assert_dpop_error(resp: requests.Response, status: int, why: str) -> None:
    assert resp.status_code == status, (resp.status_code, resp.text)
    body = resp.json()
    assert body["error"] == "invalid_dpop_proof", body
    assert why in body["error_description"], body


def introspect(base_url: str, client2, token: str, session: requests.Session | None = None) -> dict:
    """RFC 7662 through requests-oauth2client's ``introspect_token``, authenticated as client2."""
    oauth = OAuth2Client(
        f"{base_url}/oauth2/token",
        introspection_endpoint=f"{base_url}/oauth2/introspect",
        auth=(client2.client_id, client2.client_secret),
        session=session,
        testing=True,
    )
    return oauth.introspect_token(token)


# --- servers of this module's own -----------------------------------------------------------

LISTENING = re.compile(r"^.* INFO listening address=(\S+) issuer=(\S+) ", re.MULTILINE)


def _die_with_parent() -> None:
    """In the child: SIGTERM when pytest dies, so no server outlives a killed run (Linux)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class ExtraServer:
    """``moneykit-auth serve`` with extra flags on the suite's database, as run.sh starts one."""

    def __init__(self, name: str, log_dir: Path, *flags: str, scheme: str = "http"):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [os.environ["MK_BIN"], "--log-format", "text", "serve", "--listen", "127.0.0.1:0",
             "--shutdown-delay", "0", *flags],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + 30
        while True:
            found = LISTENING.search(self.log())
            if found:
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"server {name} did not start ({' '.join(flags)}):\n{self.log()}")
            time.sleep(0.1)
        self.address, self.issuer = found.groups()
        self.base_url = f"{scheme}://{self.address}"
        assert self.issuer == self.base_url, (self.issuer, self.base_url)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()

    def problems(self, secrets: list[str]) -> list[str]:
        """What run.sh's check_server would fail on, with the log line (secrets not repeated)."""
        found = []
        for number, line in enumerate(self.log().splitlines(), 1):
            if re.search(r"panicked|stack backtrace", line, re.IGNORECASE):
                found.append(f"{self.log_path}:{number}: a panic: {line[:200]}")
            if any(s and s in line for s in secrets) or JWT_RE.search(line):
                found.append(f"{self.log_path}:{number}: a secret or a full token")
        return found


@pytest.fixture(scope="module")
def start_server(tmp_path_factory, client, client2):
    """Starts ExtraServers; at the end of the module stops them all, then checks their logs."""
    log_dir = tmp_path_factory.mktemp("servers")
    started: list[ExtraServer] = []

    def start(name: str, *flags: str, scheme: str = "http") -> ExtraServer:
        server = ExtraServer(name, log_dir, *flags, scheme=scheme)
        started.append(server)
        return server

    yield start
    unstopped = []
    for server in started:
        try:
            server.stop()
        except (OSError, subprocess.SubprocessError) as err:
            unstopped.append(f"{server.name}: {err}")
    assert not unstopped, unstopped
    secrets = [client.client_secret, client2.client_secret, os.environ.get("MONEYKIT_AUTH_SECRET", "")]
    bad = [problem for server in started for problem in server.problems(secrets)]
    assert not bad, "\n".join(bad[:10])
    assert all(s.proc.poll() is not None for s in started), "a server is still running"


# --- DPoP: metadata -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def metadata(base_url) -> dict:
    resp = requests.get(f"{base_url}/.well-known/oauth-authorization-server", timeout=TIMEOUT)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_metadata_advertises_dpop_algorithms(metadata):
    """RFC 9449 §5.1: ``dpop_signing_alg_values_supported``, asymmetric algorithms only; a
    plain-HTTP server without a proxy header does not claim certificate-bound tokens."""
    algs = metadata["dpop_signing_alg_values_supported"]
    assert "ES256" in algs, algs
    assert not [a for a in algs if a == "none" or a.startswith("HS")], algs
    assert "tls_client_certificate_bound_access_tokens" not in metadata
    assert "tls_client_auth" not in metadata["token_endpoint_auth_methods_supported"]


# --- DPoP: requests-oauth2client against the suite's server ---------------------------------


def dpop_client(base_url: str, client, path: str, **kw) -> tuple[OAuth2Client, list[requests.Response]]:
    oauth = OAuth2Client(
        f"{base_url}{path}", auth=(client.client_id, client.client_secret),
        dpop_bound_access_tokens=True, testing=True, **kw,
    )
    return oauth, recording(oauth.session)


def check_dpop_token_response(token, responses, url: str, status: int, x5t: str | None = None) -> dict:
    """One token request with a proof of the library's key; a DPoP token bound to that key
    (and to the certificate with that x5t#S256, if given, else to nothing else). Returns the
    token's claims."""
    (resp,) = responses
    assert resp.status_code == status, resp.text
    assert resp.json()["token_type"] == "DPoP", resp.text  # on the wire, not the library's idea
    assert isinstance(token, DPoPToken) and token.token_type == "DPoP"
    header, claims = proof_parts(resp.request.headers["DPoP"])
    assert header["typ"] == "dpop+jwt" and header["alg"] == token.dpop_key.alg, header
    assert "d" not in header["jwk"], "the proof carries a private key"
    assert claims["htm"] == "POST" and claims["htu"] == url, claims
    # The thumbprint, three ways: the library's, jwskate's of the key in the proof, ours.
    expected = token.dpop_key.dpop_jkt
    assert Jwk(header["jwk"]).thumbprint() == expected
    assert rfc7638_thumbprint(header["jwk"]) == expected
    _, access = jwt_parts(token.access_token)
    assert access["cnf"] == ({"jkt": expected} if x5t is None else {"jkt": expected, "x5t#S256": x5t}), access
    return access


def use_at_auth_introspect(base_url: str, token: DPoPToken, client_id: str, session=None) -> requests.Request:
    """GET /auth/introspect with the library's DPoPToken as the requests auth: 200, and what
    it sent was ``Authorization: DPoP`` with a proof for this request and this token."""
    session = session or requests.Session()
    sent = recording(session)
    resp = session.get(f"{base_url}/auth/introspect", auth=token, timeout=TIMEOUT)
    assert resp.status_code == 200, resp.text
    assert resp.json()["client_id"] == client_id
    (first,) = sent
    request = first.request
    assert request.headers["Authorization"] == f"DPoP {token.access_token}"
    header, claims = proof_parts(request.headers["DPoP"])
    assert rfc7638_thumbprint(header["jwk"]) == token.dpop_key.dpop_jkt
    assert claims["htm"] == "GET" and claims["htu"] == f"{base_url}/auth/introspect", claims
    # RFC 9449 §4.2: ath = base64url(SHA-256(ASCII access token)), computed here.
    assert claims["ath"] == b64u(hashlib.sha256(token.access_token.encode()).digest()), claims
    return request


@pytest.mark.parametrize("surface", SURFACES)
def test_roc_dpop_token_from_both_surfaces(surface, base_url, client, app_id):
    """``OAuth2Client(dpop_bound_access_tokens=True)`` with either URL as its token endpoint;
    the library takes the 201 of /auth/token as it takes a 200. The DPoP token works at
    /auth/introspect under the library's own proofs, twice (a fresh proof each time)."""
    path, status = SURFACES[surface]
    oauth, responses = dpop_client(base_url, client, path)
    token = oauth.client_credentials()
    claims = check_dpop_token_response(token, responses, f"{base_url}{path}", status)
    assert claims["client_id"] == client.client_id and claims["app_id"] == app_id
    first = use_at_auth_introspect(base_url, token, client.client_id)
    second = use_at_auth_introspect(base_url, token, client.client_id)
    assert proof_parts(first.headers["DPoP"])[1]["jti"] != proof_parts(second.headers["DPoP"])[1]["jti"]


def test_roc_dpop_from_discovery(base_url, client, metadata):
    """The /oauth2/token endpoint as requests-oauth2client finds it (RFC 8414 discovery)."""
    oauth = OAuth2Client.from_discovery_endpoint(
        f"{base_url}/.well-known/oauth-authorization-server", issuer=base_url,
        auth=(client.client_id, client.client_secret), dpop_bound_access_tokens=True, testing=True,
    )
    assert oauth.token_endpoint == metadata["token_endpoint"] == f"{base_url}/oauth2/token"
    responses = recording(oauth.session)
    token = oauth.client_credentials()
    check_dpop_token_response(token, responses, oauth.token_endpoint, 200)


@pytest.fixture(scope="module")
def dpop_algs(metadata) -> list[str]:
    return metadata["dpop_signing_alg_values_supported"]


@pytest.mark.parametrize("alg", ["ES256", "ES384", "EdDSA", "RS256", "PS256"])
def test_roc_dpop_every_advertised_algorithm(alg, dpop_algs, base_url, client):
    """``dpop_alg=`` for each algorithm the metadata lists (keys generated by the library):
    a bound token from both surfaces, used at /auth/introspect. Not ``Ed25519``, RFC 9864's
    name for EdDSA that the metadata lists too: jwskate 0.12.2 has no such algorithm, and
    ``DPoPKey.generate`` refuses it (``InvalidDPoPAlg``)."""
    assert alg in dpop_algs, dpop_algs
    for path, status in SURFACES.values():
        oauth, responses = dpop_client(base_url, client, path, dpop_alg=alg)
        token = oauth.client_credentials()
        assert token.dpop_key.alg == alg
        check_dpop_token_response(token, responses, f"{base_url}{path}", status)
        use_at_auth_introspect(base_url, token, client.client_id)


def test_roc_dpop_key_of_our_choosing(base_url, client):
    """``client_credentials(dpop_key=DPoPKey(<jwskate key>))``: the token is bound to that key,
    whose public JWK we hold."""
    private = Jwk.generate(alg="ES256")
    key = DPoPKey(private)
    oauth, responses = dpop_client(base_url, client, "/auth/token")
    token = oauth.client_credentials(dpop_key=key)
    check_dpop_token_response(token, responses, f"{base_url}/auth/token", 201)
    assert jwt_parts(token.access_token)[1]["cnf"]["jkt"] == rfc7638_thumbprint(dict(private.public_jwk()))


def test_dpop_bound_token_as_bearer_is_refused(base_url, client):
    """RFC 9449 §7.1: a DPoP-bound token under the Bearer scheme → 401 with a DPoP challenge
    and ``invalid_token``; without a proof under the DPoP scheme → 401 too."""
    oauth, _ = dpop_client(base_url, client, "/oauth2/token")
    token = oauth.client_credentials()
    resp = requests.get(f"{base_url}/auth/introspect", headers={"Authorization": f"Bearer {token.access_token}"},
                        timeout=TIMEOUT)
    assert resp.status_code == 401, resp.text
    challenge = resp.headers["WWW-Authenticate"]
    assert challenge.startswith("DPoP ") and 'error="invalid_token"' in challenge, challenge
    resp = requests.get(f"{base_url}/auth/introspect", headers={"Authorization": f"DPoP {token.access_token}"},
                        timeout=TIMEOUT)
    assert resp.status_code == 401, resp.text
    assert resp.headers["WWW-Authenticate"].startswith("DPoP "), resp.headers


def test_dpop_introspection_shows_cnf(base_url, client, client2):
    """RFC 7662 + RFC 9449 §6.2: ``token_type`` DPoP and ``cnf.jkt`` (requests-oauth2client's
    ``introspect_token`` as the resource server)."""
    for path, _status in SURFACES.values():
        oauth, _ = dpop_client(base_url, client, path)
        token = oauth.client_credentials()
        seen = introspect(base_url, client2, token.access_token)
        assert seen["active"] is True, seen
        assert seen["token_type"] == "DPoP", seen
        assert seen["cnf"] == {"jkt": token.dpop_key.dpop_jkt}, seen
        assert seen["client_id"] == client.client_id


@pytest.mark.parametrize("surface", SURFACES)
def test_replayed_token_request_proof_is_refused(surface, base_url, client):
    """RFC 9449 §11.1: the exact request the library sent, proof included, sent again → 400
    ``invalid_dpop_proof`` (the first one got a token)."""
    path, status = SURFACES[surface]
    oauth, responses = dpop_client(base_url, client, path)
    oauth.client_credentials()
    (first,) = responses
    assert first.status_code == status
    sent = first.request
    again = requests.post(sent.url, data=sent.body, headers=dict(sent.headers), timeout=TIMEOUT)
    assert_dpop_error(again, 400, "used before")
    assert again.json()["error_code"] == "api_error.auth.invalid_dpop_proof", again.text


def test_replayed_resource_proof_is_refused(base_url, client):
    """The proof the library's DPoPToken made for GET /auth/introspect, sent again → 401
    ``invalid_dpop_proof`` with a DPoP challenge; the library's next request (new proof) works."""
    oauth, _ = dpop_client(base_url, client, "/oauth2/token")
    token = oauth.client_credentials()
    sent = use_at_auth_introspect(base_url, token, client.client_id)
    again = requests.get(sent.url, headers={"Authorization": sent.headers["Authorization"],
                                            "DPoP": sent.headers["DPoP"]}, timeout=TIMEOUT)
    assert_dpop_error(again, 401, "used before")
    challenge = again.headers["WWW-Authenticate"]
    assert challenge.startswith("DPoP ") and 'error="invalid_dpop_proof"' in challenge, challenge
    use_at_auth_introspect(base_url, token, client.client_id)


# --- DPoP at an API protected by the moneykit SDK's verifier ---------------------------------


@pytest.fixture(scope="module")
def resource_api(base_url, tmp_path_factory):
    """The moneykit SDK's example resource server (examples/resource_server.rs): ``GET
    /accounts`` behind its ``AccessTokenVerifier``, trusting the suite's server. Stopped at
    the end of the module."""
    binary = os.environ.get("RESOURCE_SERVER_BIN", "")
    assert os.access(binary, os.X_OK), f"RESOURCE_SERVER_BIN={binary!r}: run.sh builds it"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (tmp_path_factory.mktemp("resource") / "resource_server.log").open("wb")
    proc = subprocess.Popen([binary], env={**os.environ, "MONEYKIT_ISSUER": base_url,
                                           "LISTEN": f"127.0.0.1:{port}"},
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            preexec_fn=_die_with_parent)
    url = f"http://127.0.0.1:{port}/accounts"
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(url, timeout=TIMEOUT).status_code == 401:
                break
        except requests.ConnectionError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, "the example API did not start"
        time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(timeout=10)
    log.close()


@pytest.mark.parametrize("surface", SURFACES)
def test_roc_dpop_token_at_the_sdk_verifiers_api(surface, resource_api, base_url, client):
    """A DPoP token requests-oauth2client got from either surface, used at an API behind
    the moneykit SDK's verifier with the library's own proofs (``ath``, ``htu`` of the API):
    200; the same proof again, the token as a bearer token, or a proof by another key: 401."""
    path, _ = SURFACES[surface]
    oauth, _ = dpop_client(base_url, client, path)
    token = oauth.client_credentials()
    session = requests.Session()
    sent = recording(session)
    resp = session.get(resource_api, auth=token, timeout=TIMEOUT)
    assert resp.status_code == 200, resp.text
    assert resp.json()["client_id"] == client.client_id, resp.text
    (first,) = sent
    _, claims = proof_parts(first.request.headers["DPoP"])
    assert claims["htu"] == resource_api and claims["htm"] == "GET", claims
    # The same proof again: a replay.
    again = requests.get(resource_api, headers={"Authorization": first.request.headers["Authorization"],
                                                "DPoP": first.request.headers["DPoP"]}, timeout=TIMEOUT)
    assert again.status_code == 401, again.text
    assert 'error="invalid_dpop_proof"' in again.headers["WWW-Authenticate"], again.headers
    # As a bearer token: whoever stole it lacks the key.
    bearer = requests.get(resource_api, headers={"Authorization": f"Bearer {token.access_token}"},
                          timeout=TIMEOUT)
    assert bearer.status_code == 401, bearer.text
    assert bearer.headers["WWW-Authenticate"].startswith("DPoP"), bearer.headers
    # A proof by another key, for this very request and token.
    other = DPoPKey.generate()
    forged = str(other.proof(htm="GET", htu=resource_api, ath=b64u(hashlib.sha256(token.access_token.encode()).digest())))
    resp = requests.get(resource_api, headers={"Authorization": f"DPoP {token.access_token}", "DPoP": forged},
                        timeout=TIMEOUT)
    assert resp.status_code == 401, resp.text


def test_proof_for_another_url_is_refused(base_url, client):
    """A proof the library made for the other token endpoint (``htu``) → 400 at this one."""
    key = DPoPKey.generate()
    proof = str(key.proof(htm="POST", htu=f"{base_url}/oauth2/token"))
    resp = requests.post(f"{base_url}/auth/token", data={"grant_type": "client_credentials"},
                         auth=(client.client_id, client.client_secret), headers={"DPoP": proof}, timeout=TIMEOUT)
    assert_dpop_error(resp, 400, "htu")


# --- DPoP: server nonces --------------------------------------------------------------------


@pytest.fixture(scope="module")
def nonce_server(start_server) -> ExtraServer:
    return start_server("dpop-nonce", "--dpop-nonce")


@pytest.mark.parametrize("surface", SURFACES)
def test_roc_answers_use_dpop_nonce_by_itself(surface, nonce_server, client):
    """RFC 9449 §8 against ``serve --dpop-nonce``: one ``client_credentials()`` call, two
    requests: the first (no nonce) → 400 ``use_dpop_nonce`` with ``DPoP-Nonce``; the library
    retries on its own with that nonce in a new proof and gets the token. The nonce comes again
    on the success, and the next call with the same key sends it at once (one request)."""
    path, status = SURFACES[surface]
    base = nonce_server.base_url
    oauth, responses = dpop_client(base, client, path)
    token = oauth.client_credentials()
    assert [r.status_code for r in responses] == [400, status], [r.text for r in responses]
    refused, granted = responses
    assert refused.json()["error"] == "use_dpop_nonce", refused.text
    nonce = refused.headers["DPoP-Nonce"]
    first_claims = proof_parts(refused.request.headers["DPoP"])[1]
    retry_claims = proof_parts(granted.request.headers["DPoP"])[1]
    assert "nonce" not in first_claims
    assert retry_claims["nonce"] == nonce and retry_claims["jti"] != first_claims["jti"]
    assert granted.headers.get("DPoP-Nonce"), "no DPoP-Nonce on the token response"
    assert token.token_type == "DPoP" and token.dpop_key.as_nonce == nonce
    assert jwt_parts(token.access_token)[1]["cnf"] == {"jkt": token.dpop_key.dpop_jkt}

    responses.clear()
    again = oauth.client_credentials(dpop_key=token.dpop_key)
    assert [r.status_code for r in responses] == [status]
    assert proof_parts(responses[0].request.headers["DPoP"])[1]["nonce"] == nonce
    use_at_auth_introspect(base, again, client.client_id)


def test_wrong_nonce_gets_a_new_one(nonce_server, client):
    """A proof with a made-up nonce → ``use_dpop_nonce`` again, with the real one."""
    base = nonce_server.base_url
    key = DPoPKey.generate()
    proof = str(key.proof(htm="POST", htu=f"{base}/oauth2/token", nonce="made-up-nonce"))
    resp = requests.post(f"{base}/oauth2/token", data={"grant_type": "client_credentials"},
                         auth=(client.client_id, client.client_secret), headers={"DPoP": proof}, timeout=TIMEOUT)
    assert resp.status_code == 400 and resp.json()["error"] == "use_dpop_nonce", resp.text
    assert resp.headers["DPoP-Nonce"] not in ("", "made-up-nonce")


# --- mTLS: a PKI of our own -----------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    dir: Path

    def cert(self, name: str) -> Path:
        return self.dir / f"{name}.pem"

    def key(self, name: str) -> Path:
        return self.dir / f"{name}.key"

    def pair(self, name: str) -> tuple[str, str]:
        return str(self.cert(name)), str(self.key(name))

    def pem(self, name: str) -> str:
        return self.cert(name).read_text()


def _name(cn: str, org: str) -> x509.Name:
    # RFC 4514 writes the last RDN first: this is "CN=<cn>,O=<org>".
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org), x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _certificate(subject, key, issuer, issuer_key, *, ca=False, days=(-1, 2), usage=None, san=None):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + datetime.timedelta(days=days[0]))
        .not_valid_after(now + datetime.timedelta(days=days[1]))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer_key is not key:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    """ca (Interop CA), server (127.0.0.1, from ca), billing (CN=billing,O=Acme from ca),
    self (self-signed), expired (billing's subject from ca, expired yesterday), foreign
    (billing's subject from another CA), wrong (CN=payroll,O=Acme from ca), other-self (another
    self-signed one). Each differs from billing in one thing only."""
    out = Pki(tmp_path_factory.mktemp("pki"))

    def save(name, cert, key=None):
        out.cert(name).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        if key is not None:
            out.key(name).write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption()))

    def new_key():
        return ec.generate_private_key(ec.SECP256R1())

    client_auth = ExtendedKeyUsageOID.CLIENT_AUTH
    ca_key, ca_name = new_key(), _name("Interop CA", "Acme")
    save("ca", _certificate(ca_name, ca_key, ca_name, ca_key, ca=True, days=(-1, 30)))
    foreign_key, foreign_name = new_key(), _name("Foreign CA", "Elsewhere")
    k = new_key()
    save("server", _certificate(_name("127.0.0.1", "Acme"), k, ca_name, ca_key, usage=ExtendedKeyUsageOID.SERVER_AUTH,
                                san=[x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), k)
    for name, subject, issuer, issuer_key, days in [
        ("billing", _name("billing", "Acme"), ca_name, ca_key, (-1, 2)),
        ("expired", _name("billing", "Acme"), ca_name, ca_key, (-3, -1)),
        ("foreign", _name("billing", "Acme"), foreign_name, foreign_key, (-1, 2)),
        ("wrong", _name("payroll", "Acme"), ca_name, ca_key, (-1, 2)),
    ]:
        k = new_key()
        save(name, _certificate(subject, k, issuer, issuer_key, days=days, usage=client_auth), k)
    for name in ("self", "other-self"):
        k, n = new_key(), _name(f"{name}-signed", "Acme")
        save(name, _certificate(n, k, n, k, usage=client_auth), k)
    billing = x509.load_pem_x509_certificate(out.cert("billing").read_bytes())
    assert billing.subject.rfc4514_string() == BILLING_DN
    return out


@dataclass(frozen=True)
class CertClients:
    tls: str  # tls_client_auth, subject DN CN=billing,O=Acme
    self_signed: str  # self_signed_tls_client_auth with pki "self"


@pytest.fixture(scope="module")
def cert_clients(pki, app_id) -> CertClients:
    """The CLI's answers: no secret, the method, the DN, and for the self-signed client the
    x5t#S256 of its certificate as computed here."""
    tls = cli("clients", "create", "--app", app_id, "--name", "mtls-billing", "--scope", CERT_SCOPE,
              "--auth-method", "tls_client_auth", "--tls-subject-dn", BILLING_DN)
    assert tls["token_endpoint_auth_method"] == "tls_client_auth", tls
    assert tls["tls_client_auth_subject_dn"] == BILLING_DN, tls
    assert "client_secret" not in tls, tls
    selfc = cli("clients", "create", "--app", app_id, "--name", "mtls-self-signed", "--scope", CERT_SCOPE,
                "--auth-method", "self_signed_tls_client_auth", "--cert-file", str(pki.cert("self")))
    assert selfc["token_endpoint_auth_method"] == "self_signed_tls_client_auth", selfc
    assert selfc["certificate_thumbprints"] == [x5t_s256(pki.cert("self"))], selfc
    assert "client_secret" not in selfc, selfc
    return CertClients(tls["client_id"], selfc["client_id"])


METHODS = {"tls_client_auth": ("tls", "billing"), "self_signed_tls_client_auth": ("self_signed", "self")}


def tls_session(pki: Pki, cert: str | None) -> requests.Session:
    """A requests Session to the TLS server: our CA as the only trust anchor and, when given,
    a client certificate. ``trust_env = False``: with it on, requests lets REQUESTS_CA_BUNDLE
    (set on this machine) override ``session.verify`` (psf/requests#3829)."""
    session = requests.Session()
    session.trust_env = False
    session.verify = str(pki.cert("ca"))
    if cert:
        session.cert = pki.pair(cert)
    return session


def cert_oauth(base: str, path: str, client_id: str, session: requests.Session, **kw) -> OAuth2Client:
    """requests-oauth2client with no secret: ``PublicApp`` sends ``client_id`` only."""
    return OAuth2Client(f"{base}{path}", auth=PublicApp(client_id), session=session, testing=True, **kw)


def gets_token(oauth: OAuth2Client) -> bool:
    """Whether a started server already answers this client (it loads the clients at start;
    a refusal here would spend the client's failure budget, so it is polled only until then)."""
    try:
        return bool(oauth.client_credentials().access_token)
    except InvalidClient:
        return False


@pytest.fixture(scope="module")
def tls_server(start_server, pki, cert_clients) -> ExtraServer:
    server = start_server("mtls", "--tls-cert", str(pki.cert("server")), "--tls-key", str(pki.key("server")),
                          "--client-ca-file", str(pki.cert("ca")), scheme="https")
    probe = cert_oauth(server.base_url, "/oauth2/token", cert_clients.tls, tls_session(pki, "billing"))
    assert wait_until(lambda: gets_token(probe), timeout=5), "the TLS server does not know the certificate clients"
    return server


def test_tls_metadata_advertises_certificates(tls_server, pki):
    """RFC 8705 §3.3, §2: over TLS the metadata claims certificate-bound tokens and lists both
    certificate methods, for the token and introspection endpoints."""
    meta = tls_session(pki, None).get(f"{tls_server.base_url}/.well-known/oauth-authorization-server",
                                      timeout=TIMEOUT).json()
    assert meta["issuer"] == tls_server.base_url
    assert meta["tls_client_certificate_bound_access_tokens"] is True, meta
    for endpoint in ("token_endpoint", "introspection_endpoint"):
        methods = meta[f"{endpoint}_auth_methods_supported"]
        assert {"tls_client_auth", "self_signed_tls_client_auth"} <= set(methods), (endpoint, methods)


@pytest.mark.parametrize("surface", SURFACES)
@pytest.mark.parametrize("method", METHODS)
def test_roc_certificate_client_gets_bound_token(method, surface, tls_server, pki, cert_clients, client2):
    """requests-oauth2client through a Session holding the certificate, ``client_id`` only in
    the body (no secret, no Authorization header): a Bearer token whose ``cnf`` is the
    certificate's x5t#S256; /oauth2/introspect (client2, by secret, no certificate) shows it."""
    path, status = SURFACES[surface]
    attr, cert = METHODS[method]
    client_id = getattr(cert_clients, attr)
    session = tls_session(pki, cert)
    sent = recording(session)
    token = cert_oauth(tls_server.base_url, path, client_id, session).client_credentials()
    (resp,) = sent
    assert resp.status_code == status, resp.text
    assert urllib.parse.parse_qs(resp.request.body) == {"grant_type": ["client_credentials"], "client_id": [client_id]}
    assert "Authorization" not in resp.request.headers
    assert token.token_type.lower() == "bearer", token.token_type
    claims = jwt_parts(token.access_token)[1]
    assert claims["client_id"] == client_id and claims["iss"] == tls_server.base_url, claims
    assert claims["cnf"] == {"x5t#S256": x5t_s256(pki.cert(cert))}, claims
    seen = introspect(tls_server.base_url, client2, token.access_token, session=tls_session(pki, None))
    assert seen["active"] is True and seen["client_id"] == client_id, seen
    assert seen["cnf"] == {"x5t#S256": x5t_s256(pki.cert(cert))}, seen


def test_certificate_bound_token_needs_its_certificate(tls_server, pki, cert_clients):
    """RFC 8705 §3: at /auth/introspect the token works over a connection with its certificate,
    not over one without a certificate or with another certificate of the same CA (401
    ``invalid_token``)."""
    token = cert_oauth(tls_server.base_url, "/auth/token", cert_clients.tls, tls_session(pki, "billing")).client_credentials()
    url = f"{tls_server.base_url}/auth/introspect"
    resp = tls_session(pki, "billing").get(url, auth=token, timeout=TIMEOUT)
    assert resp.status_code == 200 and resp.json()["client_id"] == cert_clients.tls, resp.text
    for cert in (None, "wrong"):
        resp = tls_session(pki, cert).get(url, auth=token, timeout=TIMEOUT)
        assert resp.status_code == 401, (cert, resp.text)
        assert resp.json()["error"] == "invalid_token", resp.text
        assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"], resp.headers


def test_certificate_bound_bearer_refusal_is_a_bearer_challenge(tls_server, pki, cert_clients):
    """RFC 8705 §3 / RFC 6750 §3: a certificate-bound (not DPoP-bound) token sent as a Bearer
    over a connection without its certificate is an RFC 6750 ``invalid_token``, and the
    challenge of a Bearer request is the Bearer scheme's: 401 with
    ``WWW-Authenticate: Bearer realm="moneykit-auth", error="invalid_token"``, not a DPoP
    challenge (which would tell the client to use DPoP, which cannot help)."""
    token = cert_oauth(tls_server.base_url, "/oauth2/token", cert_clients.tls, tls_session(pki, "billing")).client_credentials()
    resp = tls_session(pki, None).get(f"{tls_server.base_url}/auth/introspect", auth=token, timeout=TIMEOUT)
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer "), resp.headers["WWW-Authenticate"]


def test_roc_certificate_and_dpop_together(tls_server, pki, cert_clients):
    """``client_credentials(dpop=True)`` over a connection with a certificate: ``cnf`` holds
    both ``jkt`` and ``x5t#S256`` (``htu`` is the https URL); the DPoPToken works at
    /auth/introspect with the certificate, and the library's proof without it is not enough."""
    session = tls_session(pki, "billing")
    oauth = cert_oauth(tls_server.base_url, "/oauth2/token", cert_clients.tls, session)
    responses = recording(session)
    token = oauth.client_credentials(dpop=True)
    check_dpop_token_response(token, responses, f"{tls_server.base_url}/oauth2/token", 200,
                              x5t=x5t_s256(pki.cert("billing")))
    use_at_auth_introspect(tls_server.base_url, token, cert_clients.tls, session=tls_session(pki, "billing"))
    # Without the certificate: a proof by hand (the library's DPoPToken turns any 401 with a
    # DPoP challenge and no DPoP-Nonce into MissingDPoPNonce, see the README).
    url = f"{tls_server.base_url}/auth/introspect"
    proof = token.dpop_key.proof(htm="GET", htu=url, ath=b64u(hashlib.sha256(token.access_token.encode()).digest()))
    resp = tls_session(pki, None).get(url, headers={"Authorization": f"DPoP {token.access_token}", "DPoP": str(proof)},
                                      timeout=TIMEOUT)
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_token", resp.text


def curl_token(url: str, client_id: str, pki: Pki, cert: str | None, *headers: str) -> tuple[int, dict]:
    """curl, as an operator would call the server: ``--cert``/``--key`` (when given), our CA as
    ``--cacert``, ``client_id`` only in the body. -q: no ~/.curlrc."""
    cmd = [CURL, "-q", "--silent", "--show-error", "--max-time", "10", "--noproxy", "*",
           "--cacert", str(pki.cert("ca")), "--data-urlencode", "grant_type=client_credentials",
           "--data-urlencode", f"client_id={client_id}", "--write-out", "\n%{http_code}"]
    if cert:
        cmd += ["--cert", str(pki.cert(cert)), "--key", str(pki.key(cert))]
    for header in headers:
        cmd += ["--header", header]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    body, _, status = out.stdout.rpartition("\n")
    return int(status), json.loads(body)


@pytest.mark.parametrize("surface", SURFACES)
@pytest.mark.parametrize("method", METHODS)
def test_curl_certificate_client_gets_bound_token(method, surface, tls_server, pki, cert_clients, client2):
    path, status = SURFACES[surface]
    attr, cert = METHODS[method]
    client_id = getattr(cert_clients, attr)
    code, body = curl_token(f"{tls_server.base_url}{path}", client_id, pki, cert)
    assert code == status, body
    claims = jwt_parts(body["access_token"])[1]
    assert claims["client_id"] == client_id
    assert claims["cnf"] == {"x5t#S256": x5t_s256(pki.cert(cert))}, claims
    seen = introspect(tls_server.base_url, client2, body["access_token"], session=tls_session(pki, None))
    assert seen["active"] is True and seen["cnf"] == claims["cnf"], seen


# Each refused certificate differs from the one the client accepts in one thing.
REFUSED = [
    ("tls_client_auth", "expired"),  # billing's subject and CA, expired
    ("tls_client_auth", "foreign"),  # billing's subject, another CA
    ("tls_client_auth", "wrong"),  # our CA, another subject
    ("tls_client_auth", None),  # no certificate at all
    ("self_signed_tls_client_auth", "other-self"),  # self-signed, not registered
    ("self_signed_tls_client_auth", "billing"),  # trusted by the CA, not registered
]


@pytest.mark.parametrize("surface", SURFACES)
@pytest.mark.parametrize("method, cert", REFUSED)
def test_refused_certificates_roc(method, cert, surface, tls_server, pki, cert_clients):
    """The TLS handshake succeeds (the server never requires a certificate); the token request
    → 401 ``invalid_client`` (requests-oauth2client's ``InvalidClient``)."""
    path, _status = SURFACES[surface]
    client_id = getattr(cert_clients, METHODS[method][0])
    oauth = cert_oauth(tls_server.base_url, path, client_id, tls_session(pki, cert))
    with pytest.raises(InvalidClient) as err:
        oauth.client_credentials()
    assert err.value.response.status_code == 401


@pytest.mark.parametrize("surface", SURFACES)
@pytest.mark.parametrize("cert", ["expired", "foreign", "wrong"])
def test_refused_certificates_curl(cert, surface, tls_server, pki, cert_clients):
    path, _status = SURFACES[surface]
    code, body = curl_token(f"{tls_server.base_url}{path}", cert_clients.tls, pki, cert)
    assert code == 401 and body["error"] == "invalid_client", body


# --- mTLS behind a proxy: the certificate in a header ---------------------------------------

CERT_HEADER = "X-Client-Cert"


def forwarded(pem: str, fmt: str) -> str:
    """What a proxy would send: nginx's $ssl_client_escaped_cert, or Envoy's XFCC element."""
    escaped = urllib.parse.quote(pem, safe="")
    if fmt == "pem":
        return escaped
    return f'By=spiffe://cluster.local/ns/auth/sa/moneykit;Hash=00;Cert="{escaped}";Subject="{BILLING_DN}";URI='


@pytest.fixture(scope="module")
def trusted_proxy_server(start_server, pki, cert_clients) -> ExtraServer:
    server = start_server("proxy-trusted", "--client-ca-file", str(pki.cert("ca")), "--client-cert-header",
                          CERT_HEADER, "--trusted-proxy", "127.0.0.1/32")
    session = requests.Session()
    session.headers[CERT_HEADER] = forwarded(pki.pem("billing"), "pem")
    probe = cert_oauth(server.base_url, "/oauth2/token", cert_clients.tls, session)
    assert wait_until(lambda: gets_token(probe), timeout=5), "the proxy server does not know the certificate clients"
    return server


@pytest.fixture(scope="module")
def untrusted_proxy_server(start_server, pki, cert_clients) -> ExtraServer:
    return start_server("proxy-untrusted", "--client-ca-file", str(pki.cert("ca")), "--client-cert-header",
                        CERT_HEADER, "--trusted-proxy", "192.0.2.0/24")


@pytest.mark.parametrize("surface", SURFACES)
@pytest.mark.parametrize("method, fmt", [("tls_client_auth", "pem"), ("self_signed_tls_client_auth", "pem"),
                                         ("tls_client_auth", "xfcc")])
def test_forwarded_certificate_from_trusted_proxy(method, fmt, surface, trusted_proxy_server, pki, cert_clients):
    """Plain HTTP from 127.0.0.1 (trusted): requests-oauth2client with the header on its
    Session → a token bound to the forwarded certificate, usable at /auth/introspect with the
    header and refused without it."""
    path, status = SURFACES[surface]
    attr, cert = METHODS[method]
    client_id = getattr(cert_clients, attr)
    session = requests.Session()
    session.headers[CERT_HEADER] = forwarded(pki.pem(cert), fmt)
    sent = recording(session)
    base = trusted_proxy_server.base_url
    token = cert_oauth(base, path, client_id, session).client_credentials()
    assert sent[-1].status_code == status
    assert jwt_parts(token.access_token)[1]["cnf"] == {"x5t#S256": x5t_s256(pki.cert(cert))}
    assert session.get(f"{base}/auth/introspect", auth=token, timeout=TIMEOUT).status_code == 200
    assert requests.get(f"{base}/auth/introspect", auth=token, timeout=TIMEOUT).status_code == 401


@pytest.mark.parametrize("surface", SURFACES)
def test_forwarded_certificate_from_untrusted_peer_is_ignored(surface, untrusted_proxy_server, pki, cert_clients,
                                                              client):
    """``--trusted-proxy 192.0.2.0/24``, request from 127.0.0.1: the header is ignored. The
    certificate client → 401 ``invalid_client``; a secret client sending the same header gets
    a token bound to nothing (so the server works, and believed nothing)."""
    path, status = SURFACES[surface]
    base = untrusted_proxy_server.base_url
    session = requests.Session()
    session.headers[CERT_HEADER] = forwarded(pki.pem("billing"), "pem")
    with pytest.raises(InvalidClient) as err:
        cert_oauth(base, path, cert_clients.tls, session).client_credentials()
    assert err.value.response.status_code == 401
    sent = recording(session)
    token = OAuth2Client(f"{base}{path}", auth=(client.client_id, client.client_secret), session=session,
                         testing=True).client_credentials()
    assert sent[-1].status_code == status and CERT_HEADER in sent[-1].request.headers
    assert "cnf" not in jwt_parts(token.access_token)[1]
