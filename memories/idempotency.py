"""The Idempotency-Key header on memory writes, with the semantics Stripe documents.

A request with a key runs in one transaction that:
1. takes a transaction-scoped advisory lock on a hash of (owner, key) without waiting;
   held by another request (on any worker or host: the lock lives in PostgreSQL), the
   answer is 409. A failed request's rollback, or a dead worker's lost connection, releases
   the lock at once: nothing is left behind to expire;
2. looks the key up, in the same statement as 1: a kept response for the same method, path
   and parsed body is replayed; for another request it is a 422; none (or an expired one)
   lets the request run;
3. runs the request and, if it answered 2xx, stores its response (encrypted) and the users
   it is about in one more statement, in the same transaction, so the memory and the kept
   response commit together or not at all. A failure (4xx, 5xx, any exception) keeps
   nothing, and the key may be used again.
A new key thus costs two statements besides the request's own (the write path of a create
is one), plus the transaction's BEGIN and COMMIT.

Kept responses expire after KEEP: an expired one is never replayed and is replaced in place
when its key comes back. `manage.py purge_idempotency_keys` deletes expired rows, and about
one kept response in PURGE_EVERY also deletes up to PURGE_BATCH of them on the way. Each
kept response lists the end users whose data it holds, so that erasing a user (GDPR)
erases it too.

SQLite has no advisory locks; it has one writer at a time, so the transaction takes the
write lock first instead, and a concurrent request with the same key waits for the first
and then replays its response rather than getting a 409.
"""

import functools
import hashlib
import hmac
import json
import random
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.utils import timezone
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response

from memories import crypto
from memories.models import IdempotentRequest, IdempotentRequestUser

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
KEY_ERROR = "Must be 1 to 255 printable ASCII characters without spaces."
KEEP = timedelta(hours=24)
PURGE_EVERY = 100
PURGE_BATCH = 500


class DifferentRequest(exceptions.APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = "Idempotency-Key was used with a different request"
    default_code = "idempotency_key_reused"


class StillInProgress(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "A request with this Idempotency-Key is still in progress"
    default_code = "idempotency_key_in_progress"


def is_valid_key(key: str) -> bool:
    return 1 <= len(key) <= MAX_KEY_LENGTH and all("!" <= c <= "~" for c in key)


def request_hash(*, method: str, path: str, data, key: bytes | None = None) -> str:
    """Keyed hash of the request as parsed: key order and whitespace do not matter, and the
    stored hash reveals nothing about the body."""
    canonical = json.dumps(
        [method, path, data], sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    message = canonical.encode("utf-8", "surrogatepass")
    key = key or crypto.request_hash_keys()[0]
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _same_request(stored: str, *, method: str, path: str, data) -> bool:
    """Whether stored hashes this request under any configured key: a retry still matches
    after the encryption key was rotated."""
    return any(
        hmac.compare_digest(stored, request_hash(method=method, path=path, data=data, key=key))
        for key in crypto.request_hash_keys()
    )


def key_lock_id(owner_id: str, key: str) -> int:
    """The advisory lock that a request with this key holds while it runs."""
    message = "\x1f".join(("idempotency", owner_id, key)).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(message, digest_size=8).digest(), "big", signed=True)


# The statements run on every request with a key: written once here, not built by the ORM
# per request (that cost more CPU than the rest of a create).
@functools.cache
def _claim_sql(alias: str) -> str:
    """The key's kept response, if any; on PostgreSQL preceded by whether this
    transaction now holds the key's lock (one round trip for both)."""
    quote = connections[alias].ops.quote_name
    lookup = (
        f"SELECT id, request_hash, response_status, response_body, expires_at > %s "  # noqa: S608 - names from the model, values as placeholders
        f"FROM {quote(IdempotentRequest._meta.db_table)} "
        f"WHERE owner_id = %s AND {quote('key')} = %s"
    )
    if connections[alias].vendor != "postgresql":
        return lookup
    # The row may be read before the lock is taken (one statement, one snapshot): a
    # response kept by a request that ended in between is caught by _keep_sql instead.
    return (
        f"SELECT pg_try_advisory_xact_lock(%s), kept.* "  # noqa: S608 - the lookup above, the lock id as a placeholder
        f"FROM (SELECT 1) AS one LEFT JOIN ({lookup}) AS kept ON true"
    )


@functools.cache
def _keep_sql(alias: str) -> str:
    """Store a response under a new key, or over the key's expired one; no row when the
    key holds a live response. On PostgreSQL the same statement replaces the list of
    users whose data the response holds."""
    quote = connections[alias].ops.quote_name
    table = quote(IdempotentRequest._meta.db_table)
    columns: tuple[str, ...] = ("owner_id", "key", "request_hash", "response_status")
    columns += ("response_body", "created_at", "expires_at")
    replaced = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in columns[2:])
    keep = (
        f"INSERT INTO {table} ({', '.join(quote(c) for c in columns)}) "  # noqa: S608 - names from the model, values as placeholders
        f"VALUES ({', '.join(['%s'] * len(columns))}) "
        f"ON CONFLICT (owner_id, {quote('key')}) DO UPDATE SET {replaced} "
        f"WHERE {table}.expires_at <= excluded.created_at RETURNING id"
    )
    if connections[alias].vendor != "postgresql":
        return keep
    users = quote(IdempotentRequestUser._meta.db_table)
    return (
        f"WITH kept AS ({keep}), "  # noqa: S608 - names from the model, values as placeholders
        f"gone AS (DELETE FROM {users} WHERE request_id IN (SELECT id FROM kept)), "
        f"added AS (INSERT INTO {users} (request_id, owner_id, user_id) "
        f"SELECT id, %s, UNNEST(%s::varchar[]) FROM kept) "
        f"SELECT id FROM kept"
    )


def _claim(*, owner_id: str, key: str, request: dict) -> Response | None:
    """Inside the request's transaction: hold the key until the transaction ends (409 if
    another request holds it now); return its kept response to replay, or None to run the
    request (422 if the key was used with another request)."""
    db = connections[DEFAULT_DB_ALIAS]
    now = db.ops.adapt_datetimefield_value(timezone.now())
    with db.cursor() as cursor:
        if db.vendor == "postgresql":
            cursor.execute(_claim_sql(db.alias), [key_lock_id(owner_id, key), now, owner_id, key])
            held, *row = cursor.fetchone()
            if not held:
                raise StillInProgress()
        else:
            table = db.ops.quote_name(IdempotentRequest._meta.db_table)
            cursor.execute(f"UPDATE {table} SET id = id WHERE 1 = 0")  # the write lock  # noqa: S608 - table name from the model
            cursor.execute(_claim_sql(db.alias), [now, owner_id, key])
            row = cursor.fetchone() or [None] * 5
    row_id, stored_hash, status_code, body, live = row
    if row_id is None or not live:
        return None
    if not _same_request(stored_hash, **request):
        raise DifferentRequest()
    return Response(
        crypto.decrypt_json(body), status=status_code, headers={REPLAYED_HEADER: "true"}
    )


def _keep(
    *, owner_id: str, key: str, request: dict, response: Response, user_ids: Iterable[str]
) -> None:
    """Under the key's lock, in the request's transaction: store its response and the
    users whose data it holds."""
    db = connections[DEFAULT_DB_ALIAS]
    now = timezone.now()
    prep = db.ops.adapt_datetimefield_value
    params: list[Any] = [owner_id, key, request_hash(**request), response.status_code]
    params += [crypto.encrypt_json(response.data), prep(now), prep(now + KEEP)]
    users = sorted(set(user_ids))
    postgresql = db.vendor == "postgresql"
    with db.cursor() as cursor:
        cursor.execute(_keep_sql(db.alias), [*params, owner_id, users] if postgresql else params)
        row = cursor.fetchone()
        if row is None:
            # PostgreSQL only: _claim read the key before its lock was granted, while
            # another request with the key was ending. That request's response stands;
            # this one rolls back, and a retry replays the response.
            raise StillInProgress()
        if not postgresql:
            IdempotentRequestUser.objects.filter(request_id=row[0]).delete()
            if users:
                table = db.ops.quote_name(IdempotentRequestUser._meta.db_table)
                values = ", ".join(["(%s, %s, %s)"] * len(users))
                cursor.execute(
                    f"INSERT INTO {table} (request_id, owner_id, user_id) VALUES {values}",  # noqa: S608 - table name from the model, values as placeholders
                    [value for user_id in users for value in (row[0], owner_id, user_id)],
                )


def purge_expired(*, limit: int | None = None) -> int:
    """Delete expired kept responses (at most limit); how many went."""
    expired = IdempotentRequest.objects.filter(expires_at__lte=timezone.now())
    if limit is not None:
        expired = IdempotentRequest.objects.filter(
            pk__in=list(expired.values_list("pk", flat=True)[:limit])
        )
    _, by_model = expired.delete()
    return by_model.get(IdempotentRequest._meta.label, 0)


def idempotent(user_ids: Callable[[dict], Iterable[str]]):
    """Decorate an APIView handler: honour Idempotency-Key. user_ids(response body) names
    the end users whose data a kept response holds."""

    def decorate(handler):
        @functools.wraps(handler)
        def wrapper(view, request, *args, **kwargs):
            key = request.headers.get(HEADER)
            if key is None:
                return handler(view, request, *args, **kwargs)
            if not is_valid_key(key):
                raise serializers.ValidationError({HEADER: [KEY_ERROR]})
            owner_id = request.auth.owner_id
            sent = {"method": request.method, "path": request.path, "data": request.data}
            with transaction.atomic():
                kept = _claim(owner_id=owner_id, key=key, request=sent)
                if kept is not None:
                    return kept
                response = handler(view, request, *args, **kwargs)
                if not status.is_success(response.status_code):
                    return response
                _keep(
                    owner_id=owner_id,
                    key=key,
                    request=sent,
                    response=response,
                    user_ids=user_ids(response.data),
                )
            if random.randrange(PURGE_EVERY) == 0:
                purge_expired(limit=PURGE_BATCH)
            return response

        return wrapper

    return decorate
