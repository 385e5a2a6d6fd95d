import json
from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection

from memories.models import Memory
from memories.tests.factories import make_memory

pytestmark = pytest.mark.django_db

MARKER = "zebracorn-4471"


def all_rows_text() -> str:
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - table names from introspection
            chunks.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(chunks)


def raw_tokens(memory_id) -> tuple:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT content, value, metadata FROM memories_memory WHERE id = %s", [memory_id]
        )
        return cursor.fetchone()


def test_no_plaintext_anywhere_after_create(client):
    response = client.post(
        "/api/v1/memory",
        {
            "user_id": "u1",
            "type": "fact",
            "content": f"The secret word is {MARKER}",
            "value": {"nested": MARKER},
            "metadata": {"note": MARKER},
        },
        format="json",
    )
    assert response.status_code == 200
    text = all_rows_text()
    assert MARKER not in text
    assert MARKER.split("-")[0] not in text  # nor the stemmed word
    content, value, metadata = raw_tokens(response.json()["id"])
    assert content.startswith("gAAAA")
    assert value.startswith("gAAAA")
    assert metadata.startswith("gAAAA")
    assert client.get(f"/api/v1/memory/{response.json()['id']}").json()["content"].endswith(MARKER)


def test_rotation_with_two_keys_then_old_key_removed(settings, client):
    old_key = settings.ENCRYPTION_KEYS[0]
    memory = make_memory("acme", user_id="u1", content=f"rotating {MARKER}", value=[1, MARKER])
    client.patch(f"/api/v1/memory/{memory.id}", {"importance": 2}, format="json")
    retry = {"user_id": "u1", "type": "fact", "content": f"kept {MARKER}"}
    kept = client.post("/api/v1/memory", retry, format="json", HTTP_IDEMPOTENCY_KEY="r1")
    before = raw_tokens(memory.id)
    new_key = Fernet.generate_key().decode()
    settings.ENCRYPTION_KEYS = [new_key, old_key]

    out = StringIO()
    call_command("rotate_encryption_key", stdout=out, stderr=StringIO())

    assert "Re-encrypted and reindexed 2 memories" in out.getvalue()
    assert "Re-encrypted 1 kept Idempotency-Key responses" in out.getvalue()
    replay = client.post("/api/v1/memory", retry, format="json", HTTP_IDEMPOTENCY_KEY="r1")
    assert replay["Idempotent-Replayed"] == "true"  # hashed under the old key, still matches
    assert replay.json() == kept.json()
    after = raw_tokens(memory.id)
    assert all(a != b for a, b in zip(after, before, strict=True))
    assert MARKER not in all_rows_text()
    settings.ENCRYPTION_KEYS = [new_key]  # old key gone: everything still reads
    fetched = client.get(f"/api/v1/memory/{memory.id}").json()
    assert fetched["content"] == f"rotating {MARKER}"
    history = client.get(f"/api/v1/memory/{memory.id}/history").json()
    assert [v["content"] for v in history] == [f"rotating {MARKER}"] * 2
    assert client.get(f"/api/v1/memory/{kept.json()['id']}").json() == kept.json()
    assert fetched["value"] == [1, MARKER]
    # and the index was rebuilt under the new key: the words still match
    context = client.post(
        "/api/v1/memory/context", {"user_id": "u1", "query": "rotating"}, format="json"
    ).json()
    assert context["memories"][0]["id"] == str(memory.id)
    assert context["memories"][0]["relevance_score"] > 0.8


def test_undecryptable_row_is_a_clear_500_without_content(settings, client, caplog):
    memory = make_memory("acme", user_id="u1", content=f"lost {MARKER}")
    settings.ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    response = client.get(f"/api/v1/memory/{memory.id}")
    assert response.status_code == 500
    assert "ENCRYPTION_KEY" in response.json()["detail"]
    assert MARKER not in json.dumps(response.json())
    assert MARKER not in caplog.text
    assert any("ENCRYPTION_KEY" in r.getMessage() for r in caplog.records)
    assert Memory.objects.filter(pk=memory.pk).exists()
