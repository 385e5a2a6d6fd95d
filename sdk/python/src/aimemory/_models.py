"""Typed results, with the field names of the API's JSON (Memory Contract v1 and v1.1).

Timestamps are timezone-aware datetimes. `model_dump(mode="json")` gives back the JSON the
API sent, and `model_dump()` can be passed to `memories.create(**...)`: the API ignores the
read-only fields (`id`, `owner_id`, `created_at`, `updated_at`, `is_deleted`). Unknown
fields in an answer are ignored, so a newer server does not break an older client.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, TypedDict

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "BatchDeleteResult",
    "ChatMemory",
    "ChatResponse",
    "ContextMemory",
    "ContextResult",
    "DeleteResult",
    "DroppedCandidate",
    "ErasureResult",
    "ExportCounts",
    "ExportedMemory",
    "ExtractedCandidate",
    "ExtractionResult",
    "HistoryEntry",
    "Memory",
    "MemoryFields",
    "MemoryPage",
    "MemoryStats",
    "MemoryType",
    "Message",
    "UpsertResult",
    "UserExport",
]

MemoryType = Literal["fact", "preference", "event", "system"]


class Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Memory(Model):
    """One memory, exactly as Memory Contract v1 defines it."""

    id: str
    owner_id: str
    user_id: str
    type: MemoryType
    content: str
    confidence: float = 1.0
    key: str | None = None
    value: Any = None
    importance: int | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    ttl_seconds: int | None = None
    expires_at: datetime | None = None
    ingestion_mode: Literal["explicit", "rules"] = "explicit"
    is_deleted: bool = False
    created_at: datetime
    updated_at: datetime


class ContextMemory(Memory):
    """A memory picked for a query: its fields, plus how relevant it is (0 to 1)."""

    memory_type: MemoryType
    relevance_score: float


class ContextResult(Model):
    """The memories that matter for the query, best first, and a prompt-ready summary."""

    memories: list[ContextMemory]
    context_summary: str


class MemoryPage(Model):
    """One page of a listing; `next_cursor` is None on the last page."""

    memories: list[Memory]
    next_cursor: str | None = None


class MemoryStats(Model):
    """Counts for one user: `total` is live memories (neither deleted nor expired)."""

    total: int
    deleted: int
    expired: int
    by_type: dict[str, int]
    by_importance: dict[str, int]
    oldest: datetime | None = None
    newest: datetime | None = None


class DeleteResult(Model):
    id: str
    deleted: bool


class BatchDeleteResult(Model):
    """Ids deleted, and ids that were not this owner's or did not exist (the same case)."""

    deleted: list[str]
    not_found: list[str]


class UpsertResult(Model):
    """What an upsert did: `created`, `updated`, or `unchanged` (nothing was written)."""

    result: Literal["created", "updated", "unchanged"]
    memory: Memory


class HistoryEntry(Model):
    """One version of a memory, oldest first in `memories.history()`."""

    version: int
    event: Literal["created", "updated", "soft_deleted"]
    recorded_at: datetime
    type: MemoryType
    content: str
    key: str | None = None
    value: Any = None
    importance: int | None = None
    confidence: float = 1.0
    metadata: dict[str, Any] = Field(default_factory=dict)
    expires_at: datetime | None = None


class ExtractedCandidate(Model):
    """A memory the LLM found; `status` says whether and how it was saved."""

    status: Literal["not_saved", "created", "updated", "duplicate"]
    memory_id: str | None = None
    type: MemoryType
    content: str
    key: str | None = None
    value: Any = None
    confidence: float = 1.0
    importance: int | None = None


class DroppedCandidate(Model):
    index: int | None = None
    reason: str
    candidate: Any = None


class ExtractionResult(Model):
    user_id: str
    saved: bool
    candidates: list[ExtractedCandidate]
    dropped: list[DroppedCandidate]


class ChatMemory(Model):
    id: str
    type: MemoryType
    content: str
    relevance_score: float


class ChatResponse(Model):
    """The assistant's answer and the memories that were put in its system prompt."""

    response: str
    model: str
    usage: dict[str, int] = Field(default_factory=dict)
    memories_used: list[ChatMemory] = Field(default_factory=list)
    extraction: ExtractionResult | None = None
    extraction_error: str | None = None


class ExportedMemory(Memory):
    """A memory in a GDPR export: every state, with its version history (API v1.1)."""

    state: Literal["live", "deleted", "expired"]
    history: list[HistoryEntry] = Field(default_factory=list)


class ExportCounts(Model):
    memories: int
    live: int
    deleted: int
    expired: int
    memory_embeddings: int = 0


class UserExport(Model):
    owner_id: str
    user_id: str
    exported_at: datetime
    counts: ExportCounts
    memories: list[ExportedMemory]


class ErasureResult(Model):
    owner_id: str
    user_id: str
    deleted: dict[str, int]
    total: int


class Message(TypedDict):
    """One conversation turn for `chat(history=...)` and `extract(messages=...)`."""

    role: Literal["user", "assistant"]
    content: str


class MemoryFields(TypedDict, total=False):
    """The fields a create, upsert or update takes (the API checks them).

    The read-only fields of a Memory are accepted and ignored by the API, so a Memory's
    `model_dump()` can be sent back as it is."""

    user_id: str
    type: MemoryType
    memory_type: MemoryType
    content: str
    confidence: float
    key: str | None
    value: Any
    importance: int | None
    metadata: dict[str, Any] | None
    ttl_seconds: int | None
    expires_at: datetime | str | None
    ingestion_mode: Literal["explicit", "rules"]
    id: Any
    owner_id: str
    is_deleted: bool
    created_at: Any
    updated_at: Any
