"""POST /memory/batch and /memory/batch/delete: all or nothing, one request, the same
memories as single creates and the same deletes as single hard deletes."""

import uuid

import pytest
from django.db import DataError, connection, transaction
from django.test.utils import CaptureQueriesContext

from apikeys.models import AuditEvent
from apikeys.services import create_api_key
from memories import services
from memories.models import Memory, MemoryTerm, MemoryVersion
from memories.tests.factories import make_memory

pytestmark = pytest.mark.django_db

BATCH = "/api/v1/memory/batch"
BATCH_DELETE = "/api/v1/memory/batch/delete"


def item(n: int = 0, **fields) -> dict:
    return {"user_id": "u1", "type": "fact", "content": f"Batch memory number {n}", **fields}


def test_batch_stores_every_memory_in_request_order_like_single_creates(client):
    items = [
        item(0, importance=5, key="k0", value={"a": 1}, metadata={"s": "x"}),
        {"user_id": "u2", "memory_type": "preference", "content": "Batch memory number 1",
         "confidence": 0.5},
        item(2, ttl_seconds=3600),
        {"user_id": "u1", "type": "preference", "content": "preference:theme=dark",
         "ingestion_mode": "rules"},
    ]  # fmt: skip

    response = client.post(BATCH, {"memories": items}, format="json")

    assert response.status_code == 200, response.json()
    created = response.json()["memories"]
    assert [m["content"] for m in created] == [i["content"] for i in items]
    for memory in created:
        assert client.get(f"/api/v1/memory/{memory['id']}").json() == memory
    assert (created[1]["user_id"], created[1]["type"]) == ("u2", "preference")
    assert (created[3]["key"], created[3]["value"]) == ("theme", "dark")
    assert created[2]["expires_at"] is not None
    assert created[0]["created_at"] == created[0]["updated_at"]
    listed = client.get("/api/v1/memory", {"user_id": "u1"}).json()
    assert {m["id"] for m in listed} == {created[i]["id"] for i in (0, 2, 3)}
    assert client.get("/api/v1/memory/stats", {"user_id": "u1"}).json()["total"] == 3
    context = client.post(
        "/api/v1/memory/context", {"user_id": "u2", "query": "batch memory"}, format="json"
    )
    assert [m["id"] for m in context.json()["memories"]] == [created[1]["id"]]
    assert MemoryVersion.objects.filter(version=1, event="created").count() == 4


def test_array_literal_characters_in_a_batch_are_stored_as_sent(client):
    # The rows travel as one array per column: quotes, backslashes, braces, commas and
    # the word NULL must come back exactly, in every text column.
    odd = 'u{1,"2"}\\ NULL'
    items = [
        item(0, user_id=odd, key='k"{,}\\', value="NULL"),
        item(1, user_id="NULL", key="NULL"),
        item(2, user_id=odd),
    ]
    response = client.post(BATCH, {"memories": items}, format="json")

    assert response.status_code == 200, response.json()
    created = response.json()["memories"]
    assert [(m["user_id"], m["key"]) for m in created] == [
        (odd, 'k"{,}\\'),
        ("NULL", "NULL"),
        (odd, None),
    ]
    assert created[0]["value"] == "NULL"
    for memory in created:
        assert client.get(f"/api/v1/memory/{memory['id']}").json() == memory
    assert set(Memory.objects.values_list("user_id", flat=True)) == {odd, "NULL"}
    assert set(MemoryVersion.objects.values_list("user_id", flat=True)) == {odd, "NULL"}


def test_one_bad_item_stores_nothing_and_errors_name_only_the_bad_items(client):
    items = [item(0), item(1, importance=9), item(2), {"user_id": "u1", "type": "fact"}]

    response = client.post(BATCH, {"memories": items}, format="json")

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert errors == {
        "memories": {
            "1": {"importance": ["Ensure this value is less than or equal to 5."]},
            "3": {"content": ["This field is required."]},
        }
    }
    assert not Memory.objects.exists()
    assert not MemoryTerm.objects.exists()
    assert not MemoryVersion.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        {"memories": []},
        {"memories": [item(n) for n in range(101)]},
        {"memories": item()},
        {"memories": "x"},
        {},
        [item()],
    ],
    ids=["empty", "101", "object", "string", "missing", "bare-list"],
)
def test_bad_batch_shape_is_a_400_on_memories(client, body):
    response = client.post(BATCH, body, format="json")

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert set(errors) <= {"memories", "non_field_errors"}
    assert errors
    assert not Memory.objects.exists()


def test_hundred_items_are_accepted(client):
    response = client.post(BATCH, {"memories": [item(n) for n in range(100)]}, format="json")
    assert response.status_code == 200
    assert Memory.objects.count() == 100 == MemoryVersion.objects.count()


def test_a_batch_takes_one_rate_limit_token(client_for):
    issued = create_api_key(owner_id="acme", rate_limit_per_minute=3)
    client = client_for(issued)

    first = client.post(BATCH, {"memories": [item(n) for n in range(50)]}, format="json")
    statuses = [client.get("/api/v1/memory", {"user_id": "u1"}).status_code for _ in range(3)]

    assert first.status_code == 200
    assert statuses == [200, 200, 429]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite inserts per table")
def test_a_batch_is_one_statement_whatever_its_size():
    items = [item(n, user_id=f"u{n % 3}") for n in range(100)]
    with CaptureQueriesContext(connection) as queries:
        memories = services.create_memories(owner_id="acme", items=items)

    assert len(queries.captured_queries) == 1
    assert Memory.objects.count() == 100
    for memory in memories[::17]:
        stored = Memory.objects.get(pk=memory.pk)
        terms = MemoryTerm.objects.filter(memory_id=memory.pk)
        assert terms.count() == len(services._prepare_index(stored)) > 0
        assert set(terms.values_list("doc_length", flat=True)) == {stored.term_count}
        assert set(terms.values_list("user_id", flat=True)) == {stored.user_id}


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the statement under test")
def test_a_batch_statement_refuses_an_overlong_column_rather_than_cutting_it():
    # The serializer refuses it first; the statement must not cut it short either.
    items = [item(0), item(1, key="k" * 256)]
    with pytest.raises(DataError), transaction.atomic():
        services.create_memories(owner_id="acme", items=items)
    assert Memory.objects.count() == 0


def test_request_cost_does_not_grow_with_the_batch(client):
    def statements(count: int) -> int:
        body = {"memories": [item(n) for n in range(count)]}
        with CaptureQueriesContext(connection) as queries:
            assert client.post(BATCH, body, format="json").status_code == 200
        return len(queries.captured_queries)

    statements(1)  # the key's first use of the minute also records last_used_at
    assert statements(100) == statements(2)


def test_a_batch_created_memory_ranks_exactly_like_a_single_one(client):
    content = "Keeps bees on the roof of the bakery"
    single = make_memory("acme", user_id="u1", content=content, importance=4)
    body = {"memories": [item(0), item(1, content=content, importance=4), item(2)]}
    batched = client.post(BATCH, body, format="json").json()["memories"][1]

    def rows(memory_id):
        terms = MemoryTerm.objects.filter(memory_id=memory_id)
        return sorted(terms.values_list("term", "tf", "doc_length", "expires_at"))

    assert rows(single.pk) == rows(batched["id"])
    stored = Memory.objects.get(pk=batched["id"])
    assert (stored.term_count, stored.content_hash, stored.index_version) == (
        single.term_count,
        single.content_hash,
        single.index_version,
    )
    context = client.post(
        "/api/v1/memory/context", {"user_id": "u1", "query": "bees bakery"}, format="json"
    ).json()["memories"]
    scores = {m["id"]: m["relevance_score"] for m in context}
    assert scores[str(single.pk)] == scores[batched["id"]]
    assert set(list(scores)[:2]) == {str(single.pk), batched["id"]}


# --- batch delete ---------------------------------------------------------------------


def test_batch_delete_removes_mine_and_reports_the_rest_as_not_found(client, api_key):
    mine = [make_memory("acme", content=f"mine {n}") for n in range(3)]
    theirs = make_memory("globex", content="theirs")
    missing = uuid.uuid4()
    ids = [str(mine[0].pk), str(theirs.pk), str(mine[1].pk), str(missing), str(mine[0].pk)]

    response = client.post(BATCH_DELETE, {"ids": ids}, format="json")

    assert response.status_code == 200
    assert response.json() == {
        "deleted": [str(mine[0].pk), str(mine[1].pk)],
        "not_found": [str(theirs.pk), str(missing)],
    }
    assert list(Memory.objects.values_list("pk", flat=True).order_by("pk")) == sorted(
        [mine[2].pk, theirs.pk]
    )
    for gone in mine[:2]:
        assert not MemoryTerm.objects.filter(memory_id=gone.pk).exists()
        assert not MemoryVersion.objects.filter(memory_id=gone.pk).exists()
        assert client.get(f"/api/v1/memory/{gone.pk}/history").status_code == 404
    events = AuditEvent.objects.filter(event="memory_hard_deleted")
    assert sorted(e.target for e in events) == sorted([str(mine[0].pk), str(mine[1].pk)])
    assert {(e.owner_id, e.actor) for e in events} == {("acme", str(api_key.api_key.pk))}


def test_batch_delete_also_removes_soft_deleted_memories(client):
    memory = make_memory("acme")
    services.soft_delete_memory(memory=memory)
    response = client.post(BATCH_DELETE, {"ids": [str(memory.pk)]}, format="json")
    assert response.json() == {"deleted": [str(memory.pk)], "not_found": []}
    assert not Memory.objects.exists()


@pytest.mark.parametrize(
    "ids",
    [[], None, "x", ["not-a-uuid"], [12345], [None], [str(uuid.uuid4())] * 101],
    ids=["empty", "null", "string", "malformed", "integer", "null-item", "101"],
)
def test_bad_ids_are_a_400_and_nothing_is_deleted(client, ids):
    memory = make_memory("acme")
    body = {"ids": [str(memory.pk), *ids]} if isinstance(ids, list) and ids else {"ids": ids}

    response = client.post(BATCH_DELETE, body, format="json")

    assert response.status_code == 400
    assert "ids" in response.json()["errors"]
    assert Memory.objects.filter(pk=memory.pk).exists()
    assert not AuditEvent.objects.filter(event="memory_hard_deleted").exists()


@pytest.mark.parametrize(
    ("path", "body", "errors"),
    [
        (BATCH, {"memories": [item()], "memroies": []}, {"memroies": ["Unknown field."]}),
        (BATCH, {"memories": [item(), item(importanse=3)]},
         {"memories": {"1": {"importanse": ["Unknown field."]}}}),
        (BATCH_DELETE, {"ids": [str(uuid.uuid4())], "force": True}, {"force": ["Unknown field."]}),
        ("/api/v1/memory/upsert", {**item(key="k"), "kye": "k"}, {"kye": ["Unknown field."]}),
    ],
    ids=["batch", "batch-item", "batch-delete", "upsert"],
)  # fmt: skip
def test_an_unknown_field_is_a_400_that_names_it(client, path, body, errors):
    response = client.post(path, body, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == errors
    assert not Memory.objects.exists()


def test_a_null_item_is_reported_in_the_item_error_shape(client):
    good = {"user_id": "u1", "type": "fact", "content": "likes tea"}
    response = client.post("/api/v1/memory/batch", {"memories": [good, None]}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "memories": {"1": {"non_field_errors": ["Must be a JSON object."]}}
    }
    assert not Memory.objects.exists()
