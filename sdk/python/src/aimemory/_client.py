"""MemoryClient: the synchronous client."""

from __future__ import annotations

import builtins
import time
import uuid
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal, TypeVar, Unpack, overload

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


class MemoryClient:
    """A client for the AI Memory Service.

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
        http_client: httpx.Client | None = None,
    ) -> None:
        self._settings = resolve_settings(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            long_timeout=long_timeout,
            max_retries=max_retries,
        )
        self._owns_http = http_client is None
        self._http = http_client if http_client is not None else httpx.Client()
        self.memories = Memories(self)
        self.gdpr = Gdpr(self)

    @property
    def base_url(self) -> str:
        """The service root the client calls, e.g. http://localhost:10000."""
        return self._settings.base_url

    @property
    def max_retries(self) -> int:
        """How many times a call is retried after a 429, a 503 or a connection failure."""
        return self._settings.max_retries

    def close(self) -> None:
        """Close the connections (not those of an http_client passed in)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> MemoryClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _send(self, op: Operation[Any]) -> httpx.Response:
        request = build_request(self._http, self._settings, op)
        attempt = 0
        delay: float | None
        while True:
            try:
                response = self._http.send(request, stream=op.stream)
            except httpx.TransportError as error:
                delay = retry_delay_for_error(error, op, attempt, self._settings)
            else:
                delay = retry_delay_for_status(response, attempt, self._settings, op)
                if delay is None:
                    return response
                response.close()
            time.sleep(delay)
            attempt += 1

    def _run(self, op: Operation[T]) -> T:
        return parse_success(self._send(op), op)

    @overload
    def chat(
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
    def chat(
        self,
        *,
        user_id: str,
        message: str,
        history: Sequence[Message] | None = None,
        memory_limit: int | None = None,
        extract: bool = False,
        stream: Literal[True],
        timeout: Timeout | None = None,
    ) -> ChatStream: ...

    def chat(
        self,
        *,
        user_id: str,
        message: str,
        history: Sequence[Message] | None = None,
        memory_limit: int | None = None,
        extract: bool = False,
        stream: bool = False,
        timeout: Timeout | None = None,
    ) -> ChatResponse | ChatStream:
        """Answer message with the user's memories in the system prompt.

        With stream=True, returns a ChatStream: iterate it for the text deltas as the model
        writes them; its last item is the full ChatResponse. With extract=True, memories
        found in the exchange are saved."""
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
            return self._run(op)
        response = self._send(op)
        if response.status_code >= 400:
            try:
                response.read()
            finally:
                response.close()
            raise error_for(response)
        return ChatStream(response)


class ChatStream(Iterator[str | ChatResponse]):
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

    def _read(self) -> Generator[str | ChatResponse, None, None]:
        try:
            for line in self._response.iter_lines():
                item = self._state.feed(line)
                if item is not None:
                    yield item
            self._state.finish()
        except httpx.TransportError as error:
            raise transport_error(error) from error
        finally:
            self._response.close()

    def __next__(self) -> str | ChatResponse:
        return next(self._items)

    def __iter__(self) -> ChatStream:
        return self

    def text(self) -> ChatResponse:
        """Read the stream to its end and return the full answer."""
        for _ in self:
            pass
        assert self._state.final is not None  # finish() raised otherwise
        return self._state.final

    def close(self) -> None:
        """Stop reading and release the connection (the rest of the answer is dropped)."""
        self._items.close()
        self._response.close()

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class Memories:
    """client.memories: store, read, change, delete, list and retrieve memories."""

    def __init__(self, client: MemoryClient) -> None:
        self._client = client

    def create(
        self,
        *,
        idempotency_key: str | None = None,
        timeout: Timeout | None = None,
        **fields: Unpack[MemoryFields],
    ) -> Memory:
        """Store one memory (user_id, content and type are required).

        Retries carry one Idempotency-Key, made for this call unless you give one."""
        op = ops.create(fields, idempotency_key=idempotency_key, timeout=timeout)
        return self._client._run(op)

    def create_many(
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
        return self._client._run(op)

    def get(self, memory_id: str | uuid.UUID, *, timeout: Timeout | None = None) -> Memory:
        """One live memory; NotFoundError if it does not exist or is not yours."""
        return self._client._run(ops.get(memory_id, timeout=timeout))

    def update(
        self,
        memory_id: str | uuid.UUID,
        *,
        timeout: Timeout | None = None,
        **fields: Unpack[MemoryFields],
    ) -> Memory:
        """Change the given fields of a live memory; updated_at moves."""
        return self._client._run(ops.update(memory_id, fields, timeout=timeout))

    def delete(self, memory_id: str | uuid.UUID, *, timeout: Timeout | None = None) -> DeleteResult:
        """Delete a memory for good, in any state."""
        return self._client._run(ops.delete(memory_id, timeout=timeout))

    def delete_many(
        self,
        ids: Iterable[str | uuid.UUID],
        *,
        idempotency_key: str | None = None,
        timeout: Timeout | None = None,
    ) -> BatchDeleteResult:
        """Delete 1 to 100 memories for good, in one transaction."""
        op = ops.delete_many(ids, idempotency_key=idempotency_key, timeout=timeout)
        return self._client._run(op)

    def soft_delete(
        self,
        memory_id: str | uuid.UUID,
        *,
        user_id: str | None = None,
        timeout: Timeout | None = None,
    ) -> Memory:
        """Mark a live memory deleted (kept for audit); with user_id, only that user's."""
        return self._client._run(ops.soft_delete(memory_id, user_id=user_id, timeout=timeout))

    def upsert(
        self,
        *,
        idempotency_key: str | None = None,
        timeout: Timeout | None = None,
        **fields: Unpack[MemoryFields],
    ) -> UpsertResult:
        """Create, or change the user's live memory with the same key (key is required).

        The result says created, updated or unchanged."""
        op = ops.upsert(fields, idempotency_key=idempotency_key, timeout=timeout)
        return self._client._run(op)

    def history(
        self, memory_id: str | uuid.UUID, *, timeout: Timeout | None = None
    ) -> builtins.list[HistoryEntry]:
        """Every version of a memory, oldest first."""
        return self._client._run(ops.history(memory_id, timeout=timeout))

    def stats(self, *, user_id: str, timeout: Timeout | None = None) -> MemoryStats:
        """Counts of a user's memories: live total, deleted, expired, by type and importance."""
        return self._client._run(ops.stats(user_id=user_id, timeout=timeout))

    def context(
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
        return self._client._run(op)

    def extract(
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
        return self._client._run(op)

    def list_page(
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
        return self._client._run(op)

    def list(
        self,
        *,
        user_id: str,
        type: MemoryType | None = None,
        key: str | None = None,
        min_importance: int | None = None,
        page_size: int | None = None,
        limit: int | None = None,
        timeout: Timeout | None = None,
    ) -> Iterator[Memory]:
        """The user's live memories, newest first, fetched page by page (page_size, 1 to
        100, default 20) as you iterate; limit stops after that many."""
        cursor: str | None = None
        returned = 0
        while True:
            page = self.list_page(
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


class Gdpr:
    """client.gdpr: a user's data export and erasure."""

    def __init__(self, client: MemoryClient) -> None:
        self._client = client

    def export(self, *, user_id: str, timeout: Timeout | None = None) -> UserExport:
        """Everything stored about user_id under your key's owner, in every state."""
        return self._client._run(ops.gdpr_export(user_id=user_id, timeout=timeout))

    def erase(self, *, user_id: str, timeout: Timeout | None = None) -> ErasureResult:
        """Erase everything stored about user_id under your key's owner."""
        return self._client._run(ops.gdpr_erase(user_id=user_id, timeout=timeout))
