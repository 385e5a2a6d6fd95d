"""aimemory-mcp: memory for agents, over the Model Context Protocol.

A thin MCP server (the official `mcp` SDK's high-level MCPServer) whose four tools call
the memory service through AsyncMemoryClient, for one end user (AIMEMORY_USER_ID):

    remember(content, type="fact", key=None, value=None, importance=None)
    recall(query, limit=5)
    list_memories(limit=20, type=None)
    forget(memory_id)

    aimemory-mcp                                          # stdio (a desktop app starts it)
    aimemory-mcp --transport http --host 127.0.0.1 --port 8765   # streamable HTTP at /mcp

Configuration: AIMEMORY_API_KEY, AIMEMORY_BASE_URL, AIMEMORY_USER_ID (default "default").
Under stdio, stdout carries the protocol and nothing else; logs go to stderr.
"""

import argparse
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from aimemory._async_client import AsyncMemoryClient
from aimemory._core import __version__
from aimemory._exceptions import (
    AIMemoryError,
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    ConfigurationError,
    NotFoundError,
    RateLimitError,
    ServiceUnavailableError,
    ValidationError,
)
from aimemory._models import ContextMemory, Memory, MemoryType

try:
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp_types import ToolAnnotations
except ImportError as missing:  # pragma: no cover - the message is the point
    raise ImportError(
        'aimemory-mcp needs the mcp extra: pip install "aimemory[mcp]"'
        ' (from a checkout: pip install "./sdk/python[mcp]")'
    ) from missing

logger = logging.getLogger("aimemory.mcp")

MAX_CONTENT_CHARS = 10_000  # Memory Contract v1
MAX_KEY_CHARS = 255

INSTRUCTIONS = """\
Long-term memory about the user you are working with, kept across conversations.
Call `recall` at the start of a task, with the user's request as the query, to learn what
you already know about them. Call `remember` when the user states a durable fact, a
preference or a decision worth knowing next time; not for small talk or for things that
only matter in this conversation. Use `forget` when the user asks you to, or when a memory
is wrong."""


class RememberResult(BaseModel):
    """What `remember` did: created a memory, updated the one with the same key, or found
    it already holding these values (unchanged)."""

    result: Literal["created", "updated", "unchanged"]
    memory: Memory


class RecallResult(BaseModel):
    """The memories relevant to the query, best first, and a summary to use as context."""

    context_summary: str
    memories: list[ContextMemory]


class ListResult(BaseModel):
    memories: list[Memory]


class ForgetResult(BaseModel):
    id: str
    deleted: bool


def tool_error_message(error: AIMemoryError, *, base_url: str) -> str:
    """What the model reads when a call to the memory service fails: the API's detail,
    and what can be done about it."""
    if isinstance(error, ValidationError):
        fields = f" Field errors: {json.dumps(error.errors)}" if error.errors else ""
        detail = error.detail if error.detail.endswith((".", "!", "?")) else error.detail + "."
        return f"The memory service refused the call (400): {detail}{fields}"
    if isinstance(error, AuthenticationError):
        return (
            f"The memory service refused the API key (401: {error.detail}). The key in "
            "AIMEMORY_API_KEY is missing, mistyped or revoked; ask the user to check it."
        )
    if isinstance(error, NotFoundError):
        return f"No such memory (404: {error.detail})."
    if isinstance(error, RateLimitError):
        wait = f" Retry in {error.retry_after:g} s." if error.retry_after is not None else ""
        return f"The memory service is rate limiting this key (429: {error.detail}).{wait}"
    if isinstance(error, ServiceUnavailableError):
        return f"The memory service is unavailable (503: {error.detail}). Try again later."
    if isinstance(error, APIStatusError):
        return f"The memory service answered {error.status_code}: {error.detail}"
    if isinstance(error, APIConnectionError):
        return f"Could not reach the memory service at {base_url}: {error}"
    return f"The memory service call failed: {error}"


@contextmanager
def tool_errors(*, base_url: str) -> Iterator[None]:
    """The one place where the client's exceptions become tool errors. MCPServer shows the
    model only "Error executing tool …" for any exception other than ToolError; this way
    the model reads the API's detail and can fix its call, and the server keeps running."""
    try:
        yield
    except AIMemoryError as error:
        raise ToolError(tool_error_message(error, base_url=base_url)) from error


def build_server(client: AsyncMemoryClient, *, user_id: str) -> MCPServer[Any]:
    """The MCP server with the four memory tools, working on user_id's memories."""

    @asynccontextmanager
    async def lifespan(_: MCPServer[Any]) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await client.close()

    server: MCPServer[Any] = MCPServer(
        "aimemory",
        title="AI Memory",
        version=__version__,
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
    )
    base_url = client.base_url

    @server.tool(
        description="Store a durable fact, preference, event or instruction about the user, "
        "so that you know it in later conversations. Call it when the user tells you "
        "something worth knowing next time (their job, a preference, a decision, a date); "
        "do not store small talk or what only matters right now. Write `content` as a "
        "self-contained sentence about the user. Give a `key` (like `ui_theme`) for a fact "
        "that can change: remembering the same key again updates that memory instead of "
        "adding a second one, and the result says created, updated or unchanged.",
        annotations=ToolAnnotations(
            title="Remember", read_only_hint=False, destructive_hint=False, idempotent_hint=True
        ),
    )
    async def remember(
        content: Annotated[
            str,
            Field(
                min_length=1,
                max_length=MAX_CONTENT_CHARS,
                description="The memory, as a self-contained sentence "
                "(e.g. 'Prefers dark mode in every app').",
            ),
        ],
        type: Annotated[
            MemoryType,
            Field(
                description="fact (about the user), preference (what they like or want), "
                "event (something that happened or will), system (an instruction for you)."
            ),
        ] = "fact",
        key: Annotated[
            str | None,
            Field(
                min_length=1,
                max_length=MAX_KEY_CHARS,
                description="A stable name for this fact (e.g. 'ui_theme', 'home_city'). "
                "With a key, remembering again updates the memory with that key.",
            ),
        ] = None,
        value: Annotated[
            Any,
            Field(description="Optional structured value for the key (e.g. 'dark', 42)."),
        ] = None,
        importance: Annotated[
            int | None,
            Field(ge=1, le=5, description="1 (trivia) to 5 (essential); optional."),
        ] = None,
    ) -> RememberResult:
        fields: dict[str, Any] = {"user_id": user_id, "type": type, "content": content}
        if value is not None:
            fields["value"] = value
        if importance is not None:
            fields["importance"] = importance
        with tool_errors(base_url=base_url):
            if key is None:
                memory = await client.memories.create(**fields)
                return RememberResult(result="created", memory=memory)
            upserted = await client.memories.upsert(**fields, key=key)
            return RememberResult(result=upserted.result, memory=upserted.memory)

    @server.tool(
        description="Find what you already know about the user that matters for a task or "
        "question. Call it at the start of a task, with the user's request (or its topic) "
        "as the query, before you answer. Returns the most relevant memories, best first, "
        "each with a relevance_score from 0 to 1, and a context_summary to use as context.",
        annotations=ToolAnnotations(title="Recall", read_only_hint=True),
    )
    async def recall(
        query: Annotated[
            str,
            Field(
                max_length=MAX_CONTENT_CHARS,
                description="What you need to know about, in natural language "
                "(e.g. the user's message). Empty: the most important memories.",
            ),
        ],
        limit: Annotated[int, Field(ge=1, le=50, description="At most this many memories.")] = 5,
    ) -> RecallResult:
        with tool_errors(base_url=base_url):
            context = await client.memories.context(user_id=user_id, query=query, limit=limit)
        return RecallResult(context_summary=context.context_summary, memories=context.memories)

    @server.tool(
        description="List the user's stored memories, newest first, optionally of one type. "
        "Use it to review what is stored (for example before cleaning up, or when the user "
        "asks what you remember); to find memories about a topic, use recall instead.",
        annotations=ToolAnnotations(title="List memories", read_only_hint=True),
    )
    async def list_memories(
        limit: Annotated[int, Field(ge=1, le=100, description="At most this many.")] = 20,
        type: Annotated[MemoryType | None, Field(description="Only memories of this type.")] = None,
    ) -> ListResult:
        with tool_errors(base_url=base_url):
            memories = [
                memory
                async for memory in client.memories.list(
                    user_id=user_id, type=type, page_size=min(limit, 100), limit=limit
                )
            ]
        return ListResult(memories=memories)

    @server.tool(
        description="Delete one memory for good, by its id (from recall or list_memories). "
        "Call it when the user asks you to forget something, or when a memory is wrong and "
        "should not be kept (to correct a fact that has a key, remember it again instead).",
        annotations=ToolAnnotations(
            title="Forget", read_only_hint=False, destructive_hint=True, idempotent_hint=True
        ),
    )
    async def forget(
        memory_id: Annotated[
            str,
            Field(min_length=1, max_length=64, description="The memory's id (a UUID)."),
        ],
    ) -> ForgetResult:
        with tool_errors(base_url=base_url):
            deleted = await client.memories.delete(memory_id)
        return ForgetResult(id=deleted.id, deleted=deleted.deleted)

    return server


def main(argv: list[str] | None = None) -> None:
    """The aimemory-mcp command."""
    parser = argparse.ArgumentParser(
        prog="aimemory-mcp",
        description="An MCP server that gives agents a long-term memory of their user, "
        "backed by the AI Memory Service. Configured by AIMEMORY_API_KEY, AIMEMORY_BASE_URL "
        "and AIMEMORY_USER_ID.",
    )
    parser.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    parser.add_argument("--host", default="127.0.0.1", help="for --transport http")
    parser.add_argument("--port", type=int, default=8000, help="for --transport http")
    parser.add_argument(
        "--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    args = parser.parse_args(argv)

    # Before anything else can log: under stdio, stdout is the protocol.
    logging.basicConfig(
        level=args.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        client = AsyncMemoryClient()
    except ConfigurationError as error:
        print(f"aimemory-mcp: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    user_id = os.environ.get("AIMEMORY_USER_ID", "").strip() or "default"
    server = build_server(client, user_id=user_id)
    logger.info(
        "serving memories of user %r from %s over %s", user_id, client.base_url, args.transport
    )
    if args.transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host=args.host, port=args.port, streamable_http_path="/mcp")


if __name__ == "__main__":
    main()
