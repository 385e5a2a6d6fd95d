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

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, InterfaceError

from replicas import services

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

    def db_for_read(self, model, **hints):
        alias = _reading_from.get()
        if alias is not None and model._meta.label_lower in REPLICA_MODELS:
            return alias
        if model._meta.label_lower in REPLICA_MODELS and "instance" in hints:
            return None  # related rows of a row read on a replica (the export's): the same
        return DEFAULT_DB_ALIAS

    def db_for_write(self, model, **hints):
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints):
        return True

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == DEFAULT_DB_ALIAS


def read_only(handler):
    """Mark a view method as reading only: it may be served by a replica, and it does not
    move the owner's write position."""

    @functools.wraps(handler)
    def wrapper(view, request, *args, **kwargs):
        request._request.read_only = True
        if not settings.REPLICA_DATABASES:
            return handler(view, request, *args, **kwargs)
        alias = services.choose_replica(owner_id=request.auth.owner_id)
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

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        api_key = getattr(request, "api_key", None)
        if (
            api_key is None
            or request.method in self.SAFE_METHODS
            or getattr(request, "read_only", False)
            or 400 <= response.status_code < 500
        ):
            return response
        if response.streaming:
            response.streaming_content = _then_record(response.streaming_content, api_key)
        else:
            services.record_write(owner_id=api_key.owner_id)
        return response


def _then_record(chunks, api_key):
    try:
        yield from chunks
    finally:
        services.record_write(owner_id=api_key.owner_id)
