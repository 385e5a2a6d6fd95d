"""POST /memory/upsert: one memory per (user, key), updated in place, and nothing written
when nothing changes."""

import threading
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connections
from rest_framework.test import APIClient

from memories.models import Memory, MemoryTerm, MemoryVersion
from memories.tests.factories import make_memory

pytestmark = pytest.mark.django_db

UPSERT = "/api/v1/memory/upsert"
THEME = {"user_id": "u1", "type": "preference", "content": "Prefers dark mode", "key": "theme"}


def upsert(client, **fields):
    return client.post(UPSERT, {**THEME, **fields}, format="json")


def test_created_then_updated_then_unchanged(client):
    created = upsert(client, value="dark", importance=3)
    assert created.status_code == 200, created.json()
    assert created.json()["result"] == "created"
    memory = created.json()["memory"]
    assert client.get(f"/api/v1/memory/{memory['id']}").json() == memory

    updated = upsert(client, content="Prefers light mode", value="light")
    assert updated.json()["result"] == "updated"
    changed = updated.json()["memory"]
    assert changed["id"] == memory["id"]
    assert (changed["content"], changed["value"]) == ("Prefers light mode", "light")
    assert changed["importance"] == 3  # not given: kept
    assert changed["updated_at"] > memory["updated_at"]

    unchanged = upsert(client, content="Prefers light mode", value="light")
    assert unchanged.json() == {"result": "unchanged", "memory": changed}
    assert Memory.objects.count() == 1


def test_unchanged_writes_nothing(client, embedding_server, django_capture_on_commit_callbacks):
    # Vectors are made after commit by a background thread, which cannot see this test's
    # transaction: the on-commit callbacks show what was queued, and the backfill makes
    # the vectors the thread would have made.
    with django_capture_on_commit_callbacks() as callbacks:
        first = upsert(client, value={"mode": "dark", "level": 1}, metadata={"a": [1, 2]})
    assert len(callbacks) == 1
    call_command("backfill_embeddings")
    memory_id = first.json()["memory"]["id"]
    assert len(embedding_server.requests) == 1
    terms = sorted(MemoryTerm.objects.filter(memory_id=memory_id).values_list("pk", flat=True))
    stored = Memory.objects.get(pk=memory_id)

    # Same values, other key order in the JSON objects.
    with django_capture_on_commit_callbacks() as callbacks:
        again = upsert(client, metadata={"a": [1, 2]}, value={"level": 1, "mode": "dark"})

    assert again.json()["result"] == "unchanged"
    assert again.json()["memory"] == first.json()["memory"]
    assert Memory.objects.get(pk=memory_id).updated_at == stored.updated_at
    assert MemoryVersion.objects.filter(memory_id=memory_id).count() == 1
    after = sorted(MemoryTerm.objects.filter(memory_id=memory_id).values_list("pk", flat=True))
    assert after == terms
    call_command("backfill_embeddings")
    assert callbacks == []
    assert len(embedding_server.requests) == 1

    # The twin: a real change rewrites the index and embeds again.
    with django_capture_on_commit_callbacks() as callbacks:
        assert upsert(client, content="Prefers dim screens").json()["result"] == "updated"
    assert len(callbacks) == 1
    call_command("backfill_embeddings")
    assert len(embedding_server.requests) == 2
    assert MemoryVersion.objects.filter(memory_id=memory_id).count() == 2


@pytest.mark.parametrize(
    ("before", "after"),
    [(1, True), (1, 1.0), (0, False), ({"a": 1}, {"a": True}), ("1", 1)],
)
def test_values_compare_as_json(client, before, after):
    upsert(client, value=before)
    response = upsert(client, value=after)
    assert response.json()["result"] == "updated"
    assert response.json()["memory"]["value"] == after


def test_the_newest_live_memory_with_the_key_is_the_one_updated(client):
    old = make_memory("acme", user_id="u1", type="preference", key="theme", content="old")
    newest = make_memory("acme", user_id="u1", type="preference", key="theme", content="new")
    gone = make_memory("acme", user_id="u1", type="preference", key="theme", content="gone")
    client.delete(f"/api/v1/memory/{gone.pk}/soft")
    make_memory("acme", user_id="u2", type="preference", key="theme", content="other user")

    response = upsert(client, content="newest wins")

    assert response.json()["result"] == "updated"
    assert response.json()["memory"]["id"] == str(newest.pk)
    assert Memory.objects.get(pk=old.pk).content == "old"


def test_an_expired_memory_with_the_key_is_not_updated(client):
    make_memory("acme", user_id="u1", key="theme", ttl_seconds=60, now=_days_ago(1))
    response = upsert(client)
    assert response.json()["result"] == "created"
    assert Memory.objects.filter(key="theme").count() == 2


def _days_ago(days: int):
    from django.utils import timezone

    return timezone.now() - timedelta(days=days)


def test_ttl_counts_from_the_memorys_creation_as_in_patch(client):
    created = make_memory("acme", user_id="u1", type="preference", key="theme", now=_days_ago(2))

    response = upsert(client, ttl_seconds=7 * 86400)

    memory = response.json()["memory"]
    assert memory["ttl_seconds"] == 7 * 86400
    stored = Memory.objects.get(pk=created.pk)
    assert stored.expires_at == created.created_at + timedelta(days=7)
    assert upsert(client, ttl_seconds=7 * 86400).json()["result"] == "unchanged"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"key": None}, "key"),
        ({"key": ""}, "key"),
        ({"content": ""}, "content"),
        ({"type": "opinion"}, "type"),
        ({"importance": 6}, "importance"),
    ],
)
def test_invalid_upsert_is_a_400_on_the_field_and_writes_nothing(client, fields, field):
    response = upsert(client, **fields)
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert not Memory.objects.exists()


@pytest.mark.parametrize("field", ["key", "type", "content", "user_id"])
def test_key_type_content_and_user_are_required(client, field):
    body = {k: v for k, v in THEME.items() if k != field}
    response = client.post(UPSERT, body, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert not Memory.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_upserts_of_one_key_give_one_memory(api_key):
    barrier = threading.Barrier(8)
    results, errors = [], []

    def run(n: int):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key.plaintext}")
        try:
            barrier.wait(10)
            response = upsert(client, content=f"Prefers theme number {n % 2}")
            results.append((response.status_code, response.json()["result"]))
        except Exception as exc:  # reported to the test, not lost in the thread
            errors.append(repr(exc))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert errors == []
    assert len(results) == 8
    assert {status for status, _ in results} == {200}
    assert [result for _, result in results].count("created") == 1
    assert Memory.objects.filter(owner_id="acme", user_id="u1", key="theme").count() == 1
    memory = Memory.objects.get(key="theme")
    versions = MemoryVersion.objects.filter(memory=memory).order_by("version")
    updated = [result for _, result in results].count("updated")
    assert list(versions.values_list("version", flat=True)) == list(range(1, updated + 2))


# --- an update is validated as PATCH validates it ------------------------------------------


RULE = {"type": "preference", "content": "preference:theme=light", "key": "theme"}


def test_upsert_in_rules_mode_rederives_the_value(client):
    created = upsert(client, **RULE, ingestion_mode="rules").json()["memory"]
    response = upsert(client, **{**RULE, "content": "preference:theme=blue"})
    assert response.status_code == 200, response.json()
    assert response.json()["result"] == "updated"
    assert response.json()["memory"]["value"] == "blue"
    assert client.get(f"/api/v1/memory/{created['id']}").json()["value"] == "blue"


def test_upsert_in_rules_mode_refuses_a_type_the_content_contradicts(client):
    created = upsert(client, **RULE, ingestion_mode="rules").json()["memory"]
    response = upsert(client, **{**RULE, "type": "fact"})
    assert response.status_code == 400
    assert "content" in response.json()["errors"]
    assert client.get(f"/api/v1/memory/{created['id']}").json()["type"] == "preference"


def test_upsert_giving_the_mode_is_validated_as_a_patch_giving_it(client):
    created = upsert(client, **RULE, ingestion_mode="rules").json()["memory"]
    change = {**RULE, "content": "preference:theme=blue", "value": "red"}
    response = upsert(client, **change, ingestion_mode="explicit")
    assert response.status_code == 200, response.json()
    assert response.json()["result"] == "updated"
    patched = client.patch(
        f"/api/v1/memory/{created['id']}", {**change, "ingestion_mode": "explicit"}, format="json"
    )
    assert patched.status_code == 200, patched.json()
    assert response.json()["memory"]["value"] == patched.json()["value"] == "red"
    assert client.get(f"/api/v1/memory/{created['id']}").json()["value"] == "red"


def test_a_ttl_alone_counts_from_the_memory_s_creation(client):
    created = upsert(client, type="fact", content="first", key="k").json()["memory"]
    row = Memory.objects.filter(pk=created["id"])
    row.update(created_at=row.get().created_at - timedelta(hours=1))
    response = upsert(client, type="fact", content="first", key="k", ttl_seconds=7200)
    assert response.json()["result"] == "updated"
    expires_at = Memory.objects.get(pk=created["id"]).expires_at
    assert expires_at == row.get().created_at + timedelta(seconds=7200)


def test_a_memory_read_back_with_a_ttl_can_be_sent_again(client):
    created = upsert(client, type="fact", content="first", key="k", ttl_seconds=3600).json()
    # Five seconds pass between reading the memory and sending it back.
    row = Memory.objects.filter(pk=created["memory"]["id"])
    row.update(
        created_at=row.get().created_at - timedelta(seconds=5),
        expires_at=row.get().expires_at - timedelta(seconds=5),
    )
    memory = client.get(f"/api/v1/memory/{created['memory']['id']}").json()
    response = upsert(client, **{**memory, "content": "second"})
    assert response.status_code == 200, response.json()
    assert response.json()["result"] == "updated"
    assert response.json()["memory"]["expires_at"] == memory["expires_at"]


def test_a_rule_whose_value_is_over_the_limit_is_400(client):
    content = "fact:k=" + "é" * 9_000  # 9,000 characters, 18,002 bytes as JSON
    response = client.post(
        "/api/v1/memory",
        {"user_id": "u1", "type": "fact", "content": content, "ingestion_mode": "rules"},
        format="json",
    )
    assert response.status_code == 400
    assert "over 10000 bytes" in response.json()["errors"]["content"][0]
    assert not Memory.objects.exists()


def test_a_create_by_upsert_still_refuses_an_expiry_that_disagrees_with_the_ttl(client):
    response = upsert(client, ttl_seconds=3600, expires_at="2001-01-01T00:00:00Z")
    assert response.status_code == 400
    assert "expires_at" in response.json()["errors"]
    assert not Memory.objects.exists()
