"""Context retrieval over encrypted memories: BM25 on the blind term index, blended with
importance and recency, optionally re-ranked by embeddings. Only the returned rows are
ever decrypted.

relevance_score, 0 to 1:
- when some memory matches the query's terms:
  0.80 * BM25 / best BM25 + 0.12 * importance + 0.08 * recency
- when nothing matches (or the query has no searchable words):
  0.60 * importance + 0.40 * recency
importance maps 1..5 to 0..1 (no importance counts as 3); recency halves every 30 days.
With embeddings on, the score is 0.5 * that + 0.5 * cosine similarity (clipped at 0).
"""

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.db import connection
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from memories import embeddings, services, text
from memories.models import DEFAULT_IMPORTANCE, Memory, MemoryTerm

logger = logging.getLogger(__name__)

K1, B = 1.2, 0.75
LEXICAL_POOL = 50  # lexical candidates considered for blending and re-ranking
FALLBACK_POOL = 20  # most important and newest memories added as candidates
# BM25's corpus statistics (live count, average length) cost a scan of the user's rows.
# For large users they move slowly, so each worker reuses them for a short while.
CORPUS_CACHE_MIN_MEMORIES = 2000
CORPUS_CACHE_SECONDS = 30.0
_corpus_cache: dict[tuple[str, str], tuple[float, float, float]] = {}
RECENCY_HALF_LIFE_DAYS = 30.0


@dataclass
class Scored:
    memory_id: uuid.UUID
    bm25: float
    importance: int | None
    created_at: datetime
    score: float = 0.0


def _importance(value: int | None) -> float:
    return ((value or DEFAULT_IMPORTANCE) - 1) / 4


def _recency(created_at: datetime, now: datetime) -> float:
    age_days = max(0.0, (now - created_at).total_seconds() / 86400)
    return 0.5 ** (age_days / RECENCY_HALF_LIFE_DAYS)


def _as_datetime(value) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    parsed = parse_datetime(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _as_uuid(value) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _live_filter_sql(alias: str, types, min_importance) -> tuple[str, list]:
    """WHERE conditions for one owner's user's live memories, on table alias."""
    sql = (
        f"{alias}.owner_id = %s AND {alias}.user_id = %s AND {alias}.is_deleted = %s"
        f" AND ({alias}.expires_at IS NULL OR {alias}.expires_at > %s)"
    )
    params: list = []
    if types:
        sql += f" AND {alias}.type IN ({', '.join(['%s'] * len(types))})"
        params += list(types)
    if min_importance is not None:
        sql += f" AND {alias}.importance >= %s"
        params.append(min_importance)
    return sql, params


def _lexical_candidates(
    *, owner_id, user_id, weights: dict[int, float], limit, types, min_importance, now
) -> list[Scored]:
    """One query: BM25 over the user's live memories for the hashed query terms, plus the
    most important and the newest live memories as fallback (and re-ranking) candidates.

    Shaped for the indexes: term hits are an index-only scan of the term index; the two
    fallback lists are index scans with LIMIT; only the corpus statistics (count and
    average length of the live memories, ignoring the optional filters) read every live
    row of the user, from a covering index."""
    memory_table, term_table = Memory._meta.db_table, MemoryTerm._meta.db_table
    live_sql, filter_params = _live_filter_sql("m", types, min_importance)
    now_value = connection.ops.adapt_datetimefield_value(now)
    scope = [owner_id, user_id, False, now_value]
    live_params = scope + filter_params
    # Index rows exist only for memories that are not soft-deleted, and carry their
    # expiry; the memories table is joined only for the optional filters.
    filter_join, filter_sql = "", ""
    if filter_params:
        filter_join = f"JOIN {memory_table} m ON m.id = t.memory_id"
        filter_sql = " AND " + live_sql
    values = ", ".join(["(%s, %s)"] * len(weights))
    cached = _corpus_cache.get((owner_id, user_id))
    if cached is not None and cached[2] > time.monotonic():
        corpus_sql = (
            "SELECT CAST(%s AS DOUBLE PRECISION) AS n, CAST(%s AS DOUBLE PRECISION) AS avgdl"
        )
        corpus_params = list(cached[:2])
    else:
        cached = None
        corpus_sql = f"""
        SELECT CAST(COUNT(*) AS DOUBLE PRECISION) AS n,
               CAST(COALESCE(NULLIF(AVG(c.term_count), 0), 1) AS DOUBLE PRECISION) AS avgdl
        FROM {memory_table} c
        WHERE c.owner_id = %s AND c.user_id = %s AND c.is_deleted = %s
          AND (c.expires_at IS NULL OR c.expires_at > %s)"""
        corpus_params = scope
    sql = f"""
    WITH q(term, weight) AS (VALUES {values}),
    corpus AS ({corpus_sql}),
    hits AS (
        SELECT t.memory_id, t.term, t.tf, q.weight, t.doc_length
        FROM {term_table} t
        JOIN q ON q.term = t.term
        {filter_join}
        WHERE t.owner_id = %s AND t.user_id = %s
          AND (t.expires_at IS NULL OR t.expires_at > %s){filter_sql}
    ),
    df AS (SELECT term, COUNT(*) AS df FROM hits GROUP BY term),
    bm25 AS (
        SELECT h.memory_id,
               SUM(h.weight * LN(1 + (c.n - d.df + 0.5) / (d.df + 0.5))
                   * h.tf * {K1 + 1} / (h.tf + {K1} * ({1 - B} + {B} * h.doc_length / c.avgdl)))
               AS score
        FROM hits h JOIN df d ON d.term = h.term CROSS JOIN corpus c
        GROUP BY h.memory_id
        ORDER BY score DESC
        LIMIT %s
    ),
    important AS (
        SELECT m.id FROM {memory_table} m WHERE {live_sql}
        ORDER BY COALESCE(m.importance, {DEFAULT_IMPORTANCE}) DESC, m.created_at DESC LIMIT %s
    ),
    recent AS (
        SELECT m.id FROM {memory_table} m WHERE {live_sql}
        ORDER BY m.created_at DESC LIMIT %s
    ),
    candidates AS (
        SELECT memory_id AS id FROM bm25
        UNION SELECT id FROM important
        UNION SELECT id FROM recent
    )
    SELECT m.id, COALESCE(b.score, 0), m.importance, m.created_at, c.n, c.avgdl
    FROM candidates x
    JOIN {memory_table} m ON m.id = x.id
    LEFT JOIN bm25 b ON b.memory_id = x.id
    CROSS JOIN corpus c
    WHERE {live_sql}
    """
    pool = max(limit, FALLBACK_POOL)
    params: list = [p for term, weight in weights.items() for p in (term, weight)]
    params += corpus_params
    params += [owner_id, user_id, now_value, *(live_params if filter_params else [])]
    params += [LEXICAL_POOL]
    params += [*live_params, pool]
    params += [*live_params, pool]
    params += live_params  # re-checked: an index row may outlive a concurrent delete
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if cached is None and rows and rows[0][4] >= CORPUS_CACHE_MIN_MEMORIES:
        if len(_corpus_cache) > 10_000:
            _corpus_cache.clear()
        expires = time.monotonic() + CORPUS_CACHE_SECONDS
        _corpus_cache[(owner_id, user_id)] = (rows[0][4], rows[0][5], expires)
    return [
        Scored(_as_uuid(mid), float(score), importance, _as_datetime(created))
        for mid, score, importance, created, _, _ in rows
    ]


def _fallback_candidates(*, owner_id, user_id, limit, types, min_importance, now) -> list[Scored]:
    rows = Memory.objects.for_owner(owner_id).live(now).filter(user_id=user_id)
    if types:
        rows = rows.filter(type__in=types)
    if min_importance is not None:
        rows = rows.filter(importance__gte=min_importance)
    rows = rows.order_by(Coalesce("importance", DEFAULT_IMPORTANCE).desc(), "-created_at")
    return [
        Scored(mid, 0.0, importance, created)
        for mid, importance, created in rows.values_list("id", "importance", "created_at")[
            : max(limit, FALLBACK_POOL)
        ]
    ]


def retrieve_context(
    *,
    owner_id: str,
    user_id: str,
    query: str,
    limit: int,
    types: list[str] | None = None,
    min_importance: int | None = None,
) -> list[Memory]:
    """The live memories that matter most for query, best first, each with
    `relevance_score` set. Decrypts only the rows it returns."""
    now = timezone.now()
    stem_weights = text.query_terms(query)
    hashed = services.hash_terms(
        owner_id=owner_id, user_id=user_id, stems=stem_weights, all_keys=True
    )
    scope = dict(
        owner_id=owner_id,
        user_id=user_id,
        limit=limit,
        types=types,
        min_importance=min_importance,
        now=now,
    )
    if hashed:
        weights = {term: stem_weights[stem] for term, stem in hashed.items()}
        candidates = _lexical_candidates(weights=weights, **scope)
    else:
        candidates = _fallback_candidates(**scope)

    best = max((c.bm25 for c in candidates), default=0.0)
    for c in candidates:
        importance, recency = _importance(c.importance), _recency(c.created_at, now)
        if best > 0:
            c.score = 0.80 * c.bm25 / best + 0.12 * importance + 0.08 * recency
        else:
            c.score = 0.60 * importance + 0.40 * recency
    if settings.OPENAI_EMBEDDING_MODEL and query.strip():
        embeddings.rerank(candidates, owner_id=owner_id, user_id=user_id, query=query)
    candidates.sort(key=lambda c: (-c.score, -c.created_at.timestamp(), str(c.memory_id)))
    chosen = candidates[:limit]
    by_id = Memory.objects.for_owner(owner_id).in_bulk([c.memory_id for c in chosen])
    result = []
    for c in chosen:
        memory = by_id.get(c.memory_id)
        if memory is not None:  # hard-deleted between the two queries
            memory.relevance_score = round(min(1.0, max(0.0, c.score)), 4)
            result.append(memory)
    return result


def build_summary(memories: list[Memory], max_chars: int) -> str:
    """Prompt-ready text, one line per memory, most relevant first, within max_chars.
    A line that does not fit is cut with an ellipsis when enough room is left, and the
    summary ends there."""
    lines: list[str] = []
    used = 0
    for memory in memories:
        line = f"- ({memory.type}) {' '.join(memory.content.split())}"
        separator = 1 if lines else 0
        room = max_chars - used - separator
        if len(line) > room:
            if room >= 16:
                lines.append(line[: room - 1].rstrip() + "…")
            break
        lines.append(line)
        used += separator + len(line)
    return "\n".join(lines)
