from datetime import timedelta

import pytest
from django.core.validators import MaxLengthValidator
from django.utils import timezone

from memories.models import Memory
from memories.serializers import ContextMemorySerializer, MemorySerializer, memory_payload
from memories.tests.factories import make_memory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"type": "preference", "key": "theme", "value": "dark", "importance": 5},
        {"value": {"nested": [1, 2.5, None, True]}, "metadata": {"a": {"b": "ü"}}},
        {"value": 42, "confidence": 0.25, "ttl_seconds": 3600},
        {"value": [], "expires_at": "2031-01-02T03:04:05.678901+02:00"},
        {"content": "preference:theme=dark", "type": "preference", "ingestion_mode": "rules"},
    ],
)
def test_fast_payload_equals_the_documented_serializer(fields):
    memory = make_memory("acme", user_id="u1", **fields)
    for instance in (memory, Memory.objects.get(pk=memory.pk)):  # fresh and as loaded
        assert memory_payload(instance) == dict(MemorySerializer(instance).data)


def test_soft_deleted_and_context_payloads_match_too():
    memory = make_memory("acme", user_id="u1", now=timezone.now() - timedelta(days=3))
    Memory.objects.filter(pk=memory.pk).update(is_deleted=True)
    memory = Memory.objects.get(pk=memory.pk)
    assert memory_payload(memory) == dict(MemorySerializer(memory).data)
    memory.relevance_score = 0.5
    documented = dict(ContextMemorySerializer(memory).data)
    assert {**memory_payload(memory), "memory_type": "fact", "relevance_score": 0.5} == documented


def test_serializer_field_copies_are_bound_to_their_own_serializer():
    memory = make_memory("acme")
    partial = MemorySerializer(memory, data={"importance": 4}, partial=True)
    full = MemorySerializer(data={"importance": 4})
    assert partial.fields["importance"] is not full.fields["importance"]
    assert partial.fields["content"].root is partial
    assert full.fields["content"].root is full

    assert not full.is_valid()
    assert {"user_id", "content"} <= set(full.errors)
    assert partial.is_valid(), partial.errors
    # The declared fields stay unbound templates, and copies share no mutable state.
    assert all(field.parent is None for field in MemorySerializer._declared_fields.values())
    extra = MaxLengthValidator(3)
    full.fields["content"].validators.append(extra)
    full.fields["content"].error_messages["blank"] = "changed"
    fresh = MemorySerializer().fields["content"]
    assert extra not in fresh.validators
    assert fresh.error_messages["blank"] != "changed"
