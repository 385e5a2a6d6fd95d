"""GET /memory/{id}/history: one encrypted snapshot per version, written with each change."""

import json
from types import SimpleNamespace

import pytest
from django.db import connection

from memories import services
from memories.models import MAX_VERSIONS_PER_MEMORY, Memory, MemoryVersion
from memories.serializers import MemoryVersionSerializer, version_payload
from memories.tests.factories import make_memory

pytestmark = pytest.mark.django_db

URL = "/api/v1/memory"
FIELDS = [
    "version", "event", "recorded_at", "type", "content", "key", "value", "importance",
    "confidence", "metadata", "expires_at",
]  # fmt: skip


def history(client, memory_id) -> list[dict]:
    response = client.get(f"{URL}/{memory_id}/history")
    assert response.status_code == 200, response.json()
    return response.json()


def current(client, memory: dict) -> dict:
    """What the last history entry must show, from the memory as the API returns it."""
    names = ("type", "content", "key", "value", "importance", "confidence", "metadata")
    return {**{name: memory[name] for name in names}, "expires_at": memory["expires_at"]}


def test_every_kind_of_change_adds_one_version(client, fake_openai):
    created = client.post(
        URL,
        {"user_id": "u1", "type": "preference", "content": "Likes tea", "key": "drink",
         "value": "tea", "importance": 2, "metadata": {"s": 1}},
        format="json",
    ).json()  # fmt: skip
    memory_id = created["id"]
    [first] = history(client, memory_id)
    assert list(first) == FIELDS
    assert first == {
        "version": 1, "event": "created", "recorded_at": created["created_at"],
        **current(client, created),
    }  # fmt: skip

    patched = client.patch(
        f"{URL}/{memory_id}", {"content": "Likes green tea", "ttl_seconds": 3600}, format="json"
    ).json()
    upserted = client.post(
        f"{URL}/upsert",
        {"user_id": "u1", "type": "preference", "content": "Likes coffee", "key": "drink",
         "value": "coffee"},
        format="json",
    ).json()["memory"]  # fmt: skip
    client.post(
        f"{URL}/upsert",
        {"user_id": "u1", "type": "preference", "content": "Likes coffee", "key": "drink"},
        format="json",
    )  # unchanged: no version
    fake_openai.script(
        {"content": json.dumps({"memories": [
            {"type": "preference", "content": "Drinks espresso", "key": "drink",
             "value": "espresso"}
        ]})}
    )  # fmt: skip
    extracted = client.post(
        f"{URL}/extract", {"user_id": "u1", "text": "I drink espresso now", "save": True},
        format="json",
    ).json()  # fmt: skip
    assert extracted["candidates"][0]["status"] == "updated"
    extracted_state = client.get(f"{URL}/{memory_id}").json()
    soft = client.delete(f"{URL}/{memory_id}/soft").json()

    versions = history(client, memory_id)

    assert [(v["version"], v["event"]) for v in versions] == [
        (1, "created"), (2, "updated"), (3, "updated"), (4, "updated"), (5, "soft_deleted"),
    ]  # fmt: skip
    assert versions[1] == {
        "version": 2, "event": "updated", "recorded_at": patched["updated_at"],
        **current(client, patched),
    }  # fmt: skip
    assert versions[1]["expires_at"] is not None
    assert versions[2]["recorded_at"] == upserted["updated_at"]
    assert {k: versions[2][k] for k in ("content", "value")} == {
        "content": "Likes coffee",
        "value": "coffee",
    }
    assert versions[3] == {**versions[3], **current(client, extracted_state)}
    assert versions[3]["metadata"] == {"s": 1, "source": "extraction"}
    assert versions[4] == {
        "version": 5, "event": "soft_deleted", "recorded_at": soft["updated_at"],
        **current(client, soft),
    }  # fmt: skip


def test_hard_delete_removes_the_history(client):
    memory = make_memory("acme")
    client.patch(f"{URL}/{memory.pk}", {"importance": 5}, format="json")
    assert MemoryVersion.objects.filter(memory_id=memory.pk).count() == 2

    client.delete(f"{URL}/{memory.pk}")

    response = client.get(f"{URL}/{memory.pk}/history")
    assert (response.status_code, response.json()) == (404, {"detail": "Not found."})
    assert not MemoryVersion.objects.filter(memory_id=memory.pk).exists()


def test_unknown_or_malformed_id_is_a_json_404(client):
    for memory_id in ("0d8e3a57-1f0e-4c55-a8a4-6e1dd2b8a111", "not-a-uuid"):
        response = client.get(f"{URL}/{memory_id}/history")
        assert (response.status_code, response.json()) == (404, {"detail": "Not found."})


def test_history_is_encrypted_at_rest(client):
    marker = "zebra-marker-8c1f"
    memory = make_memory("acme", content=f"Has a {marker}", value=marker, metadata={"m": marker})
    client.patch(f"{URL}/{memory.pk}", {"content": f"Had a {marker}"}, format="json")
    table = connection.ops.quote_name(MemoryVersion._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table}")  # noqa: S608 - table name from the model
        rows = cursor.fetchall()
    assert len(rows) == 2
    assert marker not in repr(rows)
    assert marker in history(client, memory.pk)[1]["content"]


def test_history_keeps_the_newest_versions_only():
    memory = make_memory("acme", content="counter 0")
    for n in range(1, MAX_VERSIONS_PER_MEMORY + 2):
        memory = services.update_memory(memory=memory, data={"content": f"counter {n}"})

    versions = list(MemoryVersion.objects.filter(memory=memory).order_by("version"))

    assert len(versions) == MAX_VERSIONS_PER_MEMORY
    assert versions[0].version == 3
    assert versions[-1].version == MAX_VERSIONS_PER_MEMORY + 2
    assert versions[-1].snapshot["content"] == f"counter {MAX_VERSIONS_PER_MEMORY + 1}"


@pytest.mark.parametrize(
    "fields",
    [{}, {"value": {"a": [1, None]}, "ttl_seconds": 60, "importance": 5, "key": "k"}],
)
def test_version_payload_equals_the_documented_serializer(fields):
    memory = make_memory("acme", **fields)
    services.soft_delete_memory(memory=memory)
    for version in MemoryVersion.objects.filter(memory=memory):
        snapshot = {**version.snapshot, "expires_at": Memory.objects.get().expires_at}
        source = SimpleNamespace(
            version=version.version, event=version.event, recorded_at=version.recorded_at,
            **snapshot,
        )  # fmt: skip
        assert version_payload(version) == dict(MemoryVersionSerializer(source).data)


def test_memories_from_before_history_get_their_version_1(client):
    """The migration that backfills history, run again over a memory without versions."""
    import importlib

    from django.apps import apps

    migration = importlib.import_module("memories.migrations.0006_history_for_earlier_memories")
    old = make_memory("acme", user_id="u1", content="written before v1.1", importance=4)
    kept = make_memory("acme", user_id="u1", content="already has history")
    MemoryVersion.objects.filter(memory=old).delete()

    migration.backfill(apps, None)

    (version,) = client.get(f"/api/v1/memory/{old.id}/history").json()
    assert (version["version"], version["event"]) == (1, "created")
    assert (version["content"], version["importance"]) == ("written before v1.1", 4)
    assert MemoryVersion.objects.filter(memory=kept).count() == 1  # untouched
    response = client.patch(f"/api/v1/memory/{old.id}", {"importance": 5}, format="json")
    assert response.status_code == 200
    history = client.get(f"/api/v1/memory/{old.id}/history").json()
    assert [(v["version"], v["event"]) for v in history] == [(1, "created"), (2, "updated")]
