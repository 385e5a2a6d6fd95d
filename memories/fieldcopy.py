"""ShallowFieldCopies: a serializer's declared fields copied attribute by attribute instead
of DRF's deep copy, for the serializers on the hottest paths only.

DRF gives every serializer instance its own copy of each declared field
(Serializer.get_fields -> copy.deepcopy), and a field deep-copies itself by running its
__init__ again with the arguments it was declared with (Field.__deepcopy__). For a field
that holds no other field, that copy equals a new object with the same attributes, where
the containers a serializer may change per instance (validators, error messages, style)
are copied one level deep. Binding then sets attributes (field_name, parent, source, ...)
on the copy only, so the declared field stays an unbound template.

Measured on a create body (bench/inprocess.py --steps, docs/PERFORMANCE.md): building
MemorySerializer's sixteen fields costs about a third of what DRF's deep copies cost. It
relies on DRF's internals (which attributes a field holds and which of them are mutated
after __init__); memories/tests/test_fieldcopy.py checks those against the installed DRF
and fails on any change, naming this module.
"""

import copy

from rest_framework import serializers

# Containers on a field that a serializer or a caller may change per instance.
COPIED_CONTAINERS = ("_validators", "error_messages", "style")


def shallow_copy(field: serializers.Field) -> serializers.Field:
    """A fresh, unbound copy of a declared field: its attributes, with COPIED_CONTAINERS
    copied one level deep. A field that holds other fields (a nested serializer, a
    ListField's child) is deep-copied as DRF does."""
    if isinstance(field, serializers.BaseSerializer) or any(
        hasattr(field, name) for name in ("child", "child_relation")
    ):
        return copy.deepcopy(field)
    clone = object.__new__(type(field))  # copy.copy's reduce protocol, without its cost
    clone.__dict__.update(field.__dict__)
    for name in COPIED_CONTAINERS:
        if name in clone.__dict__:
            clone.__dict__[name] = copy.copy(clone.__dict__[name])
    return clone


class ShallowFieldCopies:
    """Serializer mixin: get_fields() returns shallow_copy() of each declared field instead
    of DRF's deep copies. Same fields, messages and schema."""

    _declared_fields: dict[str, serializers.Field]

    def get_fields(self) -> dict[str, serializers.Field]:
        return {name: shallow_copy(field) for name, field in self._declared_fields.items()}
