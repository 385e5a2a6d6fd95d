import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apikeys import lockout
from apikeys.authentication import find_key
from apikeys.models import ApiKey, hash_key
from apikeys.services import revoke_api_key
from memoryproject.tests.servers import ROOT

URL = "/api/v1/memory?user_id=u1"
EXPECTED = {"detail": "Authentication required"}


def _assert_auth_failure(response):
    assert response.status_code == 401
    assert response.json() == EXPECTED
    assert response["WWW-Authenticate"] == "Bearer"
    assert "X-RateLimit-Limit" not in response


@pytest.mark.django_db
@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Token aimsk_live_abc",
        "Bearer aimsk_live_doesnotexist000000000000000000000",
        "Bearer " + "x" * 5000,
        "bearer\taimsk_live_x",
    ],
)
def test_every_bad_header_gets_the_same_401(header, api_key):
    client = APIClient()
    if header is not None:
        client.credentials(HTTP_AUTHORIZATION=header)
    _assert_auth_failure(client.get(URL))


def test_valid_key_is_accepted(client):
    response = client.get(URL)
    assert response.status_code == 200
    assert response.json() == []


def test_scheme_is_case_insensitive(api_key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"bearer {api_key.plaintext}")
    assert client.get(URL).status_code == 200


def test_revoked_key_gets_the_same_401(api_key, client_for):
    client = client_for(api_key)
    assert client.get(URL).status_code == 200
    revoke_api_key(key_id=api_key.api_key.id)
    _assert_auth_failure(client.get(URL))


def test_key_in_query_string_or_body_is_ignored(api_key):
    client = APIClient()
    _assert_auth_failure(client.get(f"{URL}&api_key={api_key.plaintext}"))
    _assert_auth_failure(
        client.post(
            "/api/v1/memory",
            {"api_key": api_key.plaintext, "user_id": "u1", "content": "x", "type": "fact"},
            format="json",
        )
    )


def test_owner_id_in_body_is_ignored(client, api_key):
    response = client.post(
        "/api/v1/memory",
        {"user_id": "u1", "content": "x", "type": "fact", "owner_id": "someone_else"},
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["owner_id"] == "acme"


def test_last_used_at_is_written_at_most_once_a_minute(client, api_key, django_assert_num_queries):
    key = api_key.api_key
    assert key.last_used_at is None
    client.get(URL)
    first = ApiKey.objects.get(pk=key.pk).last_used_at
    assert first is not None
    client.get(URL)
    assert ApiKey.objects.get(pk=key.pk).last_used_at == first
    # An hour later the next request moves it again.
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now() - timedelta(hours=1))
    client.get(URL)
    assert ApiKey.objects.get(pk=key.pk).last_used_at > first


def test_bootstrap_api_key_from_environment(settings, db):
    settings.API_KEY = "aimsk_live_bootstrap_key_for_tests_0123456789"
    settings.API_KEY_OWNER_ID = "boot"
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {settings.API_KEY}")
    response = client.post(
        "/api/v1/memory", {"user_id": "u1", "content": "x", "type": "fact"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["owner_id"] == "boot"
    stored = ApiKey.objects.get(owner_id="boot")
    assert settings.API_KEY not in str(stored.__dict__)
    revoke_api_key(key_id=stored.pk)
    _assert_auth_failure(client.get(URL))


def test_bootstrap_key_stops_working_when_api_key_changes_and_is_not_shown(settings, db):
    settings.API_KEY = "aimsk_live_first_secret_0123456789abcdefXYZ"
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {settings.API_KEY}")
    assert client.get(URL).status_code == 200
    stored = ApiKey.objects.get(owner_id=settings.API_KEY_OWNER_ID)
    assert "first_secret" not in stored.prefix
    assert stored.prefix.startswith("env:")
    settings.API_KEY = "a-new-secret-value"
    _assert_auth_failure(client.get(URL))


# --- failed authentications per client address ------------------------------------------


@pytest.fixture
def lockout_limit(settings):
    settings.AUTH_FAILURES_PER_MINUTE = 3
    yield 3
    lockout._blocked.clear()


def client_at(address: str, key: str | None = None) -> APIClient:
    client = APIClient(REMOTE_ADDR=address)
    if key:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def test_failed_authentications_are_throttled_per_address(db, api_key, lockout_limit):
    attacker = "203.0.113.7"
    for guess in range(lockout_limit):
        _assert_auth_failure(client_at(attacker, f"aimsk_live_guess{guess}").get(URL))
    refused = client_at(attacker, "aimsk_live_guess").get(URL)
    assert refused.status_code == 429
    assert refused.json() == {"detail": "Too many failed authentication attempts from this address"}
    assert int(refused["Retry-After"]) >= 1
    # Refused whatever the key, so a refusal says nothing about which keys exist.
    assert client_at(attacker, api_key.plaintext).get(URL).status_code == 429
    # Other addresses are not affected.
    assert client_at("198.51.100.1", api_key.plaintext).get(URL).status_code == 200
    _assert_auth_failure(client_at("198.51.100.1", "aimsk_live_nope").get(URL))


def test_forwarded_address_counts_behind_trusted_proxies(db, settings, lockout_limit):
    settings.TRUSTED_PROXY_HOPS = 1
    for n in range(lockout_limit + 1):
        client = client_at("10.0.0.2", "aimsk_live_guess")
        response = client.get(URL, HTTP_X_FORWARDED_FOR=f"spoofed, 203.0.113.{n}")
        _assert_auth_failure(response)  # each failure came from another client


def test_failed_admin_logins_are_throttled(db, lockout_limit):
    client = APIClient(REMOTE_ADDR="203.0.113.9")
    for _ in range(lockout_limit + 1):  # the last one finds the bucket empty
        response = client.post("/admin/login/", {"username": "root", "password": "guess"})
        assert response.status_code == 200  # the form again, with its error
    response = client.post("/admin/login/", {"username": "root", "password": "guess"})
    assert response.status_code == 429
    assert response.json()["detail"].startswith("Too many failed")


def test_short_bootstrap_key_stops_start_up(tmp_path):
    env = {**os.environ, "API_KEY": "short-secret", "DEBUG": "true", "DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode != 0
    assert "API_KEY must be at least 32 random characters" in done.stderr


def test_loopback_is_never_locked_out(db, lockout_limit):
    for _ in range(lockout_limit * 3):
        _assert_auth_failure(client_at("127.0.0.1", "aimsk_live_guess").get(URL))


def test_key_lookup_returns_the_stored_key_or_none(api_key):
    found = find_key(hash_key(api_key.plaintext))
    stored = ApiKey.objects.get(pk=api_key.api_key.pk)
    assert found == stored
    assert found.owner_id == "acme"
    for field in ApiKey._meta.concrete_fields:  # the same values, of the same types
        assert getattr(found, field.attname) == getattr(stored, field.attname), field.name
        assert type(getattr(found, field.attname)) is type(getattr(stored, field.attname))
    assert find_key(hash_key("aimsk_live_unknown")) is None
