from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, cast

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers
from rest_framework.fields import SkipField, empty, get_error_detail
from rest_framework.utils import html

from memories.fieldcopy import ShallowFieldCopies
from memories.models import (
    MAX_CONTENT_CHARS,
    MAX_ID_CHARS,
    MAX_IMPORTANCE,
    MAX_TTL_SECONDS,
    MAX_VALUE_BYTES,
    MAX_VALUE_DEPTH,
    MIN_IMPORTANCE,
    IngestionMode,
    Memory,
    MemoryType,
    MemoryVersion,
)
from memories.rules import parse_rule
from memoryproject.parsing import (
    StrictCharField,
    StrictFloatField,
    StrictIntegerField,
    StrictUUIDField,
    check_json_limits,
    iso_datetime,
    json_size,
)

MAX_METADATA_BYTES = 5 * 1024
MAX_METADATA_DEPTH = 5  # the top-level object is level 1
INGESTION_MODE_ERROR = "Invalid ingestion_mode. Must be one of: explicit, rules"
# DRF's default message echoes the input, and a lone surrogate in it cannot be rendered.
TYPE_ERROR = "Must be one of: fact, preference, event, system."
# The fields a rules-mode content derives or checks.
RULE_FIELDS = {"content", "type", "key", "value", "ingestion_mode"}
# expires_at and created_at + ttl_seconds may differ by rounding, not more.
TTL_TOLERANCE = timedelta(seconds=1)


class UserIdField(StrictCharField):
    """The API's user_id, as models.UserIdField stores it: 1 to MAX_ID_CHARS characters,
    kept exactly as sent."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", MAX_ID_CHARS)
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)


@extend_schema_field(
    {
        "description": f"Any JSON value, at most {MAX_VALUE_BYTES:,} bytes as compact UTF-8 "
        f"JSON and at most {MAX_VALUE_DEPTH} levels of objects and arrays (the outermost "
        "is level 1).",
    }
)
class ValueField(serializers.JSONField):
    def to_internal_value(self, data):
        check_json_limits(data, max_bytes=MAX_VALUE_BYTES, max_depth=MAX_VALUE_DEPTH)
        return super().to_internal_value(data)


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": True,
        "description": "At most 5,120 bytes as compact UTF-8 JSON, at most 5 levels deep "
        "(the object itself is level 1).",
    }
)
class MetadataField(serializers.JSONField):
    def validate_empty_values(self, data):
        # null means "no metadata", stored as {} like an omitted field.
        if data is None:
            return True, {}
        return super().validate_empty_values(data)

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError("Must be a JSON object.")
        check_json_limits(data, max_bytes=MAX_METADATA_BYTES, max_depth=MAX_METADATA_DEPTH)
        return data


UNKNOWN_FIELD = "Unknown field."
_STOCK_RUN_VALIDATION = (serializers.Field.run_validation, serializers.CharField.run_validation)


class JsonObjectSerializer(serializers.Serializer):
    """A serializer whose data must be a JSON object, with a message that says so (DRF's
    own names a Python type), and holds no field it does not declare: a typo is a 400
    that names it, never silently dropped. Read-only fields are declared, so they are
    known and ignored (an object read from the API can be sent back)."""

    def validate_empty_values(self, data):
        # null where an object belongs says so in the object's own error shape
        # ({"non_field_errors": [...]}), as any other non-object does, not as a bare list.
        if data is None and not self.allow_null and not self.partial:
            self.to_internal_value(data)
        return super().validate_empty_values(data)

    def run_validators(self, value):
        # DRF gathers the read-only fields' defaults for the serializer's validators before
        # running them; with none declared (all of ours) that is work for nothing, on
        # every item of a batch.
        if self.validators:
            super().run_validators(value)

    def _fields_to_internal_value(self, data: dict) -> dict:
        """DRF's Serializer.to_internal_value, with one shortcut: a field absent from the
        object whose absence DRF answers with SkipField (not required and no default, or
        any field of a partial update) is passed over before DRF's get_value,
        run_validation and the exception's round trip. Most bodies give 5 of 14 fields,
        and the skipped ones took a third of validating each item of a batch. Every
        other field, and input that is not a plain JSON object (a QueryDict's missing
        checkbox means False), goes through DRF's loop unchanged."""
        if html.is_html_input(data):
            return super().to_internal_value(data)
        partial = getattr(self.root, "partial", False)
        ret: dict = {}
        errors: dict = {}
        for field, name, validate_method, stock, optional in self._field_plan:
            if stock and (partial or optional) and name not in data:
                continue
            try:
                validated_value = field.run_validation(field.get_value(data))
                if validate_method is not None:
                    validated_value = validate_method(validated_value)
            except serializers.ValidationError as exc:
                errors[name] = exc.detail
            except DjangoValidationError as exc:
                errors[name] = get_error_detail(exc)
            except SkipField:
                pass
            else:
                self.set_value(ret, field.source_attrs, validated_value)
        if errors:
            raise serializers.ValidationError(errors)
        return ret

    @cached_property
    def _field_plan(self) -> list[tuple[serializers.Field, str, Any, bool, bool]]:
        """Per writable field: (field, name, its validate_<name> method or None, stock,
        optional). Stock: the field reads and checks an absent value exactly as DRF's
        Field does (get_value, validate_empty_values, get_default; run_validation as Field
        or CharField, which passes an absent value on), so its absence may be skipped.
        Optional: not required and without a default, so DRF skips it when absent."""
        plan = []
        for field in self._writable_fields:
            kind = type(field)
            stock = (
                kind.get_value is serializers.Field.get_value
                and kind.validate_empty_values is serializers.Field.validate_empty_values
                and kind.get_default is serializers.Field.get_default
                and kind.run_validation in _STOCK_RUN_VALIDATION
            )
            optional = not field.required and field.default is empty
            name = cast(str, field.field_name)  # bound: named
            validate_method = getattr(self, "validate_" + name, None)
            plan.append((field, name, validate_method, stock, optional))
        return plan

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            message = "The request body must be" if self.root is self else "Must be"
            raise serializers.ValidationError({"non_field_errors": [f"{message} a JSON object."]})
        fields = self.fields
        unknown = {name: [UNKNOWN_FIELD] for name in data if name not in fields}
        try:
            validated = self._fields_to_internal_value(data)
        except serializers.ValidationError as exc:
            if not unknown:
                raise
            errors = {**unknown, **exc.detail}  # type: ignore[dict-item]  # a field map here
            raise serializers.ValidationError(errors) from None
        if unknown:
            raise serializers.ValidationError(unknown)
        return validated


class MemorySerializer(ShallowFieldCopies, JsonObjectSerializer):
    """Memory Contract v1, for create (POST) and change (PATCH, partial). A plain
    Serializer: every field is declared here, and ModelSerializer's per-instance model
    introspection cost about a millisecond a request."""

    id = serializers.UUIDField(read_only=True)
    owner_id = serializers.CharField(read_only=True, help_text="From the API key.")
    user_id = UserIdField()
    type = serializers.ChoiceField(
        choices=MemoryType.choices,
        required=False,
        error_messages={"invalid_choice": TYPE_ERROR},
        help_text="fact, preference, event or system. Required on create (or `memory_type`).",
    )
    memory_type = serializers.ChoiceField(
        choices=MemoryType.choices,
        write_only=True,
        required=False,
        error_messages={"invalid_choice": TYPE_ERROR},
        help_text="Older name for `type`; giving both with different values is a 400.",
    )
    content = StrictCharField(
        max_length=MAX_CONTENT_CHARS,
        trim_whitespace=False,
        help_text="1 to 10,000 characters, not only whitespace. In rules mode, content that "
        "follows `TYPE:KEY=VALUE` (e.g. `preference:theme=dark`) sets `key` and `value`; "
        "other content is stored as written with nothing derived.",
    )
    confidence = StrictFloatField(min_value=0.0, max_value=1.0, required=False)
    key = StrictCharField(
        max_length=MAX_ID_CHARS, allow_null=True, required=False, trim_whitespace=False
    )
    value = ValueField(allow_null=True, required=False)
    importance = StrictIntegerField(
        min_value=MIN_IMPORTANCE, max_value=MAX_IMPORTANCE, allow_null=True, required=False
    )
    metadata = MetadataField(required=False)
    ttl_seconds = StrictIntegerField(
        min_value=1,
        max_value=MAX_TTL_SECONDS,
        allow_null=True,
        required=False,
        help_text="Seconds to live; sets `expires_at = created_at + ttl_seconds`.",
    )
    expires_at = serializers.DateTimeField(
        allow_null=True,
        required=False,
        help_text="When the memory stops being returned; set directly or through ttl_seconds.",
    )
    ingestion_mode = serializers.ChoiceField(
        choices=IngestionMode.choices,
        required=False,
        error_messages={"invalid_choice": INGESTION_MODE_ERROR},
    )

    is_deleted = serializers.BooleanField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    def validate_content(self, content: str) -> str:
        if not content.strip():
            raise serializers.ValidationError("Must not be empty or only whitespace.")
        return content

    def to_internal_value(self, data):
        if self.instance is not None and isinstance(data, dict):
            # user_id never changes: like the read-only fields it is known and ignored.
            data = {k: v for k, v in data.items() if k != "user_id"}
        return super().to_internal_value(data)

    def validate(self, attrs):
        alias = attrs.pop("memory_type", None)
        if alias is not None:
            if "type" in attrs and attrs["type"] != alias:
                raise serializers.ValidationError(
                    {"memory_type": ["Differs from type; send one of them."]}
                )
            attrs["type"] = alias
        if self.instance is None and "type" not in attrs:
            raise serializers.ValidationError({"type": ["This field is required."]})
        self._apply_rules(attrs)
        self._apply_ttl(attrs)
        return attrs

    def _current(self, attrs, name):
        if name in attrs:
            return attrs[name]
        return getattr(self.instance, name) if self.instance is not None else None

    def _apply_rules(self, attrs) -> None:
        mode = self._current(attrs, "ingestion_mode") or IngestionMode.EXPLICIT
        # Any change to a field the rule speaks about re-applies it: a PATCH of the type
        # alone must not store a memory whose content says another type.
        if mode != IngestionMode.RULES or not attrs.keys() & RULE_FIELDS:
            return
        rule = parse_rule(self._current(attrs, "content"))
        if rule is None:
            return
        memory_type = self._current(attrs, "type")
        if rule.type != memory_type:
            raise serializers.ValidationError(
                {
                    "content": [
                        f"Rule type '{rule.type}' in content does not match type '{memory_type}'."
                    ]
                }
            )
        for name, derived in (("key", rule.key), ("value", rule.value)):
            if name in attrs and attrs[name] is not None and attrs[name] != derived:
                raise serializers.ValidationError(
                    {name: [f"Conflicts with the {name} the rule in content sets."]}
                )
        if json_size(rule.value) > MAX_VALUE_BYTES:
            raise serializers.ValidationError(
                {
                    "content": [
                        f"The value this rule sets is over {MAX_VALUE_BYTES} bytes as compact JSON."
                    ]
                }
            )
        attrs["key"], attrs["value"] = rule.key, rule.value

    def _apply_ttl(self, attrs) -> None:
        if "ttl_seconds" not in attrs:
            if "expires_at" in attrs:
                attrs["ttl_seconds"] = None  # a direct expiry replaces an earlier TTL
            return
        ttl = attrs["ttl_seconds"]
        if ttl is None:
            attrs.setdefault("expires_at", None)
            return
        # A new memory's clock is the service's (it sets created_at and derives the stored
        # expiry from it); this reading only checks expires_at against the TTL, within
        # TTL_TOLERANCE.
        created_at = self.instance.created_at if self.instance else timezone.now()
        try:
            computed = created_at + timedelta(seconds=ttl)
        except OverflowError:
            raise serializers.ValidationError({"ttl_seconds": ["Too large."]}) from None
        given = attrs.get("expires_at")
        if given is not None and abs(given - computed) > TTL_TOLERANCE:
            conflict = {
                "expires_at": ["Disagrees with created_at + ttl_seconds; send one of them."]
            }
            if not self.context.get("defer_ttl_check"):
                raise serializers.ValidationError(conflict)
            # An upsert knows only later whether it creates (then this is an error) or
            # changes a memory (then created_at is that memory's: see the upsert view).
            self.ttl_conflict = conflict
        attrs["expires_at"] = computed


class MemoryListQuerySerializer(ShallowFieldCopies, serializers.Serializer):
    user_id = UserIdField()
    limit = serializers.IntegerField(min_value=1, max_value=100, default=20)
    type = serializers.ChoiceField(choices=MemoryType.choices, required=False)
    key = StrictCharField(max_length=MAX_ID_CHARS, required=False, trim_whitespace=False)
    min_importance = serializers.IntegerField(
        min_value=MIN_IMPORTANCE, max_value=MAX_IMPORTANCE, required=False
    )
    cursor = serializers.CharField(
        required=False, max_length=200, help_text='From the `Link: rel="next"` header.'
    )


class UserQuerySerializer(serializers.Serializer):
    user_id = UserIdField()


class OptionalUserQuerySerializer(serializers.Serializer):
    user_id = UserIdField(
        required=False,
        help_text="Optional. When given, a memory of another user is a 404.",
    )


class MemoryStatsSerializer(serializers.Serializer):
    total = serializers.IntegerField(help_text="Live memories: neither soft-deleted nor expired.")
    deleted = serializers.IntegerField(help_text="Soft-deleted memories.")
    expired = serializers.IntegerField(help_text="Expired memories that are not soft-deleted.")
    by_type = serializers.DictField(
        child=serializers.IntegerField(), help_text="Live memories per type (all four types)."
    )
    by_importance = serializers.DictField(
        child=serializers.IntegerField(),
        help_text="Live memories per importance '1'..'5' (memories without importance are "
        "not counted here).",
    )
    oldest = serializers.DateTimeField(
        allow_null=True, help_text="created_at of the oldest live memory."
    )
    newest = serializers.DateTimeField(
        allow_null=True, help_text="created_at of the newest live memory."
    )


@extend_schema_serializer(component_name="Context")  # ContextRequest, not ContextRequestRequest
class ContextRequestSerializer(ShallowFieldCopies, JsonObjectSerializer):
    user_id = UserIdField()
    query = StrictCharField(
        max_length=MAX_CONTENT_CHARS,
        allow_blank=True,
        default="",
        trim_whitespace=False,
        help_text="The current message. Empty: the most important, then newest, memories.",
    )
    limit = StrictIntegerField(min_value=1, max_value=50, default=5)
    types = serializers.ListField(
        child=serializers.ChoiceField(
            choices=MemoryType.choices, error_messages={"invalid_choice": TYPE_ERROR}
        ),
        required=False,
        allow_empty=False,
        max_length=4,
        help_text="Only these memory types.",
    )
    min_importance = StrictIntegerField(
        min_value=MIN_IMPORTANCE, max_value=MAX_IMPORTANCE, required=False
    )
    min_score = StrictFloatField(
        min_value=0.0,
        max_value=1.0,
        required=False,
        help_text="Leave out memories whose relevance_score is below this (0 to 1, both "
        "included), before `limit` applies. Omitted: no cut-off.",
    )
    max_chars = StrictIntegerField(
        min_value=1,
        max_value=100_000,
        default=2000,
        help_text="Character budget for context_summary.",
    )


class ContextMemorySerializer(MemorySerializer):
    memory_type = serializers.CharField(source="type", read_only=True)  # type: ignore[assignment]
    relevance_score = serializers.FloatField(
        read_only=True,
        help_text="0 to 1, higher is more relevant, comparable across queries. With a "
        "query that matches: 0.80 x how fully the memory matches the query's words (BM25 "
        "as a share of what a memory of average length holding every query word scores, "
        "capped at 1) + 0.12 x importance + 0.08 x recency; with no match, importance and "
        "recency only (at most 0.60 and 0.40). With embeddings on, half of it is the "
        "cosine similarity to the query. See docs/RETRIEVAL.md.",
    )


class ContextResponseSerializer(serializers.Serializer):
    memories = ContextMemorySerializer(many=True, help_text="Best first.")
    context_summary = serializers.CharField(
        help_text="One line per memory, most relevant first, within max_chars."
    )


def memory_payload(memory: Memory) -> dict:
    """MemorySerializer(memory).data without building the serializer's fields, which cost
    more than the rest of a create's response. test_serializers.py keeps the two equal."""
    return {
        "id": str(memory.id),
        "owner_id": memory.owner_id,
        "user_id": memory.user_id,
        "type": memory.type,
        "content": memory.content,
        "confidence": float(memory.confidence),
        "key": memory.key,
        "value": memory.value,
        "importance": memory.importance,
        "metadata": memory.metadata,
        "ttl_seconds": memory.ttl_seconds,
        "expires_at": iso_datetime(memory.expires_at),
        "ingestion_mode": memory.ingestion_mode,
        "is_deleted": memory.is_deleted,
        "created_at": iso_datetime(memory.created_at),
        "updated_at": iso_datetime(memory.updated_at),
    }


# --- API v1.1 -------------------------------------------------------------------------

MAX_BATCH = 100


class MemoryBatchSerializer(JsonObjectSerializer):
    """Up to 100 memories to create at once, all or nothing."""

    # Each item runs through MemorySerializer, exactly as a single create does; ListField
    # reports errors by item index, for the bad items only.

    memories = serializers.ListField(
        child=MemorySerializer(),
        min_length=1,
        max_length=MAX_BATCH,
        help_text="1 to 100 memories, each exactly a `POST /api/v1/memory` body. All or "
        'nothing: errors are `{"memories": {"<index>": {<field>: [messages]}}}`.',
    )


class MemoryBatchResponseSerializer(serializers.Serializer):
    memories = MemorySerializer(many=True, help_text="The stored memories, in request order.")


class MemoryBatchDeleteSerializer(JsonObjectSerializer):
    ids = serializers.ListField(
        child=StrictUUIDField(),
        min_length=1,
        max_length=MAX_BATCH,
        help_text="1 to 100 memory ids; a repeated id counts once. One malformed id is a 400 "
        "and nothing is deleted.",
    )


class MemoryBatchDeleteResponseSerializer(serializers.Serializer):
    deleted = serializers.ListField(
        child=serializers.UUIDField(), help_text="Hard-deleted now, in request order."
    )
    not_found = serializers.ListField(
        child=serializers.UUIDField(),
        help_text="No such memory for this owner (another owner's id looks the same).",
    )


class MemoryUpsertSerializer(MemorySerializer):
    """A create body in which key is required."""

    key = StrictCharField(
        max_length=MAX_ID_CHARS,
        trim_whitespace=False,
        help_text="Required and non-empty: the user's newest live memory with this key is "
        "updated, or a memory is created.",
    )

    def holds_as_a_change_of(self, memory) -> bool:
        """Whether validating this (valid) body as a PATCH of memory would give the same
        result as its validation as a create, so the upsert need not run it again. The
        fields validate alike, and a create requires type, content and key, so rules mode
        sees the same fields either way; only two things read the memory: the mode, when
        the body gives none (a create's is explicit, a PATCH's the memory's), and a TTL with
        an expiry to check against it (from now, or from the memory's created_at). The
        stored expiry needs no second look: the upsert counts a TTL from created_at."""
        given = self.initial_data
        mode_alike = "ingestion_mode" in given or memory.ingestion_mode != IngestionMode.RULES
        ttl_alike = given.get("ttl_seconds") is None or given.get("expires_at") is None
        return mode_alike and ttl_alike


class MemoryUpsertResponseSerializer(serializers.Serializer):
    result = serializers.ChoiceField(
        choices=["created", "updated", "unchanged"],
        help_text="unchanged: every given field already had that value; nothing was written "
        "and `updated_at` did not move.",
    )
    memory = MemorySerializer()


class MemoryVersionSerializer(serializers.Serializer):
    version = serializers.IntegerField(help_text="1 for the creation, then one per change.")
    event = serializers.ChoiceField(choices=MemoryVersion.Event.choices)
    recorded_at = serializers.DateTimeField(help_text="When the change was made.")
    type = serializers.ChoiceField(choices=MemoryType.choices)
    content = serializers.CharField()
    key = serializers.CharField(allow_null=True)
    value = ValueField(allow_null=True)
    importance = serializers.IntegerField(allow_null=True)
    confidence = serializers.FloatField()
    metadata = serializers.DictField()
    expires_at = serializers.DateTimeField(allow_null=True)


def version_payload(version: MemoryVersion) -> dict:
    """MemoryVersionSerializer's shape (test_serializers.py keeps the two equal)."""
    snapshot = version.snapshot
    expires_at = snapshot["expires_at"]
    return {
        "version": version.version,
        "event": version.event,
        "recorded_at": iso_datetime(version.recorded_at),
        **{name: snapshot[name] for name in MemoryVersion.SNAPSHOT_FIELDS},
        "expires_at": iso_datetime(datetime.fromisoformat(expires_at)) if expires_at else None,
    }
