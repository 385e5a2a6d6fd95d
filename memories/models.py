import uuid
from datetime import datetime, timedelta
from typing import Any

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q, Value
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce
from django.db.models.sql import Query
from django.utils import timezone

from memories import vectors
from memories.crypto import (
    decrypt_bytes,
    decrypt_json,
    decrypt_text,
    encrypt_bytes,
    encrypt_json,
    encrypt_text,
)
from memoryproject.parsing import json_size

# Memory Contract v1's limits, declared once. The fields and constraints below, the
# serializers, the rules parser, the extraction schema the LLM gets and the OpenAPI schema
# are all built from these (memoryproject/tests/test_schema.py checks the last).
MAX_ID_CHARS = 255  # user_id, owner_id and key
MIN_IMPORTANCE, MAX_IMPORTANCE = 1, 5
MAX_CONTENT_CHARS = 10_000
# value: at most this many bytes as compact UTF-8 JSON, and this many levels of objects and
# arrays (the outermost one is level 1). The database checks the size.
MAX_VALUE_BYTES = 10_000
MAX_VALUE_DEPTH = 5
MAX_TTL_SECONDS = 100 * 365 * 24 * 3600
DEFAULT_IMPORTANCE = 3  # how ranking treats a memory without importance


class CoveringIndex(models.Index):
    """An index with non-key columns (INCLUDE) where the database has them. SQLite, the
    development database, has none: there the index is built on its key columns alone, as
    Django does for models.Index(include=...), but without that class's models.W040
    warning on every start. To migrations it is exactly models.Index(include=...)."""

    def __init__(self, *args, include=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.covering = tuple(include)

    def deconstruct(self):
        _, args, kwargs = super().deconstruct()
        kwargs["include"] = self.covering
        return "django.db.models.Index", args, kwargs

    def __eq__(self, other):
        # The autodetector compares it with the plain Index of the migration files.
        if isinstance(other, models.Index):
            return self.deconstruct() == other.deconstruct()
        return NotImplemented

    def create_sql(self, model, schema_editor, using="", **kwargs):
        _, args, index_kwargs = self.deconstruct()
        index = models.Index(*args, **index_kwargs)
        return index.create_sql(model, schema_editor, using=using, **kwargs)


class MemoryType(models.TextChoices):
    FACT = "fact"
    PREFERENCE = "preference"
    EVENT = "event"
    SYSTEM = "system"


class UserIdField(models.CharField):
    """An end user's id (the API's user_id): at most MAX_ID_CHARS characters. Stored as a
    plain CharField: to migrations it is exactly one."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("max_length", MAX_ID_CHARS)
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, _, args, kwargs = super().deconstruct()
        return name, "django.db.models.CharField", args, kwargs


class IngestionMode(models.TextChoices):
    EXPLICIT = "explicit"
    RULES = "rules"


class EncryptedTextField(models.TextField):
    """Text stored encrypted (memories.crypto); decrypted only when a row is loaded."""

    def from_db_value(self, value, expression, connection):
        return None if value is None else decrypt_text(value)

    def get_prep_value(self, value):
        return None if value is None else encrypt_text(value)


class EncryptedJSONField(models.TextField):
    """Any JSON value stored encrypted (memories.crypto) as its compact serialisation;
    NULL is None."""

    _pyi_private_set_type: Any  # for django-stubs: the Python value is JSON, not text
    _pyi_private_get_type: Any

    def from_db_value(self, value, expression, connection):
        return None if value is None else decrypt_json(value)

    def get_prep_value(self, value):
        return None if value is None else encrypt_json(value)

    def to_python(self, value):
        return value


class EncryptedVectorField(models.TextField):
    """An embedding vector stored encrypted (memories.crypto) as memories.vectors.pack():
    loaded as a unit-length float32 numpy array."""

    _pyi_private_set_type: Any  # for django-stubs: the Python value is an array, not text
    _pyi_private_get_type: Any

    def from_db_value(self, value, expression, connection):
        return None if value is None else vectors.unpack(decrypt_bytes(value))

    def get_prep_value(self, value):
        return None if value is None else encrypt_bytes(vectors.pack(value))

    def to_python(self, value):
        return value


# "Live" is defined once, as the Q objects below. Raw SQL gets the same conditions
# compiled from them by Django (live_sql, unexpired_sql), and a test checks that the ORM,
# the SQL and Memory.is_expired pick the same rows.


def unexpired_q(at) -> Q:
    """Not expired at `at`: no expiry, or one still ahead (expiring exactly at `at` is
    expired)."""
    return Q(expires_at__isnull=True) | Q(expires_at__gt=at)


def live_q(at) -> Q:
    """A live memory: not soft-deleted and not expired at `at`."""
    return Q(is_deleted=False) & unexpired_q(at)


def expired_q(at) -> Q:
    """Expired at `at`, soft-deleted or not: the complement of unexpired_q."""
    return ~unexpired_q(at)


_condition_sql_cache: dict[tuple, str] = {}


def _condition_sql(model, condition, alias: str, at: str, connection) -> str:
    """condition(at) compiled by Django for model's table under alias, with the text `at`
    (a placeholder) where the time goes. Built once per process and shape."""
    key = (model, condition, alias, at, connection.vendor)
    sql = _condition_sql_cache.get(key)
    if sql is None:
        # `at` is a placeholder written in our code, never a value from a request.
        placeholder = RawSQL(at, [], output_field=models.DateTimeField())  # noqa: S611
        query = Query(model)
        where = query.build_where(condition(placeholder))
        where = where.relabeled_clone({model._meta.db_table: alias})
        sql, params = where.as_sql(query.get_compiler(connection=connection), connection)
        if params:  # the rule has no value but the time
            raise ValueError(f"condition has parameters: {params}")
        _condition_sql_cache[key] = sql
    return sql


def live_sql(alias: str, connection, *, at: str = "%(now)s") -> str:
    """live_q as a raw SQL condition on the memories table under `alias`. `at` is the
    placeholder the statement binds to the time: named by default, "%s" for positional
    parameters."""
    return _condition_sql(Memory, live_q, alias, at, connection)


def unexpired_sql(alias: str, connection, *, at: str = "%(now)s") -> str:
    """unexpired_q as raw SQL on the index table (MemoryTerm) under `alias`: index rows
    exist only for memories that are not soft-deleted and carry their expiry, so for
    them this is the whole live rule."""
    return _condition_sql(MemoryTerm, unexpired_q, alias, at, connection)


class MemoryQuerySet(models.QuerySet):
    def for_owner(self, owner_id: str):
        return self.filter(owner_id=owner_id)

    def pk_batches(self, size: int):
        """The rows' primary keys in key order, `size` at a time, one short query a batch
        (keyset paging: rows added or removed meanwhile never shift a batch)."""
        last = None
        while True:
            rows = self.order_by("pk")
            if last is not None:
                rows = rows.filter(pk__gt=last)
            batch = list(rows.values_list("pk", flat=True)[:size])
            if not batch:
                return
            yield batch
            last = batch[-1]

    def live(self, at: datetime | None = None):
        """Neither soft-deleted nor expired (live_q)."""
        return self.filter(live_q(at or timezone.now()))


class Memory(models.Model):
    """Memory Contract v1. content, value and metadata are encrypted at rest."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner_id = models.CharField(max_length=MAX_ID_CHARS, editable=False)
    user_id = UserIdField()
    type = models.CharField(max_length=16, choices=MemoryType.choices)
    # content, value and metadata: one encrypted JSON list, [content, value, metadata], so
    # a row costs one decryption, not three (the properties below read and write it).
    envelope = EncryptedJSONField(null=True, editable=False)
    content_chars = models.PositiveIntegerField(
        editable=False, help_text="Length of the plaintext content, checked by the database."
    )
    confidence = models.FloatField(
        default=1.0, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    key = models.CharField(max_length=MAX_ID_CHARS, null=True, blank=True)
    value_bytes = models.PositiveIntegerField(
        default=0, editable=False, help_text="Size of the plaintext value as compact JSON."
    )
    importance = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(MIN_IMPORTANCE), MaxValueValidator(MAX_IMPORTANCE)],
    )
    ttl_seconds = models.PositiveBigIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(MAX_TTL_SECONDS)]
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    ingestion_mode = models.CharField(
        max_length=16, choices=IngestionMode.choices, default=IngestionMode.EXPLICIT
    )
    is_deleted = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)
    # Blind index bookkeeping: document length for BM25 and the normalisation version.
    term_count = models.PositiveIntegerField(default=0, editable=False)
    index_version = models.PositiveSmallIntegerField(default=0, editable=False)
    # Keyed hash of the normalised content (scoped like the term index), so an identical
    # memory can be found without decrypting: extraction never stores a duplicate.
    content_hash = models.BigIntegerField(null=True, editable=False)
    # Rows written before the envelope keep content, value and metadata as three tokens in
    # these columns (envelope NULL) until their next save, which moves them into the
    # envelope and clears these; rotate_encryption_key saves every row.
    legacy_content = EncryptedTextField(null=True, editable=False, db_column="content")
    legacy_value = EncryptedJSONField(null=True, editable=False, db_column="value")
    legacy_metadata = EncryptedJSONField(null=True, editable=False, db_column="metadata")

    objects = MemoryQuerySet.as_manager()

    # The columns that content, value and metadata are read from: a partial load (.only())
    # that needs any of the three names these.
    LEGACY_FIELDS = ("legacy_content", "legacy_value", "legacy_metadata")
    ENCRYPTED_COLUMNS = ("envelope", *LEGACY_FIELDS)
    _ENVELOPED = {"content", "value", "metadata"}

    class Meta:
        verbose_name_plural = "memories"
        indexes = [
            # Listing (and the context "recent" fallback): newest first per owner and user.
            models.Index(
                F("owner_id"),
                F("user_id"),
                F("created_at").desc(),
                F("id").desc(),
                name="memory_owner_user_newest",
            ),
            models.Index(
                fields=["owner_id", "user_id", "content_hash"],
                name="memory_owner_user_content",
                condition=Q(is_deleted=False),
            ),
            # Upsert and the key filter: the newest live memory with a key is the first entry
            # of this index, whatever the planner's statistics say (without created_at, a
            # planner with stale statistics walked the newest-first index through all of
            # the user's memories instead).
            models.Index(
                F("owner_id"),
                F("user_id"),
                F("key"),
                F("created_at").desc(),
                F("id").desc(),
                name="memory_owner_user_key_newest",
                condition=Q(is_deleted=False),
            ),
            # Stats: one aggregate that reads this index only.
            CoveringIndex(
                fields=["owner_id", "user_id"],
                include=["is_deleted", "expires_at", "type", "importance", "created_at"],
                name="memory_owner_user_stats",
            ),
            # Context ranking: BM25 corpus statistics read this index only.
            CoveringIndex(
                fields=["owner_id", "user_id"],
                include=["term_count", "expires_at"],
                name="memory_owner_user_corpus",
                condition=Q(is_deleted=False),
            ),
            # Context fallback: most important (no importance counts as 3), then newest.
            models.Index(
                F("owner_id"),
                F("user_id"),
                Coalesce(F("importance"), Value(DEFAULT_IMPORTANCE)).desc(),
                F("created_at").desc(),
                name="memory_owner_user_importance",
                condition=Q(is_deleted=False),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(type__in=MemoryType.values), name="memory_type_valid"
            ),
            models.CheckConstraint(
                condition=Q(confidence__gte=0, confidence__lte=1),
                name="memory_confidence_range",
            ),
            models.CheckConstraint(
                condition=Q(importance__isnull=True)
                | Q(importance__gte=MIN_IMPORTANCE, importance__lte=MAX_IMPORTANCE),
                name="memory_importance_range",
            ),
            models.CheckConstraint(
                condition=Q(ingestion_mode__in=IngestionMode.values),
                name="memory_ingestion_mode_valid",
            ),
            models.CheckConstraint(
                condition=Q(content_chars__gte=1, content_chars__lte=MAX_CONTENT_CHARS),
                name="memory_content_length",
            ),
            models.CheckConstraint(
                condition=Q(value_bytes__lte=MAX_VALUE_BYTES), name="memory_value_size"
            ),
            models.CheckConstraint(
                condition=Q(ttl_seconds__isnull=True)
                | Q(ttl_seconds__gte=1, ttl_seconds__lte=MAX_TTL_SECONDS),
                name="memory_ttl_positive",
            ),
            models.CheckConstraint(condition=~Q(user_id=""), name="memory_user_id_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.type} memory {self.id}"

    def save(self, *args, **kwargs):
        """For changes to an existing row; on PostgreSQL, services._save_with_version
        writes them without this method, through prepare_save(): put what a change needs
        there. New memories are written by memories.services.create_memories alone, on
        every database without this method (it computes the same derived columns): add
        nothing here that a create also needs."""
        update_fields = self.prepare_save(kwargs.get("update_fields"))
        if update_fields is not None:
            kwargs["update_fields"] = update_fields
        super().save(*args, **kwargs)

    @classmethod
    def new(cls, *, owner_id: str, at: datetime, **data: Any) -> "Memory":
        """Memory(owner_id=owner_id, created_at=at, updated_at=at, **data), built from
        positional values: Model.__init__ takes 22 µs for keyword arguments and 5 µs
        for positional ones, and a batch builds a hundred memories. Each field absent
        from data gets its default exactly as Model.__init__ would give it."""
        data = {"owner_id": owner_id, "created_at": at, "updated_at": at, **data}
        # content, value and metadata are properties over the envelope (see _enveloped).
        data["envelope"] = [
            data.pop("content", ""),
            data.pop("value", None),
            data.pop("metadata") if "metadata" in data else {},
        ]
        values = [data.pop(name) if name in data else default() for name, default in _DEFAULTS]
        if data:
            raise TypeError(f"Memory.new() got unexpected fields: {', '.join(sorted(data))}")
        return cls(*values)  # type: ignore[misc]  # positional, in concrete field order

    def prepare_save(self, update_fields) -> set[str] | None:
        """Measure the content and seal the envelope; return the fields that a save of
        update_fields writes (None: every field). save() calls it; so does a statement
        that writes a change without save()."""
        self.measure_content()
        # A row loaded in the earlier format moves into an envelope on any save (its
        # values unchanged, so a save of other fields may carry it).
        earlier = self.__dict__.get("legacy_content") is not None
        sealing = earlier or update_fields is None or bool(self._ENVELOPED & set(update_fields))
        if sealing:
            self._enveloped()
            self.legacy_content = self.legacy_value = self.legacy_metadata = None
        if update_fields is None:
            return None
        measured = {"content": "content_chars", "value": "value_bytes"}
        extra = {measured[name] for name in update_fields if name in measured}
        if sealing:
            extra |= set(self.ENCRYPTED_COLUMNS)
        return {*update_fields, *extra} - self._ENVELOPED

    @property
    def content(self) -> str:
        return self._enveloped()[0]

    @content.setter
    def content(self, content: str) -> None:
        self._replace(0, content)

    @property
    def value(self):
        return self._enveloped()[1]

    @value.setter
    def value(self, value) -> None:
        self._replace(1, value)

    @property
    def metadata(self) -> dict:
        return self._enveloped()[2]

    @metadata.setter
    def metadata(self, metadata: dict) -> None:
        self._replace(2, metadata)

    def _enveloped(self) -> list:
        """[content, value, metadata]; a row from before the envelope reads its three
        columns, once (the defaults, "", None and {}, for a new memory)."""
        if self.envelope is None:
            metadata = self.legacy_metadata
            self.envelope = [
                self.legacy_content or "",
                self.legacy_value,
                {} if metadata is None else metadata,
            ]
        return self.envelope

    @staticmethod
    def content_from_columns(envelope: str | None, legacy_content: str | None) -> str:
        """The content of a row from the raw values of its envelope and content columns,
        for a statement that reads them without the ORM."""
        if envelope is not None:
            return decrypt_json(envelope)[0]
        if legacy_content is None:
            raise ValueError("a memory row holds neither an envelope nor content")
        return decrypt_text(legacy_content)

    def _replace(self, index: int, item) -> None:
        # A new list: a copy of this instance must not see the change.
        enveloped = list(self._enveloped())
        enveloped[index] = item
        self.envelope = enveloped

    def measure_content(self) -> None:
        """The plaintext sizes that the database checks: content_chars (0, refused, when
        the content is blank) and value_bytes."""
        self.content_chars = len(self.content.strip()) and len(self.content)
        self.value_bytes = json_size(self.value) if self.value is not None else 0

    def apply_ttl(self) -> None:
        """expires_at = created_at + ttl_seconds, when the memory has a TTL."""
        if self.ttl_seconds is not None:
            self.expires_at = self.created_at + timedelta(seconds=self.ttl_seconds)

    def snapshot(self) -> dict:
        """What a version of this memory records (MemoryVersion.SNAPSHOT_FIELDS), as JSON."""
        expires_at = self.expires_at.isoformat() if self.expires_at else None
        return {
            "type": self.type,
            "content": self.content,
            "key": self.key,
            "value": self.value,
            "importance": self.importance,
            "confidence": float(self.confidence),
            "metadata": self.metadata,
            "expires_at": expires_at,
        }

    def is_expired(self, at: datetime | None = None) -> bool:
        """expired_q for one loaded row."""
        return self.expires_at is not None and self.expires_at <= (at or timezone.now())

    def searchable_text(self) -> str:
        """The encrypted text the blind index sees as words: content and a string value."""
        if isinstance(self.value, str):
            return f"{self.content}\n{self.value}"
        return self.content

    def key_words(self) -> str:
        """The key as words (`ui_theme` -> `ui theme`), indexed in a domain of their own."""
        return (self.key or "").replace("_", " ").replace("-", " ").replace(".", " ")


# Each concrete field of Memory in order, with the callable Model.__init__ takes its
# default from (field._get_default: a constant, uuid4, timezone.now, ...), for Memory.new.
_DEFAULTS = [
    (field.attname, field._get_default)  # type: ignore[attr-defined]  # Django's cached callable
    for field in Memory._meta.concrete_fields
]


class MemoryTerm(models.Model):
    """Blind keyword index: one row per (memory, term). The term is a keyed hash scoped
    to owner and user, so equal words match only inside one owner's user. The memory's
    length and expiry are copied here so ranking reads this index alone."""

    id = models.BigAutoField(primary_key=True)
    # No database foreign key (here and on MemoryEmbedding): PostgreSQL checks one with a
    # plan cached for the connection's lifetime, and a plan made while the memories table
    # was small is a sequential scan, so every create (and every memory delete, checking
    # the other way) grew slower as the table grew. The rows are derived: written in the
    # same statement as their memory, deleted with it (Django's CASCADE), and rebuilt by
    # reindex_memories.
    memory = models.ForeignKey(
        Memory, on_delete=models.CASCADE, related_name="terms", db_constraint=False
    )
    owner_id = models.CharField(max_length=MAX_ID_CHARS)
    user_id = UserIdField()
    term = models.BigIntegerField()
    tf = models.PositiveSmallIntegerField()
    doc_length = models.PositiveIntegerField(help_text="The memory's term_count.")
    expires_at = models.DateTimeField(null=True, help_text="The memory's expires_at.")

    class Meta:
        indexes = [
            CoveringIndex(
                fields=["owner_id", "user_id", "term"],
                include=["memory_id", "tf", "doc_length", "expires_at"],
                name="memoryterm_lookup",
            ),
        ]


class MemoryEmbedding(models.Model):
    """Encrypted embedding vector of one memory, for optional semantic re-ranking."""

    memory = models.OneToOneField(
        Memory,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="embedding",
        db_constraint=False,  # see MemoryTerm.memory
    )
    owner_id = models.CharField(max_length=MAX_ID_CHARS)
    user_id = UserIdField()
    model = models.CharField(max_length=255)
    vector = EncryptedVectorField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["owner_id", "user_id"], name="memoryembedding_scope")]


# History keeps the newest versions of each memory; older ones are dropped as new ones
# come, so reading a memory's history costs at most this many rows however often it
# changed.
MAX_VERSIONS_PER_MEMORY = 100


class MemoryVersion(models.Model):
    """One version of a memory: a full snapshot, encrypted as one token, written in the
    transaction that made the change. Removed with the memory (hard delete, GDPR)."""

    class Event(models.TextChoices):
        CREATED = "created"
        UPDATED = "updated"
        SOFT_DELETED = "soft_deleted"

    # The fields a version shows, in the order the API lists them.
    SNAPSHOT_FIELDS = (
        "type", "content", "key", "value", "importance", "confidence", "metadata", "expires_at",
    )  # fmt: skip

    id = models.BigAutoField(primary_key=True)
    memory = models.ForeignKey(
        Memory,
        on_delete=models.CASCADE,
        related_name="versions",
        db_constraint=False,  # see MemoryTerm.memory
        db_index=False,  # memoryversion_unique (memory, version) serves look-ups by memory
    )
    owner_id = models.CharField(max_length=MAX_ID_CHARS)
    user_id = UserIdField()
    version = models.PositiveIntegerField()
    event = models.CharField(max_length=16, choices=Event.choices)
    recorded_at = models.DateTimeField()
    snapshot = EncryptedJSONField(help_text="SNAPSHOT_FIELDS of the memory, as JSON.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["memory", "version"], name="memoryversion_unique"),
        ]
        indexes = [
            models.Index(fields=["owner_id", "user_id"], name="memoryversion_scope"),
        ]


class IdempotentRequest(models.Model):
    """The kept 2xx response of a write sent with an Idempotency-Key, for 24 hours. Unique
    per owner and key. A request in progress holds a lock, not a row (memories.idempotency)."""

    id = models.BigAutoField(primary_key=True)
    owner_id = models.CharField(max_length=MAX_ID_CHARS)
    key = models.CharField(max_length=255)
    request_hash = models.CharField(
        max_length=64, help_text="Keyed hash of method, path and parsed JSON body."
    )
    response_status = models.PositiveSmallIntegerField()
    response_body = EncryptedJSONField()
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["owner_id", "key"], name="idempotentrequest_unique"),
        ]


class IdempotentRequestUser(models.Model):
    """An end user whose data a kept response holds, so that erasing the user erases it."""

    request = models.ForeignKey(IdempotentRequest, on_delete=models.CASCADE, related_name="users")
    owner_id = models.CharField(max_length=MAX_ID_CHARS)
    user_id = UserIdField()

    class Meta:
        indexes = [
            models.Index(fields=["owner_id", "user_id"], name="idempotentrequestuser_scope"),
        ]
