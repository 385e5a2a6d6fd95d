"""Reading JSON requests strictly, the same way in every app: fields that take only the
JSON type they name, checks for what cannot round-trip through JSON and UTF-8, size and
depth limits, query parameters through a serializer, and datetimes written as DRF writes
them."""

import json
import math
from datetime import UTC

from rest_framework import serializers
from rest_framework.validators import ProhibitSurrogateCharactersValidator


def json_size(value) -> int:
    """Bytes of value as compact UTF-8 JSON, as the limits count them."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")  # fails exactly on a lone surrogate, at C speed
    except UnicodeEncodeError:
        return True
    return False


def check_json(value, path: str = "") -> None:
    """Refuse what cannot round-trip through JSON and UTF-8: lone surrogates, NUL in
    strings, non-finite numbers."""
    # A loop, not recursion: the parser accepts nesting deeper than Python's stack.
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if has_lone_surrogate(item) or "\x00" in item:
                raise serializers.ValidationError(
                    f"Strings{path} must be valid Unicode without NUL characters."
                )
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise serializers.ValidationError(f"Numbers{path} must be finite.")
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


def json_depth(value) -> int:
    deepest = 0
    pending = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, (dict, list)):
            depth += 1
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, depth) for child in children)
    return deepest


class StrictCharField(serializers.CharField):
    """A JSON string only (no numbers turned into text), valid Unicode, no NUL."""

    default_error_messages = {
        "invalid": "Must be a string.",
        "surrogate": "Must be valid Unicode text (no lone surrogates).",
    }

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # to_internal_value refuses every surrogate at C speed before validators run;
        # DRF's own validator would look at each character again in Python (a fifth of
        # validating a memory).
        self.validators = [
            v for v in self.validators if not isinstance(v, ProhibitSurrogateCharactersValidator)
        ]

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        if has_lone_surrogate(data):
            self.fail("surrogate")
        return super().to_internal_value(data)


class StrictFloatField(serializers.FloatField):
    """A JSON number only: no strings, no booleans, finite."""

    default_error_messages = {"invalid": "Must be a finite number."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            self.fail("invalid")
        try:
            value = float(data)
        except OverflowError:
            self.fail("invalid")
        if not math.isfinite(value):
            self.fail("invalid")
        return super().to_internal_value(value)


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer only (3.0 accepted): no strings, no booleans."""

    default_error_messages = {"invalid": "Must be an integer."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            self.fail("invalid")
        if isinstance(data, float):
            if not math.isfinite(data) or not data.is_integer():
                self.fail("invalid")
            data = int(data)
        return super().to_internal_value(data)


def check_json_limits(data, *, max_bytes: int, max_depth: int) -> None:
    """Refuse JSON nested deeper than max_depth levels of objects and arrays (the
    outermost is level 1) or longer than max_bytes as compact UTF-8 JSON. Linear time."""
    check_json(data)
    if json_depth(data) > max_depth:
        raise serializers.ValidationError(
            f"Must be at most {max_depth} levels deep (the outermost object or array is level 1)."
        )
    size = json_size(data)
    if size > max_bytes:
        raise serializers.ValidationError(
            f"Must be at most {max_bytes} bytes as compact JSON (got {size})."
        )


class StrictUUIDField(serializers.UUIDField):
    """A UUID written as a JSON string (DRF also takes integers)."""

    default_error_messages = {"invalid": "Must be a valid UUID."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


def iso_datetime(value):
    # As DRF's DateTimeField writes it: ISO 8601, UTC as "Z".
    if value is None:
        return None
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def query_params(serializer_class, request) -> dict:
    """The request's query parameters, validated by serializer_class (a 400 if not)."""
    serializer = serializer_class(data=request.query_params.dict())
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
