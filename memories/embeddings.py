"""Optional semantic re-ranking (OPENAI_EMBEDDING_MODEL): each memory's vector comes from
the OpenAI-compatible embeddings API and is stored encrypted, without the text.

- Never on a request's path: a create or a content change queues the memory's id when
  its transaction commits; one background thread per process embeds what is queued, up
  to BATCH_SIZE memories in one call. Anything missed (a failed call, a full queue, a
  process that stopped) is repaired by `manage.py backfill_embeddings`.
- A vector is stored only while its memory is live and still has the content hash that
  was embedded, checked with the row locked.
- Every call has a total deadline (OPENAI_EMBEDDING_TIMEOUT_SECONDS). After a failure a
  breaker stops this process calling the server for BREAKER_SECONDS: context requests
  then rank lexically at once instead of each waiting for a dead server.
- Queries and documents get their own prefixes (OPENAI_EMBEDDING_QUERY_PREFIX and
  OPENAI_EMBEDDING_DOCUMENT_PREFIX) for models trained with them (E5, BGE).

Any failure of the embeddings service degrades to lexical ranking, never to an error.
"""

import functools
import logging
import os
import queue
import threading
import time
from collections.abc import Callable

import numpy as np
from django.conf import settings
from django.db import connections, transaction
from django.db.models import Exists, OuterRef

from memories import vectors as packing
from memories.models import Memory, MemoryEmbedding
from memoryproject.deadline import DeadlineExceeded, call_before

logger = logging.getLogger(__name__)

BATCH_SIZE = 64  # memories per embeddings call
BATCH_LINGER_SECONDS = 0.05  # how long the thread waits for a batch to fill
QUEUE_LIMIT = 10_000  # ids waiting per process; past it they wait for the backfill
MAX_ATTEMPTS = 3  # per queued memory
BREAKER_SECONDS = 30.0


# --- the client and the breaker ---------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _cached_client(api_key: str, base_url: str | None):
    import openai

    # One client (one connection pool) per process: building one cost ~20 ms per call.
    return openai.OpenAI(api_key=api_key, base_url=base_url, max_retries=0)


def _client():
    return _cached_client(settings.OPENAI_API_KEY or "not-configured", settings.OPENAI_BASE_URL)


_breaker_lock = threading.Lock()
_breaker = {"open_until": float("-inf"), "last_warning": float("-inf")}


def breaker_open() -> bool:
    """True while this process does not call the embeddings server after a failure."""
    return time.monotonic() < _breaker["open_until"]


def _trip_breaker(reason: str) -> None:
    now = time.monotonic()
    with _breaker_lock:
        _breaker["open_until"] = now + BREAKER_SECONDS
        if now - _breaker["last_warning"] >= 60:
            _breaker["last_warning"] = now
            logger.warning(
                "embeddings unavailable (%s): lexical ranking only, next try in %ss",
                reason,
                BREAKER_SECONDS,
            )


def embed_texts(texts: list[str], *, prefix: str = "") -> list[np.ndarray] | None:
    """Unit-length vectors for texts in one call, or None when the embeddings service
    fails, is too slow, or the breaker is open."""
    if breaker_open():
        return None
    seconds = settings.OPENAI_EMBEDDING_TIMEOUT_SECONDS
    try:
        response = call_before(
            time.monotonic() + seconds,
            _client().embeddings.create,
            model=settings.OPENAI_EMBEDDING_MODEL,
            input=[prefix + text for text in texts],
            timeout=seconds,
        )
        data = sorted(response.data, key=lambda item: item.index)
        result = [packing.normalised(item.embedding) for item in data]
    except DeadlineExceeded:
        _trip_breaker(f"no answer within {seconds:g} s")
        return None
    except Exception as exc:
        _trip_breaker(type(exc).__name__)
        return None
    if len(result) != len(texts) or not all(v.size and v.any() for v in result):
        _trip_breaker("unexpected response shape")
        return None
    return result


def embed_query(query: str) -> np.ndarray | None:
    found = embed_texts([query], prefix=settings.OPENAI_EMBEDDING_QUERY_PREFIX)
    return found[0] if found else None


def start_query_embedding(query: str) -> Callable[[], np.ndarray | None]:
    """Ask for the query's vector on a helper thread and return a function that waits
    for it: the caller ranks lexically meanwhile, so a context request costs the longer
    of the two, not their sum. The wait is bounded by embed_texts' own deadline; the
    helper never touches the database."""
    done = threading.Event()
    found: list[np.ndarray | None] = [None]

    def run() -> None:
        try:
            found[0] = embed_query(query)
        finally:
            done.set()

    threading.Thread(target=run, name="embed-query", daemon=True).start()

    def wait() -> np.ndarray | None:
        done.wait()
        return found[0]

    return wait


# --- storing ----------------------------------------------------------------------------


def store_vectors(*, memories: list[Memory], vectors: list[np.ndarray]) -> int:
    """Store each memory's vector if it is still live and says what was embedded; return
    how many were stored."""
    embedded = {m.pk: (m, v) for m, v in zip(memories, vectors, strict=True)}
    with transaction.atomic():
        # The network call took time: lock the rows so that a delete or a change cannot
        # slip in before the write (a change queues its own embedding).
        current = dict(
            Memory.objects.select_for_update()
            .filter(pk__in=embedded, is_deleted=False)
            .values_list("pk", "content_hash")
        )
        rows = [
            MemoryEmbedding(
                memory_id=memory.pk,
                owner_id=memory.owner_id,
                user_id=memory.user_id,
                model=settings.OPENAI_EMBEDDING_MODEL,
                vector=vector,
            )
            for pk, (memory, vector) in embedded.items()
            if current.get(pk) == memory.content_hash
        ]
        MemoryEmbedding.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["memory"],
            update_fields=["owner_id", "user_id", "model", "vector", "created_at"],
        )
    return len(rows)


def embed_memories(*, memory_ids, replace: bool = False) -> int | None:
    """Embed and store the live memories among memory_ids that have no vector for the
    current model (all of them with replace), BATCH_SIZE per call; the number stored, or
    None if a call failed."""
    fields = ("pk", "owner_id", "user_id", "content_hash", *Memory.ENCRYPTED_COLUMNS)
    rows = Memory.objects.filter(pk__in=list(memory_ids), is_deleted=False)
    if not replace:
        # A stored vector is current: a content change deletes it (services.update_memory).
        current = MemoryEmbedding.objects.filter(
            memory_id=OuterRef("pk"), model=settings.OPENAI_EMBEDDING_MODEL
        )
        rows = rows.exclude(Exists(current))
    memories = list(rows.only(*fields))
    stored = 0
    for start in range(0, len(memories), BATCH_SIZE):
        batch = memories[start : start + BATCH_SIZE]
        result = embed_texts(
            [m.content for m in batch], prefix=settings.OPENAI_EMBEDDING_DOCUMENT_PREFIX
        )
        if result is None:
            return None
        stored += store_vectors(memories=batch, vectors=result)
    return stored


# --- the background thread --------------------------------------------------------------


class _Embedder:
    """One per process: a queue of memory ids and the thread that embeds them in batches.
    Started on first use, and again in a forked child (threads do not survive a fork)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._pid = None
        self._queue: queue.Queue = queue.Queue(maxsize=QUEUE_LIMIT)

    def put(self, memory_id, attempt: int = 1) -> None:
        with self._lock:
            if self._pid != os.getpid():
                self._pid = os.getpid()
                self._queue = queue.Queue(maxsize=QUEUE_LIMIT)
                threading.Thread(target=self._run, name="embedder", daemon=True).start()
        try:
            self._queue.put_nowait((memory_id, attempt))
        except queue.Full:
            logger.warning("embeddings queue full: a memory waits for backfill_embeddings")

    def _take_batch(self, jobs: queue.Queue) -> dict:
        memory_id, attempt = jobs.get()
        batch = {memory_id: attempt}
        until = time.monotonic() + BATCH_LINGER_SECONDS
        while len(batch) < BATCH_SIZE:
            try:
                memory_id, attempt = jobs.get(timeout=max(0.0, until - time.monotonic()))
            except queue.Empty:
                break
            batch[memory_id] = max(attempt, batch.get(memory_id, 0))
        return batch

    def _run(self) -> None:
        jobs = self._queue
        while True:
            batch = self._take_batch(jobs)
            # While the breaker is open, wait instead of dropping the batch.
            time.sleep(max(0.0, _breaker["open_until"] - time.monotonic()))
            try:
                if embed_memories(memory_ids=list(batch)) is None:
                    for memory_id, attempt in batch.items():
                        if attempt < MAX_ATTEMPTS:
                            self.put(memory_id, attempt + 1)
            except Exception:
                logger.exception("embedding a batch of memories failed")
            finally:
                connections.close_all()  # this thread's connections only


_embedder = _Embedder()


def schedule_embedding(memory: Memory) -> None:
    """Queue the memory's vector, to be made after the current transaction commits."""
    if not settings.OPENAI_EMBEDDING_MODEL:
        return
    memory_id = memory.pk
    transaction.on_commit(lambda: _embedder.put(memory_id))


# --- ranking ----------------------------------------------------------------------------


def stored_vectors(*, owner_id: str, user_id: str, memory_ids) -> dict:
    """memory id -> unit-length vector, for the ones stored with the current model."""
    rows = MemoryEmbedding.objects.filter(
        owner_id=owner_id, user_id=user_id, model=settings.OPENAI_EMBEDDING_MODEL
    )
    connection = connections[rows.db]
    if connection.vendor != "postgresql":
        return dict(rows.filter(memory_id__in=list(memory_ids)).values_list("memory_id", "vector"))
    # The ids as one array parameter: the ORM's IN list cost more CPU than decrypting the
    # vectors (~150 ids a request, each resolved and bound on its own).
    sql = (
        f"SELECT memory_id, vector FROM {MemoryEmbedding._meta.db_table}"  # noqa: S608 - table name from the model, values as named placeholders
        " WHERE memory_id = ANY(%(ids)s::uuid[]) AND owner_id = %(owner_id)s"
        " AND user_id = %(user_id)s AND model = %(model)s"
    )
    params = {
        "ids": list(memory_ids),
        "owner_id": owner_id,
        "user_id": user_id,
        "model": settings.OPENAI_EMBEDDING_MODEL,
    }
    decode = MemoryEmbedding._meta.get_field("vector").from_db_value
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {memory_id: decode(raw, None, connection) for memory_id, raw in cursor.fetchall()}


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two unit-length vectors; 0 when their sizes differ."""
    if a.shape != b.shape:
        return 0.0
    return float(np.dot(a, b))


def rerank(
    candidates, *, owner_id: str, user_id: str, query_vector: Callable[[], np.ndarray | None]
) -> None:
    """Fuse each candidate's score with the cosine similarity of its stored vector to the
    query's, given by query_vector() (see `start_query_embedding` and `fuse`). Leaves the
    lexical scores alone when the service fails."""
    if not candidates:
        return
    query = query_vector()
    if query is None:
        return
    stored = stored_vectors(
        owner_id=owner_id, user_id=user_id, memory_ids=[c.memory_id for c in candidates]
    )
    similarities = {memory_id: cosine(query, vector) for memory_id, vector in stored.items()}
    fuse(candidates, similarities)


# Share of the score that is cosine similarity, chosen on eval/ (docs/RETRIEVAL.md): the
# blend of the comparable lexical score with raw cosine beat rank fusion (RRF).
SEMANTIC_WEIGHT = 0.5


def fuse(candidates, similarities: dict) -> None:
    """score = (1 - w) * score + w * max(0, cosine). A candidate without a vector (its
    embedding failed or is not made yet) counts as the median similarity of the others,
    so that it sits on the same scale instead of keeping a pure lexical score."""
    if not similarities:
        return
    ordered = sorted(similarities.values())
    median = ordered[len(ordered) // 2]
    w = SEMANTIC_WEIGHT
    for c in candidates:
        similarity = similarities.get(c.memory_id, median)
        c.score = (1 - w) * c.score + w * max(0.0, similarity)
