"""Changes that race each other leave the index describing the memory as it finally is,
and the blind index keeps its hash domains and scopes apart."""

import threading
import time

import pytest
from django.core.management import call_command
from django.db import transaction
from rest_framework.exceptions import NotFound

from memories import services, text
from memories.models import Memory, MemoryTerm
from memories.tests.factories import make_memory, run_concurrently

pytestmark = pytest.mark.django_db(transaction=True)  # threads need committed rows


def index_of(memory_id) -> tuple[set, int, int | None]:
    memory = Memory.objects.get(pk=memory_id)
    terms = set(MemoryTerm.objects.filter(memory_id=memory_id).values_list("term", "tf"))
    return terms, memory.term_count, memory.content_hash


def rebuilt_index_of(memory_id) -> tuple[set, int, int | None]:
    services.reindex_memory(memory_id=memory_id)
    return index_of(memory_id)


def hold_a_change(memory_id, data: dict, started: threading.Event):
    """Change the memory in a transaction that stays open half a second after writing."""

    def run():
        with transaction.atomic():
            services.update_memory(memory=Memory.objects.get(pk=memory_id), data=data)
            started.set()
            time.sleep(0.5)

    return run


def test_a_patch_racing_a_content_change_indexes_the_final_content(client):
    memory = make_memory("acme", user_id="u1", content="plays chess on tuesdays")
    started = threading.Event()

    def patch_key():
        started.wait(5)
        response = client.patch(f"/api/v1/memory/{memory.pk}", {"key": "hobby"}, format="json")
        assert response.status_code == 200, response.content

    change = hold_a_change(memory.pk, {"content": "rides horses every weekend"}, started)
    assert run_concurrently(change, patch_key) == []

    final = Memory.objects.get(pk=memory.pk)
    assert (final.content, final.key) == ("rides horses every weekend", "hobby")
    assert index_of(memory.pk) == rebuilt_index_of(memory.pk)


def test_reindex_racing_a_change_keeps_the_fresh_rows():
    memory = make_memory("acme", user_id="u1", content="plays chess on tuesdays")
    Memory.objects.filter(pk=memory.pk).update(index_version=0)  # stale: reindex picks it
    started = threading.Event()

    def reindex():
        started.wait(5)
        call_command("reindex_memories", stdout=None, stderr=None)

    change = hold_a_change(memory.pk, {"content": "rides horses every weekend"}, started)
    assert run_concurrently(change, reindex) == []

    assert Memory.objects.get(pk=memory.pk).index_version == text.INDEX_VERSION
    assert index_of(memory.pk) == rebuilt_index_of(memory.pk)


def test_reindex_skips_a_memory_soft_deleted_after_it_was_listed():
    memory = make_memory("acme", user_id="u1", content="plays chess on tuesdays")
    services.soft_delete_memory(memory=memory)
    assert services.reindex_memory(memory_id=memory.pk) is False
    assert not MemoryTerm.objects.filter(memory_id=memory.pk).exists()


# --- what the index reveals -------------------------------------------------------------


def test_key_words_and_content_words_hash_apart(client):
    """The key is stored in the clear: if its words hashed like content words, the key
    `medication_insulin` would tell which encrypted memories mention insulin."""
    keyed = make_memory("acme", user_id="u1", content="takes it daily", key="medication_insulin")
    mentioned = make_memory("acme", user_id="u1", content="asked about insulin prices")
    keyed_terms = set(MemoryTerm.objects.filter(memory=keyed).values_list("term", flat=True))
    mentioned_terms = set(
        MemoryTerm.objects.filter(memory=mentioned).values_list("term", flat=True)
    )
    assert keyed_terms.isdisjoint(mentioned_terms)
    # Both still answer a query for the word.
    response = client.post(
        "/api/v1/memory/context", {"user_id": "u1", "query": "insulin"}, format="json"
    )
    found = {m["id"] for m in response.json()["memories"] if m["relevance_score"] > 0.5}
    assert found == {str(keyed.id), str(mentioned.id)}


def test_the_type_is_not_indexed():
    memory = make_memory("acme", user_id="u1", type="event", content="moved to Porto")
    stems = text.index_terms(memory.searchable_text())
    assert "event" not in stems
    assert MemoryTerm.objects.filter(memory=memory).count() == len(stems)


def test_scopes_that_join_to_the_same_text_hash_apart():
    # With a separator, owner "a\x1fb" + user "c" and owner "a" + user "b\x1fc" were one
    # message; with each part length-prefixed they are not.
    first = services.hash_terms(owner_id="a\x1fb", user_id="c", stems=["tea"])
    second = services.hash_terms(owner_id="a", user_id="b\x1fc", stems=["tea"])
    assert set(first).isdisjoint(second)


def test_at_most_the_cap_of_distinct_words_is_indexed():
    letters = "bcdfghjklmnpqrtvwxz"  # no vowels: no stop words, nothing to stem away
    words = [a + b + c for a in letters for b in letters for c in letters][:2_500]
    content = " ".join(words)[:10_000]
    assert len(set(text.stems(content))) > text.MAX_TERMS_PER_MEMORY
    memory = make_memory("acme", user_id="u1", content=content)
    rows = MemoryTerm.objects.filter(memory=memory).count()
    assert rows == text.MAX_TERMS_PER_MEMORY


def test_a_query_searches_at_most_the_cap_of_its_words():
    words = " ".join(map(chr, range(0x4E00, 0x4E00 + 1000)))
    own = [stem for stem, weight in text.query_terms(words).items() if weight == 1.0]
    assert len(own) == text.MAX_QUERY_TERMS
    assert chr(0x4E00) in own  # the first words are kept


def test_change_after_a_concurrent_delete_is_404_and_leaves_no_index():
    memory = make_memory("acme", user_id="u1", content="Plays chess")
    stale = Memory.objects.get(pk=memory.pk)  # read before the other request deleted it
    services.soft_delete_memory(memory=memory)
    with pytest.raises(NotFound):
        services.update_memory(memory=stale, data={"content": "Plays go"})
    with pytest.raises(NotFound):
        services.soft_delete_memory(memory=stale)
    assert not MemoryTerm.objects.filter(memory_id=memory.pk).exists()
    assert Memory.objects.get(pk=memory.pk).content == "Plays chess"


def test_a_hard_delete_racing_an_index_rewrite_leaves_no_rows():
    memory = make_memory("acme", content="walks the dogs at dawn")
    written = threading.Event()
    change = hold_a_change(memory.pk, {"content": "rides bikes on sunday"}, written)

    def hard_delete():
        written.wait(5)  # the new index rows are written, not yet committed
        services.hard_delete_memory(memory=Memory.objects.get(pk=memory.pk), actor="test")

    assert run_concurrently(change, hard_delete) == []
    assert not Memory.objects.filter(pk=memory.pk).exists()
    assert not MemoryTerm.objects.filter(memory_id=memory.pk).exists()
