"""Memory Contract v1 through the HTTP API: the fields, their defaults, the seed's examples,
and each operation on one memory (create, retrieve, change, soft and hard delete)."""

import time
import uuid
from datetime import datetime

import pytest

from apikeys.models import AuditEvent
from memories.models import Memory, MemoryTerm
from memories.serializers import INGESTION_MODE_ERROR
from memories.tests.factories import make_memory

URL = "/api/v1/memory"
CONTRACT_FIELDS = {
    "id",
    "owner_id",
    "user_id",
    "type",
    "content",
    "confidence",
    "created_at",
    "updated_at",
    "is_deleted",
    "key",
    "value",
    "importance",
    "metadata",
    "ttl_seconds",
    "expires_at",
    "ingestion_mode",
}
QUICK_START = {
    "user_id": "user_123",
    "content": "User prefers dark mode and works in fintech",
    "type": "preference",
    "key": "ui_theme",
    "value": "dark",
    "importance": 4,
}


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def create(client, **body):
    return client.post(URL, {"user_id": "user_1", "type": "fact", **body}, format="json")


# --- create ---------------------------------------------------------------------------


def test_create_returns_every_contract_field_with_defaults(client):
    response = create(client, content="Test")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == CONTRACT_FIELDS
    assert uuid.UUID(body["id"])
    assert body["owner_id"] == "acme"
    assert body["user_id"] == "user_1"
    assert body["type"] == "fact"
    assert body["content"] == "Test"
    assert body["confidence"] == 1.0
    assert body["metadata"] == {}
    assert body["ingestion_mode"] == "explicit"
    assert body["is_deleted"] is False
    assert body["key"] is None
    assert body["value"] is None
    assert body["importance"] is None
    assert body["ttl_seconds"] is None
    assert body["expires_at"] is None
    assert body["created_at"] == body["updated_at"]
    assert parse_time(body["created_at"]).utcoffset() is not None
    row = Memory.objects.get(pk=body["id"])
    assert (row.owner_id, row.user_id, row.content) == ("acme", "user_1", "Test")
    assert row.content_chars == 4


def test_quick_start_example_is_stored_as_sent(client):
    response = client.post(URL, QUICK_START, format="json")

    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in QUICK_START} == QUICK_START
    assert body["confidence"] == 1.0
    assert body["metadata"] == {}
    assert body["expires_at"] is None
    assert body["is_deleted"] is False
    assert body["ingestion_mode"] == "explicit"
    listed = client.get(URL, {"user_id": "user_123", "limit": 5}).json()
    assert [m["id"] for m in listed] == [body["id"]]


def test_content_is_encrypted_at_rest(client):
    from django.db import connection

    response = create(client, content="a secret word", value="hidden", metadata={"k": "v"})
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT envelope FROM memories_memory WHERE id = %s", [response.json()["id"]]
        )
        (stored,) = cursor.fetchone()
    assert isinstance(stored, str)
    assert "secret" not in stored
    assert "hidden" not in stored
    assert '"k"' not in stored


def test_owner_id_in_body_is_ignored(client):
    response = create(client, content="x", owner_id="globex", id=str(uuid.uuid4()))

    assert response.status_code == 200
    assert response.json()["owner_id"] == "acme"
    assert Memory.objects.get(pk=response.json()["id"]).owner_id == "acme"
    assert not Memory.objects.filter(owner_id="globex").exists()


def test_memory_type_alias_is_accepted(client):
    response = client.post(
        URL, {"user_id": "user_1", "content": "likes tea", "memory_type": "event"}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["type"] == "event"
    assert "memory_type" not in response.json()
    assert Memory.objects.get(pk=response.json()["id"]).type == "event"


def test_memory_type_equal_to_type_is_accepted(client):
    response = create(client, content="x", type="system", memory_type="system")
    assert response.status_code == 200
    assert response.json()["type"] == "system"


def test_missing_type_is_400(client):
    response = client.post(URL, {"user_id": "user_1", "content": "x"}, format="json")

    assert response.status_code == 400
    assert response.json()["errors"]["type"] == ["This field is required."]
    assert not Memory.objects.exists()


def test_every_memory_type_is_accepted(client):
    for memory_type in ("fact", "preference", "event", "system"):
        response = create(client, content="x", type=memory_type)
        assert response.status_code == 200, response.json()
        assert response.json()["type"] == memory_type
    assert Memory.objects.count() == 4


def test_unknown_type_is_400(client):
    response = create(client, content="x", type="opinion")
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"type"}
    assert not Memory.objects.exists()


# --- retrieve -------------------------------------------------------------------------


def test_retrieve_returns_what_create_returned(client):
    created = create(
        client,
        content="likes tea",
        key="drink",
        value={"kind": "green", "cups": 2},
        importance=3,
        confidence=0.25,
        metadata={"source": "chat", "tags": ["a", "b"]},
        ttl_seconds=3600,
    ).json()

    response = client.get(f"{URL}/{created['id']}")

    assert response.status_code == 200
    assert response.json() == created


def test_retrieve_missing_and_malformed_ids_are_404(client):
    for memory_id in (uuid.uuid4(), "not-a-uuid", "1"):
        response = client.get(f"{URL}/{memory_id}")
        assert response.status_code == 404
        assert response.json() == {"detail": "Not found."}


# --- change ---------------------------------------------------------------------------


def test_patch_moves_updated_at_and_keeps_created_at(client):
    created = create(client, content="likes tea", importance=2).json()
    time.sleep(0.01)

    response = client.patch(
        f"{URL}/{created['id']}", {"content": "likes coffee", "importance": 5}, format="json"
    )

    assert response.status_code == 200
    body = response.json()
    assert body["content"] == "likes coffee"
    assert body["importance"] == 5
    assert body["created_at"] == created["created_at"]
    assert parse_time(body["updated_at"]) > parse_time(created["updated_at"])
    assert client.get(f"{URL}/{created['id']}").json() == body
    row = Memory.objects.get(pk=created["id"])
    assert (row.content, row.importance, row.content_chars) == ("likes coffee", 5, 12)


def test_patch_revalidates_and_leaves_the_row_unchanged(client):
    created = create(client, content="likes tea", importance=2).json()
    for bad in (
        {"importance": 6},
        {"confidence": 1.5},
        {"content": ""},
        {"content": "   "},
        {"type": "opinion"},
        {"metadata": [1]},
        {"ingestion_mode": "automatic"},
        {"content": None},
    ):
        response = client.patch(f"{URL}/{created['id']}", bad, format="json")
        assert response.status_code == 400, bad
        assert response.json()["errors"]
    assert client.get(f"{URL}/{created['id']}").json() == created


def test_patch_cannot_change_user_or_owner(client):
    created = create(client, content="likes tea").json()

    response = client.patch(
        f"{URL}/{created['id']}",
        {"user_id": "someone_else", "owner_id": "globex", "content": "likes coffee"},
        format="json",
    )

    assert response.status_code == 200
    row = Memory.objects.get(pk=created["id"])
    assert (row.owner_id, row.user_id, row.content) == ("acme", "user_1", "likes coffee")


def test_patch_of_missing_memory_is_404(client):
    response = client.patch(f"{URL}/{uuid.uuid4()}", {"content": "x"}, format="json")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


# --- hard delete ----------------------------------------------------------------------


def test_hard_delete_removes_the_row_and_audits_without_content(client, api_key):
    created = create(client, content="a very private sentence", key="k", value="v").json()
    assert MemoryTerm.objects.filter(memory_id=created["id"]).exists()

    response = client.delete(f"{URL}/{created['id']}")

    assert response.status_code == 200
    assert response.json() == {"id": created["id"], "deleted": True}
    assert not Memory.objects.filter(pk=created["id"]).exists()
    assert not MemoryTerm.objects.filter(memory_id=created["id"]).exists()
    event = AuditEvent.objects.get(event="memory_hard_deleted")
    assert event.owner_id == "acme"
    assert event.target == created["id"]
    assert event.actor == str(api_key.api_key.pk)
    assert "private" not in str(event.details)
    assert client.get(f"{URL}/{created['id']}").status_code == 404
    assert client.delete(f"{URL}/{created['id']}").status_code == 404
    assert AuditEvent.objects.filter(event="memory_hard_deleted").count() == 1


def test_hard_delete_works_on_soft_deleted_memory(client):
    created = create(client, content="x").json()
    client.delete(f"{URL}/{created['id']}/soft")

    response = client.delete(f"{URL}/{created['id']}")

    assert response.status_code == 200
    assert not Memory.objects.filter(pk=created["id"]).exists()


# --- soft delete ----------------------------------------------------------------------


def test_soft_delete_hides_the_memory_and_keeps_the_row(client):
    created = create(client, content="likes tea", key="drink").json()
    other = create(client, content="likes coffee").json()
    time.sleep(0.01)

    response = client.delete(f"{URL}/{created['id']}/soft?user_id=user_1")

    assert response.status_code == 200
    body = response.json()
    assert body["is_deleted"] is True
    assert body["id"] == created["id"]
    assert body["created_at"] == created["created_at"]
    assert parse_time(body["updated_at"]) > parse_time(created["updated_at"])
    row = Memory.objects.get(pk=created["id"])
    assert row.is_deleted is True
    assert row.content == "likes tea"
    assert not MemoryTerm.objects.filter(memory_id=created["id"]).exists()

    assert client.get(f"{URL}/{created['id']}").json() == {"detail": "Not found."}
    assert client.get(f"{URL}/{created['id']}").status_code == 404
    assert [m["id"] for m in client.get(URL, {"user_id": "user_1"}).json()] == [other["id"]]
    assert client.get(URL, {"user_id": "user_1", "key": "drink"}).json() == []
    stats = client.get(f"{URL}/stats", {"user_id": "user_1"}).json()
    assert (stats["total"], stats["deleted"], stats["expired"]) == (1, 1, 0)
    # Final in v1: a second soft delete and a PATCH both see nothing.
    assert client.delete(f"{URL}/{created['id']}/soft").status_code == 404
    assert client.patch(f"{URL}/{created['id']}", {"content": "y"}, format="json").status_code == (
        404
    )
    assert Memory.objects.get(pk=created["id"]).content == "likes tea"


def test_soft_delete_without_user_id_works(client):
    created = create(client, content="x").json()
    response = client.delete(f"{URL}/{created['id']}/soft")
    assert response.status_code == 200
    assert Memory.objects.get(pk=created["id"]).is_deleted is True


def test_soft_delete_with_another_user_id_is_404_and_changes_nothing(client):
    created = create(client, content="likes tea").json()

    response = client.delete(f"{URL}/{created['id']}/soft?user_id=user_2")

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}
    row = Memory.objects.get(pk=created["id"])
    assert row.is_deleted is False
    assert row.updated_at.isoformat().replace("+00:00", "Z") == created["updated_at"]
    assert client.get(f"{URL}/{created['id']}").status_code == 200


# --- rules mode -----------------------------------------------------------------------


def test_rules_mode_sets_key_and_value(client):
    response = create(
        client, content="preference:theme=dark", type="preference", ingestion_mode="rules"
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["key"], body["value"], body["ingestion_mode"]) == ("theme", "dark", "rules")
    assert body["content"] == "preference:theme=dark"
    row = Memory.objects.get(pk=body["id"])
    assert (row.key, row.value) == ("theme", "dark")


def test_rules_mode_parses_a_number_value(client):
    response = create(client, content="fact:age=42", type="fact", ingestion_mode="rules")

    assert response.status_code == 200
    value = response.json()["value"]
    assert value == 42
    assert type(value) is int
    assert type(Memory.objects.get(pk=response.json()["id"]).value) is int


def test_rules_mode_stores_other_content_as_written(client):
    response = create(client, content="Test", type="fact", ingestion_mode="rules")

    assert response.status_code == 200
    body = response.json()
    assert (body["content"], body["key"], body["value"]) == ("Test", None, None)
    assert body["ingestion_mode"] == "rules"


def test_rule_in_explicit_mode_derives_nothing(client):
    response = create(client, content="fact:age=42", type="fact")

    assert response.status_code == 200
    assert (response.json()["key"], response.json()["value"]) == (None, None)


def test_rules_mode_type_mismatch_names_both_types(client):
    response = create(client, content="preference:theme=dark", type="fact", ingestion_mode="rules")

    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "preference" in detail
    assert "fact" in detail
    assert "content" in response.json()["errors"]
    assert not Memory.objects.exists()


def test_rules_mode_conflicting_explicit_key_is_400(client):
    response = create(
        client,
        content="preference:theme=dark",
        type="preference",
        key="colour",
        ingestion_mode="rules",
    )
    assert response.status_code == 400
    assert "key" in response.json()["errors"]
    assert not Memory.objects.exists()


def test_patch_content_in_rules_mode_rederives_key_and_value(client):
    created = create(
        client, content="preference:theme=dark", type="preference", ingestion_mode="rules"
    ).json()

    response = client.patch(
        f"{URL}/{created['id']}", {"content": "preference:theme=light"}, format="json"
    )

    assert response.status_code == 200
    assert (response.json()["key"], response.json()["value"]) == ("theme", "light")


@pytest.mark.parametrize(
    ("change", "field"),
    [({"type": "event"}, "content"), ({"key": "colour"}, "key"), ({"value": "light"}, "value")],
)
def test_patch_in_rules_mode_reapplies_the_rule(client, change, field):
    created = create(
        client, content="preference:theme=dark", type="preference", ingestion_mode="rules"
    ).json()

    response = client.patch(f"{URL}/{created['id']}", change, format="json")

    assert response.status_code == 400
    assert field in response.json()["errors"]
    stored = client.get(f"{URL}/{created['id']}").json()
    assert (stored["type"], stored["key"], stored["value"]) == ("preference", "theme", "dark")


def test_patch_type_and_content_together_in_rules_mode(client):
    created = create(
        client, content="preference:theme=dark", type="preference", ingestion_mode="rules"
    ).json()
    change = {"type": "fact", "content": "fact:city=Porto"}
    response = client.patch(f"{URL}/{created['id']}", change, format="json")
    assert response.status_code == 200
    assert (response.json()["key"], response.json()["value"]) == ("city", "Porto")


def test_invalid_ingestion_mode_is_400_with_the_seed_message(client):
    response = create(client, content="Test", ingestion_mode="automatic")

    assert response.status_code == 400
    assert response.json()["detail"] == "Invalid ingestion_mode. Must be one of: explicit, rules"
    assert response.json()["errors"] == {"ingestion_mode": [INGESTION_MODE_ERROR]}
    assert not Memory.objects.exists()


def test_factory_memories_read_back_through_the_api(client):
    memory = make_memory("acme", content="made by the factory", importance=2)
    body = client.get(f"{URL}/{memory.id}").json()
    assert (body["content"], body["importance"], body["owner_id"]) == (
        "made by the factory",
        2,
        "acme",
    )
