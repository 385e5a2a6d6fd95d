"""Embeddings mechanics: compact encrypted vectors, prefixes, the breaker, the backfill.
(Ranking with embeddings is in test_context.py; the create path and the background
batches, which need real processes, in memoryproject/tests/test_long_requests.py.)"""

import time
from datetime import timedelta

import numpy as np
import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from memories import crypto, embeddings, services, vectors
from memories.models import Memory, MemoryEmbedding
from memories.tests.factories import make_memory

pytestmark = pytest.mark.django_db


def context(client, query):
    response = client.post(
        "/api/v1/memory/context", {"user_id": "u1", "query": query}, format="json"
    )
    assert response.status_code == 200
    return response.json()


def stored_token(memory_id) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT vector FROM {MemoryEmbedding._meta.db_table} WHERE memory_id = %s",  # noqa: S608 - table name from the model
            [memory_id.hex if connection.vendor == "sqlite" else memory_id],
        )
        return cursor.fetchone()[0]


def test_a_vector_is_stored_as_encrypted_float16_of_unit_length(settings):
    settings.OPENAI_EMBEDDING_MODEL = "m"
    memory = make_memory("acme", content="swims on fridays")
    vector = np.random.default_rng(7).normal(size=384)
    embeddings.store_vectors(memories=[memory], vectors=[vector])

    token = stored_token(memory.pk)
    plaintext = crypto.decrypt_bytes(token)
    assert len(plaintext) == 1 + 2 * 384
    assert len(token) < 1200  # was ~10 KB of encrypted full-precision JSON
    loaded = MemoryEmbedding.objects.get(pk=memory.pk).vector
    assert loaded.dtype == np.float32
    assert abs(float(np.linalg.norm(loaded)) - 1) < 1e-3
    assert float(np.dot(loaded, vector / np.linalg.norm(vector))) > 0.9999


def test_vectors_stored_as_json_stay_readable_and_the_backfill_rewrites_them(
    settings, embedding_server
):
    memory = make_memory("acme", content="swims on fridays")
    embeddings.store_vectors(memories=[memory], vectors=[[3.0, 4.0]])
    legacy = crypto.encrypt_json([3.0, 4.0])  # how older versions stored it
    MemoryEmbedding.objects.filter(pk=memory.pk).update(model="fake-embed")
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {MemoryEmbedding._meta.db_table} SET vector = %s", [legacy]  # noqa: S608 - table name from the model
        )  # fmt: skip

    assert MemoryEmbedding.objects.get(pk=memory.pk).vector.tolist() == pytest.approx([0.6, 0.8])
    call_command("backfill_embeddings")

    assert vectors.is_packed(crypto.decrypt_bytes(stored_token(memory.pk)))
    assert MemoryEmbedding.objects.get(pk=memory.pk).vector.tolist() == pytest.approx(
        [0.6, 0.8], abs=1e-3
    )
    assert embedding_server.embedding_requests() == []  # it had a vector: no call


def test_backfill_embeds_every_live_memory_lacking_a_vector_in_batches(
    settings, embedding_server, capsys
):
    live = [make_memory("acme", user_id=f"u{i}", content=f"note number {i}") for i in range(5)]
    deleted = make_memory("acme", content="gone soon")
    services.soft_delete_memory(memory=deleted)
    make_memory("acme", content="expired", now=timezone.now() - timedelta(days=2), ttl_seconds=60)
    embeddings.store_vectors(memories=[live[0]], vectors=[[1.0, 0.0]])
    MemoryEmbedding.objects.update(model="fake-embed")

    call_command("backfill_embeddings", "--batch-size", "2")

    assert set(MemoryEmbedding.objects.values_list("memory_id", flat=True)) == {m.pk for m in live}
    sent = [r["input"] for r in embedding_server.embedding_requests()]
    assert sorted(len(batch) for batch in sent) == [2, 2]  # four lacking, two per call
    assert "Embedded 4 of 4 memories." in capsys.readouterr().out

    call_command("backfill_embeddings")  # nothing left to do
    assert len(embedding_server.embedding_requests()) == 2


def test_queries_and_documents_get_their_own_prefixes(client, settings, embedding_server):
    settings.OPENAI_EMBEDDING_QUERY_PREFIX = "query: "
    settings.OPENAI_EMBEDDING_DOCUMENT_PREFIX = "passage: "
    make_memory("acme", user_id="u1", content="Has a beagle")
    call_command("backfill_embeddings")
    context(client, "which dog")
    sent = [r["input"] for r in embedding_server.embedding_requests()]
    assert sent == [["passage: Has a beagle"], ["query: which dog"]]


def test_a_failing_server_is_left_alone_for_a_while(client, settings, embedding_server):
    settings.OPENAI_EMBEDDING_TIMEOUT_SECONDS = 0.5
    embedding_server.embedding_stall = 30
    make_memory("acme", user_id="u1", content="Has a beagle")

    started = time.monotonic()
    assert [m["content"] for m in context(client, "beagle")["memories"]] == ["Has a beagle"]
    first = time.monotonic() - started
    assert 0.4 < first < 3  # one total deadline, then lexical ranking

    calls = len(embedding_server.embedding_requests())
    started = time.monotonic()
    for _ in range(5):
        assert context(client, "beagle")["memories"]
    assert len(embedding_server.embedding_requests()) == calls == 1  # the breaker is open
    assert (time.monotonic() - started) / 5 < first / 2
    assert embeddings.breaker_open()


def test_one_client_per_process(settings, embedding_server):
    assert embeddings._client() is embeddings._client()


def test_backfill_all_replaces_every_vector(settings, embedding_server, capsys):
    settings.OPENAI_EMBEDDING_DOCUMENT_PREFIX = "passage: "
    memory = make_memory("acme", content="Has a beagle")
    embeddings.store_vectors(memories=[memory], vectors=[[1.0, 0.0]])
    MemoryEmbedding.objects.update(model="fake-embed")
    call_command("backfill_embeddings")
    assert embedding_server.embedding_requests() == []  # it has a vector

    call_command("backfill_embeddings", "--all")  # e.g. after a new document prefix
    assert [r["input"] for r in embedding_server.embedding_requests()] == [
        ["passage: Has a beagle"]
    ]
    assert MemoryEmbedding.objects.get(pk=memory.pk).vector.size > 2

    settings.OPENAI_EMBEDDING_MODEL = ""  # embeddings off: nothing to do, not a failure
    capsys.readouterr()
    call_command("backfill_embeddings")
    assert "OPENAI_EMBEDDING_MODEL is not set" in capsys.readouterr().out
    assert len(embedding_server.embedding_requests()) == 1


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
