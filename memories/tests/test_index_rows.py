"""A memory's index rows are written with it and never outlive it: creation stores the
memory and every term in one statement, a refused write leaves none, and deletes (the
service's, or an operator's SQL followed by reindex_memories) take them along, although
they carry no database foreign key."""

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext

from memories import services
from memories.models import Memory, MemoryEmbedding, MemoryTerm
from memories.tests.factories import make_memory

pytestmark = pytest.mark.django_db

DATA = {"user_id": "u1", "type": "fact", "content": "Lives in Lisbon with two greyhounds"}


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite keeps two INSERTs")
def test_create_is_one_statement_storing_the_memory_and_every_term():
    with CaptureQueriesContext(connection) as queries:
        memory = services.create_memory(owner_id="acme", data=dict(DATA))

    assert len(queries.captured_queries) == 1
    stored = Memory.objects.get(pk=memory.pk)
    assert stored.content == DATA["content"]
    assert stored.content_chars == len(DATA["content"])
    terms = MemoryTerm.objects.filter(memory_id=memory.pk)
    assert terms.count() == len(services._prepare_index(stored)) >= 4
    assert sum(terms.values_list("tf", flat=True)) == stored.term_count
    assert set(terms.values_list("doc_length", flat=True)) == {stored.term_count}


@pytest.mark.django_db(transaction=True)  # autocommit, as in a request: no savepoint
def test_a_refused_memory_leaves_no_index_rows_behind():
    # The serializer would refuse this; the database check is the last line.
    with pytest.raises(IntegrityError):
        services.create_memory(owner_id="acme", data={**DATA, "confidence": 2.0})

    assert not Memory.objects.exists()
    assert not MemoryTerm.objects.exists()


def test_stems_whose_hashes_collide_become_one_row(monkeypatch):
    monkeypatch.setattr(services, "_scoped_hash", lambda key, scope, stem: 7)
    memory = services.create_memory(owner_id="acme", data=dict(DATA))

    (row,) = MemoryTerm.objects.filter(memory_id=memory.pk)
    assert (row.term, row.tf) == (7, memory.term_count)


@pytest.mark.parametrize("table", [MemoryTerm, MemoryEmbedding])
def test_derived_rows_have_no_database_foreign_key(table):
    """PostgreSQL checks a foreign key with a plan cached per connection; made while the
    memories table was small it is a sequential scan, and creates slowed down as the table
    grew. Django's CASCADE still removes these rows with their memory."""
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table._meta.db_table)
    assert [name for name, c in constraints.items() if c["foreign_key"]] == []


def test_hard_delete_still_removes_terms_and_embedding():
    memory = make_memory("acme", content="walks the dogs at dawn")
    MemoryEmbedding.objects.create(
        memory=memory, owner_id="acme", user_id=memory.user_id, model="m", vector=[0.1]
    )
    keep = make_memory("acme", content="walks the dogs at dusk")

    services.hard_delete_memory(memory=memory, actor="test")

    assert not MemoryTerm.objects.filter(memory_id=memory.pk).exists()
    assert not MemoryEmbedding.objects.filter(memory_id=memory.pk).exists()
    assert MemoryTerm.objects.filter(memory_id=keep.pk).exists()


def test_reindex_removes_rows_whose_memory_was_deleted_behind_the_service(capsys):
    gone = make_memory("acme", content="borrowed a ladder from the neighbours")
    MemoryEmbedding.objects.create(
        memory=gone, owner_id="acme", user_id=gone.user_id, model="m", vector=[0.1]
    )
    kept = make_memory("acme", content="returned the ladder on sunday")
    kept_terms = MemoryTerm.objects.filter(memory_id=kept.pk).count()
    with connection.cursor() as cursor:  # as an operator's SQL would: no CASCADE
        cursor.execute(f"DELETE FROM {Memory._meta.db_table} WHERE id = %s", [gone.pk])  # noqa: S608 - table name from the model
    orphans = MemoryTerm.objects.filter(memory_id=gone.pk).count() + 1

    call_command("reindex_memories")

    assert f"Removed {orphans} orphaned" in capsys.readouterr().out
    assert not MemoryTerm.objects.filter(memory_id=gone.pk).exists()
    assert not MemoryEmbedding.objects.filter(memory_id=gone.pk).exists()
    assert MemoryTerm.objects.filter(memory_id=kept.pk).count() == kept_terms > 0
