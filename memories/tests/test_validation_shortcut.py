"""JsonObjectSerializer passes over absent optional fields before DRF's own loop would
(a third of validating a batch item): for any JSON object, every request serializer must
validate exactly as DRF's Serializer.to_internal_value does, values and errors alike."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework import serializers

import chat.serializers  # noqa: F401 - registers chat's request serializers as subclasses
from memories.serializers import JsonObjectSerializer
from memories.tests.test_properties import json_values


def subclasses(cls: type) -> list[type]:
    found: list[type] = []
    direct: list[type] = cls.__subclasses__()
    for sub in direct:
        found += [sub, *subclasses(sub)]
    return found


SERIALIZERS = sorted(set(subclasses(JsonObjectSerializer)), key=lambda c: c.__name__)


def outcome(validate, data):
    try:
        return "valid", validate(data)
    except serializers.ValidationError as exc:
        return "invalid", exc.detail


def test_every_request_serializer_is_covered():
    names = {cls.__name__ for cls in SERIALIZERS}
    assert {"MemorySerializer", "MemoryBatchSerializer", "ChatRequestSerializer"} <= names


@pytest.mark.django_db
@pytest.mark.parametrize("cls", SERIALIZERS, ids=[cls.__name__ for cls in SERIALIZERS])
@pytest.mark.parametrize("partial", [False, True], ids=["full", "partial"])
def test_the_shortcut_validates_exactly_as_drf_does(cls, partial):
    names = list(cls().fields)

    @settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.dictionaries(st.sampled_from(names), json_values, max_size=len(names)))
    def check(data):
        ours = cls(data=data, partial=partial)
        theirs = cls(data=data, partial=partial)
        assert outcome(ours._fields_to_internal_value, data) == outcome(
            lambda d: serializers.Serializer.to_internal_value(theirs, d), data
        )

    check()


@pytest.mark.django_db
def test_a_change_of_an_existing_memory_validates_as_drf_does():
    from memories.serializers import MemorySerializer
    from memories.tests.factories import make_memory

    memory = make_memory("acme", user_id="u1", content="Lives in Lisbon", key="city")
    for data in ({}, {"importance": 9}, {"content": ""}, {"key": None, "ttl_seconds": 60}):
        ours = MemorySerializer(memory, data=data, partial=True)
        theirs = MemorySerializer(memory, data=data, partial=True)
        assert outcome(ours._fields_to_internal_value, data) == outcome(
            lambda d, s=theirs: serializers.Serializer.to_internal_value(s, d), data
        )


def test_form_input_takes_drfs_own_loop():
    from django.http import QueryDict

    from memories.serializers import MemorySerializer

    form = QueryDict("user_id=u1&type=fact&content=x")
    serializer = MemorySerializer(data=form)
    assert outcome(serializer._fields_to_internal_value, form) == outcome(
        lambda d: serializers.Serializer.to_internal_value(MemorySerializer(data=form), d), form
    )


def test_an_absent_optional_field_is_skipped_and_a_required_one_is_not():
    from memories.serializers import MemorySerializer

    serializer = MemorySerializer(data={})
    plan = {name: (stock, optional) for _, name, _, stock, optional in serializer._field_plan}
    assert plan["importance"] == (True, True)
    assert plan["user_id"] == (True, False)  # required: absent is an error, not skipped
    assert plan["metadata"][0] is False  # its own validate_empty_values: DRF's path
    status, errors = outcome(serializer._fields_to_internal_value, {"importance": 3})
    assert status == "invalid"
    assert set(errors) == {"user_id", "content"}
