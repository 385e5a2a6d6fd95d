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
A new key thus costs two statements besides the request's own, plus the transaction's
BEGIN and COMMIT.

Creates (single and batch) on PostgreSQL cost none of that: their response depends only on
the memories built before the write (ids, clock, validated data), so the create's own
statement (memories.services) keeps it too, in one autocommit statement (class Keep):
1. it takes the key's advisory lock for the statement only, without waiting (held by a
   request on the transactional path above, or by another create's statement, the
   statement writes nothing);
2. it writes the kept response and its users with the same ON CONFLICT rule (a live kept
   response: nothing written), and the memories, versions and index rows only if the
   kept response was written: both or neither;
3. if nothing was written, one look-up answers: the live kept response of the same
   request is replayed, of another request a 422; none means the key is held: 409.
A create that fails validation never reaches the statement, so nothing is kept.

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
from typing import Any, NoReturn

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.utils import timezone
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response

from memories import crypto
from memories.models import IdempotentRequest, IdempotentRequestUser
from memoryproject import prepared

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


def _same_request(stored: str, *, request: dict, computed: str) -> bool:
    """Whether stored hashes this request (computed: its hash under the primary key) under
    any configured key: a retry still matches after the encryption key was rotated."""
    if hmac.compare_digest(stored, computed):
        return True
    return any(
        hmac.compare_digest(stored, request_hash(**request, key=key))
        for key in crypto.request_hash_keys()[1:]
    )


def key_lock_id(owner_id: str, key: str) -> int:
    """The advisory lock that a request with this key holds while it runs."""
    message = "\x1f".join(("idempotency", owner_id, key)).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(message, digest_size=8).digest(), "big", signed=True)


# The statements run on every request with a key: written once here, not built by the ORM
# per request (that cost more CPU than the rest of a create).
@functools.cache
def _lookup_sql(alias: str) -> str:
    """The key's kept response: id, request hash, status, body, and whether it is live."""
    quote = connections[alias].ops.quote_name
    return (
        f"SELECT id, request_hash, response_status, response_body, expires_at > %s "  # noqa: S608 - names from the model, values as placeholders
        f"FROM {quote(IdempotentRequest._meta.db_table)} "
        f"WHERE owner_id = %s AND {quote('key')} = %s"
    )


@functools.cache
def _claim_sql(alias: str) -> str:
    """The key's kept response, if any; on PostgreSQL preceded by whether this
    transaction now holds the key's lock (one round trip for both)."""
    if connections[alias].vendor != "postgresql":
        return _lookup_sql(alias)
    # The row may be read before the lock is taken (one statement, one snapshot): a
    # response kept by a request that ended in between is caught by _keep_sql instead.
    return (
        f"SELECT pg_try_advisory_xact_lock(%s), kept.* "  # noqa: S608 - the lookup above, the lock id as a placeholder
        f"FROM (SELECT 1) AS one LEFT JOIN ({_lookup_sql(alias)}) AS kept ON true"
    )


_KEPT_COLUMNS: tuple[str, ...] = ("owner_id", "key", "request_hash", "response_status")
_KEPT_COLUMNS += ("response_body", "created_at", "expires_at")


def _kept_insert_sql(alias: str, *, locking: bool) -> str:
    """Store a response under a new key, or over the key's expired one, returning its id;
    no row when the key holds a live response. locking (PostgreSQL): nor when another
    request holds the key's lock; else the statement's transaction takes it."""
    quote = connections[alias].ops.quote_name
    table = quote(IdempotentRequest._meta.db_table)
    values = ", ".join(["%s"] * len(_KEPT_COLUMNS))
    source = (
        f"SELECT {values} WHERE pg_try_advisory_xact_lock(%s)" if locking else f"VALUES ({values})"
    )
    replaced = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in _KEPT_COLUMNS[2:])
    return (
        f"INSERT INTO {table} ({', '.join(quote(c) for c in _KEPT_COLUMNS)}) {source} "
        f"ON CONFLICT (owner_id, {quote('key')}) DO UPDATE SET {replaced} "
        f"WHERE {table}.expires_at <= excluded.created_at RETURNING id"
    )


@functools.cache
def keep_ctes(alias: str, *, locking: bool = False) -> str:
    """PostgreSQL: the WITH items that keep a response (see _kept_insert_sql): `kept`,
    the kept row's id if one was written, and the replaced list of users whose data it
    holds. Their parameters are Keep.params()."""
    users = connections[alias].ops.quote_name(IdempotentRequestUser._meta.db_table)
    return (
        f"kept AS ({_kept_insert_sql(alias, locking=locking)}), "  # noqa: S608 - names from the model, values as placeholders
        f"gone AS (DELETE FROM {users} WHERE request_id IN (SELECT id FROM kept)), "
        f"added AS (INSERT INTO {users} (request_id, owner_id, user_id) "
        f"SELECT id, %s, UNNEST(%s::varchar[]) FROM kept)"
    )


@functools.cache
def _keep_sql(alias: str) -> str:
    """Store a response under the key its transaction holds (_kept_insert_sql); on
    PostgreSQL the same statement replaces the list of users whose data it holds."""
    if connections[alias].vendor != "postgresql":
        return _kept_insert_sql(alias, locking=False)
    return f"WITH {keep_ctes(alias)} SELECT id FROM kept"  # noqa: S608 - SQL built above


def _claim(*, owner_id: str, key: str, request: dict, computed: str) -> Response | None:
    """Inside the request's transaction: hold the key until the transaction ends (409 if
    another request holds it now); return its kept response to replay, or None to run the
    request (422 if the key was used with another request)."""
    db = connections[DEFAULT_DB_ALIAS]
    now = db.ops.adapt_datetimefield_value(timezone.now())
    with prepared.cursor(db) as cursor:
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
    return _replay(row, request=request, computed=computed)


def _replay(row, *, request: dict, computed: str) -> Response | None:
    """The response to replay from a _lookup_sql row; None when no live one is kept (422
    if it was kept for another request)."""
    row_id, stored_hash, status_code, body, live = row
    if row_id is None or not live:
        return None
    if not _same_request(stored_hash, request=request, computed=computed):
        raise DifferentRequest()
    return Response(
        crypto.decrypt_json(body), status=status_code, headers={REPLAYED_HEADER: "true"}
    )


def _keep(
    *, owner_id: str, key: str, computed: str, response: Response, user_ids: Iterable[str]
) -> None:
    """Under the key's lock, in the request's transaction: store its response and the
    users whose data it holds."""
    db = connections[DEFAULT_DB_ALIAS]
    now = timezone.now()
    prep = db.ops.adapt_datetimefield_value
    params: list[Any] = [owner_id, key, computed, response.status_code]
    params += [crypto.encrypt_json(response.data), prep(now), prep(now + KEEP)]
    users = sorted(set(user_ids))
    postgresql = db.vendor == "postgresql"
    with prepared.cursor(db) as cursor:
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


class Replay(Exception):
    """Raised by Keep.refuse: answer with the kept response."""

    def __init__(self, response: Response):
        super().__init__()
        self.response = response


class Keep:
    """An Idempotency-Key that a create keeps in its own statement (PostgreSQL): with
    keep_ctes(locking=True), one autocommit statement takes the key's lock, keeps the
    response and writes the memories, or, when the key is held or holds a live response,
    writes nothing at all (memories.services.create_memories)."""

    def __init__(self, *, owner_id: str, key: str, request: dict, user_ids, respond):
        self.owner_id, self.key, self.request = owner_id, key, request
        self.computed = request_hash(**request)
        self.user_ids, self.respond = user_ids, respond
        self.at = timezone.now()

    def params(self, memories: list, *, now) -> list:
        """keep_ctes(locking=True)'s parameters: the response to the create of memories,
        built before they are written (it depends only on them), kept from now."""
        prep = connections[DEFAULT_DB_ALIAS].ops.adapt_datetimefield_value
        body = self.respond(memories)
        self.at = now
        params: list[Any] = [self.owner_id, self.key, self.computed, status.HTTP_200_OK]
        params += [crypto.encrypt_json(body), prep(now), prep(now + KEEP)]
        users = sorted(set(self.user_ids(body)))
        return [*params, key_lock_id(self.owner_id, self.key), self.owner_id, users]

    def refuse(self) -> NoReturn:
        """After a statement that wrote nothing: Replay the key's kept response, or 422
        if it was kept for another request; no live one kept means another request
        holds the key now: 409."""
        db = connections[DEFAULT_DB_ALIAS]
        now = db.ops.adapt_datetimefield_value(self.at)
        with prepared.cursor(db) as cursor:
            cursor.execute(_lookup_sql(db.alias), [now, self.owner_id, self.key])
            row = cursor.fetchone() or [None] * 5
        kept = _replay(row, request=self.request, computed=self.computed)
        if kept is None:
            raise StillInProgress()
        raise Replay(kept)


def idempotent(user_ids: Callable[[dict], Iterable[str]], respond: Callable | None = None):
    """Decorate an APIView handler: honour Idempotency-Key. user_ids(response body) names
    the end users whose data a kept response holds. A handler that creates memories gives
    respond(memories) -> its response body: on PostgreSQL it is then called with a Keep
    as `keep`, which it hands to services.create_memories (one statement, no transaction)."""

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
            if respond is not None and connections[DEFAULT_DB_ALIAS].vendor == "postgresql":
                keep = Keep(
                    owner_id=owner_id, key=key, request=sent, user_ids=user_ids, respond=respond
                )
                try:
                    response = handler(view, request, *args, keep=keep, **kwargs)
                except Replay as replay:
                    return replay.response
                except exceptions.APIException as error:
                    if error.status_code >= 500:
                        raise
                    # The request failed before its statement (validation): report the
                    # key first, as the transactional path does, since it claims the key
                    # before running the request: 409 while held, 422 if used with
                    # another request. Autocommit: the lock is held for one statement.
                    kept = _claim(owner_id=owner_id, key=key, request=sent, computed=keep.computed)
                    if kept is not None:
                        return kept
                    raise
            else:
                computed = request_hash(**sent)
                with transaction.atomic():
                    kept = _claim(owner_id=owner_id, key=key, request=sent, computed=computed)
                    if kept is not None:
                        return kept
                    response = handler(view, request, *args, **kwargs)
                    if not status.is_success(response.status_code):
                        return response
                    _keep(
                        owner_id=owner_id,
                        key=key,
                        computed=computed,
                        response=response,
                        user_ids=user_ids(response.data),
                    )
            if random.randrange(PURGE_EVERY) == 0:
                purge_expired(limit=PURGE_BATCH)
            return response

        return wrapper

    return decorate
