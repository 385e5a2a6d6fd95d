import json
import re
import subprocess
import sys

import pytest
from drf_spectacular.validation import validate_schema
from rest_framework.test import APIClient

from memoryproject.tests.servers import ROOT

pytestmark = pytest.mark.django_db


def test_status_names_service_and_version(client):
    body = APIClient().get("/").json()
    assert body["service"] == "ai-memory-service"
    assert re.fullmatch(r"\d+\.\d+\.\d+", body["version"])


def test_health_is_200_when_database_answers():
    response = APIClient().get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


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


def test_request_id_is_echoed_or_made():
    client = APIClient()
    assert client.get("/health", HTTP_X_REQUEST_ID="abc-123")["X-Request-ID"] == "abc-123"
    made = client.get("/health", HTTP_X_REQUEST_ID="bad id\n")["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)


def test_cors_allows_only_listed_origins(settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]
    client = APIClient()
    allowed = client.options(
        "/api/v1/memory",
        HTTP_ORIGIN="https://app.example.com",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
    )
    assert allowed["Access-Control-Allow-Origin"] == "https://app.example.com"
    retry = client.options(
        "/api/v1/memory/batch",
        HTTP_ORIGIN="https://app.example.com",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type, idempotency-key",
    )
    assert "idempotency-key" in retry["Access-Control-Allow-Headers"]
    denied = client.get("/health", HTTP_ORIGIN="https://evil.example.com")
    assert "Access-Control-Allow-Origin" not in denied


def test_openapi_is_valid_and_documents_every_endpoint():
    response = APIClient().get("/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    validate_schema(schema)
    assert schema["openapi"].startswith("3.")
    paths = schema["paths"]
    expected = {
        ("/", "get"),
        ("/health", "get"),
        ("/api/v1/memory", "post"),
        ("/api/v1/memory", "get"),
        ("/api/v1/memory/{memory_id}", "get"),
        ("/api/v1/memory/{memory_id}", "patch"),
        ("/api/v1/memory/{memory_id}", "delete"),
        ("/api/v1/memory/{memory_id}/soft", "delete"),
        ("/api/v1/memory/stats", "get"),
        ("/api/v1/memory/context", "post"),
        ("/api/v1/memory/extract", "post"),
        ("/api/v1/chat", "post"),
        ("/api/v1/gdpr/export", "get"),
        ("/api/v1/gdpr/delete", "delete"),
    }
    assert {(p, m) for p, ops in paths.items() for m in ops} >= expected
    scheme = schema["components"]["securitySchemes"]["bearerAuth"]
    assert scheme == {**scheme, "type": "http", "scheme": "bearer"}
    create = paths["/api/v1/memory"]["post"]
    assert {"200", "400", "401", "429", "503"} <= set(create["responses"])
    assert "X-RateLimit-Remaining" in create["responses"]["200"]["headers"]
    assert "Retry-After" in create["responses"]["429"]["headers"]
    assert paths["/health"]["get"].get("security") in (None, [], [{}])


def test_docs_page_uses_no_external_host():
    response = APIClient().get("/docs")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    urls = re.findall(r"""(?:src|href)=["']([^"']+)""", html)
    assert urls
    assert all(not re.match(r"^(https?:)?//", url) for url in urls), urls
    for url in urls:
        if url.startswith("/static/"):
            assert APIClient().get(url).status_code == 200, url


def run_settings(env: dict) -> subprocess.CompletedProcess:
    base = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_refuses_to_start_naming_every_missing_variable():
    result = run_settings({})
    assert result.returncode != 0
    for name in ("ALLOWED_HOSTS", "DATABASE_URL", "ENCRYPTION_KEY", "SECRET_KEY"):
        assert name in result.stderr
    assert result.stderr.count("Missing required environment variables") == 1


PRODUCTION = {
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/postgres",
    "ENCRYPTION_KEY": "Jq3nH0p7u0rJ8d3b4O5yS1kqJ1n9bQ2m7v8w6x5y4z0=",
    "SECRET_KEY": "x" * 60 + "production-secret-for-the-deploy-check",
    "ALLOWED_HOSTS": "memory.example.com",
}


def test_production_refuses_wildcard_cors():
    result = run_settings({**PRODUCTION, "CORS_ORIGINS": "*"})
    assert result.returncode != 0
    assert "CORS_ORIGINS" in result.stderr


def test_production_refuses_a_malformed_encryption_key():
    result = run_settings({**PRODUCTION, "ENCRYPTION_KEY": "not-a-key"})
    assert result.returncode != 0
    assert "ENCRYPTION_KEY" in result.stderr


def test_check_deploy_is_clean_in_production_settings():
    result = run_settings(
        {**PRODUCTION, "CORS_ORIGINS": " https://a.example.com , https://b.example.com "}
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout


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
