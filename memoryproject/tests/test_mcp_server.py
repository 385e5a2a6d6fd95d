"""aimemory-mcp, the MCP server of the client package, driven by the official mcp client
over stdio and over streamable HTTP, against the real service (gunicorn, PostgreSQL)."""

import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters

from memoryproject.tests.servers import free_port, manage, wait_until_up

pytestmark = pytest.mark.slow

MCP_COMMAND = str(Path(sys.executable).with_name("aimemory-mcp"))
TOOLS = {"remember", "recall", "list_memories", "forget"}


def mcp_env(service, key: str, user_id: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIMEMORY_")}
    env.update(AIMEMORY_API_KEY=key, AIMEMORY_BASE_URL=service.url, AIMEMORY_USER_ID=user_id)
    return env


@contextlib.asynccontextmanager
async def over_stdio(env: dict):
    async with Client(StdioServerParameters(command=MCP_COMMAND, args=[], env=env)) as client:
        yield client


@contextlib.asynccontextmanager
async def over_http(env: dict):
    port = free_port()
    process = subprocess.Popen(
        [MCP_COMMAND, "--transport", "http", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_up(f"http://127.0.0.1:{port}/mcp", process=process)
        async with Client(f"http://127.0.0.1:{port}/mcp") as client:
            yield client
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(params=["stdio", "http"])
def connect(request, service):
    """connect(key, user_id): an mcp client session with a fresh aimemory-mcp process."""
    transport = over_stdio if request.param == "stdio" else over_http

    def open_session(key: str, user_id: str):
        return transport(mcp_env(service, key, user_id))

    return open_session


def text_of(result) -> str:
    return " ".join(block.text for block in result.content if block.type == "text")


def call_all(connect, key: str, user_id: str, calls: list[tuple[str, dict]]) -> list:
    """Run the tool calls in one session; the results in order."""

    async def run():
        async with connect(key, user_id) as client:
            return [await client.call_tool(name, arguments) for name, arguments in calls]

    return anyio.run(run)


def test_tools_are_listed_with_their_schemas(connect, api_key_text, user_id):
    async def run():
        async with connect(api_key_text, user_id) as client:
            return (await client.list_tools()).tools

    tools = {tool.name: tool for tool in anyio.run(run)}

    assert set(tools) == TOOLS
    remember = tools["remember"].input_schema["properties"]
    assert tools["remember"].input_schema["required"] == ["content"]
    assert remember["content"]["maxLength"] == 10_000
    assert remember["type"]["enum"] == ["fact", "preference", "event", "system"]
    assert remember["type"]["default"] == "fact"
    importance = next(s for s in remember["importance"]["anyOf"] if s["type"] == "integer")
    assert (importance["minimum"], importance["maximum"]) == (1, 5)
    assert set(remember) == {"content", "type", "key", "value", "importance"}
    recall = tools["recall"].input_schema
    assert recall["required"] == ["query"]
    assert recall["properties"]["limit"]["default"] == 5
    listing = tools["list_memories"].input_schema["properties"]
    assert listing["limit"]["default"] == 20
    assert set(listing) == {"limit", "type"}
    assert tools["forget"].input_schema["required"] == ["memory_id"]
    assert "start of a task" in tools["recall"].description
    assert "small talk" in tools["remember"].description
    for tool in tools.values():
        assert tool.output_schema["type"] == "object"


def test_remember_recall_list_and_forget(connect, api_key_text, user_id):
    facts = [
        ("Works as a nurse at the city hospital", "fact"),
        ("Owns a dog, a beagle called Rex", "fact"),
        ("Is allergic to peanuts", "fact"),
    ]

    async def run():
        async with connect(api_key_text, user_id) as client:
            stored = [
                await client.call_tool("remember", {"content": content, "type": kind})
                for content, kind in facts
            ]
            recalled = await client.call_tool(
                "recall", {"query": "Which animals does the user have at home?", "limit": 1}
            )
            listed = await client.call_tool("list_memories", {})
            nut = stored[2].structured_content["memory"]["id"]
            forgotten = await client.call_tool("forget", {"memory_id": nut})
            after = await client.call_tool("list_memories", {"limit": 10, "type": "fact"})
            return stored, recalled, listed, forgotten, after

    stored, recalled, listed, forgotten, after = anyio.run(run)

    assert all(not r.is_error for r in stored)
    assert [r.structured_content["result"] for r in stored] == ["created"] * 3
    ids = [r.structured_content["memory"]["id"] for r in stored]
    assert json.loads(text_of(stored[0]))["memory"]["content"] == facts[0][0]  # also as text
    recall = recalled.structured_content
    assert [m["id"] for m in recall["memories"]] == [ids[1]]
    assert "beagle" in recall["context_summary"]
    assert 0 < recall["memories"][0]["relevance_score"] <= 1
    assert [m["id"] for m in listed.structured_content["memories"]] == ids[::-1]
    assert all(m["user_id"] == user_id for m in listed.structured_content["memories"])
    assert forgotten.structured_content == {"id": ids[2], "deleted": True}
    assert [m["id"] for m in after.structured_content["memories"]] == [ids[1], ids[0]]


def test_refused_calls_are_tool_errors_and_the_server_keeps_going(connect, api_key_text, user_id):
    results = call_all(
        connect,
        api_key_text,
        user_id,
        [
            ("remember", {"content": "Likes jazz", "type": "opinion"}),
            ("remember", {"content": "Likes jazz", "importance": 9}),
            ("remember", {"content": "x" * 10_001}),
            ("remember", {"content": "   "}),
            ("forget", {"memory_id": str(uuid.uuid4())}),
            ("remember", {"content": "Likes jazz", "type": "preference"}),
        ],
    )
    bad_type, bad_importance, too_long, blank, unknown, fine = results

    for refused in results[:-1]:
        assert refused.is_error
    assert "type" in text_of(bad_type)
    assert "'fact', 'preference', 'event'" in text_of(bad_type)
    assert "importance" in text_of(bad_importance)
    assert "content" in text_of(too_long)
    # What the tool's schema allows but the API refuses carries the API's detail and fields.
    assert "(400)" in text_of(blank)
    assert "Must not be empty" in text_of(blank)
    assert '"content"' in text_of(blank)
    assert "404" in text_of(unknown)
    assert not fine.is_error
    assert fine.structured_content["memory"]["type"] == "preference"


def test_a_revoked_key_is_a_clear_tool_error(connect, service, user_id):
    output = manage(service.env, "generate_api_key", "mcp-revoked")
    key = re.search(r"aimsk_live_[A-Za-z0-9_-]+", output).group(0)
    key_id = re.search(r"Key ID:\s+(\S+)", output).group(1)
    manage(service.env, "revoke_api_key", key_id)

    recalled, listed = call_all(
        connect, key, user_id, [("recall", {"query": "anything"}), ("list_memories", {})]
    )

    for result in (recalled, listed):
        assert result.is_error
        assert "401" in text_of(result)
        assert "Authentication required" in text_of(result)
        assert "AIMEMORY_API_KEY" in text_of(result)


def test_stdout_carries_only_protocol_messages(service, api_key_text, user_id):
    """Logs at DEBUG (httpx, the SDK, ours) must all go to stderr under stdio."""
    messages = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "stdout-test", "version": "0"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {"name": "remember", "arguments": {"content": "Plays the cello"}},
        },
        {
            "jsonrpc": "2.0",
            "id": 4,
            "method": "tools/call",
            "params": {"name": "remember", "arguments": {"content": "   "}},
        },
    ]
    process = subprocess.Popen(
        [MCP_COMMAND, "--log-level", "DEBUG"],
        env=mcp_env(service, api_key_text, user_id),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stderr_lines: list[str] = []
    reader = threading.Thread(target=lambda: stderr_lines.extend(process.stderr), daemon=True)
    reader.start()
    stdout_lines = []
    try:
        for message in messages:
            process.stdin.write(json.dumps(message) + "\n")
            process.stdin.flush()
        answered = set()
        while answered != {1, 2, 3, 4}:  # stdin stays open until every answer is out
            line = process.stdout.readline()
            assert line, f"aimemory-mcp stopped: {''.join(stderr_lines)[-2000:]}"
            stdout_lines.append(line)
            answered |= {json.loads(line).get("id")} - {None}
        process.stdin.close()
        stdout_lines.extend(process.stdout)  # anything written after, to the end
        process.wait(timeout=30)
    finally:
        process.kill()
        process.wait()
    reader.join(timeout=10)
    stdout = "".join(stdout_lines)
    stderr = "".join(stderr_lines)

    lines = [line for line in stdout.splitlines() if line.strip()]
    parsed = [json.loads(line) for line in lines]  # every stdout line is a JSON message
    assert all(message["jsonrpc"] == "2.0" for message in parsed)
    answers = {message["id"]: message for message in parsed if "id" in message}
    assert set(answers) == {1, 2, 3, 4}
    assert answers[3]["result"]["structuredContent"]["result"] == "created"
    assert answers[4]["result"]["isError"] is True
    assert "HTTP Request" in stderr  # the logs were there, on stderr


def test_missing_key_stops_at_start_with_a_clear_message(service):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIMEMORY_")}
    result = subprocess.run(
        [MCP_COMMAND], env=env, capture_output=True, text=True, timeout=60, check=False
    )

    assert result.returncode == 2
    assert "AIMEMORY_API_KEY" in result.stderr
    assert result.stdout == ""


def test_remember_with_a_key_creates_then_updates(connect, api_key_text, user_id):
    theme = {"type": "preference", "key": "ui_theme"}
    first, second, again, listed = call_all(
        connect,
        api_key_text,
        user_id,
        [
            ("remember", {**theme, "content": "Prefers dark mode", "value": "dark"}),
            ("remember", {**theme, "content": "Prefers light mode now", "value": "light"}),
            ("remember", {**theme, "content": "Prefers light mode now", "value": "light"}),
            ("list_memories", {}),
        ],
    )

    assert [r.structured_content["result"] for r in (first, second, again)] == [
        "created",
        "updated",
        "unchanged",
    ]
    memory_id = first.structured_content["memory"]["id"]
    assert second.structured_content["memory"]["id"] == memory_id
    assert second.structured_content["memory"]["value"] == "light"
    assert [m["id"] for m in listed.structured_content["memories"]] == [memory_id]
