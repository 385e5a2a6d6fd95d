"""Context retrieval over encrypted memories: BM25 on the blind term index, blended with
importance and recency, optionally fused with embeddings. Only the returned rows (and, for
pseudo-relevance feedback, the few best matches) are ever decrypted.

relevance_score, 0 to 1, comparable across queries:
  0.80 * lexical + 0.12 * importance + 0.08 * recency
lexical is BM25 as a share of what a memory of average length holding every word of the
query once would score, capped at 1 (0 when nothing matches, so a query that matches
nothing ranks by importance, then recency, and scores at most 0.20). importance maps 1..5
to 0..1 (no importance counts as 3); recency halves every 30 days. With embeddings on, the
score is 0.5 * that + 0.5 * cosine similarity (clipped at 0), see embeddings.fuse.
"""

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.db import connections, router
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from memories import embeddings, services, text
from memories.models import (
    DEFAULT_IMPORTANCE,
    MAX_IMPORTANCE,
    MIN_IMPORTANCE,
    Memory,
    MemoryTerm,
    live_sql,
    unexpired_sql,
)

logger = logging.getLogger(__name__)

# BM25 for short memories (a dialogue turn, a one-line fact): less length normalisation
# and earlier saturation than the usual 1.2 / 0.75 (docs/RETRIEVAL.md).
K1, B = 0.9, 0.4
LEXICAL_POOL = 50  # lexical candidates considered for blending
SEMANTIC_POOL = 150  # lexical candidates re-ranked when embeddings are on
FALLBACK_POOL = 20  # most important and newest memories added as candidates
# BM25's corpus statistics (live count, average length) cost a scan of the user's rows.
# For large users they move slowly, so each worker reuses them for a short while.
CORPUS_CACHE_MIN_MEMORIES = 2000
CORPUS_CACHE_SECONDS = 30.0
_corpus_cache: dict[tuple[str, str], tuple[float, float, float]] = {}
RECENCY_HALF_LIFE_DAYS = 30.0
# Pseudo-relevance feedback: up to PRF_TERMS stems of the PRF_DOCS best lexical matches
# join the query with weight up to PRF_WEIGHT (docs/RETRIEVAL.md).
PRF_DOCS, PRF_TERMS, PRF_WEIGHT = 3, 10, 0.3
# An expansion stem in more memories than this is dropped after reading that many of its
# index rows: the feedback round reads at most PRF_TERMS * (FEEDBACK_MAX_DF + 1) index rows
# whatever the user's size (a common word says little as an expansion anyway).
FEEDBACK_MAX_DF = 30
FEEDBACK_POOL = 20  # new memories the feedback round may bring in


@dataclass
class Scored:
    memory_id: uuid.UUID
    bm25: float
    importance: int | None
    created_at: datetime
    perfect: float = 0.0  # what a memory of average length with every query word scores
    score: float = 0.0


def _importance(value: int | None) -> float:
    return ((value or DEFAULT_IMPORTANCE) - MIN_IMPORTANCE) / (MAX_IMPORTANCE - MIN_IMPORTANCE)


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


def _live_filter_sql(alias: str, types, min_importance, connection) -> tuple[str, list]:
    """WHERE conditions for one owner's user's live memories, on table alias; the owner,
    user and time come first in the parameters, then the returned filter values."""
    sql = (
        f"{alias}.owner_id = %s AND {alias}.user_id = %s AND {live_sql(alias, connection, at='%s')}"
    )
    params: list = []
    if types:
        sql += f" AND {alias}.type IN ({', '.join(['%s'] * len(types))})"
        params += list(types)
    if min_importance is not None:
        sql += f" AND {alias}.importance >= %s"
        params.append(min_importance)
    return sql, params


def lexical_score(candidate: Scored) -> float:
    """BM25 as a share of what a memory of average length holding every word of the query
    once would score, capped at 1: comparable across queries, unlike a share of the best
    hit. Words the user never wrote count in the denominator, so a query half about
    something else scores lower."""
    if candidate.perfect <= 0:
        return 0.0
    return min(1.0, candidate.bm25 / candidate.perfect)


def _lexical_candidates(
    *, owner_id, user_id, weights: dict, limit, types, min_importance, now, pool_size, feedback=0
) -> tuple[list[Scored], list[str]]:
    """One query: BM25 over the user's live memories for the hashed query terms, plus the
    most important and the newest live memories as fallback (and re-ranking) candidates;
    and the decrypted content of the `feedback` best matches.

    Shaped for the indexes: term hits are an index-only scan of the term index; the two
    fallback lists are index scans with LIMIT; only the corpus statistics (count and
    average length of the live memories, ignoring the optional filters) read every live
    row of the user, from a covering index."""
    memory_table, term_table = Memory._meta.db_table, MemoryTerm._meta.db_table
    connection = connections[router.db_for_read(MemoryTerm)]  # a replica, when routed
    live_filter, filter_params = _live_filter_sql("m", types, min_importance, connection)
    term_unexpired = unexpired_sql("t", connection, at="%s")
    now_value = connection.ops.adapt_datetimefield_value(now)
    scope = [owner_id, user_id, now_value]
    live_params = scope + filter_params
    # Index rows exist only for memories that are not soft-deleted, and carry their
    # expiry; the memories table is joined only for the optional filters.
    filter_join, filter_sql = "", ""
    if filter_params:
        filter_join = f"JOIN {memory_table} m ON m.id = t.memory_id"
        filter_sql = " AND " + live_filter
    values = ", ".join(["(%s, %s, %s)"] * len(weights))
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
        WHERE c.owner_id = %s AND c.user_id = %s AND {live_sql("c", connection, at="%s")}"""  # noqa: S608 - names from the models, values as placeholders
        corpus_params = scope
    # Per query stem (numbered, never sent in the clear): document frequency over all its
    # hashes (one per key during a rotation), and idf.
    idf = "LN(1 + (c.n - s.df + 0.5) / (s.df + 0.5))"
    # What the feedback round reuses; it runs on PostgreSQL only (SQLite is for development).
    term_weights_sql = "SELECT NULL AS terms, NULL AS weights"
    if connection.vendor == "postgresql":
        term_weights_sql = """
        SELECT ARRAY_AGG(q.term ORDER BY q.term) AS terms,
               ARRAY_AGG(q.weight * s.idf ORDER BY q.term) AS weights
        FROM q JOIN stems s ON s.stem = q.stem"""
    sql = f"""
    WITH q(term, weight, stem) AS (VALUES {values}),
    corpus AS ({corpus_sql}),
    hits AS (
        SELECT t.memory_id, t.term, t.tf, t.doc_length
        FROM {term_table} t
        {filter_join}
        WHERE t.term IN (SELECT term FROM q) AND t.owner_id = %s AND t.user_id = %s
          AND {term_unexpired}{filter_sql}
    ),
    df AS (SELECT term, COUNT(*) AS df FROM hits GROUP BY term),
    stems AS (
        SELECT s.stem, s.weight, {idf} AS idf
        FROM (
            SELECT q.stem, MAX(q.weight) AS weight, SUM(COALESCE(d.df, 0)) AS df
            FROM q LEFT JOIN df d ON d.term = q.term GROUP BY q.stem
        ) s CROSS JOIN corpus c
    ),
    term_weights AS ({term_weights_sql}),
    perfect AS (SELECT COALESCE(SUM(idf), 0) AS score FROM stems WHERE weight >= 1),
    bm25 AS (
        SELECT h.memory_id,
               SUM(q.weight * s.idf
                   * h.tf * {K1 + 1} / (h.tf + {K1} * ({1 - B} + {B} * h.doc_length / c.avgdl)))
               AS score
        FROM hits h JOIN q ON q.term = h.term JOIN stems s ON s.stem = q.stem
        CROSS JOIN corpus c
        GROUP BY h.memory_id
        ORDER BY score DESC
        LIMIT %s
    ),
    feedback AS (SELECT memory_id FROM bm25 ORDER BY score DESC, memory_id LIMIT %s),
    important AS (
        SELECT m.id FROM {memory_table} m WHERE {live_filter}
        ORDER BY COALESCE(m.importance, {DEFAULT_IMPORTANCE}) DESC, m.created_at DESC LIMIT %s
    ),
    recent AS (
        SELECT m.id FROM {memory_table} m WHERE {live_filter}
        ORDER BY m.created_at DESC LIMIT %s
    ),
    candidates AS (
        SELECT memory_id AS id FROM bm25
        UNION SELECT id FROM important
        UNION SELECT id FROM recent
    )
    SELECT m.id, COALESCE(b.score, 0), m.importance, m.created_at, c.n, c.avgdl, p.score,
           CASE WHEN f.memory_id IS NULL THEN NULL ELSE m.envelope END,
           CASE WHEN f.memory_id IS NULL THEN NULL ELSE m.content END, w.terms, w.weights
    FROM candidates x
    JOIN {memory_table} m ON m.id = x.id
    LEFT JOIN bm25 b ON b.memory_id = x.id
    LEFT JOIN feedback f ON f.memory_id = x.id
    CROSS JOIN corpus c CROSS JOIN perfect p CROSS JOIN term_weights w
    WHERE {live_filter}
    """  # noqa: S608 - names and BM25 constants, values as placeholders
    pool = max(limit, FALLBACK_POOL)
    params: list = [p for term, row in weights.items() for p in (term, *row)]
    params += corpus_params
    params += [owner_id, user_id, now_value, *(live_params if filter_params else [])]
    params += [pool_size, feedback]
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
    candidates = [
        Scored(_as_uuid(mid), float(score), importance, _as_datetime(created), float(perfect))
        for mid, score, importance, created, _, _, perfect, *_ in rows
    ]
    best = [Memory.content_from_columns(row[7], row[8]) for row in rows if row[7] or row[8]]
    first = FirstRound((rows[0][4], rows[0][5]), rows[0][9], rows[0][10]) if rows else None
    return candidates, best, first


@dataclass
class FirstRound:
    """What the feedback round reuses: corpus statistics and each query term's weight."""

    corpus: tuple[float, float]
    terms: list[int]
    weights: list[float]


def _feedback_round(
    *,
    owner_id,
    user_id,
    expansion: dict,
    first: FirstRound,
    known: list[uuid.UUID],
    types,
    min_importance,
    now,
    pool_size,
) -> list[Scored]:
    """BM25 of the expansion terms, reusing the first round (whose rows for common query
    words are the costly part): for the known candidates, the expansion score alone; for
    up to pool_size new memories, expansion plus query-term score. An expansion term in
    more than FEEDBACK_MAX_DF memories is dropped after reading that many of its rows."""
    memory_table, term_table = Memory._meta.db_table, MemoryTerm._meta.db_table
    connection = connections[router.db_for_read(MemoryTerm)]  # a replica, when routed
    live_filter, filter_params = _live_filter_sql("m", types, min_importance, connection)
    term_unexpired = unexpired_sql("t", connection, at="%s")
    now_value = connection.ops.adapt_datetimefield_value(now)
    live_params = [owner_id, user_id, now_value, *filter_params]
    filter_join, filter_sql = "", ""
    if filter_params:
        filter_join = f"JOIN {memory_table} m ON m.id = t.memory_id"
        filter_sql = " AND " + live_filter
    values = ", ".join(["(%s, %s, %s)"] * len(expansion))
    idf = "LN(1 + (c.n - s.df + 0.5) / (s.df + 0.5))"
    norm = f"h.tf * {K1 + 1} / (h.tf + {K1} * ({1 - B} + {B} * h.doc_length / c.avgdl))"
    sql = f"""
    WITH q(term, weight, stem) AS (VALUES {values}),
    corpus AS (
        SELECT CAST(%s AS DOUBLE PRECISION) AS n, CAST(%s AS DOUBLE PRECISION) AS avgdl
    ),
    hits AS (
        SELECT t.memory_id, t.term, t.tf, t.doc_length
        FROM q CROSS JOIN LATERAL (
            SELECT t.memory_id, t.term, t.tf, t.doc_length
            FROM {term_table} t
            {filter_join}
            WHERE t.term = q.term AND t.owner_id = %s AND t.user_id = %s
              AND {term_unexpired}{filter_sql}
            LIMIT {FEEDBACK_MAX_DF + 1}
        ) t
    ),
    df AS (SELECT term, COUNT(*) AS df FROM hits GROUP BY term),
    stems AS (
        SELECT s.stem, CASE WHEN s.df > {FEEDBACK_MAX_DF} THEN 0 ELSE {idf} END AS idf
        FROM (
            SELECT q.stem, SUM(COALESCE(d.df, 0)) AS df
            FROM q LEFT JOIN df d ON d.term = q.term GROUP BY q.stem
        ) s CROSS JOIN corpus c
    ),
    expanded AS (
        SELECT h.memory_id, SUM(q.weight * s.idf * {norm}) AS score
        FROM hits h JOIN q ON q.term = h.term JOIN stems s ON s.stem = q.stem
        CROSS JOIN corpus c
        GROUP BY h.memory_id
    ),
    fresh AS (
        SELECT memory_id FROM expanded
        WHERE score > 0 AND NOT (memory_id = ANY(%s::uuid[]))
        ORDER BY score DESC, memory_id LIMIT %s
    ),
    own AS (
        SELECT h.memory_id, SUM(o.weight * {norm}) AS score
        FROM {term_table} h
        JOIN UNNEST(%s::bigint[], %s::double precision[]) AS o(term, weight)
          ON o.term = h.term
        CROSS JOIN corpus c
        WHERE h.memory_id IN (SELECT memory_id FROM fresh)
        GROUP BY h.memory_id
    )
    SELECT m.id, e.score + COALESCE(o.score, 0), m.importance, m.created_at
    FROM expanded e
    JOIN {memory_table} m ON m.id = e.memory_id
    LEFT JOIN own o ON o.memory_id = e.memory_id
    WHERE (e.memory_id = ANY(%s::uuid[]) OR e.memory_id IN (SELECT memory_id FROM fresh))
      AND {live_filter}
    """  # noqa: S608 - names and BM25 constants, values as placeholders
    params: list = [p for term, row in expansion.items() for p in (term, *row)]
    params += [*first.corpus, owner_id, user_id, now_value, *(live_params if filter_params else [])]
    params += [known, pool_size, first.terms, first.weights, known, *live_params]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return [
        Scored(_as_uuid(mid), float(score), importance, _as_datetime(created))
        for mid, score, importance, created in rows
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


def _hashed_weights(*, owner_id, user_id, stem_weights: dict[str, float]) -> dict:
    """Keyed hash -> (weight, stem number), every key: what the ranking statements take."""
    numbers = {stem: i for i, stem in enumerate(stem_weights)}
    hashed = services.hash_terms(
        owner_id=owner_id, user_id=user_id, stems=stem_weights, all_keys=True
    )
    return {term: (stem_weights[stem], numbers[stem]) for term, stem in hashed.items()}


def _feedback_stems(contents: list[str], known) -> dict[str, float]:
    """Pseudo-relevance feedback: stems of the best lexical matches (decrypted here, in the
    web tier) that the query did not have, weighted by the share of those matches that
    hold them. They reach the database only hashed, like query terms."""
    counts: dict[str, int] = {}
    for content in contents:
        for stem in set(text.stems(content)):
            if stem not in known:
                counts[stem] = counts.get(stem, 0) + 1
    # Most shared first; among equals, longer stems first: they tend to be rarer words,
    # and every term costs the second round its index rows.
    best = sorted(counts.items(), key=lambda item: (-item[1], -len(item[0]), item[0]))
    best = best[:PRF_TERMS]
    return {stem: PRF_WEIGHT * n / len(contents) for stem, n in best}


def _add_feedback(candidates: list[Scored], extra: list[Scored]) -> None:
    """Add the feedback round's scores: to known candidates their expansion score, and the
    new memories it found with their whole score."""
    perfect = candidates[0].perfect if candidates else 0.0
    by_id = {c.memory_id: c for c in candidates}
    for e in extra:
        known = by_id.get(e.memory_id)
        if known is not None:
            known.bm25 += e.bm25
        else:
            e.perfect = perfect
            candidates.append(e)


def retrieve_context(
    *,
    owner_id: str,
    user_id: str,
    query: str,
    limit: int,
    types: list[str] | None = None,
    min_importance: int | None = None,
    min_score: float | None = None,
) -> list[Memory]:
    """The live memories that matter most for query, best first, each with
    `relevance_score` set; those scoring below min_score left out before limit applies.
    Decrypts only the rows it returns (and, for feedback, the best few matches)."""
    now = timezone.now()
    semantic = bool(settings.OPENAI_EMBEDDING_MODEL and query.strip())
    stem_weights = text.query_terms(query)
    scope = dict(
        owner_id=owner_id,
        user_id=user_id,
        limit=limit,
        types=types,
        min_importance=min_importance,
        now=now,
    )
    if stem_weights:
        pool_size = SEMANTIC_POOL if semantic else LEXICAL_POOL
        weights = _hashed_weights(owner_id=owner_id, user_id=user_id, stem_weights=stem_weights)
        vendor = connections[router.db_for_read(MemoryTerm)].vendor
        feedback = PRF_DOCS if vendor == "postgresql" else 0
        candidates, best, first = _lexical_candidates(
            weights=weights, pool_size=pool_size, feedback=feedback, **scope
        )
        expansion = _feedback_stems(best, stem_weights) if best else {}
        if expansion and first is not None and first.terms is not None:
            scope.pop("limit")
            extra = _feedback_round(
                expansion=_hashed_weights(
                    owner_id=owner_id, user_id=user_id, stem_weights=expansion
                ),
                first=first,
                known=[c.memory_id for c in candidates],
                pool_size=FEEDBACK_POOL,
                **scope,
            )
            _add_feedback(candidates, extra)
    else:
        candidates = _fallback_candidates(**scope)

    for c in candidates:
        importance, recency = _importance(c.importance), _recency(c.created_at, now)
        c.score = 0.80 * lexical_score(c) + 0.12 * importance + 0.08 * recency
    if semantic:
        embeddings.rerank(candidates, owner_id=owner_id, user_id=user_id, query=query)
    candidates.sort(key=lambda c: (-c.score, -c.bm25, -c.created_at.timestamp(), str(c.memory_id)))
    for c in candidates:
        c.score = round(min(1.0, max(0.0, c.score)), 4)
    if min_score is not None:
        candidates = [c for c in candidates if c.score >= min_score]
    chosen = candidates[:limit]
    by_id = Memory.objects.for_owner(owner_id).in_bulk([c.memory_id for c in chosen])
    result = []
    for c in chosen:
        memory = by_id.get(c.memory_id)
        if memory is not None:  # hard-deleted between the two queries
            memory.relevance_score = c.score
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
