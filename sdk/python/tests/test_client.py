import json
from datetime import UTC, datetime

import httpx
import pytest

from aimemory import (
    AIMemoryError,
    AsyncMemoryClient,
    ConfigurationError,
    ContextResult,
    Memory,
    MemoryClient,
)
from aimemory._core import DEFAULT_TIMEOUT, LONG_TIMEOUT
from tests.mockapi import MEMORY, Recorder, memory


def read_timeout(request: httpx.Request) -> float:
    return request.extensions["timeout"]["read"]


def test_missing_api_key_fails_at_construction(monkeypatch):
    monkeypatch.delenv("AIMEMORY_API_KEY", raising=False)

    with pytest.raises(ConfigurationError, match="AIMEMORY_API_KEY"):
        MemoryClient()
    with pytest.raises(AIMemoryError):
        AsyncMemoryClient(api_key="")


def test_key_and_base_url_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("AIMEMORY_API_KEY", "aimsk_live_from_env")
    monkeypatch.setenv("AIMEMORY_BASE_URL", "https://memory.example.com/")
    recorder = Recorder(httpx.Response(200, json=MEMORY))
    client = MemoryClient(http_client=httpx.Client(transport=httpx.MockTransport(recorder)))

    client.memories.get("m1")

    request = recorder.requests[0]
    assert request.headers["Authorization"] == "Bearer aimsk_live_from_env"
    assert str(request.url) == "https://memory.example.com/api/v1/memory/m1"


def test_base_url_defaults_to_the_local_service(monkeypatch):
    monkeypatch.delenv("AIMEMORY_BASE_URL", raising=False)

    assert MemoryClient(api_key="k").base_url == "http://localhost:10000"
    assert MemoryClient(api_key="k", base_url="http://h:1/api/v1/").base_url == "http://h:1"


def test_arguments_win_over_the_environment(monkeypatch):
    monkeypatch.setenv("AIMEMORY_API_KEY", "from-env")
    recorder = Recorder(httpx.Response(200, json=MEMORY))
    client = MemoryClient(
        api_key="from-arg",
        base_url="http://127.0.0.1:9",
        http_client=httpx.Client(transport=httpx.MockTransport(recorder)),
    )

    client.memories.get("m1")

    assert recorder.requests[0].headers["Authorization"] == "Bearer from-arg"
    assert recorder.requests[0].url.host == "127.0.0.1"


def test_bad_settings_are_refused():
    with pytest.raises(ConfigurationError):
        MemoryClient(api_key="k", max_retries=-1)
    with pytest.raises(ConfigurationError):
        MemoryClient(api_key="k", timeout=0)
    with pytest.raises(ConfigurationError):
        MemoryClient(api_key="k", base_url="localhost:10000")


def test_ids_are_quoted_into_one_path_segment(sync_client):
    recorder = Recorder(httpx.Response(404, json={"detail": "Not found."}))
    client = sync_client(recorder)

    with pytest.raises(AIMemoryError):
        client.memories.get("../gdpr/delete?user_id=x")

    assert recorder.requests[0].url.raw_path == b"/api/v1/memory/..%2Fgdpr%2Fdelete%3Fuser_id%3Dx"


def test_timeouts_per_client_per_kind_and_per_call(sync_client):
    recorder = Recorder(
        lambda request: httpx.Response(
            200,
            json={"memories": [], "context_summary": ""}
            if request.url.path.endswith("context")
            else {"user_id": "u", "saved": False, "candidates": [], "dropped": []},
        )
    )
    default = sync_client(recorder)
    default.memories.context(user_id="u", query="q")
    default.memories.extract(user_id="u", text="I like tea")
    default.memories.context(user_id="u", query="q", timeout=0.25)
    custom = sync_client(recorder, timeout=2, long_timeout=30)
    custom.memories.context(user_id="u", query="q")
    custom.memories.extract(user_id="u", text="I like tea")

    assert [read_timeout(r) for r in recorder.requests] == [
        DEFAULT_TIMEOUT,
        LONG_TIMEOUT,
        0.25,
        2,
        30,
    ]


def test_memory_fields_are_typed(sync_client):
    client = sync_client(Recorder(httpx.Response(200, json=MEMORY)))

    got = client.memories.get(MEMORY["id"])

    assert isinstance(got, Memory)
    assert got.created_at == datetime(2026, 2, 4, 12, 0, tzinfo=UTC)
    assert got.updated_at.microsecond == 500000
    assert got.metadata == {"source": "settings"}
    assert got.model_dump(mode="json")["created_at"] == "2026-02-04T12:00:00Z"


def test_a_memory_round_trips_into_create(sync_client):
    recorder = Recorder(httpx.Response(200, json=MEMORY))
    client = sync_client(recorder)
    got = client.memories.get(MEMORY["id"])

    client.memories.create(**got.model_dump())

    sent = json.loads(recorder.requests[1].content)
    assert sent == {**MEMORY, "updated_at": "2026-02-04T12:00:01.500000Z"}


def test_unknown_fields_in_an_answer_are_ignored(sync_client):
    client = sync_client(Recorder(httpx.Response(200, json=memory(new_field=1))))

    assert client.memories.get("x").content == MEMORY["content"]


def test_context_returns_scored_memories_and_a_summary(sync_client):
    answer = {
        "memories": [{**MEMORY, "memory_type": "preference", "relevance_score": 0.87}],
        "context_summary": "- [preference] User prefers dark mode",
    }
    recorder = Recorder(httpx.Response(200, json=answer))
    client = sync_client(recorder)

    context = client.memories.context(
        user_id="user_123", query="theme?", limit=3, types=["preference"], min_score=0.2
    )

    assert isinstance(context, ContextResult)
    assert context.memories[0].relevance_score == 0.87
    assert context.memories[0].content == MEMORY["content"]
    assert context.context_summary.startswith("- [preference]")
    assert json.loads(recorder.requests[0].content) == {
        "user_id": "user_123",
        "query": "theme?",
        "limit": 3,
        "types": ["preference"],
        "min_score": 0.2,
    }


def test_each_method_calls_its_endpoint(sync_client):
    answers = {
        ("GET", "/api/v1/memory/m1"): MEMORY,
        ("PATCH", "/api/v1/memory/m1"): MEMORY,
        ("DELETE", "/api/v1/memory/m1"): {"id": "m1", "deleted": True},
        ("DELETE", "/api/v1/memory/m1/soft"): memory(is_deleted=True),
        ("GET", "/api/v1/memory/m1/history"): [
            {
                "version": 1,
                "event": "created",
                "recorded_at": "2026-02-04T12:00:00Z",
                "type": "fact",
                "content": "x",
                "key": None,
                "value": None,
                "importance": None,
                "confidence": 1.0,
                "metadata": {},
                "expires_at": None,
            }
        ],
        ("POST", "/api/v1/memory/upsert"): {"result": "unchanged", "memory": MEMORY},
        ("GET", "/api/v1/memory/stats"): {
            "total": 1,
            "deleted": 0,
            "expired": 0,
            "by_type": {"fact": 1},
            "by_importance": {},
            "oldest": "2026-02-04T12:00:00Z",
            "newest": "2026-02-04T12:00:00Z",
        },
        ("GET", "/api/v1/gdpr/export"): {
            "owner_id": "acme",
            "user_id": "u",
            "exported_at": "2026-02-04T12:00:00Z",
            "counts": {"memories": 1, "live": 1, "deleted": 0, "expired": 0},
            "memories": [{**MEMORY, "state": "live"}],
        },
        ("DELETE", "/api/v1/gdpr/delete"): {
            "owner_id": "acme",
            "user_id": "u",
            "deleted": {"memories": 1},
            "total": 1,
        },
    }
    recorder = Recorder(
        lambda request: httpx.Response(200, json=answers[(request.method, request.url.path)])
    )
    client = sync_client(recorder)

    assert client.memories.get("m1").id == MEMORY["id"]
    assert client.memories.update("m1", importance=5).key == "ui_theme"
    assert client.memories.delete("m1").deleted is True
    assert client.memories.soft_delete("m1", user_id="u").is_deleted is True
    assert client.memories.history("m1")[0].event == "created"
    assert client.memories.upsert(user_id="u", type="fact", content="x", key="k").result == (
        "unchanged"
    )
    assert client.memories.stats(user_id="u").by_type == {"fact": 1}
    assert client.gdpr.export(user_id="u").memories[0].state == "live"
    assert client.gdpr.erase(user_id="u").total == 1

    patch = recorder.requests[1]
    assert json.loads(patch.content) == {"importance": 5}
    assert "Idempotency-Key" not in patch.headers
    assert recorder.requests[3].url.params["user_id"] == "u"
    assert recorder.requests[8].url.params["user_id"] == "u"


@pytest.mark.anyio
async def test_async_client_has_the_same_methods(async_client):
    recorder = Recorder(httpx.Response(200, json=MEMORY))
    async with async_client(recorder) as client:
        created = await client.memories.create(user_id="u", type="fact", content="x")
        fetched = await client.memories.get(created.id)
    assert fetched == created
    assert recorder.requests[0].headers["Idempotency-Key"]

    sync_methods = {n for n in dir(MemoryClient(api_key="k").memories) if not n.startswith("_")}
    async_methods = {n for n in dir(client.memories) if not n.startswith("_")}
    assert sync_methods == async_methods


def test_an_httpx_timeout_sets_each_limit(sync_client):
    recorder = Recorder(httpx.Response(200, json=MEMORY))
    client = sync_client(recorder, timeout=httpx.Timeout(3.0, connect=0.5))

    client.memories.get("m1")
    client.memories.get("m1", timeout=httpx.Timeout(9.0))

    first, second = (r.extensions["timeout"] for r in recorder.requests)
    assert (first["connect"], first["read"]) == (0.5, 3.0)
    assert (second["connect"], second["read"]) == (9.0, 9.0)
