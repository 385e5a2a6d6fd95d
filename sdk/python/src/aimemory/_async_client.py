"""AsyncMemoryClient: the asynchronous client, with the same methods as MemoryClient.

Only the I/O differs; requests, retries and errors come from the same core."""

from __future__ import annotations

import builtins
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal, TypeVar, Unpack, overload

import anyio
import httpx

from aimemory import _operations as ops
from aimemory._core import (
    DEFAULT_MAX_RETRIES,
    ChatStreamState,
    Operation,
    Timeout,
    build_request,
    error_for,
    parse_success,
    resolve_settings,
    retry_delay_for_error,
    retry_delay_for_status,
    transport_error,
)
from aimemory._models import (
    BatchDeleteResult,
    ChatResponse,
    ContextResult,
    DeleteResult,
    ErasureResult,
    ExtractionResult,
    HistoryEntry,
    Memory,
    MemoryFields,
    MemoryPage,
    MemoryStats,
    MemoryType,
    Message,
    UpsertResult,
    UserExport,
)

T = TypeVar("T")


class AsyncMemoryClient:
    """An asyncio (or trio) client for the AI Memory Service; see MemoryClient.

    api_key and base_url default to the AIMEMORY_API_KEY and AIMEMORY_BASE_URL environment
    variables (base_url: the service root, http://localhost:10000 when unset). timeout is
    the default per-call limit in seconds (5); chat, extract and GDPR calls wait up to
    long_timeout (120). Every method also takes timeout= for that call alone. A 429, a 503
    and connection failures are retried up to max_retries times.

    Use it as a context manager, or call close(), to release its connections.
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: Timeout | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        *,
        long_timeout: Timeout | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._settings = resolve_settings(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            long_timeout=long_timeout,
            max_retries=max_retries,
        )
        self._owns_http = http_client is None
        self._http = http_client if http_client is not None else httpx.AsyncClient()
        self.memories = AsyncMemories(self)
        self.gdpr = AsyncGdpr(self)

    @property
    def base_url(self) -> str:
        """The service root the client calls, e.g. http://localhost:10000."""
        return self._settings.base_url

    @property
    def max_retries(self) -> int:
        """How many times a call is retried after a 429, a 503 or a connection failure."""
        return self._settings.max_retries

    async def close(self) -> None:
        """Close the connections (not those of an http_client passed in)."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncMemoryClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def _send(self, op: Operation[Any]) -> httpx.Response:
        request = build_request(self._http, self._settings, op)
        attempt = 0
        delay: float | None
        while True:
            try:
                response = await self._http.send(request, stream=op.stream)
            except httpx.TransportError as error:
                delay = retry_delay_for_error(error, op, attempt, self._settings)
            else:
                delay = retry_delay_for_status(response, attempt, self._settings, op)
                if delay is None:
                    return response
                await response.aclose()
            await anyio.sleep(delay)
            attempt += 1

    async def _run(self, op: Operation[T]) -> T:
        return parse_success(await self._send(op), op)

    @overload
    async def chat(
        self,
        *,
        user_id: str,
        message: str,
        history: Sequence[Message] | None = None,
        memory_limit: int | None = None,
        extract: bool = False,
        stream: Literal[False] = False,
        timeout: Timeout | None = None,
    ) -> ChatResponse: ...

    @overload
    async def chat(
        self,
        *,
        user_id: str,
        message: str,
        history: Sequence[Message] | None = None,
        memory_limit: int | None = None,
        extract: bool = False,
        stream: Literal[True],
        timeout: Timeout | None = None,
    ) -> AsyncChatStream: ...

    async def chat(
        self,
        *,
        user_id: str,
        message: str,
        history: Sequence[Message] | None = None,
        memory_limit: int | None = None,
        extract: bool = False,
        stream: bool = False,
        timeout: Timeout | None = None,
    ) -> ChatResponse | AsyncChatStream:
        """Answer message with the user's memories in the system prompt.

        With stream=True, returns an AsyncChatStream: iterate it (async for) for the text
        deltas as the model writes them; its last item is the full ChatResponse. With
        extract=True, memories found in the exchange are saved."""
        op = ops.chat(
            user_id=user_id,
            message=message,
            history=history,
            memory_limit=memory_limit,
            extract=extract,
            stream=stream,
            timeout=timeout,
        )
        if not stream:
            return await self._run(op)
        response = await self._send(op)
        if response.status_code >= 400:
            try:
                await response.aread()
            finally:
                await response.aclose()
            raise error_for(response)
        return AsyncChatStream(response)


class AsyncChatStream(AsyncIterator[str | ChatResponse]):
    """The text deltas of a streamed chat answer, then the full ChatResponse as the last
    item (also kept in `final`). An `error` event raises the matching APIStatusError; a
    stream cut off before its end raises APIConnectionError."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self._state = ChatStreamState()
        self._items = self._read()

    @property
    def final(self) -> ChatResponse | None:
        """The full answer, once the stream has delivered it."""
        return self._state.final

    async def _read(self) -> AsyncGenerator[str | ChatResponse, None]:
        try:
            async for line in self._response.aiter_lines():
                item = self._state.feed(line)
                if item is not None:
                    yield item
            self._state.finish()
        except httpx.TransportError as error:
            raise transport_error(error) from error
        finally:
            await self._response.aclose()

    async def __anext__(self) -> str | ChatResponse:
        return await self._items.__anext__()

    def __aiter__(self) -> AsyncChatStream:
        return self

    async def text(self) -> ChatResponse:
        """Read the stream to its end and return the full answer."""
        async for _ in self:
            pass
        assert self._state.final is not None  # finish() raised otherwise
        return self._state.final

    async def close(self) -> None:
        """Stop reading and release the connection (the rest of the answer is dropped)."""
        await self._items.aclose()
        await self._response.aclose()

    async def __aenter__(self) -> AsyncChatStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


class AsyncMemories:
    """client.memories: store, read, change, delete, list and retrieve memories."""

    def __init__(self, client: AsyncMemoryClient) -> None:
        self._client = client

    async def create(
        self,
        *,
        idempotency_key: str | None = None,
        timeout: Timeout | None = None,
        **fields: Unpack[MemoryFields],
    ) -> Memory:
        """Store one memory (user_id, content and type are required).

        Retries carry one Idempotency-Key, made for this call unless you give one."""
        op = ops.create(fields, idempotency_key=idempotency_key, timeout=timeout)
        return await self._client._run(op)

    async def create_many(
        self,
        memories: Iterable[Mapping[str, Any]],
        *,
        idempotency_key: str | None = None,
        timeout: Timeout | None = None,
    ) -> builtins.list[Memory]:
        """Store 1 to 100 memories at once, all or nothing; returned in the same order.

        A ValidationError's errors name the bad items by index:
        {"memories": {"3": {"content": [...]}}}."""
        op = ops.create_many(memories, idempotency_key=idempotency_key, timeout=timeout)
        return await self._client._run(op)

    async def get(self, memory_id: str | uuid.UUID, *, timeout: Timeout | None = None) -> Memory:
        """One live memory; NotFoundError if it does not exist or is not yours."""
        return await self._client._run(ops.get(memory_id, timeout=timeout))

    async def update(
        self,
        memory_id: str | uuid.UUID,
        *,
        timeout: Timeout | None = None,
        **fields: Unpack[MemoryFields],
    ) -> Memory:
        """Change the given fields of a live memory; updated_at moves."""
        return await self._client._run(ops.update(memory_id, fields, timeout=timeout))

    async def delete(
        self, memory_id: str | uuid.UUID, *, timeout: Timeout | None = None
    ) -> DeleteResult:
        """Delete a memory for good, in any state."""
        return await self._client._run(ops.delete(memory_id, timeout=timeout))

    async def delete_many(
        self,
        ids: Iterable[str | uuid.UUID],
        *,
        idempotency_key: str | None = None,
        timeout: Timeout | None = None,
    ) -> BatchDeleteResult:
        """Delete 1 to 100 memories for good, in one transaction."""
        op = ops.delete_many(ids, idempotency_key=idempotency_key, timeout=timeout)
        return await self._client._run(op)

    async def soft_delete(
        self,
        memory_id: str | uuid.UUID,
        *,
        user_id: str | None = None,
        timeout: Timeout | None = None,
    ) -> Memory:
        """Mark a live memory deleted (kept for audit); with user_id, only that user's."""
        return await self._client._run(ops.soft_delete(memory_id, user_id=user_id, timeout=timeout))

    async def upsert(
        self,
        *,
        idempotency_key: str | None = None,
        timeout: Timeout | None = None,
        **fields: Unpack[MemoryFields],
    ) -> UpsertResult:
        """Create, or change the user's live memory with the same key (key is required).

        The result says created, updated or unchanged."""
        op = ops.upsert(fields, idempotency_key=idempotency_key, timeout=timeout)
        return await self._client._run(op)

    async def history(
        self, memory_id: str | uuid.UUID, *, timeout: Timeout | None = None
    ) -> builtins.list[HistoryEntry]:
        """Every version of a memory, oldest first."""
        return await self._client._run(ops.history(memory_id, timeout=timeout))

    async def stats(self, *, user_id: str, timeout: Timeout | None = None) -> MemoryStats:
        """Counts of a user's memories: live total, deleted, expired, by type and importance."""
        return await self._client._run(ops.stats(user_id=user_id, timeout=timeout))

    async def context(
        self,
        *,
        user_id: str,
        query: str = "",
        limit: int | None = None,
        types: Sequence[MemoryType] | None = None,
        min_importance: int | None = None,
        min_score: float | None = None,
        max_chars: int | None = None,
        timeout: Timeout | None = None,
    ) -> ContextResult:
        """The memories that matter for query, best first, with relevance_score, and a
        context_summary ready to paste into a system prompt."""
        op = ops.context(
            user_id=user_id,
            query=query,
            limit=limit,
            types=types,
            min_importance=min_importance,
            min_score=min_score,
            max_chars=max_chars,
            timeout=timeout,
        )
        return await self._client._run(op)

    async def extract(
        self,
        *,
        user_id: str,
        messages: Sequence[Message] | None = None,
        text: str | None = None,
        save: bool = False,
        timeout: Timeout | None = None,
    ) -> ExtractionResult:
        """Ask the LLM for candidate memories in a conversation (messages, or text as one
        user message); with save=True the valid ones are stored."""
        op = ops.extract(user_id=user_id, messages=messages, text=text, save=save, timeout=timeout)
        return await self._client._run(op)

    async def list_page(
        self,
        *,
        user_id: str,
        type: MemoryType | None = None,
        key: str | None = None,
        min_importance: int | None = None,
        page_size: int | None = None,
        cursor: str | None = None,
        timeout: Timeout | None = None,
    ) -> MemoryPage:
        """One page of the user's live memories, newest first, and the next page's cursor
        (None on the last page). For callers who page themselves."""
        op = ops.list_page(
            user_id=user_id,
            type=type,
            key=key,
            min_importance=min_importance,
            page_size=page_size,
            cursor=cursor,
            timeout=timeout,
        )
        return await self._client._run(op)

    async def list(
        self,
        *,
        user_id: str,
        type: MemoryType | None = None,
        key: str | None = None,
        min_importance: int | None = None,
        page_size: int | None = None,
        limit: int | None = None,
        timeout: Timeout | None = None,
    ) -> AsyncIterator[Memory]:
        """The user's live memories, newest first, fetched page by page (page_size, 1 to
        100, default 20) as you iterate; limit stops after that many."""
        cursor: str | None = None
        returned = 0
        while True:
            page = await self.list_page(
                user_id=user_id,
                type=type,
                key=key,
                min_importance=min_importance,
                page_size=page_size,
                cursor=cursor,
                timeout=timeout,
            )
            for memory in page.memories:
                if limit is not None and returned >= limit:
                    return
                returned += 1
                yield memory
            cursor = page.next_cursor
            if cursor is None or (limit is not None and returned >= limit):
                return


class AsyncGdpr:
    """client.gdpr: a user's data export and erasure."""

    def __init__(self, client: AsyncMemoryClient) -> None:
        self._client = client

    async def export(self, *, user_id: str, timeout: Timeout | None = None) -> UserExport:
        """Everything stored about user_id under your key's owner, in every state."""
        return await self._client._run(ops.gdpr_export(user_id=user_id, timeout=timeout))

    async def erase(self, *, user_id: str, timeout: Timeout | None = None) -> ErasureResult:
        """Erase everything stored about user_id under your key's owner."""
        return await self._client._run(ops.gdpr_erase(user_id=user_id, timeout=timeout))
