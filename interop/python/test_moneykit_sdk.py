"""Suite 4: the official MoneyKit Python SDK (PyPI ``moneykit``), unchanged, against the
MoneyKit-compatible surface.

Only the SDK's own ``Configuration(host=…)`` points it here. What the installed version offers
(0.2.3, API version 2023-02-18), read from its source:

- ``AccessTokenApi.create_access_token(grant_type, scope, client_id, client_secret)`` →
  ``CreateAccessTokenResponse``; auth setting ``HTTPBasic`` (sent only when
  ``Configuration.username``/``password`` are set, raw ``id:secret`` base64, no form-encoding);
  the body credentials are plain form fields. It deserializes only a **201** (a 200 would
  come back as ``None``); 400/401 raise ``BadRequestException``/``UnauthorizedException``.
- ``instrospect_client()`` (sic) → ``AppClientResponse``; auth ``OAuth2ClientCredentials`` =
  ``Authorization: Bearer <Configuration.access_token>``.
- ``get_well_known_jwks(x_client_id=None, authorization=None)`` → ``JWKSet``; no auth setting,
  the two headers are optional parameters.
- Every request carries ``MoneyKit-Version: 2023-02-18`` and
  ``User-Agent: OpenAPI-Generator/0.2.3/python``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time

import jwt
import moneykit
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from moneykit.api.access_token_api import AccessTokenApi
from moneykit.exceptions import BadRequestException, UnauthorizedException

from conftest import CLIENT_SCOPES, cli, jwt_parts, wait_until


def api(base_url: str, **config) -> AccessTokenApi:
    return AccessTokenApi(moneykit.ApiClient(moneykit.Configuration(host=base_url, **config)))


@pytest.fixture(scope="module")
def basic_api(base_url, client) -> AccessTokenApi:
    return api(base_url, username=client.client_id, password=client.client_secret)


@pytest.fixture(scope="module")
def sdk_token(basic_api) -> str:
    return basic_api.create_access_token(grant_type="client_credentials").access_token


def test_sdk_version_is_the_one_documented():
    assert moneykit.__version__ == "0.2.3"
    assert moneykit.ApiClient().default_headers["MoneyKit-Version"] == "2023-02-18"


def test_create_access_token_http_basic(basic_api, client):
    resp = basic_api.create_access_token_with_http_info(grant_type="client_credentials")
    assert resp.status_code == 201
    token = resp.data
    assert isinstance(token, moneykit.CreateAccessTokenResponse)
    assert token.token_type == "bearer"
    assert token.expires_in == 3600
    # `scope` is not in this SDK version's model; it lands in additional_properties.
    assert set(token.additional_properties["scope"].split()) == set(CLIENT_SCOPES)
    assert jwt_parts(token.access_token)[1]["client_id"] == client.client_id
    assert "no-store" in resp.headers.get("cache-control", "")


def test_create_access_token_without_grant_type(basic_api):
    """grant_type is optional in the SDK's signature and in the API."""
    assert basic_api.create_access_token().token_type == "bearer"


def test_create_access_token_body_credentials(base_url, client):
    body_api = api(base_url)  # no username/password: no Authorization header at all
    token = body_api.create_access_token(
        grant_type="client_credentials",
        client_id=client.client_id,
        client_secret=client.client_secret,
    )
    assert token.token_type == "bearer"
    assert jwt_parts(token.access_token)[1]["client_id"] == client.client_id


def test_create_access_token_narrowed_scope(basic_api):
    token = basic_api.create_access_token(grant_type="client_credentials", scope="accounts:read")
    assert token.additional_properties["scope"] == "accounts:read"
    assert jwt_parts(token.access_token)[1]["scope"] == "accounts:read"


def test_wrong_secret_is_401_unauthorized(base_url, client):
    bad = api(base_url, username=client.client_id, password="mks_not-the-secret")
    with pytest.raises(UnauthorizedException) as err:
        bad.create_access_token(grant_type="client_credentials")
    assert err.value.status == 401
    body = json.loads(err.value.body)
    assert body["error_code"] == "api_error.auth.unauthorized"
    assert body["error_message"]
    # The SDK's error model parses the body.
    assert moneykit.APIErrorAuthUnauthorizedResponse.from_json(err.value.body).error_message


def test_disallowed_scope_is_400(basic_api):
    with pytest.raises(BadRequestException) as err:
        basic_api.create_access_token(grant_type="client_credentials", scope="accounts:write")
    assert json.loads(err.value.body)["error_code"] == "api_error.auth.invalid_scope"


def test_instrospect_client(base_url, sdk_token, client, app_id):
    me = api(base_url, access_token=sdk_token).instrospect_client()
    assert isinstance(me, moneykit.AppClientResponse)
    assert me.client_id == client.client_id
    assert set(me.scope.split()) == set(CLIENT_SCOPES)
    assert me.app.app_id == me.app.id == app_id
    assert me.app.name == me.app.app_name
    assert me.disabled_at is None


def test_instrospect_client_with_scheduled_disable(base_url, make_client):
    c = make_client("accounts:read")
    token = api(base_url, username=c.client_id, password=c.client_secret).create_access_token().access_token
    at = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=30)).replace(microsecond=0)
    cli("clients", "disable", c.client_id, "--at", at.isoformat().replace("+00:00", "Z"))
    introspector = api(base_url, access_token=token)
    me = wait_until(lambda: (r := introspector.instrospect_client()).disabled_at and r)
    assert me, "disabled_at not shown 3 s after scheduling a disable"
    assert me.disabled_at == at


def test_instrospect_client_bad_token_is_401(base_url):
    with pytest.raises(UnauthorizedException) as err:
        api(base_url, access_token="not-a-token").instrospect_client()
    assert json.loads(err.value.body)["error_code"] == "api_error.auth.unauthorized"
    assert err.value.headers.get("www-authenticate", "").startswith("Bearer")
    # The SDK's own 401 model for this operation accepts the body.
    parsed = moneykit.Response401InstrospectClientAuthIntrospectGet.from_json(err.value.body)
    assert isinstance(parsed.actual_instance, moneykit.APIErrorAuthUnauthorizedResponse)


def test_instrospect_client_expired_token_is_401_expired(base_url, make_client):
    c = make_client("accounts:read", "--token-ttl", "1")
    token = api(base_url, username=c.client_id, password=c.client_secret).create_access_token()
    assert token.expires_in == 1
    introspector = api(base_url, access_token=token.access_token)
    assert introspector.instrospect_client().client_id == c.client_id
    time.sleep(7.5)  # exp is 1 s away; validation allows at most 5 s of leeway
    with pytest.raises(UnauthorizedException) as err:
        introspector.instrospect_client()
    body = json.loads(err.value.body)
    assert body["error_code"] == "api_error.auth.expired_access_token", body
    assert body["error_message"] == "Access token expired"
    parsed = moneykit.Response401InstrospectClientAuthIntrospectGet.from_json(err.value.body)
    assert isinstance(parsed.actual_instance, moneykit.APIErrorAuthExpiredAccessTokenResponse)


def test_get_well_known_jwks(base_url, sdk_token, client):
    plain = api(base_url)
    for kwargs in ({}, {"x_client_id": client.client_id}, {"authorization": f"Bearer {sdk_token}"}):
        jwks = plain.get_well_known_jwks(**kwargs)
        assert isinstance(jwks, moneykit.JWKSet)
        assert jwks.keys, kwargs
        assert all(k["alg"] == "ES256" and k["kid"] for k in jwks.keys), jwks.keys


def sdk_jwks_key(base_url: str, kid: str) -> dict:
    """The JWK with ``kid`` from the JWKS the SDK fetches (``get_well_known_jwks``)."""
    jwks = api(base_url).get_well_known_jwks()
    matches = [k for k in jwks.keys if k["kid"] == kid]
    assert len(matches) == 1, f"kid {kid} appears {len(matches)} times in the SDK's JWKS"
    return matches[0]


def b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def es256_valid(token: str, jwk: dict) -> bool:
    """RFC 7515/7518 ES256 verification done by hand with ``cryptography``: the JWK's P-256
    point, SHA-256 over ``header.payload``, and the 64-byte r‖s signature."""
    header, payload, signature = token.split(".")
    assert (jwk["kty"], jwk["crv"]) == ("EC", "P-256"), jwk
    public = ec.EllipticCurvePublicNumbers(
        int.from_bytes(b64url_decode(jwk["x"]), "big"),
        int.from_bytes(b64url_decode(jwk["y"]), "big"),
        ec.SECP256R1(),
    ).public_key()
    raw = b64url_decode(signature)
    if len(raw) != 64:
        return False
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        public.verify(der, f"{header}.{payload}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def tampered(token: str) -> str:
    """The token with one claim changed and the original signature kept."""
    header, payload, signature = token.split(".")
    claims = json.loads(b64url_decode(payload))
    claims["scope"] = "accounts:read transactions:read accounts:write"
    return f"{header}.{b64url_encode(json.dumps(claims).encode())}.{signature}"


def test_sdk_token_verifies_against_sdk_jwks(base_url, sdk_token, client):
    """A token the SDK got from the server verifies, with the public key from the JWKS the
    SDK fetched, by two verifiers nobody here wrote: PyJWT and ``cryptography`` by hand. The
    same token with a changed payload verifies with neither."""
    header, _ = jwt_parts(sdk_token)
    assert header["alg"] == "ES256", header
    jwk = sdk_jwks_key(base_url, header["kid"])
    key = jwt.PyJWK(jwk, algorithm="ES256").key

    claims = jwt.decode(
        sdk_token,
        key,
        algorithms=["ES256"],
        issuer=base_url,
        audience=base_url,
        options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
    )
    assert claims["client_id"] == client.client_id
    assert es256_valid(sdk_token, jwk), "cryptography: the server's signature does not verify"

    forged = tampered(sdk_token)
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(forged, key, algorithms=["ES256"], issuer=base_url, audience=base_url)
    assert not es256_valid(forged, jwk), "cryptography: a changed payload still verifies"
    # A key of our own under the same kid is no substitute for the published one.
    foreign = ec.generate_private_key(ec.SECP256R1())
    resigned = jwt.encode(claims, foreign, algorithm="ES256", headers={"kid": header["kid"], "typ": "at+jwt"})
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(resigned, key, algorithms=["ES256"], issuer=base_url, audience=base_url)
    assert not es256_valid(resigned, jwk)
