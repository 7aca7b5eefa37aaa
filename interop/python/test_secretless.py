"""Suite `secretless`: clients without a secret, through two libraries nobody here wrote.

- ``private_key_jwt`` client authentication (RFC 7523 §2.2, §3) with Authlib
  (``OAuth2Session`` + ``authlib.oauth2.rfc7523.PrivateKeyJWT``, keys from joserfc) and with
  requests-oauth2client (``OAuth2Client`` + ``PrivateKeyJwt``, keys from jwskate): tokens from
  ``/oauth2/token`` (200) and the MoneyKit ``/auth/token`` (201), introspection and revocation
  authenticated the same way, every algorithm the metadata advertises, a replayed assertion,
  assertions with a wrong audience, expired or too long-lived, and keys published at a JWKS URL.
- Federated workloads (RFC 7523 §2.1 jwt-bearer grant, RFC 8693 token exchange) with
  requests-oauth2client's ``jwt_bearer`` and ``token_exchange``: the test is the "platform"
  (Kubernetes, GitHub Actions…) — it generates the issuer's key, registers its public half in a
  trust rule with ``clients trust --jwks-file`` and signs the platform tokens itself.

Plain ``requests`` is used only to send what the libraries never would (the same assertion
twice, no ``subject_token_type``) and to read what they hide. Every token the server issues
is checked to belong to the client it should (``client_id``/``sub`` claims, introspection).

Two facts about the libraries shape this module (see interop/README.md, "What the clients do"):
Authlib 1.9.10 signs every assertion with ``exp = iat + 3600`` and has no lifetime parameter,
which this server refuses by default (``serve --assertion-max-lifetime``, 5 minutes), so the
Authlib tests sign through a subclass that passes Authlib's own ``expires_in``; and both
libraries, left alone, put the URL of the endpoint they call in ``aud``, which the server
accepts for its token endpoints only, so introspection and revocation are configured with the
token endpoint (Authlib) or the issuer (requests-oauth2client) as the audience.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
import urllib.parse
import uuid

import pytest
import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT, private_key_jwt_sign
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from joserfc.jwk import ECKey, OKPKey, RSAKey
from jwskate import Jwk, Jwt
from requests_oauth2client import OAuth2Client, PrivateKeyJwt
from requests_oauth2client.exceptions import InvalidClient, InvalidGrant, InvalidRequest

from conftest import TIMEOUT, cli, jwt_parts, raw_token, wait_until

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
ALGS = ["ES256", "ES384", "EdDSA", "RS256", "PS256"]
# What metadata advertises: RFC 9864's "Ed25519" beside "EdDSA".
ADVERTISED = ["ES256", "ES384", "EdDSA", "Ed25519", "RS256", "PS256"]
KEY_SCOPE = "accounts:read"

# The platform whose tokens the trust rules accept. Its keys are registered with the rule
# (--jwks-file), so the server never looks this issuer up.
PLATFORM_ISSUER = "https://platform.interop.test"
WORKLOAD = "system:serviceaccount:payments:ledger"
AUDIENCE = "https://api.interop.test"  # a rule's own --audience
# A second platform with a single rule (a CI system's OIDC tokens).
CI_ISSUER = "https://ci.interop.test"
CI_SUBJECT = "repo:moneykit/ledger:ref:refs/heads/main"

# joserfc warns on every EdDSA signature that RFC 9864 deprecates the name; the server
# accepts both names, and EdDSA is what most clients still send.
pytestmark = pytest.mark.filterwarnings("ignore:EdDSA is deprecated:UserWarning")


# --- shared helpers -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def metadata(base_url) -> dict:
    resp = requests.get(f"{base_url}/.well-known/oauth-authorization-server", timeout=TIMEOUT)
    assert resp.status_code == 200, resp.text
    return resp.json()


def register_key_client(tmp_dir, app_id: str, public_jwks: list[dict], name: str) -> str:
    """`clients create --auth-method private_key_jwt --jwks-file`: checks what the CLI says."""
    path = tmp_dir / f"{name}-{uuid.uuid4().hex[:8]}.json"
    path.write_text(json.dumps({"keys": public_jwks}))
    created = cli(
        "clients", "create", "--app", app_id, "--name", name, "--scope", KEY_SCOPE,
        "--auth-method", "private_key_jwt", "--jwks-file", str(path),
    )
    assert created["token_endpoint_auth_method"] == "private_key_jwt", created
    assert "client_secret" not in created, "a private_key_jwt client was given a secret"
    assert sorted(created["jwks_kids"]) == sorted(k["kid"] for k in public_jwks), created
    return created["client_id"]


def settle(probe, what: str) -> None:
    """Waits until the running server has picked up a CLI change (within 1 s, as run.sh).

    Sleeps first and polls slowly: a probe that fails spends the server's per-address budget
    of failed authentications (60 a minute by default; refused federated tokens count too),
    which the negative tests below, some 30 failures in all, need as well.
    """
    time.sleep(1.0)
    assert wait_until(probe, timeout=5.0, interval=0.3), f"the server did not pick up {what}"


def assert_token_of(access_token: str, client_id: str, app_id: str) -> dict:
    header, claims = jwt_parts(access_token)
    assert header["typ"] == "at+jwt"
    assert claims["client_id"] == client_id, claims
    assert claims["sub"] == client_id, claims
    assert claims["app_id"] == app_id, claims
    return claims


def introspect_as_client2(base_url, client2, token: str) -> dict:
    resp = requests.post(
        f"{base_url}/oauth2/introspect",
        data={"token": token},
        auth=(client2.client_id, client2.client_secret),
        timeout=TIMEOUT,
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


def post_assertion(url: str, assertion: str, **extra) -> requests.Response:
    data = {"client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion, **extra}
    if url.endswith("/token"):
        data.setdefault("grant_type", "client_credentials")
    return requests.post(url, data=data, timeout=TIMEOUT)


def form_of(request_body) -> dict:
    """The fields of a form-encoded request body as sent."""
    if isinstance(request_body, bytes):
        request_body = request_body.decode()
    return {k: v[0] for k, v in urllib.parse.parse_qs(request_body, strict_parsing=True).items()}


def assert_invalid_client(resp: requests.Response, why: str) -> None:
    assert resp.status_code == 401, (resp.status_code, resp.text)
    body = resp.json()
    assert body["error"] == "invalid_client", body
    assert why in body.get("error_description", ""), body


# --- metadata (RFC 8414) --------------------------------------------------------------------


def test_metadata_advertises_private_key_jwt(metadata, base_url):
    """What a client library reads before it signs: the method on every endpoint that
    authenticates clients, the algorithms (no "none"), the audiences, the federated grants."""
    validated = AuthorizationServerMetadata(metadata)
    for endpoint in ("token_endpoint", "introspection_endpoint", "revocation_endpoint"):
        assert "private_key_jwt" in metadata[f"{endpoint}_auth_methods_supported"], endpoint
        assert metadata[f"{endpoint}_auth_signing_alg_values_supported"] == ADVERTISED, endpoint
        # authlib's RFC 8414 validators: the member is an array, present since a JWT method
        # is listed, and without "none".
        getattr(validated, f"validate_{endpoint}_auth_methods_supported")()
        getattr(validated, f"validate_{endpoint}_auth_signing_alg_values_supported")()
    grants = metadata["grant_types_supported"]
    assert {"client_credentials", JWT_BEARER, TOKEN_EXCHANGE} <= set(grants), grants
    validated.validate_grant_types_supported()
    assert metadata["client_assertion_audiences_accepted"] == [
        base_url,
        f"{base_url}/oauth2/token",
        f"{base_url}/auth/token",
        f"{base_url}/oauth2/introspect",
        f"{base_url}/oauth2/revoke",
    ]


# --- Authlib: private_key_jwt ---------------------------------------------------------------


class ShortLivedPrivateKeyJWT(PrivateKeyJWT):
    """Authlib's ``PrivateKeyJWT`` signing through Authlib's own ``private_key_jwt_sign`` with
    an ``expires_in`` of our choosing (Authlib 1.9.10 always uses 3600 s, see the module doc).
    Everything else (claims, jti, aud = ``token_endpoint`` or else the URL called) is Authlib's.
    """

    def __init__(self, token_endpoint=None, alg=None, expires_in=60, claims=None):
        super().__init__(token_endpoint, claims=claims, alg=alg)
        self.expires_in = expires_in

    def sign(self, auth, token_endpoint):
        return private_key_jwt_sign(
            auth.client_secret,
            client_id=auth.client_id,
            token_endpoint=token_endpoint,
            alg=self.alg,
            claims=self.claims,
            header=self.headers,
            expires_in=self.expires_in,
        )


@pytest.fixture(scope="module")
def authlib_keys() -> dict:
    """joserfc keys for each algorithm; RS256 and PS256 share one RSA key."""
    rsa = RSAKey.generate_key(2048, parameters={"kid": "authlib-rsa"}, private=True)
    return {
        "ES256": ECKey.generate_key("P-256", parameters={"kid": "authlib-p256"}, private=True),
        "ES384": ECKey.generate_key("P-384", parameters={"kid": "authlib-p384"}, private=True),
        "EdDSA": OKPKey.generate_key("Ed25519", parameters={"kid": "authlib-ed25519"}, private=True),
        "RS256": rsa,
        "PS256": rsa,
    }


def authlib_assertion(key, alg: str, client_id: str, aud: str, **kw) -> str:
    """One assertion from Authlib's signer (``issued_at``/``expires_at``/``expires_in``/``claims``
    as Authlib takes them)."""
    kw.setdefault("expires_in", 60)
    return private_key_jwt_sign(key, client_id=client_id, token_endpoint=aud, alg=alg, **kw)


@pytest.fixture(scope="module")
def authlib_client(authlib_keys, app_id, base_url, tmp_path_factory) -> str:
    """A private_key_jwt client registered with the public halves of every Authlib key."""
    public = {k.kid: k.as_dict(private=False) for k in authlib_keys.values()}
    client_id = register_key_client(tmp_path_factory.mktemp("authlib"), app_id, list(public.values()), "authlib-keys")
    key = authlib_keys["ES256"]
    settle(
        lambda: post_assertion(
            f"{base_url}/oauth2/token", authlib_assertion(key, "ES256", client_id, base_url)
        ).status_code == 200,
        f"key client {client_id}",
    )
    return client_id


def authlib_session(client_id, key, alg, metadata, audience="token_endpoint", **kw) -> OAuth2Session:
    """An Authlib session authenticating with private_key_jwt on every endpoint. ``audience``:
    the ``token_endpoint`` Authlib is given (its documented use), or None for Authlib's
    default, the URL of the request."""
    session = OAuth2Session(
        client_id,
        key,  # Authlib's PrivateKeyJWT reads the signing key from client_secret
        token_endpoint_auth_method="private_key_jwt",
        revocation_endpoint_auth_method="private_key_jwt",
        token_endpoint=metadata["token_endpoint"],
    )
    aud = metadata["token_endpoint"] if audience == "token_endpoint" else audience
    session.register_client_auth_method(ShortLivedPrivateKeyJWT(aud, alg=alg, **kw))
    return session


@pytest.mark.parametrize("alg", ALGS)
def test_authlib_fetch_token_every_algorithm(alg, authlib_keys, authlib_client, metadata, app_id):
    with authlib_session(authlib_client, authlib_keys[alg], alg, metadata) as s:
        token = s.fetch_token(grant_type="client_credentials")
    assert token["token_type"] == "Bearer"
    assert token["scope"] == KEY_SCOPE
    assert 0 < token["expires_in"] <= 3600
    assert_token_of(token["access_token"], authlib_client, app_id)


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_authlib_moneykit_token_endpoint(alg, authlib_keys, authlib_client, metadata, base_url, app_id):
    """The MoneyKit /auth/token (201), with Authlib's default audience: the URL it posts to."""
    url = f"{base_url}/auth/token"
    sent = []
    with authlib_session(authlib_client, authlib_keys[alg], alg, metadata, audience=None) as s:
        s.hooks["response"].append(lambda r, *a, **k: sent.append((r.status_code, r.request.body)))
        token = s.fetch_token(url, grant_type="client_credentials")
    assert_token_of(token["access_token"], authlib_client, app_id)
    (status, body), = sent
    assert status == 201
    form = form_of(body)
    assert form["client_assertion_type"] == ASSERTION_TYPE
    header, claims = jwt_parts(form["client_assertion"])
    # Authlib sends no kid: the server tries each registered key that fits the algorithm.
    assert header["alg"] == alg and "kid" not in header, header
    assert claims["aud"] == url and claims["iss"] == claims["sub"] == authlib_client


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "PS256"])
def test_authlib_introspect_token(alg, authlib_keys, authlib_client, metadata, client):
    """RFC 7662 with private_key_jwt: the key client introspects another client's token and
    its own."""
    other = raw_token(metadata["issuer"], client).json()["access_token"]
    with authlib_session(authlib_client, authlib_keys[alg], alg, metadata) as s:
        own = s.fetch_token(grant_type="client_credentials")["access_token"]
        resp = s.introspect_token(metadata["introspection_endpoint"], token=other)
        assert resp.status_code == 200, resp.text
        assert resp.json()["active"] is True and resp.json()["client_id"] == client.client_id
        resp = s.introspect_token(metadata["introspection_endpoint"], token=own)
        assert resp.json()["active"] is True and resp.json()["client_id"] == authlib_client
        resp = s.introspect_token(metadata["introspection_endpoint"], token="not-a-token")
        assert resp.json() == {"active": False}


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_authlib_revoke_token(alg, authlib_keys, authlib_client, metadata, base_url, client2):
    """RFC 7009 with private_key_jwt: the key client revokes its own token; it is inactive
    afterwards and new tokens still work."""
    with authlib_session(authlib_client, authlib_keys[alg], alg, metadata) as s:
        token = s.fetch_token(grant_type="client_credentials")["access_token"]
        assert introspect_as_client2(base_url, client2, token)["active"] is True
        resp = s.revoke_token(metadata["revocation_endpoint"], token=token, token_type_hint="access_token")
        assert resp.status_code == 200, resp.text
        assert wait_until(lambda: introspect_as_client2(base_url, client2, token) == {"active": False})
        fresh = s.fetch_token(grant_type="client_credentials")["access_token"]
    assert introspect_as_client2(base_url, client2, fresh)["active"] is True


def test_authlib_replayed_assertion_is_refused(authlib_keys, authlib_client, metadata, base_url, app_id):
    """RFC 7523 §3 (jti) : one assertion from Authlib's signer, sent twice → the second is
    401 invalid_client, and it is not accepted at another endpoint either."""
    token_url = metadata["token_endpoint"]
    assertion = authlib_assertion(authlib_keys["ES256"], "ES256", authlib_client, token_url)
    first = post_assertion(token_url, assertion)
    assert first.status_code == 200, first.text
    assert_token_of(first.json()["access_token"], authlib_client, app_id)
    assert_invalid_client(post_assertion(token_url, assertion), "jti has been used before")
    assert_invalid_client(post_assertion(f"{base_url}/auth/token", assertion), "jti has been used before")
    assert_invalid_client(
        post_assertion(metadata["introspection_endpoint"], assertion, token="x"),
        "jti has been used before",
    )


def test_authlib_reused_claims_dict_replays_its_jti(authlib_keys, authlib_client, metadata):
    """Authlib 1.9.10 writes the ``jti`` it generates into the ``claims`` dict given to
    ``PrivateKeyJWT`` and reuses it for every later assertion: the second request of such a
    session is a replay, and the server says so."""
    jtis = []
    with authlib_session(
        authlib_client, authlib_keys["ES256"], "ES256", metadata, claims={"purpose": "interop"}
    ) as s:
        s.hooks["response"].append(
            lambda r, *a, **k: jtis.append(jwt_parts(form_of(r.request.body)["client_assertion"])[1]["jti"])
        )
        s.fetch_token(grant_type="client_credentials")
        with pytest.raises(OAuthError) as err:
            s.fetch_token(grant_type="client_credentials")
    assert len(jtis) == 2 and jtis[0] == jtis[1], jtis
    assert err.value.error == "invalid_client"
    assert "jti has been used before" in err.value.description


def test_authlib_stock_assertion_lifetime_is_refused(authlib_keys, authlib_client, metadata):
    """Authlib's unmodified ``PrivateKeyJWT`` signs assertions valid for an hour; the server
    takes at most ``--assertion-max-lifetime`` (5 minutes by default) and says so. Reported as
    an interop friction: with default settings, stock Authlib cannot authenticate."""
    session = OAuth2Session(
        authlib_client, authlib_keys["ES256"], token_endpoint_auth_method="private_key_jwt",
        token_endpoint=metadata["token_endpoint"],
    )
    session.register_client_auth_method(PrivateKeyJWT(metadata["token_endpoint"], alg="ES256"))
    assertions = []
    session.hooks["response"].append(lambda r, *a, **k: assertions.append(r.request.body))
    with session, pytest.raises(OAuthError) as err:
        session.fetch_token(grant_type="client_credentials")
    _, claims = jwt_parts(form_of(assertions[0])["client_assertion"])
    assert claims["exp"] - claims["iat"] == 3600
    assert err.value.error == "invalid_client"
    assert "lives longer than 300 s" in err.value.description


def test_authlib_introspection_with_default_audience(authlib_keys, authlib_client, metadata):
    """Left without a ``token_endpoint``, Authlib's PrivateKeyJWT puts the introspection URL in
    ``aud``; the server (not in strict mode) accepts the URL of the endpoint called, as
    ``client_assertion_audiences_accepted`` lists."""
    assert metadata["introspection_endpoint"] in metadata["client_assertion_audiences_accepted"]
    with authlib_session(authlib_client, authlib_keys["ES256"], "ES256", metadata, audience=None) as s:
        resp = s.introspect_token(metadata["introspection_endpoint"], token="x")
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"active": False}


@pytest.mark.parametrize(
    "case, kw, why",
    [
        ("another server", {"audience": "https://elsewhere.example/oauth2/token"}, "aud must be"),
        ("expired", {"expires_in": -60}, "expired"),
    ],
)
def test_authlib_bad_assertions_are_invalid_client(case, kw, why, authlib_keys, authlib_client, metadata):
    with authlib_session(authlib_client, authlib_keys["ES256"], "ES256", metadata, **kw) as s:
        with pytest.raises(OAuthError) as err:
            s.fetch_token(grant_type="client_credentials")
    assert err.value.error == "invalid_client", case
    assert why in err.value.description, (case, err.value.description)


def test_authlib_foreign_key_and_secret_are_refused(authlib_keys, authlib_client, metadata):
    """A key the client never registered, and a secret (the client has none) → invalid_client."""
    foreign = ECKey.generate_key("P-256", parameters={"kid": authlib_keys["ES256"].kid}, private=True)
    with authlib_session(authlib_client, foreign, "ES256", metadata) as s, pytest.raises(OAuthError) as err:
        s.fetch_token(grant_type="client_credentials")
    assert err.value.error == "invalid_client"
    assert "not signed by a registered key" in err.value.description, err.value.description
    with OAuth2Session(authlib_client, "mks_guess", token_endpoint_auth_method="client_secret_basic") as s:
        with pytest.raises(OAuthError) as err:
            s.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
    assert err.value.error == "invalid_client"


# --- requests-oauth2client: private_key_jwt -------------------------------------------------


@pytest.fixture(scope="module")
def roc_keys() -> dict:
    """jwskate keys, one per algorithm (each JWK carries its alg, as PrivateKeyJwt needs)."""
    return {alg: Jwk.generate(alg=alg, kid=f"roc-{alg.lower()}") for alg in ALGS}


@pytest.fixture(scope="module")
def roc_client(roc_keys, app_id, base_url, tmp_path_factory) -> str:
    public = [dict(k.public_jwk().with_usage_parameters()) for k in roc_keys.values()]
    client_id = register_key_client(tmp_path_factory.mktemp("roc"), app_id, public, "roc-keys")
    probe = OAuth2Client(f"{base_url}/oauth2/token", auth=PrivateKeyJwt(client_id, roc_keys["ES256"]), testing=True)

    def works() -> bool:
        try:
            return bool(probe.client_credentials().access_token)
        except InvalidClient:
            return False

    settle(works, f"key client {client_id}")
    return client_id


def discovered(base_url, auth) -> OAuth2Client:
    """requests-oauth2client configured from RFC 8414 metadata. ``testing=True`` lets it use
    plain-HTTP loopback URLs (it requires https otherwise)."""
    return OAuth2Client.from_discovery_endpoint(
        f"{base_url}/.well-known/oauth-authorization-server", auth=auth, testing=True
    )


@pytest.mark.parametrize("alg", ALGS)
def test_roc_client_credentials_both_token_endpoints(alg, roc_keys, roc_client, base_url, app_id):
    oauth = discovered(base_url, PrivateKeyJwt(roc_client, roc_keys[alg]))
    assert oauth.token_endpoint == f"{base_url}/oauth2/token"
    token = oauth.client_credentials()
    assert token.token_type == "Bearer" and token.scope == KEY_SCOPE
    assert_token_of(token.access_token, roc_client, app_id)
    moneykit = OAuth2Client(f"{base_url}/auth/token", auth=PrivateKeyJwt(roc_client, roc_keys[alg]), testing=True)
    token = moneykit.client_credentials(scope=KEY_SCOPE)
    assert_token_of(token.access_token, roc_client, app_id)


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256"])
def test_roc_introspect_and_revoke(alg, roc_keys, roc_client, base_url, client, client2):
    """Introspection and revocation with ``PrivateKeyJwt(aud=<issuer>)`` (RFC 7523bis's
    audience): another client's token, its own, then its own revoked."""
    oauth = discovered(base_url, PrivateKeyJwt(roc_client, roc_keys[alg], aud=base_url))
    other = raw_token(base_url, client).json()["access_token"]
    seen = oauth.introspect_token(other)
    assert seen["active"] is True and seen["client_id"] == client.client_id
    own = oauth.client_credentials()
    assert oauth.introspect_token(own)["client_id"] == roc_client
    assert oauth.revoke_access_token(own) is True
    assert wait_until(lambda: introspect_as_client2(base_url, client2, own.access_token) == {"active": False})


def test_roc_default_audience_works_on_every_endpoint(roc_keys, roc_client, base_url):
    """requests-oauth2client's default ``aud`` is the URL it posts to: accepted at the token,
    introspection and revocation endpoints (not in strict mode)."""
    oauth = discovered(base_url, PrivateKeyJwt(roc_client, roc_keys["ES256"]))
    token = oauth.client_credentials()
    assert oauth.introspect_token(token)["client_id"] == roc_client
    assert oauth.revoke_access_token(token) is True


def test_roc_replayed_jti_is_refused(roc_keys, roc_client, base_url):
    """A client whose ``jti_gen`` repeats itself: the first assertion works, the second is a
    replay."""
    jti = f"interop-{uuid.uuid4()}"
    oauth = discovered(base_url, PrivateKeyJwt(roc_client, roc_keys["PS256"], jti_gen=lambda: jti))
    oauth.client_credentials()
    with pytest.raises(InvalidClient) as err:
        oauth.client_credentials()
    assert "jti has been used before" in err.value.description


@pytest.mark.parametrize(
    "case, kw, why",
    [
        ("another server", {"aud": "https://elsewhere.example"}, "aud must be"),
        ("expired", {"lifetime": -60}, "expired"),
        ("valid for 10 minutes", {"lifetime": 600}, "lives longer than 300 s"),
    ],
)
def test_roc_bad_assertions_are_invalid_client(case, kw, why, roc_keys, roc_client, base_url):
    oauth = discovered(base_url, PrivateKeyJwt(roc_client, roc_keys["ES384"], **kw))
    with pytest.raises(InvalidClient) as err:
        oauth.client_credentials()
    assert err.value.response.status_code == 401
    assert why in err.value.description, (case, err.value.description)


@pytest.mark.parametrize(
    "case, kid, why",
    [
        # One answer for both, before the signature verified: kids cannot be probed.
        ("a registered kid, another key", "roc-es256", "not signed by a registered key"),
        ("an unknown kid", "roc-never-registered", "not signed by a registered key"),
    ],
)
def test_roc_foreign_keys_are_invalid_client(case, kid, why, roc_client, base_url):
    """requests-oauth2client always sends the ``kid`` of its key."""
    foreign = Jwk.generate(alg="ES256", kid=kid)
    oauth = discovered(base_url, PrivateKeyJwt(roc_client, foreign))
    with pytest.raises(InvalidClient) as err:
        oauth.client_credentials()
    assert why in err.value.description, (case, err.value.description)


class JwksHost:
    """A JWKS served on 127.0.0.1 (port 0, read back from the socket), counting its fetches."""

    def __init__(self, jwks: dict):
        body = json.dumps(jwks).encode()
        host = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                host.fetches += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.fetches = 0
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_roc_keys_published_at_a_jwks_uri(app_id, base_url):
    """``--jwks-uri``: the client's public keys as requests-oauth2client publishes them
    (``OAuth2Client.client_jwks``), on a loopback URL the server fetches itself."""
    key = Jwk.generate(alg="ES256", kid="roc-published")
    oauth = OAuth2Client(f"{base_url}/oauth2/token", auth=PrivateKeyJwt("placeholder", key), testing=True)
    with JwksHost(json.loads(oauth.client_jwks.to_json())) as host:
        created = cli(
            "clients", "create", "--app", app_id, "--name", "roc-jwks-uri", "--scope", KEY_SCOPE,
            "--auth-method", "private_key_jwt", "--jwks-uri", host.url, "--allow-http", "--allow-private-targets",
        )
        assert created["token_endpoint_auth_method"] == "private_key_jwt" and "client_secret" not in created
        oauth = OAuth2Client(f"{base_url}/oauth2/token", auth=PrivateKeyJwt(created["client_id"], key), testing=True)
        tokens = []

        def works() -> bool:
            try:
                tokens.append(oauth.client_credentials())
                return True
            except InvalidClient:
                return False

        settle(works, f"the keys of {created['client_id']} at {host.url}")
        assert host.fetches >= 1
    assert jwt_parts(tokens[-1].access_token)[1]["client_id"] == created["client_id"]


# --- requests-oauth2client: federated workloads (jwt-bearer, token exchange) ----------------


class NoClientAuth(requests.auth.AuthBase):
    """No client authentication at all (a workload has only its platform token)."""

    def __call__(self, request):
        return request


@pytest.fixture(scope="module")
def platform_key() -> Jwk:
    return Jwk.generate(alg="ES256", kid="platform-1")


def platform_token(key: Jwk, aud, sub=WORKLOAD, lifetime=600, iat_offset=0, iss=PLATFORM_ISSUER) -> str:
    """A platform token as a Kubernetes API server or a CI system would sign it."""
    now = int(time.time()) + iat_offset
    claims = {"iss": iss, "sub": sub, "aud": aud, "iat": now, "nbf": now, "exp": now + lifetime,
              "jti": uuid.uuid4().hex}
    return str(Jwt.sign(claims, key, alg=key.alg))


def trust(client_id: str, key: Jwk, tmp_dir, subject=WORKLOAD, *extra: str, issuer=PLATFORM_ISSUER) -> dict:
    path = tmp_dir / f"platform-{uuid.uuid4().hex[:8]}.json"
    path.write_text(json.dumps({"keys": [dict(key.public_jwk())]}))
    rule = cli(
        "clients", "trust", client_id, "--issuer", issuer, "--subject", subject,
        "--jwks-file", str(path), *extra,
    )
    assert (rule["client_id"], rule["issuer"], rule["subject"]) == (client_id, issuer, subject), rule
    assert rule["jwks_kids"] == [key["kid"]], rule
    return rule


@pytest.fixture(scope="module")
def trusting(app_id, base_url, platform_key, tmp_path_factory, roc_client) -> dict:
    """Trust rules for the federated tests, all settled before the first test uses them.
    Of PLATFORM_ISSUER (several rules, as one Kubernetes cluster would have):

    - ``secret``: a client_secret client trusting WORKLOAD;
    - ``key``: the requests-oauth2client key client trusting "WORKLOAD:key-workload";
    - ``audience``: a client trusting "WORKLOAD:audience-workload" with its own ``--audience``;
    - ``shared_a``, ``shared_b``: two clients trusting the same "WORKLOAD:shared".

    Of CI_ISSUER, one rule only: ``ci``, trusting CI_SUBJECT.
    """
    tmp = tmp_path_factory.mktemp("trust")

    def client(name: str) -> str:
        return cli("clients", "create", "--app", app_id, "--name", name, "--scope", KEY_SCOPE)["client_id"]

    ids = {"secret": client("federated"), "key": roc_client, "audience": client("federated-aud"),
           "shared_a": client("federated-shared-a"), "shared_b": client("federated-shared-b"),
           "ci": client("federated-ci")}
    trust(ids["key"], platform_key, tmp, f"{WORKLOAD}:key-workload")
    trust(ids["audience"], platform_key, tmp, f"{WORKLOAD}:audience-workload", "--audience", AUDIENCE)
    trust(ids["shared_a"], platform_key, tmp, f"{WORKLOAD}:shared")
    trust(ids["shared_b"], platform_key, tmp, f"{WORKLOAD}:shared")
    # WORKLOAD's rule a second later than the others: the server tries an issuer's rules in
    # the order they were made (created_at in whole seconds, then the random rule id), so
    # that rule is deterministically the last tried (test_refusal_of_a_trusted_workload_…).
    time.sleep(1.1)
    trust(ids["secret"], platform_key, tmp)
    trust(ids["ci"], platform_key, tmp, CI_SUBJECT, issuer=CI_ISSUER)
    anonymous = OAuth2Client(f"{base_url}/oauth2/token", auth=NoClientAuth(), testing=True)

    def works() -> bool:
        # The rule created last: the server reloads the whole configuration at once.
        last = platform_token(platform_key, base_url, CI_SUBJECT, iss=CI_ISSUER)
        try:
            return bool(anonymous.jwt_bearer(last).access_token)
        except InvalidGrant:
            return False

    settle(works, "the trust rules")
    return ids


def test_roc_token_exchange_without_client_authentication(trusting, platform_key, base_url, app_id, client2):
    """RFC 8693: ``token_exchange(subject_token=<platform JWT>, subject_token_type="jwt")`` with
    no client credentials → an access token of the trusting client."""
    oauth = discovered(base_url, NoClientAuth())
    sent = []
    oauth.session.hooks["response"].append(lambda r, *a, **k: sent.append(r.request))
    subject = platform_token(platform_key, base_url)
    token = oauth.token_exchange(subject_token=subject, subject_token_type="jwt")
    (request,) = sent
    form = form_of(request.body)
    assert form == {"grant_type": TOKEN_EXCHANGE, "subject_token": subject, "subject_token_type": JWT_TOKEN_TYPE}
    assert "Authorization" not in request.headers
    assert token.kwargs["issued_token_type"] == ACCESS_TOKEN_TYPE
    assert token.token_type == "Bearer" and token.scope == KEY_SCOPE
    assert_token_of(token.access_token, trusting["secret"], app_id)
    seen = introspect_as_client2(base_url, client2, token.access_token)
    assert seen["active"] is True and seen["client_id"] == trusting["secret"]


def test_roc_token_exchange_on_moneykit_endpoint_with_client_id(trusting, platform_key, base_url, app_id):
    """The same on /auth/token (201), naming the trusting client with ``client_id`` (what
    requests-oauth2client's ``PublicApp`` auth sends)."""
    oauth = OAuth2Client(f"{base_url}/auth/token", auth=trusting["secret"], testing=True)
    token = oauth.token_exchange(subject_token=platform_token(platform_key, base_url), subject_token_type="jwt")
    assert token.kwargs["issued_token_type"] == ACCESS_TOKEN_TYPE
    assert_token_of(token.access_token, trusting["secret"], app_id)


def test_roc_token_exchange_authenticated_by_the_trusting_key_client(trusting, platform_key, roc_keys, base_url, app_id):
    """The trusting client may authenticate too (private_key_jwt); the token is still its own."""
    oauth = discovered(base_url, PrivateKeyJwt(trusting["key"], roc_keys["ES256"]))
    token = oauth.token_exchange(
        subject_token=platform_token(platform_key, base_url, f"{WORKLOAD}:key-workload"), subject_token_type="jwt"
    )
    assert token.kwargs["issued_token_type"] == ACCESS_TOKEN_TYPE
    assert_token_of(token.access_token, trusting["key"], app_id)


def test_roc_jwt_bearer_grant(trusting, platform_key, base_url, app_id):
    """RFC 7523 §2.1: ``jwt_bearer(assertion=<platform JWT>)``; a rule with its own audience."""
    oauth = discovered(base_url, NoClientAuth())
    token = oauth.jwt_bearer(platform_token(platform_key, base_url))
    assert_token_of(token.access_token, trusting["secret"], app_id)
    assert "issued_token_type" not in token.kwargs  # a token-exchange member only
    token = oauth.jwt_bearer(platform_token(platform_key, AUDIENCE, f"{WORKLOAD}:audience-workload"))
    assert_token_of(token.access_token, trusting["audience"], app_id)


def test_roc_client_id_picks_among_trusting_clients(trusting, platform_key, base_url, app_id):
    """Two clients trust the same workload: ``client_id`` (requests-oauth2client's
    ``PublicApp``) picks whose token it gets; without it the request is ambiguous."""
    for name in ("shared_a", "shared_b"):
        oauth = discovered(base_url, trusting[name])
        token = oauth.token_exchange(
            subject_token=platform_token(platform_key, base_url, f"{WORKLOAD}:shared"), subject_token_type="jwt"
        )
        assert_token_of(token.access_token, trusting[name], app_id)
    with pytest.raises(InvalidRequest) as err:
        discovered(base_url, NoClientAuth()).jwt_bearer(platform_token(platform_key, base_url, f"{WORKLOAD}:shared"))
    assert "client_id" in err.value.description


@pytest.mark.parametrize(
    "case, token_kw, why",
    [
        ("another subject", {"sub": "repo:moneykit/ledger:ref:refs/heads/evil"}, "sub does not match"),
        ("another audience", {"aud": "https://elsewhere.example"}, "among the audiences"),
        ("expired", {"iat_offset": -1200, "lifetime": 600}, "expired"),
        ("a lifetime over 24 h", {"lifetime": 25 * 3600}, "lives longer than 86400 s"),
        ("another issuer", {"iss": "https://other-ci.interop.test"}, "no trust rule"),
    ],
)
def test_roc_bad_platform_tokens_are_invalid_grant(case, token_kw, why, trusting, platform_key, base_url):
    """Against CI_ISSUER's single rule, so the description can only be about that rule."""
    kw = {"aud": base_url, "sub": CI_SUBJECT, "iss": CI_ISSUER, **token_kw}
    oauth = discovered(base_url, NoClientAuth())
    with pytest.raises(InvalidGrant) as err:
        oauth.token_exchange(subject_token=platform_token(platform_key, **kw), subject_token_type="jwt")
    assert err.value.response.status_code == 400, case
    assert why in err.value.description, (case, err.value.description)


@pytest.mark.parametrize("case, token_kw", [("expired", {"iat_offset": -1200}), ("over 24 h", {"lifetime": 25 * 3600})])
def test_roc_refused_platform_token_of_a_trusted_workload_is_invalid_grant(case, token_kw, trusting, platform_key, base_url):
    """The same refusals for WORKLOAD, whose issuer has several rules."""
    oauth = discovered(base_url, NoClientAuth())
    with pytest.raises(InvalidGrant):
        oauth.jwt_bearer(platform_token(platform_key, base_url, **token_kw))


def test_refusal_of_a_trusted_workload_names_its_check(trusting, platform_key, base_url):
    """An expired token of WORKLOAD, whose issuer has five rules: the description says the
    token expired (the refusal of the rule for its subject), not "sub does not match" from a
    rule made earlier for another subject (see the ``trusting`` fixture)."""
    oauth = discovered(base_url, NoClientAuth())
    with pytest.raises(InvalidGrant) as err:
        oauth.jwt_bearer(platform_token(platform_key, base_url, iat_offset=-1200))
    assert "sub does not match" not in err.value.description, err.value.description
    assert "expired" in err.value.description, err.value.description


def test_roc_platform_token_signed_by_another_key_is_invalid_grant(trusting, base_url):
    forged = Jwk.generate(alg="ES256", kid="platform-1")  # the real kid, not the real key
    oauth = discovered(base_url, NoClientAuth())
    with pytest.raises(InvalidGrant):
        oauth.jwt_bearer(platform_token(forged, base_url))


def test_roc_federation_credentials_must_be_the_trusting_clients(trusting, platform_key, base_url, client):
    """A request that carries credentials of a client without the rule gets nothing, even with a
    platform token another client trusts."""
    oauth = discovered(base_url, (client.client_id, client.client_secret))
    with pytest.raises(InvalidGrant):
        oauth.token_exchange(subject_token=platform_token(platform_key, base_url), subject_token_type="jwt")


def test_token_exchange_malformed_requests_are_invalid_request(trusting, platform_key, base_url):
    """What requests-oauth2client never sends: no ``subject_token_type``, and an
    ``actor_token`` (delegation, not supported) → 400 invalid_request."""
    url = f"{base_url}/oauth2/token"
    subject = platform_token(platform_key, base_url)
    resp = requests.post(url, data={"grant_type": TOKEN_EXCHANGE, "subject_token": subject}, timeout=TIMEOUT)
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_request", resp.text
    oauth = discovered(base_url, NoClientAuth())
    with pytest.raises(InvalidRequest):
        oauth.token_exchange(
            subject_token=subject, subject_token_type="jwt",
            actor_token=platform_token(platform_key, base_url), actor_token_type="jwt",
        )
