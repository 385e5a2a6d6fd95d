"""The create path's shortcuts keep the guarantees of the slow path they replaced: one
statement that stores all or nothing, index rows without a database foreign key but never
orphaned, serializer field copies that do not share per-request state."""

import threading
import time

import pytest
from django.core.management import call_command
from django.core.validators import MaxLengthValidator
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext

from apikeys.authentication import find_key
from apikeys.models import ApiKey, hash_key
from gdpr import services as gdpr_services
from gdpr.services import erase_user
from memories import embeddings, services
from memories.models import Memory, MemoryEmbedding, MemoryTerm
from memories.serializers import MemorySerializer
from memories.tests.factories import make_memory, run_concurrently

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


def test_key_lookup_returns_the_stored_key_or_none(api_key):
    found = find_key(hash_key(api_key.plaintext))
    assert found == ApiKey.objects.get(pk=api_key.api_key.pk)
    assert found.owner_id == "acme"
    assert found.metadata == api_key.api_key.metadata
    assert find_key(hash_key("aimsk_live_unknown")) is None


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


def _race(monkeypatch, memory, second) -> list[str]:
    """update_memory rewrites the memory's index rows and holds its transaction open for a
    moment; `second` runs meanwhile, from another connection. Returns any errors."""
    written = threading.Event()
    insert_terms = services._insert_terms

    def slow_insert(*args):
        insert_terms(*args)
        written.set()
        time.sleep(0.5)  # new index rows written, not yet committed

    monkeypatch.setattr(services, "_insert_terms", slow_insert)

    def update():
        fresh = Memory.objects.get(pk=memory.pk)
        services.update_memory(memory=fresh, data={"content": "rides bikes on sunday"})

    def after_write():
        written.wait(5)
        second()

    return run_concurrently(update, after_write)


@pytest.mark.django_db(transaction=True)
def test_a_hard_delete_racing_an_index_rewrite_leaves_no_rows(monkeypatch):
    memory = make_memory("acme", content="walks the dogs at dawn")

    def hard_delete():
        services.hard_delete_memory(memory=Memory.objects.get(pk=memory.pk), actor="test")

    assert _race(monkeypatch, memory, hard_delete) == []
    assert not Memory.objects.filter(pk=memory.pk).exists()
    assert not MemoryTerm.objects.filter(memory_id=memory.pk).exists()


class _Pause:
    """Stands in erase_user's table list between two deletes: erasure has begun, not
    finished, for half a second."""

    def __init__(self):
        self.objects, self.reached = self, threading.Event()

    def filter(self, **kwargs):
        return self

    def only(self, *names):
        return self

    def delete(self):
        self.reached.set()
        time.sleep(0.5)
        return 0, {}


@pytest.mark.django_db(transaction=True)
def test_an_update_during_an_erasure_waits_and_finds_nothing(monkeypatch):
    """Without erase_user's lock, the update would lock the memory while the erasure held
    its index rows: a deadlock, or index rows outliving the erased memory."""
    memory = make_memory("acme", user_id="gone", content="walks the dogs at dawn")
    pause = _Pause()
    tables = {**gdpr_services.USER_TABLES}
    tables = {"memory_terms": tables.pop("memory_terms"), "pause": pause, **tables}
    monkeypatch.setattr(gdpr_services, "USER_TABLES", tables)

    def erase():
        erase_user(owner_id="acme", user_id="gone", actor="test")

    def update():
        pause.reached.wait(5)
        services.update_memory(memory=memory, data={"content": "rides bikes on sunday"})

    errors = run_concurrently(erase, update)

    assert errors == ["NotFound"]  # the update came second: the memory was gone
    assert not Memory.objects.filter(user_id="gone").exists()
    assert not MemoryTerm.objects.filter(user_id="gone").exists()


def test_an_embedding_is_not_stored_for_a_memory_deleted_or_changed_meanwhile(settings):
    settings.OPENAI_EMBEDDING_MODEL = "fake-embed"
    deleted = make_memory("acme", content="walks the dogs at dawn")
    changed = make_memory("acme", content="reads on the train")
    live = make_memory("acme", content="swims on fridays")
    services.hard_delete_memory(memory=Memory.objects.get(pk=deleted.pk), actor="test")
    services.update_memory(memory=Memory.objects.get(pk=changed.pk), data={"content": "cycles"})

    # As the embedder would, with the rows it read before the delete and the change.
    stored = embeddings.store_vectors(
        memories=[deleted, changed, live], vectors=[[0.6, 0.8], [0.6, 0.8], [0.6, 0.8]]
    )

    assert stored == 1
    assert list(MemoryEmbedding.objects.values_list("memory_id", flat=True)) == [live.pk]
