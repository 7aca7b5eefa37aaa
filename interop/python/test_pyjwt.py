"""Suite 3: PyJWT with ``PyJWKClient`` verifies access tokens offline, from the JWKS URL alone.

This is what a resource server does with moneykit-auth's tokens (RFC 9068):
fetch the JWKS, pick the key by ``kid``, pin ES256, check ``iss``, ``aud`` and ``exp``.
"""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec
from jwt import PyJWKClient

from conftest import CLIENT_SCOPES, TIMEOUT, cli, jwt_parts, moneykit_token, raw_token, wait_until

REQUIRED_CLAIMS = ["iss", "aud", "sub", "client_id", "app_id", "scope", "iat", "exp", "jti"]


@pytest.fixture(scope="module")
def jwks_url(base_url) -> str:
    return f"{base_url}/.well-known/jwks.json"


@pytest.fixture(scope="module")
def jwk_client(jwks_url) -> PyJWKClient:
    return PyJWKClient(jwks_url, cache_keys=True, lifespan=300, timeout=TIMEOUT)


def verify(token: str, jwk_client: PyJWKClient, issuer: str, audience: str | None = None, **kw) -> dict:
    """Verification as a resource server would do it (RFC 9068 §4): key by kid from the JWKS,
    ES256 pinned, issuer checked, ``aud`` required and checked (by default the issuer: the
    server's default audience), exp/iat required."""
    key = jwk_client.get_signing_key_from_jwt(token)
    return jwt.decode(
        token,
        key.key,
        algorithms=["ES256"],
        issuer=issuer,
        audience=audience or issuer,
        leeway=5,
        options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
        **kw,
    )


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def token_oauth2(base_url, client) -> str:
    resp = raw_token(base_url, client)
    assert resp.status_code == 200, resp.text
    return resp.json()["access_token"]


@pytest.fixture(scope="module")
def token_moneykit(base_url, client) -> str:
    resp = moneykit_token(base_url, client)
    assert resp.status_code == 201, resp.text
    return resp.json()["access_token"]


def test_jwks_publishes_only_public_es256_keys(jwks_url):
    resp = requests.get(jwks_url, timeout=TIMEOUT)
    assert resp.status_code == 200
    assert "max-age" in resp.headers.get("cache-control", ""), resp.headers.get("cache-control")
    keys = resp.json()["keys"]
    assert keys
    for k in keys:
        assert (k["kty"], k["crv"], k["alg"], k["use"]) == ("EC", "P-256", "ES256", "sig"), k
        assert k["kid"] and k["x"] and k["y"]
        assert "d" not in k, "private key material in the JWKS"
    # PyJWT parses every key.
    assert len(jwt.PyJWKSet.from_dict(resp.json()).keys) == len(keys)


def test_header_is_rfc9068(token_moneykit, jwks_url):
    header = jwt.get_unverified_header(token_moneykit)
    assert header["alg"] == "ES256"
    assert header["typ"] == "at+jwt"
    kids = {k["kid"] for k in requests.get(jwks_url, timeout=TIMEOUT).json()["keys"]}
    assert header["kid"] in kids


def test_verify_moneykit_token(token_moneykit, jwk_client, base_url, client, app_id):
    claims = verify(token_moneykit, jwk_client, base_url)
    for name in REQUIRED_CLAIMS:
        assert name in claims, name
    # `aud` is always present; without --audience and client audiences it is
    # the issuer (verify() has already required it and checked it with PyJWT's audience=).
    assert claims["aud"] == base_url
    assert claims["sub"] == claims["client_id"] == client.client_id
    assert claims["app_id"] == app_id
    assert set(claims["scope"].split()) == set(CLIENT_SCOPES)
    assert claims["exp"] - claims["iat"] == 3600
    assert abs(claims["iat"] - time.time()) < 60


def test_verify_oauth2_token(token_oauth2, jwk_client, base_url, client):
    claims = verify(token_oauth2, jwk_client, base_url)
    assert claims["client_id"] == client.client_id
    assert claims["aud"] == base_url
    assert jwt.get_unverified_header(token_oauth2)["typ"] == "at+jwt"


def test_verify_narrowed_token(base_url, client, jwk_client):
    token = raw_token(base_url, client, scope="accounts:read").json()["access_token"]
    assert verify(token, jwk_client, base_url)["scope"] == "accounts:read"


def test_resource_indicator_sets_the_audience_pyjwt_requires(base_url, make_client, jwk_client):
    """RFC 8707: a client allowed an API's audience asks for it with ``resource``; PyJWT told
    to require that audience accepts the token, and refuses it for any other audience."""
    api = "https://api.example.test/"
    c = make_client("accounts:read", "--audience", "urn:example:default", "--audience", api)
    resp = requests.post(
        f"{base_url}/oauth2/token",
        data={"grant_type": "client_credentials", "resource": api},
        auth=(c.client_id, c.client_secret),
        timeout=TIMEOUT,
    )
    assert resp.status_code == 200, resp.text
    token = resp.json()["access_token"]
    claims = verify(token, jwk_client, base_url, audience=api)
    assert claims["aud"] == api
    with pytest.raises(jwt.InvalidAudienceError):
        verify(token, jwk_client, base_url, audience="urn:example:default")
    with pytest.raises(jwt.InvalidAudienceError):
        verify(token, jwk_client, base_url)
    # Without a resource: the client's first audience.
    default = moneykit_token(base_url, c).json()["access_token"]
    assert verify(default, jwk_client, base_url, audience="urn:example:default")["aud"] == "urn:example:default"
    # Outside the client's list: RFC 8707 invalid_target, in both error shapes.
    refused = requests.post(
        f"{base_url}/oauth2/token",
        data={"grant_type": "client_credentials", "resource": "https://elsewhere.example.test/"},
        auth=(c.client_id, c.client_secret),
        timeout=TIMEOUT,
    )
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == "invalid_target"
    assert refused.json()["error_code"] == "api_error.auth.invalid_target"


def test_jti_is_unique(base_url, client):
    jtis = {jwt_parts(moneykit_token(base_url, client).json()["access_token"])[1]["jti"] for _ in range(5)}
    assert len(jtis) == 5


def test_tampered_payload_fails(token_moneykit, jwk_client, base_url):
    header, payload, sig = token_moneykit.split(".")
    claims = jwt_parts(token_moneykit)[1]
    claims["scope"] = "accounts:read transactions:read accounts:write"
    forged = f"{header}.{b64url(json.dumps(claims).encode())}.{sig}"
    with pytest.raises(jwt.InvalidSignatureError):
        verify(forged, jwk_client, base_url)


def test_tampered_signature_fails(token_moneykit, jwk_client, base_url):
    header, payload, sig = token_moneykit.split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    raw[10] ^= 0x01
    with pytest.raises(jwt.InvalidSignatureError):
        verify(f"{header}.{payload}.{b64url(bytes(raw))}", jwk_client, base_url)


def test_foreign_key_with_same_kid_fails(token_moneykit, jwk_client, base_url):
    claims = jwt_parts(token_moneykit)[1]
    kid = jwt.get_unverified_header(token_moneykit)["kid"]
    foreign = ec.generate_private_key(ec.SECP256R1())
    forged = jwt.encode(claims, foreign, algorithm="ES256", headers={"kid": kid, "typ": "at+jwt"})
    with pytest.raises(jwt.InvalidSignatureError):
        verify(forged, jwk_client, base_url)


def test_alg_none_is_refused(token_moneykit, jwk_client, base_url):
    claims = jwt_parts(token_moneykit)[1]
    kid = jwt.get_unverified_header(token_moneykit)["kid"]
    header = b64url(json.dumps({"alg": "none", "typ": "at+jwt", "kid": kid}).encode())
    unsigned = f"{header}.{b64url(json.dumps(claims).encode())}."
    with pytest.raises(jwt.InvalidTokenError):
        verify(unsigned, jwk_client, base_url)


@pytest.mark.parametrize("token_name", ["token_moneykit", "token_oauth2"])
def test_wrong_audience_fails(token_name, jwk_client, base_url, request):
    """A resource server that expects another audience refuses the token (RFC 9068 §4)."""
    token = request.getfixturevalue(token_name)
    with pytest.raises(jwt.InvalidAudienceError):
        verify(token, jwk_client, base_url, audience="https://another-api.example.test")
    with pytest.raises(jwt.InvalidAudienceError):
        verify(token, jwk_client, base_url, audience=base_url + "/")


def test_wrong_issuer_fails(token_moneykit, jwk_client):
    with pytest.raises(jwt.InvalidIssuerError):
        verify(token_moneykit, jwk_client, "https://auth.example.com")


def test_key_rotation_now_new_kid_verifies_and_old_token_still_verifies(base_url, client, token_moneykit):
    """`keys rotate --now`: new tokens carry a new kid that PyJWKClient finds by refetching
    the JWKS; tokens signed by the retired key keep verifying."""
    old_kid = jwt.get_unverified_header(token_moneykit)["kid"]
    # A receiver that cached the JWKS before the rotation. PyJWKClient refetches on an unknown
    # kid, but by default at most once per 30 s (cooldown_duration); an emergency rotation is
    # exactly when a receiver wants that refetch now.
    cached = PyJWKClient(f"{base_url}/.well-known/jwks.json", cache_keys=True, cooldown_duration=0)
    verify(token_moneykit, cached, base_url)

    cli("keys", "rotate", "--now")

    def new_token():
        t = moneykit_token(base_url, client).json()["access_token"]
        return t if jwt.get_unverified_header(t)["kid"] != old_kid else None

    token = wait_until(new_token)
    assert token, "tokens still signed by the old kid 3 s after `keys rotate --now`"
    claims = verify(token, cached, base_url)
    assert claims["client_id"] == client.client_id
    # The pre-rotation token still verifies against a fresh JWKS fetch, and the server itself
    # still accepts it.
    verify(token_moneykit, PyJWKClient(f"{base_url}/.well-known/jwks.json"), base_url)
    resp = requests.get(
        f"{base_url}/auth/introspect", headers={"Authorization": f"Bearer {token_moneykit}"}, timeout=TIMEOUT
    )
    assert resp.status_code == 200, resp.text
    resp = requests.post(
        f"{base_url}/oauth2/introspect",
        data={"token": token_moneykit},
        auth=(client.client_id, client.client_secret),
        timeout=TIMEOUT,
    )
    assert resp.status_code == 200 and resp.json()["active"] is True, resp.text
