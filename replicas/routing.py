"""Where a query goes: the primary, unless the request is a read-only one that
services.choose_replica() gave a replica (see services.py for read-your-writes).

A read-only view method says so with @read_only. While it runs, reads of the memory
tables go to the chosen replica; everything else (API keys and their last use, rate-limit
buckets, idempotency claims, audit events, every write and every locking read) stays on
the primary. Authentication and throttling run before the method, so they never see the
replica. If the replica fails during the method, the method runs again on the primary.
"""

import contextvars
import functools
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, cast

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, InterfaceError
from django.db.models import Model
from django.http import HttpRequest, StreamingHttpResponse
from django.http.response import HttpResponseBase

from replicas import services

if TYPE_CHECKING:  # for annotations only: the router loads before the apps are ready
    from rest_framework.request import Request
    from rest_framework.response import Response
    from rest_framework.views import APIView

    from apikeys.models import ApiKey

Handler = Callable[..., "Response"]

# The tables that read-only endpoints read: memories, their index, embeddings and history.
REPLICA_MODELS = {
    "memories.memory",
    "memories.memoryterm",
    "memories.memoryembedding",
    "memories.memoryversion",
}
_reading_from: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "replica_alias", default=None
)


class ReplicaRouter:
    """Django database router: the memory tables' reads inside a read-only request go to
    its replica; all else goes to the primary. Replicas are never migrated."""

    def db_for_read(self, model: type[Model], **hints: Any) -> str | None:
        alias = _reading_from.get()
        if alias is not None and model._meta.label_lower in REPLICA_MODELS:
            return alias
        if model._meta.label_lower in REPLICA_MODELS and "instance" in hints:
            return None  # related rows of a row read on a replica (the export's): the same
        return DEFAULT_DB_ALIAS

    def db_for_write(self, model: type[Model], **hints: Any) -> str:
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1: Model, obj2: Model, **hints: Any) -> bool:
        return True

    def allow_migrate(
        self, db: str, app_label: str, model_name: str | None = None, **hints: Any
    ) -> bool:
        return db == DEFAULT_DB_ALIAS


def read_only(handler: Handler) -> Handler:
    """Mark a view method as reading only: it may be served by a replica, and it does not
    move the owner's write position."""

    @functools.wraps(handler)
    def wrapper(view: "APIView", request: "Request", *args: Any, **kwargs: Any) -> "Response":
        request._request.read_only = True  # type: ignore[attr-defined]
        if not settings.REPLICA_DATABASES:
            return handler(view, request, *args, **kwargs)
        api_key = cast("ApiKey", request.auth)  # a read-only view requires a key
        alias = services.choose_replica(owner_id=api_key.owner_id)
        if alias is None:
            return handler(view, request, *args, **kwargs)
        token = _reading_from.set(alias)
        try:
            return handler(view, request, *args, **kwargs)
        except (DatabaseError, InterfaceError) as exc:
            services.note_replica_failure(alias=alias, error=exc)
        finally:
            _reading_from.reset(token)
        return handler(view, request, *args, **kwargs)  # again, on the primary

    return wrapper


class WritePositionMiddleware:
    """After an authenticated request that may have written (any method but GET, HEAD and
    OPTIONS, not marked @read_only, not refused with a 4xx), record the owner's write
    position. A streamed response records it when the stream ends, since it may write
    while it streams. Installed only when replicas are configured."""

    SAFE_METHODS = ("GET", "HEAD", "OPTIONS")

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        api_key = getattr(request, "api_key", None)
        if (
            api_key is None
            or request.method in self.SAFE_METHODS
            or getattr(request, "read_only", False)
            or 400 <= response.status_code < 500
        ):
            return response
        if isinstance(response, StreamingHttpResponse):
            chunks = response.streaming_content  # WSGI: never an async iterator
            response.streaming_content = _then_record(chunks, api_key)  # type: ignore[arg-type]
        else:
            services.record_write(owner_id=api_key.owner_id)
        return response


def _then_record(chunks: Iterable[bytes], api_key: "ApiKey") -> Iterator[bytes]:
    try:
        yield from chunks
    finally:
        services.record_write(owner_id=api_key.owner_id)
