"""Every kind of error answers the same bytes, whichever layer produces it (DRF's handler,
a middleware, Django's handlers, the catch-all route): memoryproject/errors.py maps the
layers, and this pins what clients see while they move."""

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from apikeys import lockout

pytestmark = pytest.mark.django_db

# (name, method, path, with a key, body, extra headers) -> (status, body, headers checked)
CASES = {
    "unknown path": ("GET", "/nope", True, None, {}),
    "unknown path, POST": ("POST", "/nope", True, b"{}", {}),
    "unknown path, no key": ("GET", "/nope", False, None, {}),
    "unknown api path": ("DELETE", "/api/v1/nope", True, None, {}),
    "malformed memory id": ("GET", "/api/v1/memory/not-a-uuid", True, None, {}),
    "malformed memory id, no key": ("GET", "/api/v1/memory/not-a-uuid", False, None, {}),
    "missing memory": (
        "GET",
        "/api/v1/memory/3f0c2a9e-5b1d-4c6e-9a7f-2d8b1e4c6a10",
        True,
        None,
        {},
    ),
    "no key": ("GET", "/api/v1/memory?user_id=u1", False, None, {}),
    "bad key": ("GET", "/api/v1/memory?user_id=u1", "aimsk_live_nothing", None, {}),
    "invalid input": ("POST", "/api/v1/memory", True, b'{"user_id": "u1"}', {}),
    "malformed json": ("POST", "/api/v1/memory", True, b"{", {}),
    "wrong method": ("PUT", "/api/v1/memory", True, b"{}", {}),
    "bad content length": ("POST", "/api/v1/memory", True, b"{}", {"CONTENT_LENGTH": "x"}),
    "chunked": ("POST", "/api/v1/memory", True, b"{}", {"HTTP_TRANSFER_ENCODING": "chunked"}),
    "too large": ("POST", "/api/v1/memory", True, b"{}", {"CONTENT_LENGTH": "99999999"}),
    "unsupported media type": (
        "POST",
        "/api/v1/memory",
        True,
        b"a=b",
        {"CONTENT_TYPE": "text/plain"},
    ),
    "host not allowed": (
        "GET",
        "/api/v1/memory?user_id=u1",
        True,
        None,
        {"HTTP_HOST": "evil.example"},
    ),
}

EXPECTED = {
    "unknown path": (404, b'{"detail": "Not found."}', {}),
    "unknown path, POST": (404, b'{"detail": "Not found."}', {}),
    "unknown path, no key": (404, b'{"detail": "Not found."}', {}),
    "unknown api path": (404, b'{"detail": "Not found."}', {}),
    "malformed memory id": (
        404,
        b'{"detail":"Not found."}',
        {"Allow": "GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS"},
    ),
    "malformed memory id, no key": (
        401,
        b'{"detail":"Authentication required"}',
        {"WWW-Authenticate": "Bearer", "Allow": "GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS"},
    ),
    "missing memory": (
        404,
        b'{"detail":"Not found."}',
        {"Allow": "GET, PATCH, DELETE, HEAD, OPTIONS"},
    ),
    "no key": (
        401,
        b'{"detail":"Authentication required"}',
        {"WWW-Authenticate": "Bearer", "Allow": "GET, POST, HEAD, OPTIONS"},
    ),
    "bad key": (
        401,
        b'{"detail":"Authentication required"}',
        {"WWW-Authenticate": "Bearer", "Allow": "GET, POST, HEAD, OPTIONS"},
    ),
    "invalid input": (
        400,
        b'{"detail":"content: This field is required.",'
        b'"errors":{"content":["This field is required."]}}',
        {"Allow": "GET, POST, HEAD, OPTIONS"},
    ),
    "malformed json": (
        400,
        b'{"detail":"JSON parse error - Expecting property name enclosed in double quotes: '
        b'line 1 column 2 (char 1)"}',
        {"Allow": "GET, POST, HEAD, OPTIONS"},
    ),
    "wrong method": (
        405,
        b'{"detail":"Method \\"PUT\\" not allowed."}',
        {"Allow": "GET, POST, HEAD, OPTIONS"},
    ),
    "bad content length": (400, b'{"detail": "Invalid Content-Length header"}', {}),
    "chunked": (411, b'{"detail": "Content-Length required: chunked bodies are not accepted"}', {}),
    "too large": (413, b'{"detail": "Request body too large (limit 1048576 bytes)"}', {}),
    "unsupported media type": (
        415,
        b'{"detail":"Unsupported media type \\"text/plain\\" in request."}',
        {"Allow": "GET, POST, HEAD, OPTIONS"},
    ),
    "host not allowed": (400, b'{"detail": "Bad request"}', {}),
}


@pytest.mark.parametrize("debug", [True, False])
@pytest.mark.parametrize("name", list(CASES))
def test_error_bytes_stay_the_same(api_key, name, debug):
    method, path, key, body, extra = CASES[name]
    client = APIClient(enforce_csrf_checks=True)
    if key:
        token = api_key.plaintext if key is True else key
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    extra = dict(extra)
    content_type = extra.pop("CONTENT_TYPE", "application/json")
    with override_settings(DEBUG=debug):
        response = client.generic(method, path, body or b"", content_type=content_type, **extra)
    status, content, headers = EXPECTED[name]
    assert (response.status_code, response.content) == (status, content)
    assert response["Content-Type"] == "application/json"
    names = ("WWW-Authenticate", "Allow", "Retry-After")
    assert {h: response[h] for h in names if response.has_header(h)} == headers


@pytest.fixture
def lockout_after_three(settings):
    settings.AUTH_FAILURES_PER_MINUTE = 3
    yield
    lockout._blocked.clear()


@pytest.mark.parametrize("path", ["/admin/login/", "/api/v1/memory?user_id=u1"])
def test_locked_out_address_gets_the_same_429_bytes(lockout_after_three, path):
    """The lockout answers alike from the admin login (a Django view) and the API (DRF)."""
    client = APIClient(REMOTE_ADDR="203.0.113.7")
    for _ in range(4):  # the fourth failure finds the bucket empty
        client.post("/admin/login/", {"username": "root", "password": "guess"})
    response = client.post(path, {"username": "root", "password": "guess"})
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
    detail = "Too many failed authentication attempts from this address"
    spacing = " " if path.startswith("/admin/") else ""  # Django's spelling, DRF's
    assert response.content == f'{{"detail":{spacing}"{detail}"}}'.encode()
