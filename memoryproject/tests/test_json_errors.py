"""Every error is JSON with the right status: unknown paths and methods, bodies that are
not a JSON object, too large or of the wrong type, a crash, a disallowed host, and any
Accept header."""

import json

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/nope", "/api/v1/nope", "/api/v2/memory", "/static/nothing.js"])
def test_unknown_path_is_json_404(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json() == {"detail": "Not found."}


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
@pytest.mark.parametrize("path", ["/nope", "/api/v1/memory/x/y/z", "/api/v2/memory"])
def test_unknown_path_is_json_404_for_every_method(api_key, method, path):
    # CSRF checks enforced, as for a real client: the catch-all view once answered 403.
    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key.plaintext}")
    response = client.generic(method, path, b'{"a": 1}', content_type="application/json")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


@pytest.mark.parametrize(
    ("method", "path"),
    [("put", "/api/v1/memory"), ("post", "/health"), ("get", "/api/v1/memory/context")],
)
def test_wrong_method_is_json_405(client, method, path):
    response = getattr(client, method)(path)
    assert response.status_code == 405
    assert "not allowed" in response.json()["detail"]


@pytest.mark.parametrize(
    "raw", [b"{", b'{"user_id": "u1",}', b"\xff\xfe", b"NaN", b'{"a": NaN}', b""]
)
def test_malformed_json_is_400(client, raw):
    response = client.generic("POST", "/api/v1/memory", raw, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["detail"]


@pytest.mark.parametrize("body", [[], "x", 1, True])
def test_non_object_body_is_400(client, body):
    response = client.post("/api/v1/memory", json.dumps(body), content_type="application/json")
    assert response.status_code == 400
    assert "JSON object" in response.json()["detail"]


def test_null_body_is_400(client):
    response = client.post("/api/v1/memory", "null", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["detail"]


def test_oversized_body_is_413(client, settings):
    body = json.dumps({"user_id": "u1", "content": "x" * (settings.MAX_REQUEST_BODY_BYTES + 1)})
    response = client.post("/api/v1/memory", body, content_type="application/json")
    assert response.status_code == 413
    assert "too large" in response.json()["detail"]


def test_wrong_content_type_is_415_json(client):
    response = client.post("/api/v1/memory", "user_id=u1", content_type="text/plain")
    assert response.status_code == 415
    assert response.json()["detail"]


@pytest.mark.urls("memoryproject.tests.crash_urls")
def test_crash_is_json_500_without_traceback(settings):
    settings.DEBUG = True  # even in development mode: JSON, not the debug page
    client = APIClient(raise_request_exception=False)
    response = client.get("/crash")
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error"}
    assert "secret detail" not in response.content.decode()


def test_disallowed_host_is_json_even_in_development(settings):
    settings.DEBUG = True
    response = APIClient().get("/health", HTTP_HOST="evil.example.com")
    assert response.status_code == 400
    assert response.json() == {"detail": "Bad request"}


@pytest.mark.parametrize("accept", ["text/html", "application/xml", "image/png;q=0.9"])
def test_any_accept_header_gets_json_not_406(client, accept):
    response = client.get("/api/v1/memory?user_id=u1", HTTP_ACCEPT=accept)
    assert response.status_code == 200
    assert response.json() == []
