"""aimemory: the typed Python client of the AI Memory Service.

from aimemory import MemoryClient

with MemoryClient() as client:  # AIMEMORY_API_KEY, AIMEMORY_BASE_URL
    client.memories.create(user_id="u1", type="preference", content="Likes dark mode")
    context = client.memories.context(user_id="u1", query="Which theme?")
    print(context.context_summary)
"""

from aimemory._async_client import AsyncChatStream, AsyncMemoryClient
from aimemory._client import ChatStream, MemoryClient
from aimemory._core import __version__
from aimemory._exceptions import (
    AIMemoryError,
    APIConnectionError,
    APIResponseError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    ConfigurationError,
    NotFoundError,
    RateLimitError,
    ServiceUnavailableError,
    ValidationError,
)
from aimemory._models import (
    BatchDeleteResult,
    ChatMemory,
    ChatResponse,
    ContextMemory,
    ContextResult,
    DeleteResult,
    DroppedCandidate,
    ErasureResult,
    ExportCounts,
    ExportedMemory,
    ExtractedCandidate,
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

__all__ = [
    "AIMemoryError",
    "APIConnectionError",
    "APIResponseError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncChatStream",
    "AsyncMemoryClient",
    "AuthenticationError",
    "BatchDeleteResult",
    "ChatMemory",
    "ChatResponse",
    "ChatStream",
    "ConfigurationError",
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
    "MemoryClient",
    "MemoryFields",
    "MemoryPage",
    "MemoryStats",
    "MemoryType",
    "Message",
    "NotFoundError",
    "RateLimitError",
    "ServiceUnavailableError",
    "UpsertResult",
    "UserExport",
    "ValidationError",
    "__version__",
]
