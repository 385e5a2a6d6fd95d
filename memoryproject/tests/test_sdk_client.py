"""The Python client (sdk/python, package aimemory) against the real service: gunicorn from
the Procfile, PostgreSQL, and the fake OpenAI server for chat and extraction. Both clients
go through every method, v1's and v1.1's."""

import json

import anyio
import httpx
import pytest
from aimemory import (
    APIStatusError,
    AsyncMemoryClient,
    AuthenticationError,
    ChatResponse,
    MemoryClient,
    NotFoundError,
    RateLimitError,
    ValidationError,
)

pytestmark = pytest.mark.slow


def extraction_reply(*memories) -> dict:
    return {"content": json.dumps({"memories": list(memories)})}


def test_sync_client_drives_every_v1_method(service, api_key_text, user_id):
    with MemoryClient(api_key=api_key_text, base_url=service.url) as client:
        created = client.memories.create(
            user_id=user_id,
            type="preference",
            content="User prefers dark mode and works in fintech",
            key="ui_theme",
            value="dark",
            importance=4,
            metadata={"source": "settings"},
        )
        assert created.owner_id == "sdk-owner"
        assert created.created_at.tzinfo is not None
        assert client.memories.get(created.id) == created

        changed = client.memories.update(created.id, importance=5)
        assert changed.importance == 5
        assert changed.updated_at > created.updated_at

        more = [
            client.memories.create(user_id=user_id, type="fact", content=f"Fact number {n}")
            for n in range(4)
        ]
        listed = list(client.memories.list(user_id=user_id, page_size=2))
        assert [m.id for m in listed] == [m.id for m in reversed(more)] + [created.id]
        page = client.memories.list_page(user_id=user_id, page_size=2)
        assert len(page.memories) == 2
        assert page.next_cursor
        rest = client.memories.list_page(user_id=user_id, page_size=10, cursor=page.next_cursor)
        assert [m.id for m in page.memories + rest.memories] == [m.id for m in listed]
        assert rest.next_cursor is None
        facts = list(client.memories.list(user_id=user_id, type="fact", min_importance=1))
        assert facts == []  # the facts have no importance
        assert [m.id for m in client.memories.list(user_id=user_id, key="ui_theme")] == [created.id]

        context = client.memories.context(user_id=user_id, query="Which theme does the UI use?")
        assert context.memories[0].id == created.id
        assert 0 < context.memories[0].relevance_score <= 1
        assert "dark mode" in context.context_summary

        soft = client.memories.soft_delete(more[0].id, user_id=user_id)
        assert soft.is_deleted is True
        stats = client.memories.stats(user_id=user_id)
        assert (stats.total, stats.deleted, stats.expired) == (4, 1, 0)
        assert stats.by_type["fact"] == 3

        assert client.memories.delete(more[1].id).deleted is True
        with pytest.raises(NotFoundError):
            client.memories.get(more[1].id)

        exported = client.gdpr.export(user_id=user_id)
        assert exported.counts.memories == 4
        assert {m.state for m in exported.memories} == {"live", "deleted"}
        erased = client.gdpr.erase(user_id=user_id)
        assert erased.deleted["memories"] == 4
        assert list(client.memories.list(user_id=user_id)) == []


def test_a_memory_read_back_can_be_sent_again_as_a_create(service, api_key_text, user_id):
    with MemoryClient(api_key=api_key_text, base_url=service.url) as client:
        original = client.memories.create(
            user_id=user_id, type="fact", content="Lives in Lisbon", value={"city": "Lisbon"}
        )
        copy = client.memories.create(**original.model_dump())

    assert copy.id != original.id
    assert (copy.content, copy.value, copy.type) == (original.content, original.value, "fact")


def test_async_client_drives_every_v1_method(service, api_key_text, user_id, fake_llm):
    async def scenario():
        async with AsyncMemoryClient(api_key=api_key_text, base_url=service.url) as client:
            created = await client.memories.create(
                user_id=user_id, type="fact", content="Has a beagle called Rex", importance=3
            )
            assert (await client.memories.get(created.id)).content == created.content
            assert (await client.memories.update(created.id, importance=2)).importance == 2
            for n in range(3):
                await client.memories.create(user_id=user_id, type="event", content=f"Event {n}")
            listed = [m async for m in client.memories.list(user_id=user_id, page_size=2)]
            assert len(listed) == 4
            assert listed[-1].id == created.id
            context = await client.memories.context(user_id=user_id, query="the dog Rex", limit=1)
            assert [m.id for m in context.memories] == [created.id]
            assert (await client.memories.soft_delete(listed[0].id)).is_deleted
            assert (await client.memories.stats(user_id=user_id)).total == 3
            assert (await client.memories.delete(listed[1].id)).deleted
            fake_llm.script({"content": "Rex is a beagle."})
            answer = await client.chat(user_id=user_id, message="What is my dog called?")
            assert answer.response == "Rex is a beagle."
            assert created.id in [m.id for m in answer.memories_used]
            fake_llm.script({"content": "He is called Rex."})
            stream = await client.chat(user_id=user_id, message="My dog?", stream=True)
            items = [item async for item in stream]
            fake_llm.script(
                extraction_reply({"type": "fact", "content": "Drinks green tea", "importance": 2})
            )
            extracted = await client.memories.extract(user_id=user_id, text="I drink green tea")
            exported = await client.gdpr.export(user_id=user_id)
            erased = await client.gdpr.erase(user_id=user_id)
            return items, extracted, exported, erased

    items, extracted, exported, erased = anyio.run(scenario)

    assert "".join(i for i in items if isinstance(i, str)) == "He is called Rex."
    assert isinstance(items[-1], ChatResponse)
    assert items[-1].response == "He is called Rex."
    assert [c.content for c in extracted.candidates] == ["Drinks green tea"]
    assert extracted.candidates[0].status == "not_saved"
    assert exported.counts.memories == 3
    assert erased.total >= 3


def test_chat_and_extract_through_the_fake_llm(service, api_key_text, user_id, fake_llm):
    with MemoryClient(api_key=api_key_text, base_url=service.url) as client:
        client.memories.create(
            user_id=user_id, type="fact", content="Is vegetarian and never eats meat"
        )
        fake_llm.script({"content": "Try the mushroom risotto."})
        answer = client.chat(user_id=user_id, message="What should I eat for dinner?")
        assert answer.response == "Try the mushroom risotto."
        assert "vegetarian" in answer.memories_used[0].content
        prompt = fake_llm.chat_requests()[-1]["messages"][0]["content"]
        assert "vegetarian" in prompt

        fake_llm.script({"content": "Try the mushroom risotto tonight."})
        stream = client.chat(user_id=user_id, message="Dinner ideas?", stream=True)
        deltas = []
        for item in stream:
            if isinstance(item, str):
                deltas.append(item)
        assert len(deltas) > 1
        assert "".join(deltas) == "Try the mushroom risotto tonight."
        assert stream.final is not None
        assert stream.final.response == "".join(deltas)

        fake_llm.script(
            extraction_reply(
                {"type": "preference", "content": "Likes risotto", "key": "dish", "value": "rice"}
            )
        )
        saved = client.memories.extract(
            user_id=user_id,
            messages=[
                {"role": "assistant", "content": "Any favourite dish?"},
                {"role": "user", "content": "Risotto, always."},
            ],
            save=True,
        )
        assert saved.saved is True
        assert saved.candidates[0].status == "created"
        stored = client.memories.get(saved.candidates[0].memory_id)
        assert (stored.key, stored.value) == ("dish", "rice")


def test_a_stream_that_breaks_raises_the_error_event(service, api_key_text, user_id, fake_llm):
    fake_llm.script({"content": "one two three four five", "break_after": 2})
    with MemoryClient(api_key=api_key_text, base_url=service.url) as client:
        stream = client.chat(user_id=user_id, message="Count", stream=True)
        received = []
        with pytest.raises(APIStatusError) as caught:  # noqa: PT012 - it breaks mid-stream
            for item in stream:
                received.append(item)

    assert received == ["one ", "two "]
    assert caught.value.status_code >= 500
    assert caught.value.detail


def test_api_errors_arrive_as_typed_exceptions(service, api_key_text, user_id):
    other_key = service.new_key(owner_id="sdk-other-owner")
    with MemoryClient(api_key=api_key_text, base_url=service.url) as client:
        with pytest.raises(ValidationError) as caught:
            client.memories.create(user_id=user_id, type="opinion", content="x", importance=9)
        assert caught.value.status_code == 400
        assert {"type", "importance"} <= set(caught.value.errors)
        assert caught.value.detail.startswith(("type: ", "importance: "))
        assert list(client.memories.list(user_id=user_id)) == []  # nothing was stored

        mine = client.memories.create(user_id=user_id, type="fact", content="Private")
    with MemoryClient(api_key=other_key, base_url=service.url) as other:
        with pytest.raises(NotFoundError) as caught:
            other.memories.get(mine.id)
        assert caught.value.detail == "Not found."
    with MemoryClient(api_key="aimsk_live_" + "x" * 40, base_url=service.url) as stranger:
        with pytest.raises(AuthenticationError) as caught:
            stranger.memories.stats(user_id=user_id)
        assert caught.value.detail == "Authentication required"


def test_a_429_is_waited_out(service, user_id):
    key = service.new_key(owner_id="sdk-rate-limited", rate_limit=20)  # a token every 3 s
    statuses: list[int] = []
    http = httpx.Client(event_hooks={"response": [lambda r: statuses.append(r.status_code)]})
    with MemoryClient(api_key=key, base_url=service.url, http_client=http) as client:
        for _ in range(40):  # the bucket holds 20 tokens: it runs dry within 21 calls
            statuses.clear()
            client.memories.stats(user_id=user_id)
            if statuses[0] == 429:
                break
    http.close()

    assert statuses == [429, 200]

    with (  # noqa: PT012 - one of the calls runs the bucket dry
        MemoryClient(api_key=key, base_url=service.url, max_retries=0) as impatient,
        pytest.raises(RateLimitError) as caught,
    ):
        for _ in range(5):
            impatient.memories.stats(user_id=user_id)
    assert 1 <= caught.value.retry_after <= 3
    assert caught.value.detail == "Rate limit exceeded"


# --- API v1.1: batch create and delete, upsert, history, Idempotency-Key ----------------


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
