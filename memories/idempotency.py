"""The Idempotency-Key header on memory writes, with the semantics Stripe documents:

- The first request with a key claims it: one INSERT … ON CONFLICT DO NOTHING of a row that
  says "running" until `claimed_until`. The claim is a database row, so it holds across
  workers and hosts.
- The request then runs in a transaction that also stores its 2xx response (encrypted) in
  that row, so the memory and the kept response commit together or not at all.
- A failed request (4xx, 5xx, any exception) deletes its claim: the client may retry.
  A worker that dies leaves the claim behind; after CLAIM_LEASE the next request with the
  key takes it over (and a late commit of the dead request's transaction, had it been only
  slow, finds its claim gone and rolls back).
- The same key with the same method, path and parsed body replays the kept response; with
  anything else it is a 422; while the first request runs it is a 409.
- Kept responses expire after KEEP. An expired row is ignored and reused in place when its
  key comes back; `manage.py purge_idempotency_keys` deletes expired rows, and about one
  kept response in PURGE_EVERY also deletes up to PURGE_BATCH expired rows on the way.
- Each kept response lists the end users whose data it holds, so that erasing a user
  (GDPR) erases the responses too.
"""

import functools
import hashlib
import hmac
import json
import logging
import random
import uuid
from collections.abc import Callable, Iterable
from datetime import timedelta

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction
from django.utils import timezone
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response

from memories import crypto
from memories.models import IdempotentRequest, IdempotentRequestUser

logger = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
KEY_ERROR = "Must be 1 to 255 printable ASCII characters without spaces."
KEEP = timedelta(hours=24)
# Longer than any request may run (gunicorn's worker timeout is 120 s), so a live request
# never loses its claim; a crashed worker's key is free again this long after the crash.
CLAIM_LEASE = timedelta(seconds=150)
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


@functools.cache
def _claim_sql(alias: str) -> str:
    quote = connections[alias].ops.quote_name
    columns = ("owner_id", "key", "request_hash", "claim", "claimed_until", "created_at")
    columns += ("expires_at",)
    return (
        f"INSERT INTO {quote(IdempotentRequest._meta.db_table)} "
        f"({', '.join(quote(c) for c in columns)}) VALUES ({', '.join(['%s'] * len(columns))}) "
        f"ON CONFLICT (owner_id, {quote('key')}) DO NOTHING RETURNING id"
    )


def _insert_claim(*, owner_id: str, key: str, fingerprint: str, claim: uuid.UUID, now) -> int:
    """The new row's id, or None when the owner already has a row for key."""
    db = connections[DEFAULT_DB_ALIAS]
    prep = db.ops.adapt_datetimefield_value
    claim_value = claim if db.vendor == "postgresql" else claim.hex
    params = [owner_id, key, fingerprint, claim_value, prep(now + CLAIM_LEASE), prep(now)]
    params.append(prep(now + KEEP))
    with db.cursor() as cursor:
        cursor.execute(_claim_sql(db.alias), params)
        row = cursor.fetchone()
    return row[0] if row else None


def _claim(*, owner_id: str, key: str, request: dict) -> tuple[int, uuid.UUID] | Response:
    """Claim key for this request (method, path, data): (row id, claim), or the kept
    response to replay."""
    fingerprint = request_hash(**request)
    claim = uuid.uuid4()
    for _ in range(3):  # a row deleted or taken between two statements: look again
        now = timezone.now()
        row_id = _insert_claim(
            owner_id=owner_id, key=key, fingerprint=fingerprint, claim=claim, now=now
        )
        if row_id is not None:
            return row_id, claim
        row = IdempotentRequest.objects.filter(owner_id=owner_id, key=key).first()
        if row is None:
            continue
        rows = IdempotentRequest.objects.filter(pk=row.pk)
        if row.expires_at <= now:
            # Expired: as if the key had never been used.
            taken = rows.filter(expires_at__lte=now).update(
                request_hash=fingerprint, claim=claim, claimed_until=now + CLAIM_LEASE,
                response_status=None, response_body=None, created_at=now, expires_at=now + KEEP,
            )  # fmt: skip
            if taken:
                IdempotentRequestUser.objects.filter(request_id=row.pk).delete()
                return row.pk, claim
            continue
        if row.request_hash != fingerprint and not _same_request(row.request_hash, **request):
            raise DifferentRequest()
        if row.response_status is not None:
            return Response(
                row.response_body, status=row.response_status, headers={REPLAYED_HEADER: "true"}
            )
        if row.claimed_until > now:
            raise StillInProgress()
        # The claim outlived its lease: its worker died. Take it over.
        taken = rows.filter(claim=row.claim, response_status__isnull=True).update(
            claim=claim, claimed_until=now + CLAIM_LEASE
        )
        if taken:
            return row.pk, claim
    raise StillInProgress()


def _keep(
    *, owner_id: str, row_id: int, claim: uuid.UUID, response: Response, user_ids: Iterable[str]
) -> None:
    """Inside the request's transaction: store its response under the claim, or roll the
    request back if the claim was taken over meanwhile."""
    now = timezone.now()
    kept = IdempotentRequest.objects.filter(
        pk=row_id, claim=claim, response_status__isnull=True
    ).update(
        response_status=response.status_code,
        response_body=response.data,
        claimed_until=now,
        expires_at=now + KEEP,
    )
    if not kept:
        raise StillInProgress()
    IdempotentRequestUser.objects.bulk_create(
        IdempotentRequestUser(request_id=row_id, owner_id=owner_id, user_id=user_id)
        for user_id in sorted(set(user_ids))
    )


def _release(*, row_id: int, claim: uuid.UUID) -> None:
    """Free the key after a failure, so that the client can retry with it."""
    try:
        IdempotentRequest.objects.filter(
            pk=row_id, claim=claim, response_status__isnull=True
        ).delete()
    except DatabaseError:
        # The database is what failed: the lease frees the key later.
        logger.warning("idempotency claim not released; it expires with its lease")


def purge_expired(*, limit: int | None = None) -> int:
    """Delete expired kept responses and claims (at most limit); how many went."""
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
            sent = {"method": request.method, "path": request.path, "data": request.data}
            claimed = _claim(owner_id=request.auth.owner_id, key=key, request=sent)
            if isinstance(claimed, Response):
                return claimed
            row_id, claim = claimed
            try:
                with transaction.atomic():
                    response = handler(view, request, *args, **kwargs)
                    if status.is_success(response.status_code):
                        _keep(
                            owner_id=request.auth.owner_id,
                            row_id=row_id,
                            claim=claim,
                            response=response,
                            user_ids=user_ids(response.data),
                        )
            except BaseException:
                _release(row_id=row_id, claim=claim)
                raise
            if not status.is_success(response.status_code):
                _release(row_id=row_id, claim=claim)
            elif random.randrange(PURGE_EVERY) == 0:
                purge_expired(limit=PURGE_BATCH)
            return response

        return wrapper

    return decorate
