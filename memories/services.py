import base64
import binascii
import functools
import json
import uuid
from datetime import UTC, datetime

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import BooleanField, Count, ExpressionWrapper, Max, Min, Q
from django.utils import timezone
from rest_framework import serializers
from rest_framework.exceptions import NotFound

from apikeys.models import AuditEvent
from apikeys.services import record_event
from memories import crypto, embeddings, text
from memories.models import Memory, MemoryEmbedding, MemoryTerm, MemoryType

# Fields whose change rewrites the memory's index rows (expiry is copied into them).
INDEXED_FIELDS = {"content", "type", "key", "value", "ttl_seconds", "expires_at"}


class Domain:
    """What a keyed hash stands for. Each domain hashes into its own space, so a word's
    hash in one says nothing about the same word's hash in another: the plaintext `key`
    column cannot be used to learn which encrypted contents mention its words."""

    WORD = b"word"  # words of the encrypted content and of a string value
    KEY = b"key"  # words of the plaintext key
    CONTENT = b"content"  # a memory's whole normalised content (duplicate detection)


def _term_hash(key: bytes, domain: bytes, owner_id: str, user_id: str, stem: str) -> int:
    # Every part is length-prefixed: owner and user ids may contain any character, so no
    # separator could keep two different scopes from producing the same message.
    parts = (domain, owner_id.encode("utf-8"), user_id.encode("utf-8"), stem.encode("utf-8"))
    message = b"".join(len(part).to_bytes(4, "big") + part for part in parts)
    return crypto.keyed_hash64(key, message)


def hash_terms(*, owner_id: str, user_id: str, stems, all_keys: bool = False) -> dict[int, str]:
    """Keyed hash -> stem, for query stems in every domain a memory's words are indexed
    in. Writes use the primary key; queries every key, so rows indexed before a key
    rotation still match until reindexed."""
    keys = crypto.index_keys() if all_keys else crypto.index_keys()[:1]
    return {
        _term_hash(k, domain, owner_id, user_id, s): s
        for k in keys
        for domain in (Domain.WORD, Domain.KEY)
        for s in stems
    }


def content_hash(*, owner_id: str, user_id: str, content: str) -> int:
    """Keyed hash of content with case and spacing normalised: equal memories, equal hash."""
    normalised = " ".join(text.fold(content).split())
    return _term_hash(crypto.index_keys()[0], Domain.CONTENT, owner_id, user_id, normalised)


def _prepare_index(memory: Memory) -> dict[int, int]:
    """Set the memory's index bookkeeping and return its terms: keyed hash -> frequency.
    At most text.MAX_TERMS_PER_MEMORY distinct words are indexed per domain."""
    domains = {
        Domain.WORD: text.index_terms(memory.searchable_text()),
        Domain.KEY: text.index_terms(memory.key_words()),
    }
    memory.term_count = sum(sum(counts.values()) for counts in domains.values())
    memory.index_version = text.INDEX_VERSION
    primary = crypto.index_keys()[0]
    owner_id, user_id = memory.owner_id, memory.user_id
    memory.content_hash = content_hash(owner_id=owner_id, user_id=user_id, content=memory.content)
    terms: dict[int, int] = {}
    for domain, counts in domains.items():
        for stem, tf in counts.items():
            term = _term_hash(primary, domain, owner_id, user_id, stem)
            terms[term] = terms.get(term, 0) + tf  # two stems, one 64-bit hash: count once
    return {term: min(tf, 32767) for term, tf in terms.items()}


_TERM_COLUMNS = ("memory", "owner_id", "user_id", "term", "tf", "doc_length", "expires_at")
_TERM_SELECT = "SELECT %s, %s, %s, UNNEST(%s::bigint[]), UNNEST(%s::integer[]), %s, %s"


# The statements' text depends only on the database; built once per process, not per write.
@functools.cache
def _term_columns(alias: str) -> str:
    quote = connections[alias].ops.quote_name
    return ", ".join(quote(MemoryTerm._meta.get_field(name).column) for name in _TERM_COLUMNS)


@functools.cache
def _create_sql(alias: str) -> str:
    """PostgreSQL: the memory and its index rows in one statement (a data-modifying CTE)."""
    quote = connections[alias].ops.quote_name
    fields = Memory._meta.concrete_fields
    return (
        f"WITH inserted AS (INSERT INTO {quote(Memory._meta.db_table)} "
        f"({', '.join(quote(field.column) for field in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))})) "
        f"INSERT INTO {quote(MemoryTerm._meta.db_table)} ({_term_columns(alias)}) {_TERM_SELECT}"
    )


def _shared_term_values(memory: Memory, db) -> list:
    """What every index row of the memory repeats: memory, owner, user, length, expiry."""
    names = ("memory", "owner_id", "user_id", "doc_length", "expires_at")
    values = (memory.pk, memory.owner_id, memory.user_id, memory.term_count, memory.expires_at)
    return [
        MemoryTerm._meta.get_field(name).get_db_prep_save(value, db)
        for name, value in zip(names, values, strict=True)
    ]


def _term_select_params(memory: Memory, terms: dict[int, int], db) -> list:
    """_TERM_SELECT's parameters: the index rows as two arrays, so the statement has seven
    parameters however many terms there are."""
    memory_id, owner_id, user_id, doc_length, expires_at = _shared_term_values(memory, db)
    return [memory_id, owner_id, user_id, list(terms), list(terms.values()), doc_length, expires_at]


def _insert_terms(memory: Memory, terms: dict[int, int]) -> None:
    """INSERT the memory's index rows: one statement on PostgreSQL, a few within the
    parameter limit elsewhere (bulk_create spent more Python time per create than the rest
    of the write path)."""
    if not terms:
        return
    db = connections[DEFAULT_DB_ALIAS]
    insert = f"INSERT INTO {db.ops.quote_name(MemoryTerm._meta.db_table)}"
    insert += f" ({_term_columns(db.alias)})"
    if db.vendor == "postgresql":
        with db.cursor() as cursor:
            cursor.execute(f"{insert} {_TERM_SELECT}", _term_select_params(memory, terms, db))
        return
    # Elsewhere one row of parameters per term, in statements within the database's
    # parameter limit (SQLite's is 32,766, or 999 before 3.32).
    shared = _shared_term_values(memory, db)
    rows = [(*shared[:3], term, tf, *shared[3:]) for term, tf in terms.items()]
    per_statement = max(1, (db.features.max_query_params or 999) // len(_TERM_COLUMNS))
    placeholders = "(" + ", ".join(["%s"] * len(_TERM_COLUMNS)) + ")"
    with db.cursor() as cursor:
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            sql = f"{insert} VALUES {', '.join([placeholders] * len(chunk))}"
            cursor.execute(sql, [value for row in chunk for value in row])


def _insert_memory_with_terms(memory: Memory, terms: dict[int, int], db) -> None:
    """PostgreSQL: the memory and its index rows in one statement, atomic by itself: one
    round trip where BEGIN, two INSERTs and COMMIT took four. The values go through each
    field's own preparation, so encryption is the model's."""
    memory.measure_content()
    values = [
        field.get_db_prep_save(field.pre_save(memory, True), db)
        for field in Memory._meta.concrete_fields
    ]
    # As Model.save(): a failure inside an outer atomic block marks it for rollback.
    with transaction.mark_for_rollback_on_error(db.alias), db.cursor() as cursor:
        cursor.execute(_create_sql(db.alias), [*values, *_term_select_params(memory, terms, db)])
    memory._state.adding = False
    memory._state.db = db.alias


def reindex_memory(*, memory_id) -> bool:
    """Rebuild one memory's index rows (after a normalisation change or key rotation) from
    the row as it is now, locked, so a concurrent change or soft delete cannot be
    overwritten by stale rows. False when the memory is gone or soft-deleted."""
    with transaction.atomic():
        memory = Memory.objects.select_for_update().filter(pk=memory_id).first()
        if memory is None:
            return False
        MemoryTerm.objects.filter(memory=memory).delete()
        if memory.is_deleted:
            return False
        terms = _prepare_index(memory)
        memory.save(update_fields=["term_count", "index_version", "content_hash"])
        _insert_terms(memory, terms)
    return True


def create_memory(*, owner_id: str, data: dict, now: datetime | None = None) -> Memory:
    """Store one validated memory and its index rows in one transaction."""
    now = now or timezone.now()
    memory = Memory(owner_id=owner_id, created_at=now, updated_at=now, **data)
    terms = _prepare_index(memory)
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor == "postgresql" and terms:
        _insert_memory_with_terms(memory, terms, db)
    else:
        with transaction.atomic():
            memory.save(force_insert=True)
            _insert_terms(memory, terms)
    # The embeddings API is a network call: never inside a write transaction.
    transaction.on_commit(lambda: embeddings.store_embedding(memory))
    return memory


def _lock_current(memory: Memory) -> Memory:
    """Inside a transaction: the memory's row as it is now, locked; 404 if a concurrent
    request deleted it since it was read (as if the request had come a moment later)."""
    current = Memory.objects.select_for_update().filter(pk=memory.pk, is_deleted=False).first()
    if current is None:
        raise NotFound()
    return current


def _lock_live(memory: Memory) -> None:
    """Inside a transaction: lock the row, and refuse if a concurrent request deleted it
    since it was read (404, as if the request had come a moment later)."""
    if not Memory.objects.select_for_update().filter(pk=memory.pk, is_deleted=False).exists():
        raise NotFound()


def lock_live_memory(*, owner_id: str, memory_id, user_id: str | None = None) -> Memory:
    """Inside a transaction: the owner's live memory, read and locked, or 404 exactly like
    a memory that never existed. Changes validated against this row cannot race another
    change of it."""
    rows = Memory.objects.select_for_update().for_owner(owner_id).live().filter(pk=memory_id)
    if user_id is not None:
        rows = rows.filter(user_id=user_id)
    memory = rows.first()
    if memory is None:
        raise NotFound()
    return memory


def update_memory(*, memory: Memory, data: dict) -> Memory:
    """Apply validated changes to the memory as it is now: the row is read again and
    locked, and the index, content hash and embedding are built from it inside the lock,
    so a concurrent change can never leave the index describing older content."""
    with transaction.atomic():
        memory = _lock_current(memory)
        for name, value in data.items():
            setattr(memory, name, value)
        memory.updated_at = timezone.now()
        changed = {*data, "updated_at"}
        reindex = bool(changed & INDEXED_FIELDS)
        if reindex:
            terms = _prepare_index(memory)
            changed |= {"term_count", "index_version", "content_hash"}
        memory.save(update_fields=changed)
        if reindex:
            MemoryTerm.objects.filter(memory=memory).delete()
            _insert_terms(memory, terms)
            MemoryEmbedding.objects.filter(memory=memory).delete()
            transaction.on_commit(functools.partial(embeddings.store_embedding, memory))
    return memory


def soft_delete_memory(*, memory: Memory) -> Memory:
    """Mark deleted (final in v1) and drop its index rows: deleted memories never match."""
    with transaction.atomic():
        _lock_live(memory)
        memory.is_deleted = True
        memory.updated_at = timezone.now()
        memory.save(update_fields=["is_deleted", "updated_at"])
        MemoryTerm.objects.filter(memory=memory).delete()
        MemoryEmbedding.objects.filter(memory=memory).delete()
    return memory


def hard_delete_memory(*, memory: Memory, actor: str) -> None:
    """Remove the row and everything derived from it; audited without content."""
    with transaction.atomic():
        memory_id = str(memory.pk)
        # Lock first: a reindex or update that is writing new index rows commits before the
        # cascade below reads them (the rows have no database foreign key to stop it).
        Memory.objects.select_for_update().filter(pk=memory.pk).exists()
        memory.delete()  # index rows and embedding cascade
        record_event(
            event=AuditEvent.Event.MEMORY_HARD_DELETED,
            owner_id=memory.owner_id,
            actor=actor,
            target=memory_id,
        )


def memory_stats(*, owner_id: str, user_id: str) -> dict:
    """Counts for one user: live total, soft-deleted, expired; breakdowns of the live ones.
    One grouped scan of the user's rows (a covering index); Python adds up the groups."""
    now = timezone.now()
    expired = ExpressionWrapper(
        Q(expires_at__isnull=False, expires_at__lte=now), output_field=BooleanField()
    )
    groups = (
        Memory.objects.filter(owner_id=owner_id, user_id=user_id)
        .annotate(expired=expired)
        .values_list("is_deleted", "expired", "type", "importance")
        .annotate(n=Count("pk"), oldest=Min("created_at"), newest=Max("created_at"))
        .order_by()
    )
    stats = {
        "total": 0,
        "deleted": 0,
        "expired": 0,
        "oldest": None,
        "newest": None,
        "by_type": dict.fromkeys(MemoryType.values, 0),
        "by_importance": {str(level): 0 for level in range(1, 6)},
    }
    for is_deleted, is_expired, memory_type, importance, n, oldest, newest in groups:
        if is_deleted:
            stats["deleted"] += n
        elif is_expired:
            stats["expired"] += n
        else:
            stats["total"] += n
            stats["by_type"][memory_type] += n
            if importance is not None:
                stats["by_importance"][str(importance)] += n
            stats["oldest"] = min(filter(None, (stats["oldest"], oldest)))
            stats["newest"] = max(filter(None, (stats["newest"], newest)))
    return stats


def encode_cursor(memory: Memory) -> str:
    raw = json.dumps([memory.created_at.isoformat(), str(memory.pk)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at, memory_id = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        if not isinstance(created_at, str) or not isinstance(memory_id, str):
            raise ValueError
        parsed = datetime.fromisoformat(created_at)
        if parsed.tzinfo is None:
            raise ValueError
        return parsed.astimezone(UTC), uuid.UUID(memory_id)
    except (ValueError, TypeError, OverflowError, binascii.Error, UnicodeError):
        raise serializers.ValidationError({"cursor": ["Invalid cursor."]}) from None


def list_memories(
    *, owner_id: str, user_id: str, limit: int, cursor: str | None = None, **filters
) -> tuple[list[Memory], Memory | None]:
    """One page of live memories, newest first, and the last row if a next page exists."""
    rows = Memory.objects.for_owner(owner_id).live().filter(user_id=user_id)
    if filters.get("type"):
        rows = rows.filter(type=filters["type"])
    if filters.get("key") is not None:
        rows = rows.filter(key=filters["key"])
    if filters.get("min_importance") is not None:
        rows = rows.filter(importance__gte=filters["min_importance"])
    if cursor:
        created_at, memory_id = decode_cursor(cursor)
        rows = rows.filter(
            Q(created_at__lt=created_at) | Q(created_at=created_at, pk__lt=memory_id)
        )
    page = list(rows.order_by("-created_at", "-pk")[: limit + 1])
    if len(page) > limit:
        return page[:limit], page[limit - 1]
    return page, None
