"""owner_id (from the key) is the only tenant boundary: another owner's memory answers
exactly like one that does not exist, on every endpoint and verb, and stays unchanged."""

import uuid

import pytest
from rest_framework.test import APIClient

from apikeys.models import AuditEvent
from memories.models import IdempotentRequest, Memory, MemoryTerm, MemoryVersion
from memories.tests.factories import make_memory

URL = "/api/v1/memory"
NOT_FOUND = {"detail": "Not found."}


def snapshot() -> list[tuple]:
    """Every memory row as the database holds it (decrypted), in a stable order."""
    fields = [f.attname for f in Memory._meta.concrete_fields]
    return [tuple(getattr(m, f) for f in fields) for m in Memory.objects.order_by("pk")] + [
        ("terms", MemoryTerm.objects.count()),
        ("versions", MemoryVersion.objects.count()),
    ]


@pytest.fixture
def theirs(other_key):
    """globex's memory of a user whose id acme also uses."""
    return make_memory(
        other_key.api_key.owner_id,
        user_id="shared_user",
        content="globex secret about tea",
        key="drink",
        importance=5,
    )


ONE_MEMORY_CALLS = [
    pytest.param(lambda c, i: c.get(f"{URL}/{i}"), id="get"),
    pytest.param(
        lambda c, i: c.patch(f"{URL}/{i}", {"content": "hijacked"}, format="json"), id="patch"
    ),
    pytest.param(
        lambda c, i: c.patch(f"{URL}/{i}", {"importance": 99}, format="json"), id="patch-invalid"
    ),
    pytest.param(lambda c, i: c.delete(f"{URL}/{i}"), id="hard-delete"),
    pytest.param(lambda c, i: c.delete(f"{URL}/{i}/soft"), id="soft-delete"),
    pytest.param(
        lambda c, i: c.delete(f"{URL}/{i}/soft?user_id=shared_user"), id="soft-delete-user"
    ),
    pytest.param(lambda c, i: c.get(f"{URL}/{i}/history"), id="history"),
]


@pytest.mark.parametrize("call", ONE_MEMORY_CALLS)
def test_other_owners_memory_is_404_like_a_missing_one(call, client, theirs):
    before = snapshot()

    response = call(client, theirs.id)
    missing = call(client, uuid.uuid4())

    assert response.status_code == 404
    assert response.json() == NOT_FOUND
    assert (missing.status_code, missing.json()) == (404, response.json())
    assert response["Content-Type"] == missing["Content-Type"]
    assert snapshot() == before
    assert not AuditEvent.objects.filter(event="memory_hard_deleted").exists()


@pytest.mark.parametrize("call", ONE_MEMORY_CALLS)
def test_owner_still_reaches_their_memory(call, client_for, other_key, theirs):
    # The success twin: the same call by the owning key is not a 404.
    response = call(client_for(other_key), theirs.id)
    assert response.status_code in (200, 400)


def test_other_owners_soft_deleted_memory_is_404_too(client, theirs, client_for, other_key):
    client_for(other_key).delete(f"{URL}/{theirs.id}/soft")
    before = snapshot()

    assert client.delete(f"{URL}/{theirs.id}").json() == NOT_FOUND
    assert client.get(f"{URL}/{theirs.id}").json() == NOT_FOUND
    assert snapshot() == before


def test_list_of_the_same_user_id_under_another_owner_is_empty(
    client, client_for, other_key, theirs
):
    mine = make_memory("acme", user_id="shared_user", content="acme's own")

    response = client.get(URL, {"user_id": "shared_user"})
    for params in ({"key": "drink"}, {"min_importance": 5}, {"type": "fact"}):
        filtered = client.get(URL, {"user_id": "shared_user", **params}).json()
        assert str(theirs.id) not in [m["id"] for m in filtered]

    assert response.status_code == 200
    assert [m["id"] for m in response.json()] == [str(mine.id)]
    assert "globex" not in response.content.decode()
    theirs_listed = client_for(other_key).get(URL, {"user_id": "shared_user"}).json()
    assert [m["id"] for m in theirs_listed] == [str(theirs.id)]


def test_stats_of_the_same_user_id_under_another_owner_are_zero(
    client, client_for, other_key, theirs
):
    response = client.get(f"{URL}/stats", {"user_id": "shared_user"})

    assert response.status_code == 200
    body = response.json()
    assert (body["total"], body["deleted"], body["expired"]) == (0, 0, 0)
    assert set(body["by_type"].values()) == {0}
    assert set(body["by_importance"].values()) == {0}
    assert (body["oldest"], body["newest"]) == (None, None)
    assert (
        client_for(other_key).get(f"{URL}/stats", {"user_id": "shared_user"}).json()["total"] == 1
    )


def test_context_never_returns_another_owners_memory(client, theirs):
    response = client.post(
        f"{URL}/context", {"user_id": "shared_user", "query": "tea drink secret"}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["memories"] == []
    assert "secret" not in response.json()["context_summary"]


def test_owner_id_in_the_body_cannot_write_into_another_tenant(client, theirs):
    before = Memory.objects.filter(owner_id="globex").count()

    response = client.post(
        URL,
        {"owner_id": "globex", "user_id": "shared_user", "type": "fact", "content": "x"},
        format="json",
    )

    assert response.status_code == 200
    assert response.json()["owner_id"] == "acme"
    assert Memory.objects.filter(owner_id="globex").count() == before


def test_owner_id_in_the_query_string_is_ignored(client, theirs):
    response = client.get(URL, {"user_id": "shared_user", "owner_id": "globex"})
    assert response.json() == []
    stats = client.get(f"{URL}/stats", {"user_id": "shared_user", "owner_id": "globex"})
    assert stats.json()["total"] == 0


def test_cursor_from_another_owner_reveals_nothing(client, client_for, other_key):
    for n in range(3):
        make_memory(other_key.api_key.owner_id, user_id="shared_user", content=f"globex {n}")
    cursor = client_for(other_key).get(URL, {"user_id": "shared_user", "limit": 1})["X-Next-Cursor"]

    response = client.get(URL, {"user_id": "shared_user", "cursor": cursor})

    assert response.status_code == 200
    assert response.json() == []


def test_batch_delete_of_another_owners_id_is_not_found_and_changes_nothing(client, theirs):
    before = snapshot()
    missing = uuid.uuid4()

    response = client.post(
        f"{URL}/batch/delete", {"ids": [str(theirs.id), str(missing)]}, format="json"
    )

    assert response.status_code == 200
    assert response.json() == {"deleted": [], "not_found": [str(theirs.id), str(missing)]}
    assert snapshot() == before
    assert not AuditEvent.objects.filter(event="memory_hard_deleted").exists()


def test_upsert_never_touches_another_owners_memory_with_the_same_key(client, theirs):
    before = snapshot()
    body = {"user_id": "shared_user", "type": "fact", "content": "acme's tea", "key": "drink"}

    response = client.post(f"{URL}/upsert", body, format="json")

    assert response.json()["result"] == "created"
    assert response.json()["memory"]["owner_id"] == "acme"
    assert response.json()["memory"]["id"] != str(theirs.id)
    assert [row for row in snapshot() if row in before] == before[:-2]  # theirs unchanged


def test_batch_items_are_stored_under_the_keys_owner(client, theirs):
    body = {"memories": [{"owner_id": "globex", "user_id": "shared_user", "type": "fact",
                          "content": "x"}]}  # fmt: skip
    response = client.post(f"{URL}/batch", body, format="json")
    assert response.json()["memories"][0]["owner_id"] == "acme"
    assert Memory.objects.filter(owner_id="globex").count() == 1


def test_an_idempotency_key_of_another_owner_is_a_different_key(client, client_for, other_key):
    body = {"user_id": "shared_user", "type": "fact", "content": "same body"}
    headers = {"HTTP_IDEMPOTENCY_KEY": "shared-key"}
    theirs = client_for(other_key).post(URL, body, format="json", **headers)

    mine = client.post(URL, body, format="json", **headers)
    other_body = client.post(URL, {**body, "content": "other"}, format="json", **headers)

    assert mine.status_code == 200
    assert "Idempotent-Replayed" not in mine
    assert mine.json()["id"] != theirs.json()["id"]
    assert other_body.status_code == 422  # acme's own key now, not globex's
    assert IdempotentRequest.objects.filter(key="shared-key").count() == 2


@pytest.mark.parametrize("segment", ["not-a-uuid", "a%0Ab", "batchx", "upsert/extra"])
@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_a_malformed_memory_id_is_the_authenticated_json_404(client, segment, method):
    response = getattr(client, method)(f"{URL}/{segment}")
    assert (response.status_code, response.json()) == (404, NOT_FOUND)
    assert "X-RateLimit-Remaining" in response
    anonymous = getattr(APIClient(), method)(f"{URL}/{segment}")
    assert anonymous.status_code == 401
