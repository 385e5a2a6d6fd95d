"""memories.fieldcopy relies on DRF internals: these tests fail when the installed DRF no
longer matches what ShallowFieldCopies assumes. On a failure, re-check memories/fieldcopy.py
against the new DRF (or drop the mixin: DRF's deep copies are always correct)."""

import copy

import pytest
import rest_framework
from rest_framework import serializers

from memories import serializers as memory_serializers
from memories.fieldcopy import COPIED_CONTAINERS, ShallowFieldCopies, shallow_copy

VERIFIED_DRF = "3.18.3"
# Containers a field fills in __init__ and never changes afterwards: shared by the copies.
READ_ONLY_CONTAINERS = {"_kwargs", "_choices", "grouped_choices", "choice_strings_to_values"}
USERS = [
    cls
    for cls in vars(memory_serializers).values()
    if isinstance(cls, type)
    and issubclass(cls, ShallowFieldCopies)
    and issubclass(cls, serializers.Serializer)
]
FIELDS = [
    pytest.param(field, id=f"{cls.__name__}.{name}")
    for cls in USERS
    for name, field in cls._declared_fields.items()
    if not isinstance(field, serializers.BaseSerializer) and not hasattr(field, "child")
]


def comparable(value):
    """A value with every object replaced by its type and attributes (or its text, for an
    object without a __dict__, like a lazy message), recursively: DRF's validators and
    messages have no __eq__."""
    if isinstance(value, dict):
        return {key: comparable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [comparable(item) for item in value]
    if value is None or isinstance(value, (str, int, float, bytes, type)):
        return value
    if hasattr(value, "__dict__"):
        return (type(value), comparable(vars(value)))
    return (type(value), str(value))


def test_the_hot_serializers_use_shallow_copies():
    assert {cls.__name__ for cls in USERS} >= {
        "MemorySerializer",
        "MemoryListQuerySerializer",
        "ContextRequestSerializer",
    }


def test_drf_is_the_version_the_copies_were_checked_against():
    assert rest_framework.VERSION == VERIFIED_DRF, (
        f"DRF {rest_framework.VERSION}: check memories/fieldcopy.py against it, then "
        "update VERIFIED_DRF"
    )


def test_drf_still_deep_copies_a_field_by_running_its_init_again():
    field = serializers.CharField(max_length=3)
    clone = copy.deepcopy(field)
    assert type(field).__deepcopy__ is serializers.Field.__deepcopy__
    assert clone._kwargs == field._kwargs
    assert clone._kwargs is not field._kwargs


@pytest.mark.parametrize("field", FIELDS)
def test_a_shallow_copy_equals_drfs_deep_copy(field):
    shallow, deep = shallow_copy(field), copy.deepcopy(field)
    # The counter orders declared fields when their class is built; a copy's is unused.
    assert vars(deep).pop("_creation_counter") > vars(shallow).pop("_creation_counter")
    assert comparable(vars(shallow)) == comparable(vars(deep))
    for name in COPIED_CONTAINERS:
        if name in vars(field):
            assert vars(shallow)[name] is not vars(field)[name], name


@pytest.mark.parametrize("field", FIELDS)
def test_fields_hold_no_container_the_copy_would_share_by_mistake(field):
    containers = {
        name for name, value in vars(field).items() if isinstance(value, (list, dict, set))
    }
    unknown = containers - set(COPIED_CONTAINERS) - READ_ONLY_CONTAINERS
    assert not unknown, f"new mutable attributes on {type(field).__name__}: {unknown}"


@pytest.mark.parametrize("cls", USERS, ids=lambda cls: cls.__name__)
def test_building_and_validating_leaves_the_declared_fields_untouched(cls):
    def templates():  # the shallow-copied ones (a field with a child links back to it)
        return {
            name: comparable(vars(field))
            for name, field in cls._declared_fields.items()
            if not hasattr(field, "child")
        }

    before = templates()
    for data in ({}, {"user_id": 5, "content": ["x"], "limit": "zero"}, {"user_id": "u"}):
        serializer = cls(data=data)
        serializer.is_valid()
        for field in serializer.fields.values():
            field.validators.append(lambda value: None)
            field.error_messages["invalid"] = "changed"
            assert field.parent is serializer
    assert templates() == before
    assert all(field.parent is None for field in cls._declared_fields.values())
    for field in cls(data={}).fields.values():  # copies of the pre-bound templates
        assert field.error_messages.get("invalid") != "changed"
        assert all(getattr(v, "__name__", "") != "<lambda>" for v in field.validators)


@pytest.mark.parametrize("cls", USERS, ids=lambda cls: cls.__name__)
def test_fields_equal_the_ones_drf_builds_and_binds(cls):
    """The pre-bound copies (one template per class, bound to its name once) come out as
    DRF's own `fields` would: same names in the same order, same attributes, this
    instance as parent, and new objects for every instance."""
    serializer, other = cls(data={}), cls(data={})
    ours = serializer.fields
    drfs = serializers.Serializer.fields.func(serializer)  # DRF's deep copies, bound
    assert list(ours) == list(drfs) == list(cls._declared_fields)
    drf_writable = serializers.Serializer._writable_fields.fget(serializer)
    assert list(serializer._writable_fields) == list(drf_writable)
    for name, field in ours.items():
        expected = vars(drfs[name]).copy()
        mine = vars(field).copy()
        for attributes in (expected, mine):
            attributes.pop("_creation_counter", None)
            assert attributes.pop("parent") is serializer
        if hasattr(field, "child"):  # bound by DRF's own bind(): compared by the above
            continue
        assert comparable(mine) == comparable(expected), name
        assert field is not other.fields[name]
        assert field.validators is not other.fields[name].validators


def test_a_subclass_that_overrides_get_fields_gets_drfs_own_fields():
    class Narrowed(memory_serializers.MemorySerializer):
        def get_fields(self):
            fields = super().get_fields()
            fields.pop("importance")
            return fields

    assert "importance" not in Narrowed(data={}).fields
    assert "importance" in memory_serializers.MemorySerializer(data={}).fields
