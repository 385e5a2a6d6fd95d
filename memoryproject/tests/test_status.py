"""The service's own endpoints and headers: status and health, the request id, and CORS
for the listed origins only."""

import re

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def test_status_names_service_and_version(client):
    body = APIClient().get("/").json()
    assert body["service"] == "ai-memory-service"
    assert re.fullmatch(r"\d+\.\d+\.\d+", body["version"])


def test_health_is_200_when_database_answers():
    response = APIClient().get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


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
