import json
import threading
import time
from datetime import timedelta

import pytest
from django.apps import apps
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apikeys.models import AuditEvent, hash_identifier
from gdpr.services import erase_user
from memories import services
from memories.models import IdempotentRequest, Memory, MemoryEmbedding, MemoryTerm
from memories.services import soft_delete_memory
from memories.tests.factories import make_memory, run_concurrently

pytestmark = pytest.mark.django_db


def export(client, user_id="u1"):
    response = client.get("/api/v1/gdpr/export", {"user_id": user_id})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    return json.loads(b"".join(response.streaming_content))


@pytest.fixture
def user_data():
    """One user in every state, plus neighbours that must never be touched."""
    past = timezone.now() - timedelta(days=3)
    live = make_memory(
        "acme",
        user_id="u1",
        type="preference",
        content="Prefers tea over coffee",
        key="drink",
        value={"kind": "tea", "sugar": False},
        importance=4,
        confidence=0.8,
        metadata={"source": "settings"},
    )
    deleted = make_memory("acme", user_id="u1", content="Old address in Porto")
    soft_delete_memory(memory=deleted)
    expired = make_memory("acme", user_id="u1", content="Session note", ttl_seconds=60, now=past)
    neighbour = make_memory("acme", user_id="u2", content="Prefers tea too")
    foreign = make_memory("globex", user_id="u1", content="Prefers tea, other owner")
    return {"live": live, "deleted": deleted, "expired": expired, "keep": [neighbour, foreign]}


def test_export_holds_every_state_and_field_decrypted(client, user_data):
    body = export(client)
    assert body["owner_id"] == "acme"
    assert body["user_id"] == "u1"
    assert body["counts"] == {
        "memories": 3,
        "live": 1,
        "deleted": 1,
        "expired": 1,
        "memory_embeddings": 0,
        "memory_versions": 4,  # three creations and the soft delete
        "idempotent_responses": 0,
    }
    by_id = {m["id"]: m for m in body["memories"]}
    assert set(by_id) == {str(user_data[k].id) for k in ("live", "deleted", "expired")}
    live = by_id[str(user_data["live"].id)]
    assert live["content"] == "Prefers tea over coffee"
    assert live["value"] == {"kind": "tea", "sugar": False}
    assert live["metadata"] == {"source": "settings"}
    assert (live["key"], live["importance"], live["confidence"]) == ("drink", 4, 0.8)
    assert live["state"] == "live"
    assert by_id[str(user_data["deleted"].id)]["state"] == "deleted"
    assert by_id[str(user_data["expired"].id)]["state"] == "expired"
    assert by_id[str(user_data["expired"].id)]["ttl_seconds"] == 60
    expected_fields = {
        "id", "owner_id", "user_id", "type", "content", "confidence", "key", "value",
        "importance", "metadata", "ttl_seconds", "expires_at", "ingestion_mode",
        "is_deleted", "created_at", "updated_at", "state", "history",
    }  # fmt: skip
    assert all(set(m) == expected_fields for m in body["memories"])
    assert "other owner" not in json.dumps(body)
    assert [v["event"] for v in by_id[str(user_data["deleted"].id)]["history"]] == [
        "created",
        "soft_deleted",
    ]
    [created] = live["history"]
    assert (created["version"], created["content"], created["value"]) == (
        1,
        "Prefers tea over coffee",
        {"kind": "tea", "sugar": False},
    )


def test_export_of_unknown_user_is_empty_not_404(client, user_data):
    body = export(client, "nobody")
    assert body["memories"] == []
    assert body["counts"]["memories"] == 0


def user_scoped_models():
    return [
        m
        for m in apps.get_models()
        if {"owner_id", "user_id"} <= {f.name for f in m._meta.get_fields()}
    ]


def test_erasure_removes_every_user_row_and_nothing_else(client, user_data):
    # Discovered, not listed: a new user-scoped table without erasure support fails here.
    models = user_scoped_models()
    assert {m.__name__ for m in models} >= {
        "Memory", "MemoryTerm", "MemoryEmbedding", "MemoryVersion", "IdempotentRequestUser",
    }  # fmt: skip
    client.post(
        "/api/v1/memory",
        {"user_id": "u1", "type": "fact", "content": "kept for retries"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="retry-1",
    )
    live = user_data["live"]
    MemoryEmbedding.objects.create(
        memory=live, owner_id="acme", user_id="u1", model="m", vector=[1]
    )
    # Every discovered table holds a row about u1 before, and none after.
    assert all(model.objects.filter(owner_id="acme", user_id="u1").exists() for model in models)

    response = client.delete("/api/v1/gdpr/delete?user_id=u1")

    assert response.status_code == 200
    body = response.json()
    assert body["deleted"]["memories"] == 4
    assert body["deleted"]["idempotent_responses"] == 1
    assert body["deleted"]["memory_versions"] == 5
    assert body["deleted"]["memory_terms"] > 0
    assert body["deleted"]["memory_embeddings"] == 1
    assert body["total"] == sum(body["deleted"].values())
    for model in models:
        assert not model.objects.filter(owner_id="acme", user_id="u1").exists(), model
    for memory in user_data["keep"]:
        assert Memory.objects.filter(pk=memory.pk).exists()
        assert MemoryTerm.objects.filter(memory_id=memory.pk).exists()


def test_erased_identity_is_nowhere_in_the_database(client, user_data):
    marker_user = "erase-me-7f3a"
    make_memory("acme", user_id=marker_user, content="marker content")
    client.get("/api/v1/gdpr/export", {"user_id": marker_user})
    client.delete(f"/api/v1/gdpr/delete?user_id={marker_user}")
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - table names from introspection
            for row in cursor.fetchall():
                assert marker_user not in repr(row), table


def test_erasure_deletes_kept_responses_after_the_memories(client, user_data):
    """A create with an Idempotency-Key commits its memory and its kept response in one
    statement, so it can commit between two of the erasure's statements. The kept
    responses (copies of memory data) go last: such a create's memory is then erased
    with its copy, and no replay can hand back erased data."""
    client.post(
        "/api/v1/memory",
        {"user_id": "u1", "type": "fact", "content": "kept for retries"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="retry-1",
    )
    kept_table = IdempotentRequest._meta.db_table
    with CaptureQueriesContext(connection) as queries:
        erase_user(owner_id="acme", user_id="u1", actor="test")

    deletes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("DELETE")]
    memory_deletes = [i for i, sql in enumerate(deletes) if Memory._meta.db_table + '"' in sql]
    kept_deletes = [i for i, sql in enumerate(deletes) if kept_table + '"' in sql]
    assert memory_deletes
    assert kept_deletes
    assert min(kept_deletes) > max(memory_deletes)
    assert not IdempotentRequest.objects.filter(owner_id="acme").exists()


def test_erasure_is_idempotent(client, user_data):
    client.delete("/api/v1/gdpr/delete?user_id=u1")
    second = client.delete("/api/v1/gdpr/delete?user_id=u1").json()
    assert second["total"] == 0
    assert set(second["deleted"].values()) == {0}


def test_other_owner_cannot_erase_or_export(client_for, other_key, user_data):
    other = client_for(other_key)
    body = json.loads(b"".join(other.get("/api/v1/gdpr/export?user_id=u1").streaming_content))
    assert [m["content"] for m in body["memories"]] == ["Prefers tea, other owner"]
    other.delete("/api/v1/gdpr/delete?user_id=u1")
    assert Memory.objects.filter(owner_id="acme", user_id="u1").count() == 3


def test_audit_events_for_export_and_erasure_hold_no_content_or_clear_user_id(
    client, api_key, user_data
):
    export(client)
    client.delete("/api/v1/gdpr/delete?user_id=u1")
    events = list(AuditEvent.objects.filter(event__in=["gdpr_export", "gdpr_erase"]))
    assert [e.event for e in sorted(events, key=lambda e: e.id)] == ["gdpr_export", "gdpr_erase"]
    for event in events:
        assert event.owner_id == "acme"
        assert event.actor == str(api_key.api_key.id)
        assert event.target == hash_identifier("u1")
        dumped = json.dumps(event.details)
        assert "tea" not in dumped
        assert "u1" not in dumped
    erase = next(e for e in events if e.event == "gdpr_erase")
    assert erase.details["counts"]["memories"] == 3


@pytest.mark.parametrize(
    "query",
    ["", "?user_id=", "?user_id=" + "x" * 256, "?user_id=a%00b"],
)
@pytest.mark.parametrize("method", ["get", "delete"])
def test_bad_user_id_is_400_and_changes_nothing(client, user_data, query, method):
    path = "/api/v1/gdpr/export" if method == "get" else "/api/v1/gdpr/delete"
    response = getattr(client, method)(path + query)
    assert response.status_code == 400
    assert "user_id" in response.json()["errors"]
    assert Memory.objects.count() == 5
    assert not AuditEvent.objects.filter(event__startswith="gdpr").exists()


def test_export_streams_in_batches(client):
    from gdpr.services import EXPORT_CHUNK

    for i in range(EXPORT_CHUNK * 2 + 10):
        make_memory("acme", user_id="big", content=f"memory {i}")
    response = client.get("/api/v1/gdpr/export", {"user_id": "big"})
    assert response.streaming
    chunks = list(response.streaming_content)
    assert len(chunks) > EXPORT_CHUNK * 2  # one piece per record, not one body
    body = json.loads(b"".join(chunks))
    assert body["counts"]["memories"] == len(body["memories"]) == EXPORT_CHUNK * 2 + 10


def test_head_of_an_export_is_405_and_exports_nothing(client):
    response = client.head("/api/v1/gdpr/export?user_id=u1")
    assert response.status_code == 405
    assert not AuditEvent.objects.filter(event=AuditEvent.Event.GDPR_EXPORT).exists()


def waiting_for_locks() -> int:
    """Connections to this database waiting for a lock, as of now (a transaction sees one
    snapshot of pg_stat_activity unless it clears it)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        (count,) = cursor.fetchone()
    return count


def wait_until(condition, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="reads pg_stat_activity")
@pytest.mark.django_db(transaction=True)
def test_an_update_during_an_erasure_waits_and_finds_nothing():
    """Without erase_user's lock, the update would lock the memory while the erasure held
    its index rows: a deadlock, or index rows outliving the erased memory."""
    memory = make_memory("acme", user_id="gone", content="walks the dogs at dawn")
    MemoryEmbedding.objects.create(
        memory=memory, owner_id="acme", user_id="gone", model="m", vector=[0.1]
    )
    held = threading.Event()

    def hold_the_embedding():
        # The erasure deletes index rows, then embeddings: it stops in between, its
        # memories locked, until the update waits too.
        with transaction.atomic():
            MemoryEmbedding.objects.select_for_update().get(pk=memory.pk)
            held.set()
            wait_until(lambda: waiting_for_locks() >= 2)

    def erase():
        held.wait(5)
        erase_user(owner_id="acme", user_id="gone", actor="test")

    def update():
        wait_until(lambda: waiting_for_locks() >= 1)  # the erasure has begun
        services.update_memory(memory=memory, data={"content": "rides bikes on sunday"})

    errors = run_concurrently(hold_the_embedding, erase, update)

    assert errors == ["NotFound"]  # the update came second: the memory was gone
    assert not Memory.objects.filter(user_id="gone").exists()
    assert not MemoryTerm.objects.filter(user_id="gone").exists()
