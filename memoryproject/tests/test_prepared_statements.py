"""The hot statements are prepared once per connection when PostgreSQL is reached directly
(memoryproject/prepared.py), and never behind a transaction-mode pooler or with a
connection per request. The pooler side is checked end to end in
replicas/tests/test_replicas.py (no PREPARE, no `execute _pg…` in the primary's log)."""

import pytest
from django.db import connection

from conftest import service_env
from memoryproject.tests.servers import manage

pytestmark = pytest.mark.django_db


def prepared_statements() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE NOT from_sql")
        return [row[0] for row in cursor.fetchall()]


def test_create_patch_and_the_key_look_up_are_prepared_once(client):
    body = {"user_id": "u1", "type": "fact", "content": "Likes green tea"}
    first = client.post("/api/v1/memory", body, format="json")
    assert first.status_code == 200, first.content
    after_one = prepared_statements()
    assert any(s.startswith("WITH inserted AS (INSERT INTO") for s in after_one), after_one
    assert any("key_hash" in s for s in after_one), after_one  # authentication
    for content in ("Likes black tea", "Plays chess on Sundays"):
        response = client.post("/api/v1/memory", {**body, "content": content}, format="json")
        assert response.status_code == 200
    assert sorted(prepared_statements()) == sorted(after_one)  # reused, not prepared again
    # A batch's statement is not prepared: its arrays cost more to bind on the server.
    batch = client.post("/api/v1/memory/batch", {"memories": [body, body]}, format="json")
    assert batch.status_code == 200, batch.content
    assert sorted(prepared_statements()) == sorted(after_one)
    memory_id = first.json()["id"]
    changed = client.patch(f"/api/v1/memory/{memory_id}", {"importance": 5}, format="json")
    assert changed.status_code == 200, changed.content
    assert any(s.startswith("WITH updated AS (UPDATE") for s in prepared_statements())
    history = client.get(f"/api/v1/memory/{memory_id}/history").json()
    assert [v["version"] for v in history] == [1, 2]


def test_the_created_memory_reads_back_through_prepared_parameters(client):
    """Parameters bound on the server (types from psycopg, not from literal SQL) still
    store every field as sent."""
    body = {
        "user_id": "u2", "type": "preference", "content": "Thème : sombre 🌙", "key": "theme",
        "value": {"mode": "dark", "n": [1, 2.5, None]}, "importance": 2, "confidence": 0.25,
        "ttl_seconds": 3600, "metadata": {"source": "test"},
    }  # fmt: skip
    created = client.post("/api/v1/memory", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert created.status_code == 200, created.content
    read = client.get(f"/api/v1/memory/{created.json()['id']}").json()
    for name in ("content", "key", "value", "importance", "confidence", "metadata"):
        assert read[name] == body[name], name
    replayed = client.post("/api/v1/memory", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert replayed.json() == created.json()
    assert replayed.headers["Idempotent-Replayed"] == "true"


def _prepared_setting(**variables) -> str:
    env = service_env("postgres://postgres@127.0.0.1:5432/unused", **variables)
    code = (
        "from django.conf import settings; d = settings.DATABASES['default']; "
        "print(d.get('PREPARED_STATEMENTS', False), d.get('OPTIONS', {}).get('prepare_threshold'))"
    )
    return manage(env, "shell", "-c", code, timeout=60).strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({}, "True 5"),
        ({"DATABASE_POOLER": "transaction"}, "False None"),
        ({"CONN_MAX_AGE": "0"}, "False None"),
    ],
)
def test_prepared_statements_only_on_a_kept_direct_connection(variables, expected):
    assert _prepared_setting(**variables) == expected
