"""The Python client against the API v1.1 endpoints of the real service: batch create,
batch delete, upsert, history and Idempotency-Key."""

import anyio
import pytest
from aimemory import AsyncMemoryClient, MemoryClient, ValidationError

pytestmark = pytest.mark.slow


def test_batch_create_is_all_or_nothing_and_in_order(service, api_key_text, user_id):
    items = [
        {"user_id": user_id, "type": "fact", "content": f"Batch fact {n}", "importance": 2}
        for n in range(3)
    ]
    with MemoryClient(api_key=api_key_text, base_url=service.url) as client:
        created = client.memories.create_many(items)
        assert [m.content for m in created] == ["Batch fact 0", "Batch fact 1", "Batch fact 2"]
        listed = {m.id for m in client.memories.list(user_id=user_id)}
        assert listed == {m.id for m in created}
        context = client.memories.context(user_id=user_id, query="batch fact 1", limit=1)
        assert context.memories[0].id == created[1].id

        bad = [items[0], {"user_id": user_id, "type": "opinion", "content": "x"}]
        with pytest.raises(ValidationError) as caught:
            client.memories.create_many(bad)
        assert set(caught.value.errors["memories"]) == {"1"}
        assert client.memories.stats(user_id=user_id).total == 3


def test_delete_many_reports_deleted_and_not_found(service, api_key_text, user_id):
    other_key = service.new_key(owner_id="sdk-v11-other")
    with MemoryClient(api_key=other_key, base_url=service.url) as other:
        foreign = other.memories.create(user_id=user_id, type="fact", content="Not yours")
    with MemoryClient(api_key=api_key_text, base_url=service.url) as client:
        mine = client.memories.create_many(
            [{"user_id": user_id, "type": "fact", "content": f"Mine {n}"} for n in range(2)]
        )
        result = client.memories.delete_many([mine[0].id, mine[1].id, foreign.id])
        assert sorted(result.deleted) == sorted([mine[0].id, mine[1].id])
        assert result.not_found == [foreign.id]
        assert list(client.memories.list(user_id=user_id)) == []
    with MemoryClient(api_key=other_key, base_url=service.url) as other:
        assert other.memories.get(foreign.id).content == "Not yours"


def test_upsert_creates_updates_then_leaves_unchanged(service, api_key_text, user_id):
    fields = {"user_id": user_id, "type": "preference", "key": "ui_theme"}
    with MemoryClient(api_key=api_key_text, base_url=service.url) as client:
        first = client.memories.upsert(**fields, content="Likes dark mode", value="dark")
        second = client.memories.upsert(**fields, content="Likes light mode", value="light")
        third = client.memories.upsert(**fields, content="Likes light mode", value="light")
        history = client.memories.history(first.memory.id)
        client.memories.soft_delete(first.memory.id)
        after_delete = client.memories.history(first.memory.id)

    assert (first.result, second.result, third.result) == ("created", "updated", "unchanged")
    assert first.memory.id == second.memory.id == third.memory.id
    assert third.memory.updated_at == second.memory.updated_at
    assert [(h.version, h.event, h.value) for h in history] == [
        (1, "created", "dark"),
        (2, "updated", "light"),
    ]
    assert after_delete[-1].event == "soft_deleted"


def test_one_idempotency_key_stores_once(service, api_key_text, user_id):
    fields = {"user_id": user_id, "type": "fact", "content": "Paid the invoice"}
    with MemoryClient(api_key=api_key_text, base_url=service.url) as client:
        first = client.memories.create(**fields, idempotency_key="invoice-42")
        replay = client.memories.create(**fields, idempotency_key="invoice-42")
        fresh = client.memories.create(**fields)

    assert replay == first
    assert fresh.id != first.id


def test_async_client_drives_the_v11_methods(service, api_key_text, user_id):
    async def scenario():
        async with AsyncMemoryClient(api_key=api_key_text, base_url=service.url) as client:
            created = await client.memories.create_many(
                [{"user_id": user_id, "type": "fact", "content": "Async batch"}]
            )
            upserted = await client.memories.upsert(
                user_id=user_id, type="fact", key="city", content="Lives in Porto"
            )
            history = await client.memories.history(upserted.memory.id)
            deleted = await client.memories.delete_many([created[0].id])
            return upserted, history, deleted, created

    upserted, history, deleted, created = anyio.run(scenario)
    assert upserted.result == "created"
    assert [h.event for h in history] == ["created"]
    assert deleted.deleted == [created[0].id]
