"""The MCP server in process (mcp's Client connected to MCPServer directly), with the
memory service mocked by httpx.MockTransport."""

import json

import anyio
import httpx
import pytest
from mcp import Client

from aimemory import (
    APIConnectionError,
    APIStatusError,
    AsyncMemoryClient,
    AuthenticationError,
    NotFoundError,
    RateLimitError,
    ServiceUnavailableError,
    ValidationError,
)
from aimemory.mcp import build_server, main, tool_error_message
from tests.mockapi import MEMORY, Recorder

RATE_LIMITED = httpx.Response(
    429, json={"detail": "Rate limit exceeded"}, headers={"Retry-After": "0"}
)


def call(recorder: Recorder, name: str, arguments: dict, **options):
    async def run():
        http = httpx.AsyncClient(transport=httpx.MockTransport(recorder))
        client = AsyncMemoryClient(api_key="aimsk_live_test", http_client=http, **options)
        async with Client(build_server(client, user_id="agent-user")) as session:
            first = await session.call_tool(name, arguments)
            # The server is still there after whatever happened.
            listed = await session.list_tools()
            return first, listed

    result, listed = anyio.run(run)
    assert {tool.name for tool in listed.tools} == {"remember", "recall", "list_memories", "forget"}
    return result


def text_of(result) -> str:
    return " ".join(block.text for block in result.content if block.type == "text")


def test_remember_without_key_creates_for_the_configured_user():
    recorder = Recorder(httpx.Response(200, json=MEMORY))

    result = call(recorder, "remember", {"content": "Likes tea", "importance": 3})

    assert not result.is_error
    assert result.structured_content["result"] == "created"
    assert result.structured_content["memory"]["id"] == MEMORY["id"]
    request = recorder.requests[0]
    assert request.url.path == "/api/v1/memory"
    assert json.loads(request.content) == {
        "user_id": "agent-user",
        "type": "fact",
        "content": "Likes tea",
        "importance": 3,
    }


def test_remember_with_key_is_an_upsert():
    recorder = Recorder(httpx.Response(200, json={"result": "updated", "memory": MEMORY}))

    result = call(recorder, "remember", {"content": "Likes green tea", "key": "drink"})

    assert result.structured_content["result"] == "updated"
    assert recorder.requests[0].url.path == "/api/v1/memory/upsert"
    assert json.loads(recorder.requests[0].content)["key"] == "drink"


def test_a_429_is_retried_like_the_client_does():
    recorder = Recorder(RATE_LIMITED, httpx.Response(200, json=MEMORY))

    result = call(recorder, "remember", {"content": "Likes tea"})

    assert not result.is_error
    assert len(recorder.requests) == 2
    assert len({r.headers["Idempotency-Key"] for r in recorder.requests}) == 1


def test_an_api_refusal_is_a_tool_error_with_the_detail_and_fields():
    body = {
        "detail": "content: Must not be empty or only whitespace.",
        "errors": {"content": ["Must not be empty or only whitespace."]},
    }
    result = call(Recorder(httpx.Response(400, json=body)), "remember", {"content": " "})

    assert result.is_error
    assert "content: Must not be empty or only whitespace." in text_of(result)
    assert '{"content": ["Must not be empty or only whitespace."]}' in text_of(result)


def test_an_argument_the_schema_refuses_names_the_argument_and_calls_nothing():
    recorder = Recorder(httpx.Response(200, json=MEMORY))

    result = call(recorder, "recall", {"query": "tea", "limit": 500})

    assert result.is_error
    assert "limit" in text_of(result)
    assert recorder.requests == []


def test_an_unreachable_service_is_a_tool_error():
    result = call(Recorder(httpx.ConnectError("refused")), "list_memories", {}, max_retries=0)

    assert result.is_error
    assert "Could not reach the memory service at http://localhost:10000" in text_of(result)


def test_list_memories_pages_until_the_limit():
    def paged(request: httpx.Request) -> httpx.Response:
        page = [dict(MEMORY, id=f"m{request.url.params.get('cursor', '0')}{n}") for n in range(2)]
        return httpx.Response(200, json=page, headers={"X-Next-Cursor": "next"})

    recorder = Recorder(paged)
    result = call(recorder, "list_memories", {"limit": 3, "type": "preference"})

    assert [m["id"] for m in result.structured_content["memories"]] == ["m00", "m01", "mnext0"]
    assert recorder.requests[0].url.params["type"] == "preference"
    assert recorder.requests[0].url.params["user_id"] == "agent-user"


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            ValidationError("type: bad", body={"errors": {"type": ["bad"]}}),
            'type: bad. Field errors: {"type"',
        ),
        (AuthenticationError("Authentication required", status_code=401), "AIMEMORY_API_KEY"),
        (NotFoundError("Not found.", status_code=404), "No such memory (404: Not found.)"),
        (
            RateLimitError("Rate limit exceeded", headers=httpx.Headers({"Retry-After": "9"})),
            "Retry in 9 s",
        ),
        (
            ServiceUnavailableError("Database unavailable", status_code=503),
            "unavailable (503: Database unavailable)",
        ),
        (APIStatusError("Bad gateway", status_code=502), "answered 502: Bad gateway"),
        (APIConnectionError("refused"), "Could not reach the memory service at http://m"),
    ],
)
def test_every_client_error_becomes_a_message_for_the_model(error, expected):
    assert expected in tool_error_message(error, base_url="http://m")


def test_missing_key_exits_with_a_message(monkeypatch, capsys):
    monkeypatch.delenv("AIMEMORY_API_KEY", raising=False)

    with pytest.raises(SystemExit) as exited:
        main([])

    assert exited.value.code == 2
    captured = capsys.readouterr()
    assert "AIMEMORY_API_KEY" in captured.err
    assert captured.out == ""
