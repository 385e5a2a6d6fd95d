"""Optional semantic re-ranking (OPENAI_EMBEDDING_MODEL): vectors are computed at write
time through the OpenAI-compatible embeddings API and stored encrypted, without the text.
Any failure of the embeddings service degrades to lexical ranking, never to an error."""

import logging
import math

from django.conf import settings
from django.db import transaction

from memories.models import Memory, MemoryEmbedding

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 5.0


def _client():
    import openai

    return openai.OpenAI(
        api_key=settings.OPENAI_API_KEY or "not-configured",
        base_url=settings.OPENAI_BASE_URL,
        timeout=TIMEOUT_SECONDS,
        max_retries=0,
    )


def embed_texts(texts: list[str]) -> list[list[float]] | None:
    """Vectors for texts, or None when the embeddings service fails."""
    try:
        response = _client().embeddings.create(model=settings.OPENAI_EMBEDDING_MODEL, input=texts)
        vectors = [list(map(float, item.embedding)) for item in response.data]
    except Exception as exc:
        logger.warning("embeddings unavailable, lexical ranking only: %s", type(exc).__name__)
        return None
    if len(vectors) != len(texts) or not all(vectors):
        logger.warning("embeddings service returned an unexpected shape")
        return None
    return vectors


def store_embedding(memory: Memory) -> None:
    """Compute and store the memory's vector when embeddings are configured."""
    if not settings.OPENAI_EMBEDDING_MODEL or memory.is_deleted:
        return
    vectors = embed_texts([memory.content])
    if vectors is None:
        return
    with transaction.atomic():
        # The network call took time: store the vector only if the memory is still live
        # and still says what was embedded (a change schedules its own embedding), with
        # the row locked so that a delete cannot slip in before the write.
        current = (
            Memory.objects.select_for_update()
            .filter(pk=memory.pk, is_deleted=False)
            .values_list("pk", "content_hash")
            .first()
        )
        if current is None or current[1] != memory.content_hash:
            return
        MemoryEmbedding.objects.update_or_create(
            memory=memory,
            defaults={
                "owner_id": memory.owner_id,
                "user_id": memory.user_id,
                "model": settings.OPENAI_EMBEDDING_MODEL,
                "vector": vectors[0],
            },
        )


def cosine(a: list[float], b: list[float]) -> float:
    if len(a) != len(b):
        return 0.0
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


def rerank(candidates, *, owner_id: str, user_id: str, query: str) -> None:
    """Fuse each candidate's score with the cosine similarity of its stored vector to the
    query's (see `fuse`). Leaves the lexical scores alone when the service fails."""
    if not candidates:
        return
    vectors = embed_texts([query])
    if vectors is None:
        return
    query_vector = vectors[0]
    stored = dict(
        MemoryEmbedding.objects.filter(
            owner_id=owner_id,
            user_id=user_id,
            model=settings.OPENAI_EMBEDDING_MODEL,
            memory_id__in=[c.memory_id for c in candidates],
        ).values_list("memory_id", "vector")
    )
    similarities = {memory_id: cosine(query_vector, vector) for memory_id, vector in stored.items()}
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
