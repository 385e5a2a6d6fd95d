"""Every API call the clients make, written once: path, method, body, how the answer is
read, and whether it may be retried. The sync and async resources only run these."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter

from aimemory._core import Operation, Timeout, write_operation
from aimemory._models import (
    BatchDeleteResult,
    ChatResponse,
    ContextResult,
    DeleteResult,
    ErasureResult,
    ExtractionResult,
    HistoryEntry,
    Memory,
    MemoryPage,
    MemoryStats,
    MemoryType,
    Message,
    UpsertResult,
    UserExport,
)

M = TypeVar("M", bound=BaseModel)

MEMORY_LIST = TypeAdapter(list[Memory])
HISTORY = TypeAdapter(list[HistoryEntry])
BATCH = TypeAdapter(dict[str, list[Memory]])


def model(cls: type[M]) -> Callable[[httpx.Response], M]:
    def parse(response: httpx.Response) -> M:
        return cls.model_validate_json(response.content)

    return parse


def memory_path(memory_id: str | uuid.UUID, suffix: str = "") -> str:
    # Quoted, so that an id can never reach another path.
    return f"/api/v1/memory/{quote(str(memory_id), safe='')}{suffix}"


def without_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


def create(
    fields: Mapping[str, Any], *, idempotency_key: str | None, timeout: Timeout | None
) -> Operation[Memory]:
    return write_operation(
        "/api/v1/memory",
        dict(fields),
        model(Memory),
        idempotency_key=idempotency_key,
        timeout=timeout,
    )


def _batch_memories(response: httpx.Response) -> list[Memory]:
    return BATCH.validate_json(response.content)["memories"]


def create_many(
    items: Iterable[Mapping[str, Any]], *, idempotency_key: str | None, timeout: Timeout | None
) -> Operation[list[Memory]]:
    body = {"memories": [dict(item) for item in items]}
    return write_operation(
        "/api/v1/memory/batch",
        body,
        _batch_memories,
        idempotency_key=idempotency_key,
        timeout=timeout,
    )


def get(memory_id: str | uuid.UUID, *, timeout: Timeout | None) -> Operation[Memory]:
    return Operation("GET", memory_path(memory_id), model(Memory), timeout=timeout)


def update(
    memory_id: str | uuid.UUID, fields: Mapping[str, Any], *, timeout: Timeout | None
) -> Operation[Memory]:
    # PATCH sets fields to values: sending it twice leaves the same memory.
    return Operation(
        "PATCH", memory_path(memory_id), model(Memory), body=dict(fields), timeout=timeout
    )


def delete(memory_id: str | uuid.UUID, *, timeout: Timeout | None) -> Operation[DeleteResult]:
    # Not re-sent once it may have reached the server: a second try would answer 404 for
    # a memory the first one deleted.
    return Operation(
        "DELETE", memory_path(memory_id), model(DeleteResult), resendable=False, timeout=timeout
    )


def delete_many(
    ids: Iterable[str | uuid.UUID], *, idempotency_key: str | None, timeout: Timeout | None
) -> Operation[BatchDeleteResult]:
    body = {"ids": [str(memory_id) for memory_id in ids]}
    return write_operation(
        "/api/v1/memory/batch/delete",
        body,
        model(BatchDeleteResult),
        idempotency_key=idempotency_key,
        timeout=timeout,
    )


def soft_delete(
    memory_id: str | uuid.UUID, *, user_id: str | None, timeout: Timeout | None
) -> Operation[Memory]:
    # As delete: a second try would answer 404 for the memory the first one deleted.
    return Operation(
        "DELETE",
        memory_path(memory_id, "/soft"),
        model(Memory),
        params=without_none({"user_id": user_id}),
        resendable=False,
        timeout=timeout,
    )


def upsert(
    fields: Mapping[str, Any], *, idempotency_key: str | None, timeout: Timeout | None
) -> Operation[UpsertResult]:
    return write_operation(
        "/api/v1/memory/upsert",
        dict(fields),
        model(UpsertResult),
        idempotency_key=idempotency_key,
        timeout=timeout,
    )


def _history(response: httpx.Response) -> list[HistoryEntry]:
    return HISTORY.validate_json(response.content)


def history(
    memory_id: str | uuid.UUID, *, timeout: Timeout | None
) -> Operation[list[HistoryEntry]]:
    return Operation("GET", memory_path(memory_id, "/history"), _history, timeout=timeout)


def stats(*, user_id: str, timeout: Timeout | None) -> Operation[MemoryStats]:
    return Operation(
        "GET",
        "/api/v1/memory/stats",
        model(MemoryStats),
        params={"user_id": user_id},
        timeout=timeout,
    )


def _page(response: httpx.Response) -> MemoryPage:
    return MemoryPage(
        memories=MEMORY_LIST.validate_json(response.content),
        next_cursor=response.headers.get("x-next-cursor") or None,
    )


def list_page(
    *,
    user_id: str,
    type: MemoryType | None,
    key: str | None,
    min_importance: int | None,
    page_size: int | None,
    cursor: str | None,
    timeout: Timeout | None,
) -> Operation[MemoryPage]:
    params = without_none(
        {
            "user_id": user_id,
            "limit": page_size,
            "type": type,
            "key": key,
            "min_importance": min_importance,
            "cursor": cursor,
        }
    )
    return Operation("GET", "/api/v1/memory", _page, params=params, timeout=timeout)


def context(
    *,
    user_id: str,
    query: str,
    limit: int | None,
    types: Sequence[MemoryType] | None,
    min_importance: int | None,
    min_score: float | None,
    max_chars: int | None,
    timeout: Timeout | None,
) -> Operation[ContextResult]:
    body = without_none(
        {
            "user_id": user_id,
            "query": query,
            "limit": limit,
            "types": list(types) if types is not None else None,
            "min_importance": min_importance,
            "min_score": min_score,
            "max_chars": max_chars,
        }
    )
    # A read, although it is a POST: safe to send again.
    return Operation(
        "POST", "/api/v1/memory/context", model(ContextResult), body=body, timeout=timeout
    )


def extract(
    *,
    user_id: str,
    messages: Sequence[Message] | None,
    text: str | None,
    save: bool,
    timeout: Timeout | None,
) -> Operation[ExtractionResult]:
    body = without_none(
        {
            "user_id": user_id,
            "messages": list(messages) if messages is not None else None,
            "text": text,
            "save": save,
        }
    )
    # Each try costs an LLM call: not sent again once the service may have started it.
    return Operation(
        "POST",
        "/api/v1/memory/extract",
        model(ExtractionResult),
        body=body,
        long=True,
        timeout=timeout,
        resendable=False,
    )


def chat(
    *,
    user_id: str,
    message: str,
    history: Sequence[Message] | None,
    memory_limit: int | None,
    extract: bool,
    stream: bool,
    timeout: Timeout | None,
) -> Operation[ChatResponse]:
    body = without_none(
        {
            "user_id": user_id,
            "message": message,
            "history": list(history) if history is not None else None,
            "memory_limit": memory_limit,
            "extract": extract,
            "stream": stream,
        }
    )
    return Operation(
        "POST",
        "/api/v1/chat",
        model(ChatResponse),
        body=body,
        long=True,
        timeout=timeout,
        resendable=False,
        stream=stream,
    )


def gdpr_export(*, user_id: str, timeout: Timeout | None) -> Operation[UserExport]:
    return Operation(
        "GET",
        "/api/v1/gdpr/export",
        model(UserExport),
        params={"user_id": user_id},
        long=True,
        timeout=timeout,
    )


def gdpr_erase(*, user_id: str, timeout: Timeout | None) -> Operation[ErasureResult]:
    # Not re-sent once it may have reached the server: a second try would report zero
    # rows erased, hiding what the first one erased.
    return Operation(
        "DELETE",
        "/api/v1/gdpr/delete",
        model(ErasureResult),
        params={"user_id": user_id},
        long=True,
        resendable=False,
        timeout=timeout,
    )
