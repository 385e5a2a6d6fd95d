import base64
import binascii
import functools
import hashlib
import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from django.db import DEFAULT_DB_ALIAS, connections, models, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import BooleanField, Count, ExpressionWrapper, Max, Min, Model, Q
from django.db.models.fields import AutoFieldMixin
from django.utils import timezone
from rest_framework import serializers
from rest_framework.exceptions import NotFound

from apikeys.models import AuditEvent
from apikeys.services import record_event, record_events
from memories import analyze, crypto, embeddings, idempotency, text
from memories.models import (
    MAX_IMPORTANCE,
    MAX_VERSIONS_PER_MEMORY,
    MIN_IMPORTANCE,
    Memory,
    MemoryEmbedding,
    MemoryTerm,
    MemoryType,
    MemoryVersion,
    UserIdField,
    expired_q,
    live_sql,
)
from memories.serializers import MetadataField
from memoryproject import prepared

# Fields whose change rewrites the memory's index rows (expiry is copied into them).
INDEXED_FIELDS = {"content", "type", "key", "value", "ttl_seconds", "expires_at"}


class Domain:
    """What a keyed hash stands for. Each domain hashes into its own space, so a word's
    hash in one says nothing about the same word's hash in another: the plaintext `key`
    column cannot be used to learn which encrypted contents mention its words."""

    WORD = b"word"  # words of the encrypted content and of a string value
    KEY = b"key"  # words of the plaintext key
    CONTENT = b"content"  # a memory's whole normalised content (duplicate detection)


def _length_prefixed(*parts: bytes) -> bytes:
    return b"".join(len(part).to_bytes(4, "big") + part for part in parts)


@functools.lru_cache(maxsize=1024)  # a batch or a query repeats one owner's user
def _scope(domain: bytes, owner_id: str, user_id: str) -> bytes:
    return _length_prefixed(domain, owner_id.encode("utf-8"), user_id.encode("utf-8"))


def _term_hash(key: bytes, domain: bytes, owner_id: str, user_id: str, stem: str) -> int:
    # Every part is length-prefixed: owner and user ids may contain any character, so no
    # separator could keep two different scopes from producing the same message.
    return _scoped_hash(key, _scope(domain, owner_id, user_id), stem)


def _scoped_hash(key: bytes, scope: bytes, stem: str) -> int:
    """_term_hash with the scope's part of the message built once by the caller."""
    return crypto.keyed_hash64(key, scope + _length_prefixed(stem.encode("utf-8")))


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


def _prepare_index(memory: Memory, hashes: dict | None = None) -> dict[int, int]:
    """Set the memory's index bookkeeping and return its terms: keyed hash -> frequency.
    At most text.MAX_TERMS_PER_MEMORY distinct words are indexed per domain. hashes: the
    term hashes already computed by this call's caller for other memories ((scope, stem)
    -> hash, under the same primary key), filled in here: a batch of one user's memories
    repeats words, and each hash costs more than the look-up. Kept for one call only, so
    no plaintext word outlives its request."""
    domains = {Domain.WORD: text.index_terms(memory.searchable_text())}
    key_words = memory.key_words()
    if key_words:  # most memories have no key: no words to index there
        domains[Domain.KEY] = text.index_terms(key_words)
    memory.term_count = sum(sum(counts.values()) for counts in domains.values())
    memory.index_version = text.INDEX_VERSION
    primary = crypto.index_keys()[0]
    owner_id, user_id = memory.owner_id, memory.user_id
    memory.content_hash = content_hash(owner_id=owner_id, user_id=user_id, content=memory.content)
    terms: dict[int, int] = {}
    hashes = {} if hashes is None else hashes
    for domain, counts in domains.items():
        scope = _scope(domain, owner_id, user_id)
        for stem, tf in counts.items():
            term = hashes.get((scope, stem))
            if term is None:
                term = hashes[scope, stem] = _scoped_hash(primary, scope, stem)
            terms[term] = terms.get(term, 0) + tf  # two stems, one 64-bit hash: count once
    return {term: min(tf, 32767) for term, tf in terms.items()}


_TERM_COLUMNS = ("memory", "owner_id", "user_id", "term", "tf", "doc_length", "expires_at")
_TERM_SELECT = "SELECT %s, %s, %s, UNNEST(%s::bigint[]), UNNEST(%s::integer[]), %s, %s"
# The index rows of many memories as seven parallel arrays, one element per row.
_TERM_ARRAYS = (
    "SELECT m.id, m.owner_id, m.user_id, t.term, t.tf, m.doc_length, m.expires_at "
    "FROM UNNEST(%s::integer[], %s::bigint[], %s::integer[]) AS t(ord, term, tf) "
    "JOIN UNNEST(%s::uuid[], %s::varchar[], %s::varchar[], %s::integer[], %s::timestamptz[]) "
    "WITH ORDINALITY AS m(id, owner_id, user_id, doc_length, expires_at, ord) ON m.ord = t.ord"
)


def _int_array(values) -> str:
    """An integer array as PostgreSQL's text literal: one string to send, where a list
    of 100,000 integers cost the driver a second to adapt element by element."""
    return "{" + ",".join(map(str, values)) + "}"


# The statements' text depends only on the database; built once per process, not per write.
@functools.cache
def _term_columns(alias: str) -> str:
    quote = connections[alias].ops.quote_name
    fields: list[Any] = [MemoryTerm._meta.get_field(name) for name in _TERM_COLUMNS]
    return ", ".join(quote(field.column) for field in fields)


def _insert_values_sql(model, alias: str, rows: int, *, when: str | None = None) -> str:
    """INSERT INTO model's table (every concrete column but an auto id) VALUES, rows times;
    with when (PostgreSQL), only if that SQL condition holds."""
    db = connections[alias]
    quote = db.ops.quote_name
    fields = _insert_fields(model)
    insert = (
        f"INSERT INTO {quote(model._meta.db_table)} "
        f"({', '.join(quote(field.column) for field in fields)}) "
    )
    if when is None:
        row = "(" + ", ".join(["%s"] * len(fields)) + ")"
        return f"{insert}VALUES {', '.join([row] * rows)}"
    # VALUES inside a SELECT gets no types from the columns: each placeholder says its own.
    row = "(" + ", ".join(f"%s::{field.db_type(db)}" for field in fields) + ")"
    return f"{insert}SELECT * FROM (VALUES {', '.join([row] * rows)}) AS v WHERE {when}"  # noqa: S608 - names from the model, values as placeholders


def _insert_arrays_sql(model, alias: str, *, when: str | None = None) -> str:
    """PostgreSQL: INSERT INTO model's table (every concrete column but an auto id) one
    row per element of one array per column, however many rows; with when, only if that
    SQL condition holds. One placeholder per column, where one per value made the driver
    parse a statement of thousands of placeholders on every batch (a fifth of its CPU).
    For one row _insert_values_sql costs less: its statement is short enough for the
    driver to cache its parsing, and unnesting costs the database a little more."""
    db = connections[alias]
    quote = db.ops.quote_name
    fields = _insert_fields(model)
    columns = ", ".join(quote(field.column) for field in fields)
    # Element types without a length: the column's own type checks it on the insert (an
    # explicit cast to varchar(n) would cut a longer value short instead of refusing it).
    arrays = ", ".join(f"%s::{_ELEMENT_LENGTH.sub('', field.db_type(db))}[]" for field in fields)
    where = "" if when is None else f" WHERE {when}"
    insert = f"INSERT INTO {quote(model._meta.db_table)} ({columns})"
    return f"{insert} SELECT * FROM UNNEST({arrays}) AS v{where}"  # noqa: S608 - names from the model, values as placeholders


_ELEMENT_LENGTH = re.compile(r"\(\d+\)")


def _insert_rows_sql(model, alias: str, count: int, *, when: str | None = None) -> str:
    """The INSERT of count rows that costs least: VALUES for one, arrays for more."""
    if count == 1:
        return _insert_values_sql(model, alias, 1, when=when)
    return _insert_arrays_sql(model, alias, when=when)


def _rows_params(rows: list[list[Any]]) -> list[Any]:
    """_insert_rows_sql's parameters: one row's values, or else one array per column, each
    as an array literal."""
    if len(rows) == 1:
        return rows[0]
    return [_array_literal(column) for column in zip(*rows, strict=True)]


def _array_literal(values) -> str:
    """Values as PostgreSQL's text literal of an array, for a statement that casts it to
    the column's array type. The driver dumps a list element by element in Python, which
    cost a batch of 100 memories more CPU than all its validation (104 against 1.7 µs per
    memory to bind, bench/inprocess.py --steps batch). Elements are what _row_values
    gives: str, UUID, int, float, bool, aware datetime or None."""
    return "{" + ",".join([_element(value) for value in values]) + "}"


def _element(value: Any) -> str:
    if value is None:
        return "NULL"
    kind = type(value)
    if kind is uuid.UUID:
        return value.hex  # 32 hex digits: PostgreSQL reads the same uuid, and quicker to write
    if kind is str:
        text = value
    elif kind is datetime:
        # Cached for UTC only: in a zone with a fold, two equal-comparing datetimes can
        # be an hour apart, and a cache would give both the first one's text.
        text = _utc_text(value) if value.tzinfo is UTC else value.isoformat()
    else:  # int, float, bool: PostgreSQL reads their str() as the same value
        text = str(value)
    if '"' in text or "\\" in text:
        text = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + text + '"'  # quoted, whatever the element's type: spaces and commas kept


@functools.lru_cache(maxsize=256)  # a batch's rows share one clock reading
def _utc_text(value: datetime) -> str:
    return value.isoformat()


@functools.cache
def _insert_fields(model: type[Model]) -> list[Any]:
    """The columns an INSERT gives: all but a database-generated id and the columns a new
    row leaves NULL (Memory.LEGACY_FIELDS)."""
    unwritten = getattr(model, "LEGACY_FIELDS", ())
    return [
        f
        for f in model._meta.concrete_fields
        if not isinstance(f, AutoFieldMixin) and f.name not in unwritten
    ]


@functools.cache
def _create_sql(alias: str, count: int, *, keep: bool = False) -> str:
    """PostgreSQL: count memories (2: two or more), their first versions and all their
    index rows in one statement (data-modifying CTEs): one round trip, atomic by itself.
    With keep, the same statement first keeps an Idempotency-Key's response
    (idempotency.keep_ctes), writes the rest only if it did, and returns the kept row's id."""
    quote = connections[alias].ops.quote_name
    when = "EXISTS (SELECT 1 FROM kept)" if keep else None
    created = (
        f"inserted AS ({_insert_rows_sql(Memory, alias, count, when=when)}), "
        f"versions AS ({_insert_rows_sql(MemoryVersion, alias, count, when=when)})"
    )
    terms = (
        f"INSERT INTO {quote(MemoryTerm._meta.db_table)} ({_term_columns(alias)}) {_TERM_ARRAYS}"
    )
    if not keep:
        return f"WITH {created} {terms}"
    keeping = idempotency.keep_ctes(alias, locking=True)
    return f"WITH {keeping}, {created}, terms AS ({terms} WHERE {when}) SELECT id FROM kept"  # noqa: S608 - SQL built above


def _shared_term_values(memory: Memory, db) -> list:
    """What every index row of the memory repeats: memory, owner, user, length, expiry."""
    names = ("memory", "owner_id", "user_id", "doc_length", "expires_at")
    values = (memory.pk, memory.owner_id, memory.user_id, memory.term_count, memory.expires_at)
    return [
        MemoryTerm._meta.get_field(name).get_db_prep_save(value, db)  # type: ignore[union-attr]
        for name, value in zip(names, values, strict=True)
    ]


def _term_select_params(memory: Memory, terms: dict[int, int], db) -> list:
    """_TERM_SELECT's parameters: the index rows as two arrays, so the statement has seven
    parameters however many terms there are."""
    memory_id, owner_id, user_id, doc_length, expires_at = _shared_term_values(memory, db)
    hashes, counts = _int_array(terms), _int_array(terms.values())
    return [memory_id, owner_id, user_id, hashes, counts, doc_length, expires_at]


def _term_array_params(memories: list[Memory], terms: list[dict[int, int]], db) -> list:
    """_TERM_ARRAYS's parameters: the index rows of every memory as three arrays (the
    memory's position, term, frequency), and what each memory's rows share as five arrays
    of one element per memory."""
    positions: list[int] = []
    for position, memory_terms in enumerate(terms, start=1):
        positions.extend([position] * len(memory_terms))
    hashes = [term for memory_terms in terms for term in memory_terms]
    counts = [tf for memory_terms in terms for tf in memory_terms.values()]
    # The statement casts each array: the values go as the memories hold them, without a
    # field's preparation per value (a tenth of a batch's row building).
    return [
        _int_array(positions),
        _int_array(hashes),
        _int_array(counts),
        _array_literal([memory.pk for memory in memories]),
        _array_literal([memory.owner_id for memory in memories]),
        _array_literal([memory.user_id for memory in memories]),
        _int_array(memory.term_count for memory in memories),
        _array_literal([memory.expires_at for memory in memories]),
    ]


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


def _row_values(instance: Any, db: BaseDatabaseWrapper, *, literal: bool = False) -> list[Any]:
    """The instance's column values as its fields prepare them (encryption included).
    instance: a model instance, or a VersionRow. literal: for _array_literal, which writes
    numbers as they are (the driver's typed wrappers serve a server-side binding only)."""
    return [
        getattr(instance, name) if prepare is None else prepare(instance, db)
        for name, prepare in _preparers(_row_model(instance), db.vendor, literal)
    ]


def _row_model(instance: Any) -> type[Model]:
    return instance.row_model if isinstance(instance, VersionRow) else type(instance)


# Field classes whose prepared value is the Python value itself, for the values a
# validated memory holds (str, UUID, aware datetime, bool; or None).
_AS_IS_FIELDS: tuple[type, ...] = (
    models.CharField, UserIdField, models.UUIDField, models.DateTimeField, models.BooleanField,
)  # fmt: skip
_INTEGER_FIELDS: tuple[type, ...] = (
    models.IntegerField, models.PositiveIntegerField, models.BigIntegerField,
    models.PositiveSmallIntegerField, models.PositiveBigIntegerField,
)  # fmt: skip

Preparer = Callable[[Any, BaseDatabaseWrapper], Any]


@functools.cache
def _preparers(
    model: type[Model], vendor: str, literal: bool = False
) -> list[tuple[str, Preparer | None]]:
    """For each column _insert_fields gives: its attribute and how to prepare it for the
    given database connection (None: as it is). On PostgreSQL the common field classes
    skip get_db_prep_save's chain of calls (half of a batch's row building): the
    shortcut gives the same values, as a test checks; everything else, encrypted fields
    included, takes the whole chain. Nothing here holds a connection: each call gets the
    caller's, which belongs to its thread."""
    preparers: list[tuple[str, Preparer | None]] = []
    for field in _insert_fields(model):
        name, kind = field.attname, type(field)
        auto_time = getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)
        prepare: Preparer | None
        if vendor != "postgresql" or auto_time:
            prepare = functools.partial(_prepared, field)
        elif (
            kind in _AS_IS_FIELDS
            or (kind is models.ForeignKey and type(field.target_field) is models.UUIDField)
            or (literal and (kind is models.FloatField or kind in _INTEGER_FIELDS))
        ):
            prepare = None
        elif kind is models.FloatField:
            prepare = functools.partial(_as_float, name)
        elif kind in _INTEGER_FIELDS:
            prepare = functools.partial(_as_integer, name, field.get_internal_type())
        else:
            prepare = functools.partial(_prepared, field)
        preparers.append((name, prepare))
    return preparers


def _prepared(field: Any, instance: Any, db: BaseDatabaseWrapper) -> Any:
    return field.get_db_prep_save(field.pre_save(instance, True), db)


def _as_float(name: str, instance: Any, db: BaseDatabaseWrapper) -> Any:
    value = getattr(instance, name)
    return value if value is None else float(value)


def _as_integer(name: str, internal_type: str, instance: Any, db: BaseDatabaseWrapper) -> Any:
    value = getattr(instance, name)
    return value if value is None else db.ops.adapt_integerfield_value(value, internal_type)


def _new_memory(*, owner_id: str, at: datetime, data: dict) -> Memory:
    """An unsaved memory from validated data, its expiry and measured sizes set."""
    memory = Memory.new(owner_id=owner_id, at=at, **data)
    memory.apply_ttl()
    memory.measure_content()
    return memory


def _create_params(memories: list[Memory], terms: list[dict[int, int]], db) -> list:
    """_create_sql's parameters after the kept key's: the memories' rows, their first
    versions' rows and their index rows (arrays as literals for more than one memory,
    as _rows_params sends them)."""
    literal = len(memories) > 1
    created = MemoryVersion.Event.CREATED
    params = _rows_params([_row_values(memory, db, literal=literal) for memory in memories])
    params += _rows_params([
        _row_values(VersionRow(memory, event=created, number=1), db, literal=literal)
        for memory in memories
    ])  # fmt: skip
    return params + _term_array_params(memories, terms, db)


def _insert_created(
    memories: list[Memory],
    terms: list[dict[int, int]],
    *,
    keep: list | None = None,
) -> bool:
    """Write new memories, their first versions and their index rows, all or nothing.
    keep (PostgreSQL): Keep.params(), to keep an Idempotency-Key's response in the same
    statement; False when the key was not free, and nothing was written."""
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor == "postgresql":
        params = [*([] if keep is None else keep), *_create_params(memories, terms, db)]
        sql = _create_sql(db.alias, min(len(memories), 2), keep=keep is not None)
        # Prepared for a single create only: a batch's statement is planned in a small part
        # of its time, and psycopg dumps its arrays for a server-side binding in Python, at
        # a greater cost than that planning (53 against 65 ms of web CPU per 100 memories).
        single = len(memories) == 1
        # As Model.save(): a failure inside an outer atomic block marks it for rollback.
        with (
            transaction.mark_for_rollback_on_error(db.alias),
            prepared.cursor(db, prepare=single) as cursor,
        ):
            cursor.execute(sql, params)
            if keep is not None and cursor.fetchone() is None:
                return False
        for memory in memories:
            memory._state.adding, memory._state.db = False, db.alias
        return True
    with transaction.atomic():
        Memory.objects.bulk_create(memories)
        created = MemoryVersion.Event.CREATED
        MemoryVersion.objects.bulk_create(
            [VersionRow(memory, event=created, number=1).instance() for memory in memories]
        )
        for memory, memory_terms in zip(memories, terms, strict=True):
            _insert_terms(memory, memory_terms)
    return True


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


def create_memories(
    *,
    owner_id: str,
    items: list[dict],
    now: datetime | None = None,
    keep: idempotency.Keep | None = None,
) -> list[Memory]:
    """Store validated memories with their index rows and first versions, all or nothing.
    Every create goes through here (a single create is a batch of one); the clock is read
    once, here (`now` only backdates test and evaluation data). keep (PostgreSQL): the
    request's Idempotency-Key, kept by the same statement; when the key is not free,
    nothing is written and keep.refuse() answers instead (replay, 422 or 409)."""
    now = now or timezone.now()
    memories, terms = [], []
    hashes: dict = {}
    for data in items:
        memory = _new_memory(owner_id=owner_id, at=now, data=data)
        terms.append(_prepare_index(memory, hashes))
        memories.append(memory)
    kept = None if keep is None else keep.params(memories, now=now)
    if not _insert_created(memories, terms, keep=kept) and keep is not None:
        keep.refuse()
    analyze.note_created(len(memories))
    # The embeddings API is a network call: made after commit, off the request's path.
    for memory in memories:
        embeddings.schedule_embedding(memory)
    return memories


def create_memory(*, owner_id: str, data: dict, now: datetime | None = None) -> Memory:
    """Store one validated memory (a batch of one)."""
    return create_memories(owner_id=owner_id, items=[data], now=now)[0]


class VersionRow:
    """A MemoryVersion row of the memory's current state, as attributes named like the
    model's (what _row_values reads), without a model instance: Model.__init__ cost a
    batch more than the rest of the version's row."""

    row_model = MemoryVersion
    __slots__ = ("event", "memory_id", "owner_id", "recorded_at", "snapshot", "user_id", "version")

    def __init__(self, memory: Memory, *, event: str, number: int) -> None:
        self.memory_id = memory.pk
        self.owner_id = memory.owner_id
        self.user_id = memory.user_id
        self.version = number
        self.event = event
        self.recorded_at = memory.updated_at
        self.snapshot = memory.snapshot()

    def instance(self) -> MemoryVersion:
        return MemoryVersion(**{name: getattr(self, name) for name in self.__slots__})


@functools.cache
def _version_sql(alias: str) -> tuple[str, str]:
    """(trim, append). append adds a version numbered one past the memory's newest (the
    caller holds the memory's row lock, so numbers cannot race). On PostgreSQL, trim is a
    CTE for the same statement that drops the versions falling out of the newest
    MAX_VERSIONS_PER_MEMORY, so a memory changed more than that many times pays no second
    statement on every change (elsewhere "": the caller deletes them)."""
    quote = connections[alias].ops.quote_name
    table = quote(MemoryVersion._meta.db_table)
    fields = _insert_fields(MemoryVersion)
    columns = ", ".join(quote(field.column) for field in fields)
    values = ", ".join(
        "COALESCE(MAX(version), 0) + 1" if field.name == "version" else "%s" for field in fields
    )
    append = (
        f"INSERT INTO {table} ({columns}) SELECT {values} FROM {table} "  # noqa: S608 - names from the model, values as placeholders
        f"WHERE memory_id = %s RETURNING version"
    )
    if connections[alias].vendor != "postgresql":
        return "", append
    # Both parts see the versions as they were before the statement.
    trim = (
        f"trimmed AS (DELETE FROM {table} WHERE memory_id = %s AND version <= "  # noqa: S608 - names from the model, values as placeholders
        f"(SELECT MAX(version) FROM {table} WHERE memory_id = %s) + 1 - {MAX_VERSIONS_PER_MEMORY})"
    )
    return trim, append


def _version_params(memory: Memory, *, event: str, db) -> list:
    """_version_sql's parameters (trim's first, on PostgreSQL) for the memory's state."""
    version = VersionRow(memory, event=event, number=0)
    params = [
        field.get_db_prep_save(field.pre_save(version, True), db)
        for field in _insert_fields(MemoryVersion)
        if field.name != "version"
    ]
    memory_id = Memory._meta.pk.get_db_prep_value(memory.pk, db)
    trim = [memory_id, memory_id] if db.vendor == "postgresql" else []
    return [*trim, *params, memory_id]


@functools.cache
def _update_sql(alias: str, names: frozenset[str]) -> tuple[str, tuple[Any, ...]]:
    """UPDATE of one memory's fields named in names, and those fields in the order of
    the statement's placeholders (the memory's id is the last parameter)."""
    quote = connections[alias].ops.quote_name
    fields: tuple[Any, ...] = tuple(f for f in Memory._meta.concrete_fields if f.name in names)
    if len(fields) != len(names):  # as save(update_fields=...) refuses an unknown name
        raise ValueError(f"not fields of Memory: {sorted(names - {f.name for f in fields})}")
    assignments = ", ".join(f"{quote(field.column)} = %s" for field in fields)
    pk: Any = Memory._meta.pk
    table = quote(Memory._meta.db_table)
    return f"UPDATE {table} SET {assignments} WHERE {quote(pk.column)} = %s", fields  # noqa: S608 - names from the model, values as placeholders


def _update_statement(memory: Memory, fields: set[str], db) -> tuple[str, list]:
    """The UPDATE that memory.save(update_fields=fields) sends, with its parameters."""
    sql, columns = _update_sql(db.alias, frozenset(memory.prepare_save(fields) or ()))
    params = [field.get_db_prep_save(field.pre_save(memory, False), db) for field in columns]
    return sql, [*params, Memory._meta.pk.get_db_prep_value(memory.pk, db)]


def _save_with_version(memory: Memory, *, fields: set[str], event: str) -> None:
    """Inside the change's transaction, with the memory's row locked: save its changed
    fields and add its new state as its newest version. On PostgreSQL in one statement
    (the UPDATE as a data-modifying CTE), so history costs PATCH no round trip."""
    db = connections[DEFAULT_DB_ALIAS]
    trim, append = _version_sql(db.alias)
    version_params = _version_params(memory, event=event, db=db)
    if db.vendor == "postgresql":
        update, update_params = _update_statement(memory, fields, db)
        # As Model.save(): a failure inside an outer atomic block marks it for rollback.
        with transaction.mark_for_rollback_on_error(db.alias), prepared.cursor(db) as cursor:
            cursor.execute(
                f"WITH updated AS ({update}), {trim} {append}", [*update_params, *version_params]
            )
        return
    memory.save(update_fields=fields)
    with db.cursor() as cursor:
        cursor.execute(append, version_params)
        (number,) = cursor.fetchone()
    if number > MAX_VERSIONS_PER_MEMORY:
        MemoryVersion.objects.filter(
            memory_id=memory.pk, version__lte=number - MAX_VERSIONS_PER_MEMORY
        ).delete()


def _lock_current(memory: Memory) -> Memory:
    """Inside a transaction: the memory's row as it is now, locked; 404 if a concurrent
    request deleted it since it was read (as if the request had come a moment later)."""
    current = Memory.objects.select_for_update().filter(pk=memory.pk, is_deleted=False).first()
    if current is None:
        raise NotFound()
    return current


def live_memory(
    *, owner_id: str, memory_id, user_id: str | None = None, lock: bool = False
) -> Memory:
    """The owner's live memory, or 404 exactly like a memory that never existed. With
    lock (inside a transaction) the row is locked: changes validated against it cannot
    race another change of it."""
    rows = Memory.objects.for_owner(owner_id).live().filter(pk=memory_id)
    if lock:
        rows = rows.select_for_update()
    if user_id is not None:
        rows = rows.filter(user_id=user_id)
    memory = rows.first()
    if memory is None:
        raise NotFound()
    return memory


def update_memory(*, memory: Memory, data: dict, locked: bool = False) -> Memory:
    """Apply validated changes to the memory as it is now: the row is read again and
    locked (unless the caller locked it in this transaction and passes locked), and the
    index, content hash and embedding are built from it inside the lock, so a concurrent
    change can never leave the index describing older content."""
    with transaction.atomic():
        if not locked:
            memory = _lock_current(memory)
        for name, value in data.items():
            setattr(memory, name, value)
        memory.updated_at = timezone.now()
        changed = {*data, "updated_at"}
        reindex = bool(changed & INDEXED_FIELDS)
        if reindex:
            terms = _prepare_index(memory)
            changed |= {"term_count", "index_version", "content_hash"}
        _save_with_version(memory, fields=changed, event=MemoryVersion.Event.UPDATED)
        if reindex:
            MemoryTerm.objects.filter(memory=memory).delete()
            _insert_terms(memory, terms)
            MemoryEmbedding.objects.filter(memory=memory).delete()
            embeddings.schedule_embedding(memory)
    return memory


def soft_delete_memory(*, memory: Memory) -> Memory:
    """Mark deleted (final in v1) and drop its index rows: deleted memories never match."""
    with transaction.atomic():
        memory = _lock_current(memory)
        memory.is_deleted = True
        memory.updated_at = timezone.now()
        fields = {"is_deleted", "updated_at"}
        _save_with_version(memory, fields=fields, event=MemoryVersion.Event.SOFT_DELETED)
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


def hard_delete_memories(
    *, owner_id: str, ids: list[uuid.UUID], actor: str
) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    """Remove the owner's memories among ids, each as hard_delete_memory does, in one
    transaction; (deleted, not found) in the order given, each id once."""
    ids = list(dict.fromkeys(ids))
    with transaction.atomic():
        # Locked in one order, so two overlapping batches cannot deadlock; locked before
        # the cascade for the reason hard_delete_memory gives.
        rows = Memory.objects.for_owner(owner_id).filter(pk__in=ids).order_by("pk")
        found = set(rows.select_for_update().values_list("pk", flat=True))
        if found:
            # only(): deleting must not decrypt what it removes.
            Memory.objects.filter(pk__in=found).only("pk").delete()
            record_events(
                event=AuditEvent.Event.MEMORY_HARD_DELETED,
                owner_id=owner_id,
                actor=actor,
                targets=[str(pk) for pk in ids if pk in found],
            )
    return [pk for pk in ids if pk in found], [pk for pk in ids if pk not in found]


def find_duplicate(*, owner_id: str, user_id: str, content: str) -> Memory | None:
    """A live memory of the user whose content is the same up to case and spacing."""
    digest = content_hash(owner_id=owner_id, user_id=user_id, content=content)
    rows = Memory.objects.for_owner(owner_id).live().filter(user_id=user_id)
    # No ORDER BY: with one, stale statistics could pick a walk of the primary key.
    return next(iter(rows.filter(content_hash=digest).order_by()[:1]), None)


class UpsertResult(NamedTuple):
    result: str  # "created", "updated" or "unchanged"
    memory: Memory


def _upsert_lock_id(owner_id: str, user_id: str, key: str) -> int:
    # A namespace of its own: never the lock of an Idempotency-Key (memories.idempotency).
    message = "\x1f".join(("upsert", owner_id, user_id, key)).encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(message, digest_size=8).digest(), "big", signed=True)


def _lock_upsert(*, owner_id: str, user_id: str, key: str) -> None:
    """Inside a transaction: serialise upserts of one (owner, user, key) until it ends,
    across workers and hosts, without locking a table. Two triples whose hashes collide
    only wait for each other."""
    db = connections[DEFAULT_DB_ALIAS]
    with db.cursor() as cursor:
        if db.vendor == "postgresql":
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s)", [_upsert_lock_id(owner_id, user_id, key)]
            )
        else:
            # SQLite has one writer at a time: take the write lock now, before reading,
            # so that the read below and the write after it cannot interleave with another.
            table = db.ops.quote_name(Memory._meta.db_table)
            cursor.execute(f"UPDATE {table} SET id = id WHERE 1 = 0")  # noqa: S608 - table name from the model


def _same(name: str, current, given) -> bool:
    """Whether a field already has the given value; JSON fields compare as JSON, where 1,
    1.0 and true are three different values and key order does not matter."""
    if name in ("value", "metadata"):
        return json.dumps(current, sort_keys=True) == json.dumps(given, sort_keys=True)
    return current == given


def upsert_memory(
    *,
    owner_id: str,
    data: dict,
    merge_metadata: bool = False,
    validate_new: Callable[[], dict] | None = None,
    revalidate: Callable[[Memory], dict] | None = None,
) -> UpsertResult:
    """Change the user's newest live memory with data's key to the fields data gives, or
    create one. Nothing is written when every given field already has its value.
    merge_metadata: add the given metadata to the current one instead of replacing it.
    validate_new: finishes validating the request as a create, when it creates.
    revalidate: validates the request again as a change of the locked memory (as PATCH
    does: rules mode and TTL against its current state) and returns the changes."""
    user_id, key = data["user_id"], data["key"]
    # First without a transaction or a lock: an upsert that changes nothing (the common
    # case of a client that re-sends its facts) is one read, and writes nothing, not even
    # a row lock. Answering "unchanged" from committed state is as if it came a moment
    # before any change still in flight.
    existing = _newest(owner_id, user_id, key)
    if existing is not None:
        changes = _upsert_changes(existing, data, merge_metadata, revalidate)
        if not changes:
            return UpsertResult("unchanged", existing)
    with transaction.atomic():
        _lock_upsert(owner_id=owner_id, user_id=user_id, key=key)
        # Locked: a PATCH of the same memory waits, so the comparison below stays true.
        existing = _newest(owner_id, user_id, key, lock=True)
        if existing is None:
            if validate_new is not None:
                data = validate_new()
            return UpsertResult("created", create_memory(owner_id=owner_id, data=data))
        changes = _upsert_changes(existing, data, merge_metadata, revalidate)
        if not changes:
            return UpsertResult("unchanged", existing)
        return UpsertResult("updated", update_memory(memory=existing, data=changes, locked=True))


def _newest(owner_id: str, user_id: str, key: str, *, lock: bool = False) -> Memory | None:
    """The user's newest live memory with this key, or None; lock: and lock its row (FOR
    UPDATE, in the caller's transaction). The newest is chosen here among the few rows:
    with ORDER BY ... LIMIT 1, a planner whose statistics predate a bulk load walked the
    user's newest-first index through every memory of the user instead (12 ms at 17,000
    memories, against 0.05 ms through the key index). Raw SQL: compiling the same
    query through the ORM cost about a fifth of an unchanged upsert's CPU."""
    connection = connections[router.db_for_read(Memory)]
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    rows = Memory.objects.raw(
        _newest_sql(connection, lock),
        {"owner": owner_id, "user": user_id, "key": key, "now": now},
    )
    return max(rows, key=lambda memory: (memory.created_at, memory.pk), default=None)


def _newest_sql(connection: BaseDatabaseWrapper, lock: bool) -> str:
    table = connection.ops.quote_name(Memory._meta.db_table)
    return (
        f"SELECT m.* FROM {table} m WHERE m.owner_id = %(owner)s"  # noqa: S608 - names from the model, values as placeholders
        f" AND m.user_id = %(user)s AND m.key = %(key)s AND {live_sql('m', connection)}"
        + (" FOR UPDATE" if lock and connection.features.has_select_for_update else "")
    )


def _upsert_changes(existing: Memory, data: dict, merge_metadata: bool, revalidate) -> dict:
    """The fields of data that differ from the existing memory's."""
    if revalidate is not None:
        data = revalidate(existing)
    wanted = {name: value for name, value in data.items() if name != "user_id"}
    if wanted.get("ttl_seconds") is not None:
        # As PATCH: a TTL counts from the memory's creation, not from this request.
        wanted["expires_at"] = existing.created_at + timedelta(seconds=wanted["ttl_seconds"])
    if merge_metadata and "metadata" in wanted:
        wanted["metadata"] = merged_metadata(existing.metadata, wanted["metadata"])
    return {
        name: value
        for name, value in wanted.items()
        if not _same(name, getattr(existing, name), value)
    }


def merged_metadata(current: dict, extra: dict) -> dict:
    """current plus extra, unless that breaks the metadata limits: then current as is."""
    try:
        return MetadataField().run_validation({**current, **extra})
    except serializers.ValidationError:
        return current


def memory_stats(*, owner_id: str, user_id: str) -> dict:
    """Counts for one user: live total, soft-deleted, expired; breakdowns of the live ones.
    One grouped scan of the user's rows (a covering index); Python adds up the groups."""
    expired = ExpressionWrapper(expired_q(timezone.now()), output_field=BooleanField())
    groups = (
        Memory.objects.filter(owner_id=owner_id, user_id=user_id)
        .annotate(expired=expired)
        .values_list("is_deleted", "expired", "type", "importance")
        .annotate(n=Count("pk"), oldest=Min("created_at"), newest=Max("created_at"))
        .order_by()
    )
    stats: dict[str, Any] = {
        "total": 0,
        "deleted": 0,
        "expired": 0,
        "oldest": None,
        "newest": None,
        "by_type": dict.fromkeys(MemoryType.values, 0),
        "by_importance": {str(level): 0 for level in range(MIN_IMPORTANCE, MAX_IMPORTANCE + 1)},
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
