"""The database's CheckConstraints hold on their own, for code that skips the serializer
(admin, shell, bulk jobs): each bad row is an IntegrityError and nothing is stored."""

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from memories.models import Memory

pytestmark = pytest.mark.django_db

GOOD = {"owner_id": "acme", "user_id": "user_1", "type": "fact", "content": "likes tea"}

BAD_FIELDS = [
    pytest.param({"type": "opinion"}, "memory_type_valid", id="type"),
    pytest.param({"type": ""}, "memory_type_valid", id="empty-type"),
    pytest.param({"confidence": -0.01}, "memory_confidence_range", id="confidence-low"),
    pytest.param({"confidence": 1.01}, "memory_confidence_range", id="confidence-high"),
    pytest.param({"importance": 0}, "memory_importance_range", id="importance-0"),
    pytest.param({"importance": 6}, "memory_importance_range", id="importance-6"),
    pytest.param({"ingestion_mode": "automatic"}, "memory_ingestion_mode_valid", id="mode"),
    pytest.param({"content": ""}, "memory_content_length", id="empty-content"),
    pytest.param({"content": "   "}, "memory_content_length", id="blank-content"),
    pytest.param({"content": "a" * 10_001}, "memory_content_length", id="long-content"),
    pytest.param({"ttl_seconds": 0}, "memory_ttl_positive", id="ttl-0"),
    pytest.param({"value": "x" * 9_999}, "memory_value_size", id="long-value"),
    pytest.param({"user_id": ""}, "memory_user_id_not_empty", id="empty-user"),
]


def test_a_good_row_is_stored():
    Memory.objects.create(**{**GOOD, "confidence": 0, "importance": 5, "content": "a" * 10_000})
    Memory.objects.create(**{**GOOD, "confidence": 1, "importance": 1, "ttl_seconds": 1})
    assert Memory.objects.count() == 2


@pytest.mark.parametrize(("fields", "constraint"), BAD_FIELDS)
def test_create_violating_a_constraint_is_an_integrity_error(fields, constraint):
    with pytest.raises(IntegrityError, match=constraint), transaction.atomic():
        Memory.objects.create(**{**GOOD, **fields})
    assert not Memory.objects.exists()


@pytest.mark.parametrize(("fields", "constraint"), BAD_FIELDS)
def test_bulk_create_violating_a_constraint_stores_none_of_the_batch(fields, constraint):
    # bulk_create skips save(), so the measured columns are set here the way save() does.
    rows = [Memory(**data) for data in (GOOD, {**GOOD, **fields})]
    for row in rows:
        row.measure_content()
    with pytest.raises(IntegrityError, match=constraint), transaction.atomic():
        Memory.objects.bulk_create(rows)
    assert not Memory.objects.exists()


def test_update_violating_a_constraint_leaves_the_row_unchanged():
    memory = Memory.objects.create(**GOOD, importance=3)
    with pytest.raises(IntegrityError, match="memory_importance_range"), transaction.atomic():
        Memory.objects.filter(pk=memory.pk).update(importance=9)
    memory.confidence = 2.0
    with pytest.raises(IntegrityError, match="memory_confidence_range"), transaction.atomic():
        memory.save(update_fields=["confidence"])
    stored = Memory.objects.get(pk=memory.pk)
    assert (stored.importance, stored.confidence) == (3, 1.0)


def test_content_length_is_checked_on_the_plaintext_not_the_ciphertext():
    # The encrypted column is far longer than 10,000 characters; the check uses
    # content_chars, which save() fills from the plaintext.
    memory = Memory.objects.create(**{**GOOD, "content": "é" * 10_000})
    assert memory.content_chars == 10_000
    with pytest.raises(IntegrityError, match="memory_content_length"), transaction.atomic():
        Memory.objects.filter(pk=memory.pk).update(content_chars=0)
    assert Memory.objects.get(pk=memory.pk).content == "é" * 10_000


def test_saving_new_content_with_update_fields_refreshes_content_chars():
    memory = Memory.objects.create(**GOOD)
    memory.content = "   "
    with pytest.raises(IntegrityError, match="memory_content_length"), transaction.atomic():
        memory.save(update_fields=["content"])
    memory.content = "short"
    memory.save(update_fields=["content"])
    assert Memory.objects.get(pk=memory.pk).content_chars == 5


def test_constraints_allow_nulls_where_the_contract_does():
    memory = Memory.objects.create(
        **GOOD, importance=None, ttl_seconds=None, key=None, value=None, expires_at=None
    )
    stored = Memory.objects.get(pk=memory.pk)
    assert (stored.importance, stored.ttl_seconds, stored.key, stored.value) == (
        None,
        None,
        None,
        None,
    )
    assert stored.created_at <= timezone.now()
