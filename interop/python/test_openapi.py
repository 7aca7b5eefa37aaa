"""Suite: the served ``/openapi.json`` is a valid OpenAPI 3.1 document.

``GET /openapi.json`` describes every public endpoint. Client generators and
the schemathesis suite read that document; here a validator nobody on this project wrote
(`openapi-spec-validator`, pinned in interop/requirements.txt) checks it against the
OpenAPI 3.1 specification's own schema, with every ``$ref`` resolved.
"""

from __future__ import annotations

import copy

import pytest
import requests
from openapi_spec_validator import OpenAPIV31SpecValidator

from conftest import TIMEOUT

# Every public endpoint, MoneyKit's and the OAuth 2.0 ones, as (method, path).
PUBLIC_OPERATIONS = {
    ("post", "/auth/token"),
    ("get", "/auth/introspect"),
    ("get", "/.well-known/jwks.json"),
    ("post", "/oauth2/token"),
    ("get", "/.well-known/oauth-authorization-server"),
    ("post", "/oauth2/introspect"),
    ("post", "/oauth2/revoke"),
    ("get", "/openapi.json"),
}


def problems(document: dict) -> list[str]:
    """Every validation error of the document, one line each (empty when it is valid). Some
    broken shapes make the validator raise instead of reporting: that counts as a problem."""
    try:
        return [
            f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message.splitlines()[0][:300]}"
            for e in OpenAPIV31SpecValidator(document).iter_errors()
        ]
    except Exception as err:  # noqa: BLE001 (any crash on the document is a finding)
        return [f"the validator could not read the document: {type(err).__name__}: {str(err)[:200]}"]


@pytest.fixture(scope="module")
def document(base_url) -> dict:
    resp = requests.get(f"{base_url}/openapi.json", timeout=TIMEOUT)
    assert resp.status_code == 200, resp.text[:300]
    assert resp.headers["content-type"].startswith("application/json"), resp.headers["content-type"]
    return resp.json()


def test_served_document_is_valid_openapi_3_1(document):
    assert str(document.get("openapi", "")).startswith("3.1."), document.get("openapi")
    found = problems(document)
    assert not found, "the served /openapi.json is not valid OpenAPI 3.1:\n" + "\n".join(found[:20])


def test_document_describes_every_public_endpoint(document):
    described = {(method, path) for path, item in document["paths"].items() for method in item}
    assert PUBLIC_OPERATIONS <= described, sorted(PUBLIC_OPERATIONS - described)


@pytest.mark.parametrize(
    "corrupt",
    [
        pytest.param(lambda d: d.pop("info"), id="no-info"),
        pytest.param(lambda d: d["paths"]["/oauth2/token"]["post"].update(responses="none"), id="responses-not-an-object"),
        pytest.param(
            lambda d: d["paths"]["/oauth2/token"]["post"]["responses"]["200"].pop("description"),
            id="response-without-description",
        ),
        pytest.param(
            lambda d: d["paths"]["/oauth2/token"]["post"]["responses"]["200"]["content"]["application/json"].update(
                schema={"$ref": "#/components/schemas/NoSuchSchema"}
            ),
            id="dangling-schema-ref",
        ),
        pytest.param(
            lambda d: d["paths"]["/healthz/ready"]["get"].update(operationId=d["paths"]["/healthz/live"]["get"]["operationId"]),
            id="duplicate-operation-id",
        ),
    ],
)
def test_the_validator_refuses_a_corrupted_copy(document, corrupt):
    """The check above can fail: the same validator finds a problem in the served document
    with one more thing broken, beyond whatever it finds in the document as served."""
    broken = copy.deepcopy(document)
    corrupt(broken)
    new = set(problems(broken)) - set(problems(document))
    assert new, "a corrupted copy of /openapi.json passed validation"
