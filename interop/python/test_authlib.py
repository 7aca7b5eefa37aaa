"""Suite 2: authlib's requests client (``OAuth2Session``) against the standard OAuth 2.0 surface.

RFC 8414 discovery, RFC 6749 §4.4 client credentials with client_secret_basic and
client_secret_post, RFC 7662 introspection, RFC 7009 revocation, with authlib doing the
protocol work; plain ``requests`` is used only to look at what authlib hides (status codes,
headers) or to send what authlib never would.
"""

from __future__ import annotations

import time

import pytest
import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata

from conftest import CLIENT_SCOPES, TIMEOUT, Client, cli, jwt_parts, wait_until


@pytest.fixture(scope="module")
def metadata(base_url) -> AuthorizationServerMetadata:
    resp = requests.get(f"{base_url}/.well-known/oauth-authorization-server", timeout=TIMEOUT)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    return AuthorizationServerMetadata(resp.json())


def session(c: Client, metadata, method: str = "client_secret_basic", **kw) -> OAuth2Session:
    """An authlib session configured only from the discovery document."""
    return OAuth2Session(
        c.client_id,
        c.client_secret,
        token_endpoint_auth_method=method,
        revocation_endpoint_auth_method=method,
        token_endpoint=metadata["token_endpoint"],
        **kw,
    )


def introspect(metadata, caller: Client, token: str, method="client_secret_basic", **kw) -> requests.Response:
    with session(caller, metadata, method) as s:
        return s.introspect_token(metadata["introspection_endpoint"], token=token, **kw)


def fetch(c: Client, metadata, method="client_secret_basic", **kw):
    with session(c, metadata, method) as s:
        return s.fetch_token(grant_type="client_credentials", **kw)


# --- RFC 8414 discovery -------------------------------------------------------------------


def test_discovery_document_validates(metadata, base_url):
    """authlib's RFC 8414 §2 validators, field by field.

    One exception: authlib also rejects an *empty* ``response_types_supported``, which a server
    without an authorization endpoint has to send; RFC 8414 only requires the member, so that
    one is checked by hand.
    """
    for key in AuthorizationServerMetadata.REGISTRY_KEYS:
        if key != "response_types_supported":
            getattr(metadata, f"validate_{key}")()
    assert isinstance(metadata.get("response_types_supported"), list), "response_types_supported is REQUIRED"
    # §3.3: the issuer must be identical to the URL the document was fetched under.
    assert metadata["issuer"] == base_url


def test_discovery_advertises_this_server(metadata, base_url):
    for field, path in [
        ("token_endpoint", "/oauth2/token"),
        ("introspection_endpoint", "/oauth2/introspect"),
        ("revocation_endpoint", "/oauth2/revoke"),
        ("jwks_uri", "/.well-known/jwks.json"),
    ]:
        assert metadata.get(field) == base_url + path, (field, metadata.get(field))
    assert "client_credentials" in metadata["grant_types_supported"]
    assert set(metadata["token_endpoint_auth_methods_supported"]) >= {
        "client_secret_basic",
        "client_secret_post",
    }
    # Scope names are not published by default (`serve --publish-scopes` lists them): anyone
    # may read the metadata, and one tenant's scopes are not another's business.
    assert "scopes_supported" not in metadata


def test_discovery_jwks_uri_serves_keys(metadata):
    resp = requests.get(metadata["jwks_uri"], timeout=TIMEOUT)
    assert resp.status_code == 200
    assert resp.json()["keys"], "empty JWKS"


# --- client credentials ---------------------------------------------------------------------


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_fetch_token(client, metadata, method):
    token = fetch(client, metadata, method)
    assert token["token_type"] == "Bearer"
    assert 0 < token["expires_in"] <= 3600
    # authlib turns expires_in into an absolute expires_at.
    assert abs(token["expires_at"] - (time.time() + token["expires_in"])) < 5
    assert set(token["scope"].split()) == set(CLIENT_SCOPES)
    _, claims = jwt_parts(token["access_token"])
    assert claims["client_id"] == client.client_id


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_fetch_token_narrowed_scope(client, metadata, method):
    token = fetch(client, metadata, method, scope="transactions:read")
    # RFC 6749 §5.1 lets a server leave `scope` out only when it equals the request; this
    # server's contract is to send it always (test_fetch_token), so it is required here too.
    assert "scope" in token, f"no scope in the token response: {sorted(token)}"
    assert token["scope"] == "transactions:read"
    assert jwt_parts(token["access_token"])[1]["scope"] == "transactions:read"


def test_session_scope_is_sent(client, metadata):
    with session(client, metadata, scope="accounts:read") as s:
        token = s.fetch_token(grant_type="client_credentials")
    assert token["scope"] == "accounts:read"


def test_token_from_oauth2_works_on_moneykit_introspect(client, metadata, base_url):
    """A token from /oauth2/token is a full access token: authlib's session sends it as a
    Bearer header to the MoneyKit /auth/introspect."""
    with session(client, metadata) as s:
        s.fetch_token(grant_type="client_credentials")
        resp = s.get(f"{base_url}/auth/introspect", timeout=TIMEOUT)
    assert resp.status_code == 200, resp.text
    assert resp.json()["client_id"] == client.client_id


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_wrong_secret_is_invalid_client(client, metadata, method):
    bad = Client(client.client_id, "mks_not-the-secret", client.scope)
    with pytest.raises(OAuthError) as err:
        fetch(bad, metadata, method)
    assert err.value.error == "invalid_client"


def test_disallowed_scope_is_invalid_scope(client, metadata):
    with pytest.raises(OAuthError) as err:
        fetch(client, metadata, scope="accounts:write")
    assert err.value.error == "invalid_scope"


def test_unsupported_grant_type(client, metadata):
    with session(client, metadata) as s, pytest.raises(OAuthError) as err:
        s.fetch_token(grant_type="password", username="u", password="p")
    assert err.value.error == "unsupported_grant_type"


# --- RFC 7662 introspection ----------------------------------------------------------------


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_introspect_active_token(client, client2, metadata, base_url, method):
    token = fetch(client, metadata)["access_token"]
    _, claims = jwt_parts(token)
    resp = introspect(metadata, client2, token, method)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["active"] is True
    assert body["client_id"] == client.client_id
    assert set(body["scope"].split()) == set(CLIENT_SCOPES)
    assert body["token_type"].lower() == "bearer"
    assert body["sub"] == client.client_id
    assert body["iss"] == base_url
    assert body["exp"] == claims["exp"] and body["iat"] == claims["iat"]
    assert body["jti"] == claims["jti"]


def test_introspect_with_token_type_hint(client, client2, metadata):
    token = fetch(client, metadata)["access_token"]
    resp = introspect(metadata, client2, token, token_type_hint="access_token")
    assert resp.status_code == 200 and resp.json()["active"] is True, resp.text


def test_introspect_wrong_hint_still_finds_the_token(client, client2, metadata):
    """RFC 7662 §2.1: a hint that does not match only widens the search."""
    token = fetch(client, metadata)["access_token"]
    resp = introspect(metadata, client2, token, token_type_hint="refresh_token")
    assert resp.status_code == 200 and resp.json()["active"] is True, resp.text


def test_introspect_own_token(client, metadata):
    token = fetch(client, metadata)["access_token"]
    assert introspect(metadata, client, token).json()["active"] is True


@pytest.mark.parametrize(
    "token",
    ["not-a-token", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "a.b.c"],
)
def test_introspect_garbage_is_inactive(client2, metadata, token):
    resp = introspect(metadata, client2, token)
    assert resp.status_code == 200, resp.text
    # RFC 7662 §2.2: an inactive answer should carry nothing but "active".
    assert resp.json() == {"active": False}


def test_introspect_tampered_token_is_inactive(client, client2, metadata):
    token = fetch(client, metadata)["access_token"]
    header, payload, sig = token.split(".")
    mid = len(sig) // 2  # a character that carries six signature bits, unlike the last one
    flipped = sig[:mid] + ("A" if sig[mid] != "A" else "B") + sig[mid + 1 :]
    assert introspect(metadata, client2, f"{header}.{payload}.{flipped}").json() == {"active": False}


def test_introspect_requires_client_authentication(client, metadata):
    """RFC 7662 §2.1: the endpoint must require authorization."""
    token = fetch(client, metadata)["access_token"]
    resp = requests.post(metadata["introspection_endpoint"], data={"token": token}, timeout=TIMEOUT)
    assert resp.status_code == 401, (resp.status_code, resp.text)


def test_introspect_rejects_wrong_caller_secret(client, client2, metadata):
    token = fetch(client, metadata)["access_token"]
    bad = Client(client2.client_id, "mks_not-the-secret", client2.scope)
    resp = introspect(metadata, bad, token)
    assert resp.status_code == 401, (resp.status_code, resp.text)
    assert resp.json().get("error") == "invalid_client"


def test_introspect_expired_token_is_inactive(metadata, make_client, client2):
    short = make_client("accounts:read", "--token-ttl", "1")
    token = fetch(short, metadata)["access_token"]
    assert introspect(metadata, client2, token).json()["active"] is True
    # exp is 1 s away; validation allows at most 5 s of leeway.
    time.sleep(7.5)
    assert introspect(metadata, client2, token).json() == {"active": False}


def test_disabled_client_tokens_are_inactive_and_enable_restores(metadata, make_client, client2):
    c = make_client("accounts:read")
    token = fetch(c, metadata)["access_token"]
    assert introspect(metadata, client2, token).json()["active"] is True

    cli("clients", "disable", c.client_id)
    inactive = wait_until(lambda: introspect(metadata, client2, token).json() == {"active": False})
    assert inactive, "token of a disabled client still active 3 s after `clients disable`"
    with pytest.raises(OAuthError) as err:
        fetch(c, metadata)
    assert err.value.error == "invalid_client"
    # A disabled client cannot act as an introspecting resource server either.
    assert introspect(metadata, c, token).status_code == 401

    cli("clients", "enable", c.client_id)
    active = wait_until(lambda: introspect(metadata, client2, token).json().get("active") is True)
    assert active, "enabling the client again did not restore its unexpired token"


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_a_secret_rotated_with_a_grace_keeps_both_working_until_the_old_is_revoked(
    metadata, make_client, method
):
    old = make_client("accounts:read")
    rotated = cli("clients", "rotate-secret", old.client_id, "--grace", "1h")
    new = Client(old.client_id, rotated["client_secret"], old.scope)
    def works(c: Client) -> bool:
        try:
            return bool(fetch(c, metadata, method).get("access_token"))
        except OAuthError:
            return False

    assert wait_until(lambda: works(new)), "the new secret did not work within 3 s of the rotation"
    # An unchanged instance of the client, still configured with the old secret, works on.
    assert fetch(old, metadata, method)["token_type"].lower() == "bearer"

    shown = cli("clients", "show", old.client_id)
    old_id = next(s["secret_id"] for s in shown["secrets"] if s["secret_id"] != rotated["secret_id"])
    cli("clients", "revoke-secret", old.client_id, old_id)

    assert wait_until(lambda: not works(old)), "the revoked secret still worked 3 s after `clients revoke-secret`"
    with pytest.raises(OAuthError) as err:
        fetch(old, metadata, method)
    assert err.value.error == "invalid_client"
    assert fetch(new, metadata, method)["access_token"]


# --- RFC 7009 revocation -------------------------------------------------------------------


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_revoke_own_token(client, client2, metadata, base_url, method):
    token = fetch(client, metadata)["access_token"]
    assert introspect(metadata, client2, token).json()["active"] is True
    with session(client, metadata, method) as s:
        resp = s.revoke_token(metadata["revocation_endpoint"], token=token, token_type_hint="access_token")
    assert resp.status_code == 200, resp.text
    assert resp.content == b""

    gone = wait_until(lambda: introspect(metadata, client2, token).json() == {"active": False})
    assert gone, "revoked token still active at /oauth2/introspect"
    resp = requests.get(f"{base_url}/auth/introspect", headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT)
    assert resp.status_code == 401, resp.text
    assert resp.json()["error_code"] == "api_error.auth.unauthorized"

    # Revocation is per token: the client keeps getting (working) tokens.
    fresh = fetch(client, metadata)["access_token"]
    assert introspect(metadata, client2, fresh).json()["active"] is True


def test_revoke_with_wrong_hint_still_revokes(client, client2, metadata):
    """RFC 7009 §2.1: unable to find the token under the hint, the server searches further."""
    token = fetch(client, metadata)["access_token"]
    with session(client, metadata) as s:
        resp = s.revoke_token(metadata["revocation_endpoint"], token=token, token_type_hint="refresh_token")
    assert resp.status_code == 200, resp.text
    assert wait_until(lambda: introspect(metadata, client2, token).json() == {"active": False})


def test_revoke_is_idempotent_and_ignores_unknown_tokens(client, metadata):
    """RFC 7009 §2.2: invalid tokens do not cause an error response."""
    token = fetch(client, metadata)["access_token"]
    with session(client, metadata) as s:
        for t in (token, token, "not-a-token"):
            resp = s.revoke_token(metadata["revocation_endpoint"], token=t)
            assert resp.status_code == 200, (t[:12], resp.status_code, resp.text)


def test_revoke_requires_client_authentication(client, client2, metadata):
    token = fetch(client, metadata)["access_token"]
    resp = requests.post(metadata["revocation_endpoint"], data={"token": token}, timeout=TIMEOUT)
    assert resp.status_code == 401, (resp.status_code, resp.text)
    assert introspect(metadata, client2, token).json()["active"] is True


def test_revoke_by_another_client_does_not_revoke(client, client2, metadata):
    """RFC 7009 §2.1: the server checks the token was issued to the requesting client, and if
    not, refuses the request and informs the client of the error (§2.2.1: an RFC 6749 §5.2
    error response); this server answers 400 `unauthorized_client` (its OpenAPI document)."""
    token = fetch(client, metadata)["access_token"]
    with session(client2, metadata) as s:
        resp = s.revoke_token(metadata["revocation_endpoint"], token=token)
    assert resp.status_code == 400, (resp.status_code, resp.text)
    assert resp.headers["content-type"].startswith("application/json"), resp.headers["content-type"]
    assert resp.json()["error"] == "unauthorized_client", resp.text
    time.sleep(1.2)
    assert introspect(metadata, client2, token).json()["active"] is True, (
        f"client2 revoked client1's token (revoke answered {resp.status_code})"
    )
