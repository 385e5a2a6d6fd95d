"""ShallowFieldCopies: a serializer's declared fields copied attribute by attribute instead
of DRF's deep copy, for the serializers on the hottest paths only.

DRF gives every serializer instance its own copy of each declared field
(Serializer.get_fields -> copy.deepcopy), and a field deep-copies itself by running its
__init__ again with the arguments it was declared with (Field.__deepcopy__). For a field
that holds no other field, that copy equals a new object with the same attributes, where
the containers a serializer may change per instance (validators, error messages, style)
are copied one level deep. Binding then sets attributes (field_name, parent, source, ...)
on the copy only, so the declared field stays an unbound template.

Binding (Field.bind) sets attributes that depend only on the field's name, so each class
keeps its fields bound once, and an instance's copies only get their parent.

Measured on a create body (bench/inprocess.py --steps, docs/PERFORMANCE.md): building
MemorySerializer's seventeen fields cost 398 us with DRF's deep copies, 121 us with
shallow copies bound per instance, 63 us with copies of the pre-bound templates. It
relies on DRF's internals (which attributes a field holds and which of them are mutated
after __init__); memories/tests/test_fieldcopy.py checks those against the installed DRF
and fails on any change, naming this module.
"""

import copy
import functools
from functools import cached_property
from typing import Any, cast

from rest_framework import serializers
from rest_framework.utils.serializer_helpers import BindingDict

# Containers on a field that a serializer or a caller may change per instance.
COPIED_CONTAINERS = ("_validators", "error_messages", "style")


def _is_nested(field: serializers.Field) -> bool:
    return isinstance(field, serializers.BaseSerializer) or any(
        hasattr(field, name) for name in ("child", "child_relation")
    )


def _clone(field: serializers.Field) -> serializers.Field:
    """The field's attributes in a new object, COPIED_CONTAINERS copied one level deep
    (copy.copy's reduce protocol, without its cost)."""
    clone = object.__new__(type(field))
    attributes = field.__dict__.copy()
    for name in COPIED_CONTAINERS:
        value = attributes.get(name)
        if value is not None:
            attributes[name] = value.copy()
    clone.__dict__.update(attributes)
    return clone


def shallow_copy(field: serializers.Field) -> serializers.Field:
    """A fresh, unbound copy of a declared field: its attributes, with COPIED_CONTAINERS
    copied one level deep. A field that holds other fields (a nested serializer, a
    ListField's child) is deep-copied as DRF does."""
    if _is_nested(field):
        return copy.deepcopy(field)
    return _clone(field)


@functools.cache
def _templates(cls: type) -> tuple[tuple[str, serializers.Field, bool], ...]:
    """A serializer class's declared fields in order, each as (name, template, bound).
    Bound: a copy already bound to its name (Field.bind sets field_name, label, source and
    source_attrs, which depend on the name only), so that an instance's copy needs only its
    parent. Not bound: a nested field, or one whose class binds in its own way, left as
    declared, to be copied and bound on every instance as DRF does."""
    templates = []
    for name, field in cls._declared_fields.items():  # type: ignore[attr-defined]
        if _is_nested(field) or type(field).bind is not serializers.Field.bind:
            templates.append((name, field, False))
            continue
        template = _clone(field)
        template.bind(field_name=name, parent=None)  # type: ignore[arg-type]  # set per copy
        templates.append((name, template, True))
    return tuple(templates)


class ShallowFieldCopies:
    """Serializer mixin: its fields are shallow_copy() of each declared field instead of
    DRF's deep copies, bound to their names once per class (then each instance's copy only
    gets its parent). Same fields, messages and schema; `fields` is a BindingDict as DRF's."""

    _declared_fields: dict[str, serializers.Field]

    def get_fields(self) -> dict[str, serializers.Field]:
        return {name: shallow_copy(field) for name, field in self._declared_fields.items()}

    def _writable(self) -> tuple[serializers.Field, ...]:
        return tuple(field for field in self.fields.values() if not field.read_only)

    # DRF's is a generator over every field, run again for each item of a batch; the
    # fields do not change once built. (Any: a cached property where DRF has a property.)
    _writable_fields: Any = cached_property(_writable)

    @cached_property
    def fields(self) -> BindingDict:
        cls: Any = type(self)  # (typed Any: the stubs call a class unhashable)
        if cls.get_fields is not ShallowFieldCopies.get_fields:  # DRF's hook for dynamic fields
            return serializers.Serializer.fields.func(self)  # type: ignore[attr-defined]
        serializer = cast(serializers.BaseSerializer, self)
        fields = BindingDict(serializer)
        for name, template, bound in _templates(cls):
            if not bound:
                fields[name] = shallow_copy(template)  # bind() as DRF does
                continue
            clone = _clone(template)
            clone.parent = serializer
            fields.fields[name] = clone
        return fields
