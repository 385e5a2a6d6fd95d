"""GDPR export and erasure of one end user's data under one owner."""

import json
from collections.abc import Iterator

from django.db import connection, transaction
from django.db.models import Count, Prefetch, Q
from django.utils import timezone

from apikeys.models import AuditEvent, hash_identifier
from apikeys.services import record_event
from memories.models import (
    IdempotentRequest,
    IdempotentRequestUser,
    Memory,
    MemoryEmbedding,
    MemoryTerm,
    MemoryVersion,
    expired_q,
    live_q,
)
from memories.serializers import memory_payload, version_payload
from memoryproject.parsing import iso_datetime
from replicas.services import fetch_rows

# Rows read per round trip while an export streams, sized by bytes as well as rows: the
# largest memory the limits allow holds about 55 KB of plaintext (10,000 characters of up
# to 4 bytes, a 10,000-byte value, 5,120 bytes of metadata), about 75 KB as stored tokens,
# so a chunk stays under about 4 MB of stored data however large its memories are.
MAX_MEMORY_BYTES = 75_000
EXPORT_CHUNK_BYTES = 4_000_000
EXPORT_CHUNK = EXPORT_CHUNK_BYTES // MAX_MEMORY_BYTES
# Every table holding rows about an end user, in deletion order (derived data first).
USER_TABLES: dict[str, type[MemoryTerm | MemoryEmbedding | MemoryVersion | Memory]] = {
    "memory_terms": MemoryTerm,
    "memory_embeddings": MemoryEmbedding,
    "memory_versions": MemoryVersion,
    "memories": Memory,
}


def _state(memory: Memory, now) -> str:
    if memory.is_deleted:
        return "deleted"
    return "expired" if memory.is_expired(now) else "live"


def _record(memory: Memory, now) -> dict:
    """The memory exactly as the API shows it, plus its state and its history."""
    history = [version_payload(version) for version in memory.versions.all()]
    return {**memory_payload(memory), "state": _state(memory, now), "history": history}


def _kept_responses(*, owner_id: str, user_id: str):
    """Idempotency-Key responses kept for 24 hours that hold the user's data."""
    holding = IdempotentRequestUser.objects.filter(owner_id=owner_id, user_id=user_id)
    return IdempotentRequest.objects.filter(owner_id=owner_id, pk__in=holding.values("request_id"))


def _dump(value) -> str:
    return json.dumps(value, ensure_ascii=False)


def export_user(*, owner_id: str, user_id: str, actor: str) -> Iterator[str]:
    """Everything stored about user_id under owner_id, decrypted, as JSON text chunks.
    Counting and auditing happen now; rows are then read in batches while the response
    streams, so memory stays bounded whatever the user's size."""
    now = timezone.now()
    rows = Memory.objects.filter(owner_id=owner_id, user_id=user_id)
    counts = rows.aggregate(
        memories=Count("pk"),
        live=Count("pk", filter=live_q(now)),
        deleted=Count("pk", filter=Q(is_deleted=True)),
        expired=Count("pk", filter=Q(is_deleted=False) & expired_q(now)),
    )
    counts["memory_embeddings"] = MemoryEmbedding.objects.filter(
        owner_id=owner_id, user_id=user_id
    ).count()
    counts["memory_versions"] = MemoryVersion.objects.filter(
        owner_id=owner_id, user_id=user_id
    ).count()
    counts["idempotent_responses"] = _kept_responses(owner_id=owner_id, user_id=user_id).count()
    record_event(
        event=AuditEvent.Event.GDPR_EXPORT,
        owner_id=owner_id,
        actor=actor,
        target=hash_identifier(user_id),
        details={"counts": counts},
    )
    header = {
        "owner_id": owner_id,
        "user_id": user_id,
        "exported_at": iso_datetime(now),
        "counts": counts,
    }
    # Pinned to the database chosen now (a replica, for a read-only request): the rows are
    # read after the view has returned, while the response streams.
    versions = Prefetch("versions", queryset=MemoryVersion.objects.order_by("version"))
    return _stream(header, rows.using(rows.db).prefetch_related(versions), now)


def _pages(rows) -> Iterator[list[Memory]]:
    """The rows in (created_at, id) order, EXPORT_CHUNK at a time, each page one short
    statement that starts after the previous page's last row (the newest-first index, read
    backwards). No cursor outlives a statement, so this works behind a transaction-mode
    pooler and can move from a failing replica to the primary between pages. Rows written
    while the export streams may or may not be in it, as with any read of a live user."""
    last = None
    while True:
        page = rows
        if last is not None:
            page = page.filter(created_at__gte=last.created_at).exclude(
                created_at=last.created_at, pk__lte=last.pk
            )
        batch = fetch_rows(page.order_by("created_at", "pk")[:EXPORT_CHUNK])
        if batch:
            yield batch
        if len(batch) < EXPORT_CHUNK:
            return
        last = batch[-1]


def _stream(header: dict, rows, now) -> Iterator[str]:
    yield _dump(header)[:-1] + ', "memories": ['
    separator = ""
    for batch in _pages(rows):
        for memory in batch:
            yield separator + _dump(_record(memory, now))
            separator = ","
    yield "]}"


def _lock_memories(*, owner_id: str, user_id: str) -> None:
    """Lock the user's memory rows for the rest of the transaction, without fetching them:
    an update or reindex that is writing a memory's index rows commits before the deletes
    below read them (those rows have no database foreign key to stop it)."""
    if not connection.features.has_select_for_update:
        return  # SQLite: one writer at a time anyway
    table = connection.ops.quote_name(Memory._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT COUNT(*) FROM (SELECT 1 FROM {table} "  # noqa: S608 - table name from the model, values as placeholders
            # In primary-key order, as a batch delete locks: two transactions that lock
            # the same rows in the same order cannot deadlock.
            "WHERE owner_id = %s AND user_id = %s ORDER BY id FOR UPDATE) AS locked",
            [owner_id, user_id],
        )


def erase_user(*, owner_id: str, user_id: str, actor: str) -> dict[str, int]:
    """Delete every row about user_id under owner_id in one transaction; counts per kind.
    Idempotent: a second call returns zeros."""
    with transaction.atomic():
        _lock_memories(owner_id=owner_id, user_id=user_id)
        counts = {}
        for name, model in USER_TABLES.items():
            # only("pk"): deleting must not load (and decrypt) what it is about to erase.
            rows = model.objects.filter(owner_id=owner_id, user_id=user_id).only("pk")
            deleted, _ = rows.delete()
            counts[name] = deleted
        # Kept responses (their user links cascade) are copies of memory data: deleted
        # after the memories, so that one committed by a create in between (a create
        # with an Idempotency-Key commits in one statement) cannot outlive the erasure.
        _, kept = _kept_responses(owner_id=owner_id, user_id=user_id).delete()
        counts["idempotent_responses"] = kept.get(IdempotentRequest._meta.label, 0)
        record_event(
            event=AuditEvent.Event.GDPR_ERASE,
            owner_id=owner_id,
            actor=actor,
            target=hash_identifier(user_id),
            details={"counts": counts},
        )
    return counts
