"""TTL and expiry with a controlled clock, and what stats count at each stage of a memory's
life: live, expired, soft-deleted."""

from datetime import datetime, timedelta

import pytest
from django.db import connections
from django.utils import timezone

from memories import services
from memories.models import Memory, MemoryTerm, expired_q, live_sql, unexpired_sql
from memories.tests.factories import make_memory

URL = "/api/v1/memory"


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def listed_ids(client, user_id="user_1", **params):
    response = client.get(URL, {"user_id": user_id, **params})
    assert response.status_code == 200
    return [m["id"] for m in response.json()]


def stats(client, user_id="user_1"):
    response = client.get(f"{URL}/stats", {"user_id": user_id})
    assert response.status_code == 200
    return response.json()


@pytest.fixture
def hours_ago():
    now = timezone.now()
    return lambda hours: now - timedelta(hours=hours)


# --- expiry ---------------------------------------------------------------------------


def test_memory_past_its_ttl_is_hidden_everywhere(client, hours_ago):
    expired = make_memory("acme", content="old news", ttl_seconds=3600, now=hours_ago(2))
    live = make_memory("acme", content="fresh news", ttl_seconds=3 * 3600, now=hours_ago(2))
    assert expired.expires_at == expired.created_at + timedelta(hours=1)

    assert listed_ids(client) == [str(live.id)]
    response = client.get(f"{URL}/{expired.id}")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}
    assert client.get(f"{URL}/{live.id}").status_code == 200
    assert client.patch(f"{URL}/{expired.id}", {"content": "x"}, format="json").status_code == 404
    assert client.delete(f"{URL}/{expired.id}/soft").status_code == 404
    counts = stats(client)
    assert (counts["total"], counts["deleted"], counts["expired"]) == (1, 0, 1)
    # Expired rows stay stored (for GDPR export) until hard-deleted.
    stored = Memory.objects.get(pk=expired.id)
    assert (stored.content, stored.is_deleted) == ("old news", False)


def test_expired_memory_can_be_hard_deleted(client, hours_ago):
    expired = make_memory("acme", ttl_seconds=60, now=hours_ago(1))

    response = client.delete(f"{URL}/{expired.id}")

    assert response.status_code == 200
    assert not Memory.objects.filter(pk=expired.id).exists()


def test_expires_at_set_directly_decides_visibility(client):
    now = timezone.now()
    past = make_memory("acme", content="past", expires_at=now - timedelta(seconds=1))
    future = make_memory("acme", content="future", expires_at=now + timedelta(minutes=5))
    assert past.ttl_seconds is None

    assert listed_ids(client) == [str(future.id)]
    assert client.get(f"{URL}/{past.id}").status_code == 404
    assert client.get(f"{URL}/{future.id}").json()["expires_at"] is not None


def test_create_with_expires_at_in_the_past_is_stored_but_not_listed(client):
    response = client.post(
        URL,
        {"user_id": "user_1", "type": "fact", "content": "x", "expires_at": "2001-01-01T00:00Z"},
        format="json",
    )

    assert response.status_code == 200
    assert response.json()["expires_at"] == "2001-01-01T00:00:00Z"
    assert listed_ids(client) == []
    assert stats(client)["expired"] == 1


def test_ttl_on_create_counts_from_created_at(client):
    body = client.post(
        URL,
        {"user_id": "user_1", "type": "fact", "content": "x", "ttl_seconds": 90},
        format="json",
    ).json()

    assert body["ttl_seconds"] == 90
    assert parse_time(body["expires_at"]) - parse_time(body["created_at"]) == timedelta(seconds=90)


# --- changing the TTL -----------------------------------------------------------------


def test_patch_ttl_recomputes_expires_at_from_created_at(client, hours_ago):
    memory = make_memory("acme", ttl_seconds=3 * 3600, now=hours_ago(2))

    response = client.patch(f"{URL}/{memory.id}", {"ttl_seconds": 4 * 3600}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert body["ttl_seconds"] == 4 * 3600
    # From created_at (two hours ago), not from now.
    assert parse_time(body["expires_at"]) == memory.created_at + timedelta(hours=4)
    assert Memory.objects.get(pk=memory.id).expires_at == memory.created_at + timedelta(hours=4)


def test_patch_ttl_shorter_than_the_age_expires_the_memory(client, hours_ago):
    memory = make_memory("acme", ttl_seconds=3 * 3600, now=hours_ago(2))

    response = client.patch(f"{URL}/{memory.id}", {"ttl_seconds": 3600}, format="json")

    assert response.status_code == 200
    assert parse_time(response.json()["expires_at"]) == memory.created_at + timedelta(hours=1)
    assert client.get(f"{URL}/{memory.id}").status_code == 404
    assert listed_ids(client) == []
    assert stats(client)["expired"] == 1


def test_patch_ttl_null_clears_the_expiry(client, hours_ago):
    memory = make_memory("acme", ttl_seconds=3 * 3600, now=hours_ago(2))

    response = client.patch(f"{URL}/{memory.id}", {"ttl_seconds": None}, format="json")

    assert response.status_code == 200
    assert (response.json()["ttl_seconds"], response.json()["expires_at"]) == (None, None)
    stored = Memory.objects.get(pk=memory.id)
    assert (stored.ttl_seconds, stored.expires_at) == (None, None)


def test_patch_expires_at_alone_drops_the_ttl(client, hours_ago):
    memory = make_memory("acme", ttl_seconds=3 * 3600, now=hours_ago(2))
    new_expiry = timezone.now() + timedelta(days=1)

    response = client.patch(
        f"{URL}/{memory.id}", {"expires_at": new_expiry.isoformat()}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["ttl_seconds"] is None
    assert parse_time(response.json()["expires_at"]) == new_expiry
    assert Memory.objects.get(pk=memory.id).ttl_seconds is None


def test_patch_ttl_with_disagreeing_expires_at_is_400(client, hours_ago):
    memory = make_memory("acme", ttl_seconds=3 * 3600, now=hours_ago(2))

    response = client.patch(
        f"{URL}/{memory.id}",
        {"ttl_seconds": 4 * 3600, "expires_at": timezone.now().isoformat()},
        format="json",
    )

    assert response.status_code == 400
    assert "expires_at" in response.json()["errors"]
    stored = Memory.objects.get(pk=memory.id)
    assert stored.ttl_seconds == 3 * 3600
    assert stored.expires_at == memory.created_at + timedelta(hours=3)


@pytest.mark.parametrize("ttl", [0, -5, "60", True])
def test_patch_bad_ttl_is_400_and_changes_nothing(client, ttl):
    memory = make_memory("acme", ttl_seconds=600)
    response = client.patch(f"{URL}/{memory.id}", {"ttl_seconds": ttl}, format="json")
    assert response.status_code == 400
    assert Memory.objects.get(pk=memory.id).ttl_seconds == 600


# --- stats ----------------------------------------------------------------------------


def test_stats_of_an_unknown_user_are_all_zero(client):
    assert stats(client, "nobody") == {
        "total": 0,
        "deleted": 0,
        "expired": 0,
        "by_type": {"fact": 0, "preference": 0, "event": 0, "system": 0},
        "by_importance": {"1": 0, "2": 0, "3": 0, "4": 0, "5": 0},
        "oldest": None,
        "newest": None,
    }


def test_stats_count_each_stage_and_describe_live_memories_only(client, hours_ago):
    # Live: three, between 5 and 3 hours old.
    live_oldest = make_memory("acme", type="fact", importance=2, now=hours_ago(5))
    make_memory("acme", type="preference", importance=2, now=hours_ago(4))
    live_newest = make_memory("acme", type="preference", now=hours_ago(3))
    # Expired (older than any live one), soft-deleted (newer), and both.
    make_memory("acme", type="event", importance=5, ttl_seconds=60, now=hours_ago(9))
    deleted = make_memory("acme", type="system", importance=1, now=hours_ago(1))
    services.soft_delete_memory(memory=deleted)
    both = make_memory("acme", type="event", importance=4, ttl_seconds=60, now=hours_ago(8))
    services.soft_delete_memory(memory=both)
    # Someone else's rows are not counted.
    make_memory("acme", user_id="user_2", type="system", importance=3)
    make_memory("globex", type="system", importance=3)

    result = stats(client)

    assert result["total"] == 3
    assert result["deleted"] == 2
    assert result["expired"] == 1
    assert result["by_type"] == {"fact": 1, "preference": 2, "event": 0, "system": 0}
    assert result["by_importance"] == {"1": 0, "2": 2, "3": 0, "4": 0, "5": 0}
    assert parse_time(result["oldest"]) == live_oldest.created_at
    assert parse_time(result["newest"]) == live_newest.created_at
    assert result["total"] == len(listed_ids(client, limit=100))


def test_stats_follow_soft_delete_through_the_api(client):
    memory = make_memory("acme", importance=3)
    before = stats(client)
    assert (before["total"], before["deleted"], before["by_importance"]["3"]) == (1, 0, 1)

    assert client.delete(f"{URL}/{memory.id}/soft?user_id=user_1").status_code == 200

    after = stats(client)
    assert (after["total"], after["deleted"], after["by_importance"]["3"]) == (0, 1, 0)
    assert (after["oldest"], after["newest"]) == (None, None)


def test_stats_forget_hard_deleted_memories(client):
    memory = make_memory("acme")
    client.delete(f"{URL}/{memory.id}/soft")
    assert stats(client)["deleted"] == 1

    client.delete(f"{URL}/{memory.id}")

    assert (stats(client)["total"], stats(client)["deleted"]) == (0, 0)


@pytest.mark.parametrize("query", ["", "?user_id=", "?user_id=" + "u" * 256])
def test_stats_need_a_valid_user_id(client, query):
    response = client.get(f"{URL}/stats{query}")
    assert response.status_code == 400
    assert "user_id" in response.json()["errors"]


# --- one definition of "live" ----------------------------------------------------------


@pytest.mark.parametrize("placeholder", ["%(now)s", "%s"])
def test_orm_raw_sql_and_python_agree_on_what_is_live(db, hours_ago, placeholder):
    """live_q (the ORM), live_sql and unexpired_sql (raw SQL, also on the index rows) and
    Memory.is_expired (Python) pick the same memories, including the one expiring exactly
    at the moment asked about."""
    at = hours_ago(0)
    rows = {
        "no expiry": make_memory("acme", content="alpha tea"),
        "expires later": make_memory("acme", content="bravo tea", ttl_seconds=7200, now=at),
        "expired": make_memory("acme", content="charlie tea", ttl_seconds=60, now=hours_ago(1)),
        "expires exactly now": make_memory(
            "acme", content="delta tea", ttl_seconds=3600, now=hours_ago(1)
        ),
        "deleted": make_memory("acme", content="echo tea"),
        "deleted, expires later": make_memory(
            "acme", content="foxtrot tea", ttl_seconds=7200, now=at
        ),
    }
    assert rows["expires exactly now"].expires_at == at
    for name in ("deleted", "deleted, expires later"):
        services.soft_delete_memory(memory=rows[name])
    names = {memory.id: name for name, memory in rows.items()}
    expected_live = {"no expiry", "expires later"}
    expected_expired = {"expired", "expires exactly now"}

    stored = list(Memory.objects.all())
    python_live = {names[m.id] for m in stored if not m.is_deleted and not m.is_expired(at)}
    python_expired = {names[m.id] for m in stored if m.is_expired(at)}
    orm_live = {names[pk] for pk in Memory.objects.live(at).values_list("pk", flat=True)}
    orm_expired = {
        names[pk] for pk in Memory.objects.filter(expired_q(at)).values_list("pk", flat=True)
    }

    connection = connections["default"]
    at_param = {"now": at} if placeholder == "%(now)s" else [at]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT m.id FROM {Memory._meta.db_table} m "  # noqa: S608 - names from the models
            f"WHERE {live_sql('m', connection, at=placeholder)}",
            at_param,
        )
        sql_live = {names[row[0]] for row in cursor.fetchall()}
        cursor.execute(
            f"SELECT DISTINCT t.memory_id FROM {MemoryTerm._meta.db_table} t "  # noqa: S608 - names from the models
            f"WHERE {unexpired_sql('t', connection, at=placeholder)}",
            at_param,
        )
        index_live = {names[row[0]] for row in cursor.fetchall()}

    assert python_live == orm_live == sql_live == index_live == expected_live
    assert python_expired == orm_expired == expected_expired


# --- the service owns the clock --------------------------------------------------------


def _stored(body) -> Memory:
    return Memory.objects.get(pk=body["id"])


def test_expiry_is_creation_plus_ttl_exactly_on_every_write_path(client):
    """created_at, updated_at and expires_at of a new memory come from one clock read in
    the service, whichever endpoint wrote it; a changed TTL counts from created_at."""
    item = {"user_id": "user_1", "type": "fact", "ttl_seconds": 3600}
    created = client.post(URL, {**item, "content": "single"}, format="json").json()
    batch = client.post(
        f"{URL}/batch",
        {"memories": [{**item, "content": "first"}, {**item, "content": "second"}]},
        format="json",
    ).json()["memories"]
    upsert = {**item, "content": "keyed", "key": "k"}
    upserted = client.post(f"{URL}/upsert", upsert, format="json").json()
    assert upserted["result"] == "created"
    new_memories = [created, *batch, upserted["memory"]]
    for body in new_memories:
        memory = _stored(body)
        assert memory.created_at == memory.updated_at
        assert memory.expires_at == memory.created_at + timedelta(seconds=3600)
        assert parse_time(body["expires_at"]) == memory.expires_at

    changed = client.post(f"{URL}/upsert", {**upsert, "ttl_seconds": 60}, format="json").json()
    assert changed["result"] == "updated"
    patched = client.patch(f"{URL}/{created['id']}", {"ttl_seconds": 120}, format="json").json()
    for body, ttl in ((changed["memory"], 60), (patched, 120)):
        memory = _stored(body)
        assert memory.expires_at == memory.created_at + timedelta(seconds=ttl)
        assert parse_time(body["expires_at"]) == memory.expires_at
