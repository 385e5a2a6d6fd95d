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
from typing import NamedTuple

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
    if parsed is None:
        raise ValueError(f"not a datetime: {value!r}")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _as_uuid(value) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def lexical_score(candidate: Scored) -> float:
    """BM25 as a share of what a memory of average length holding every word of the query
    once would score, capped at 1: comparable across queries, unlike a share of the best
    hit. Words the user never wrote count in the denominator, so a query half about
    something else scores lower."""
    if candidate.perfect <= 0:
        return 0.0
    return min(1.0, candidate.bm25 / candidate.perfect)


# --- the ranking statements' parts -------------------------------------------------------
#
# Both statements take named parameters. Each part below says which ones it reads and
# adds the ones only it needs.


@dataclass(frozen=True)
class Scope:
    """Whose memories a request ranks, as of when, and its optional filters."""

    owner_id: str
    user_id: str
    now: datetime
    types: tuple[str, ...] = ()
    min_importance: int | None = None

    @property
    def filtered(self) -> bool:
        return bool(self.types) or self.min_importance is not None

    def params(self, connection) -> dict:
        """owner_id, user_id, now, and the filters' type_0, type_1, ..., min_importance."""
        params = {
            "owner_id": self.owner_id,
            "user_id": self.user_id,
            "now": connection.ops.adapt_datetimefield_value(self.now),
        }
        params.update((f"type_{i}", memory_type) for i, memory_type in enumerate(self.types))
        if self.min_importance is not None:
            params["min_importance"] = self.min_importance
        return params

    def live_sql(self, alias: str, connection, *, filtered: bool = True) -> str:
        """The user's live memories (and, when filtered, only those the filters keep), as
        a condition on the memories table under alias."""
        sql = (
            f"{alias}.owner_id = %(owner_id)s AND {alias}.user_id = %(user_id)s"
            f" AND {live_sql(alias, connection)}"
        )
        if filtered and self.types:
            names = ", ".join(f"%(type_{i})s" for i in range(len(self.types)))
            sql += f" AND {alias}.type IN ({names})"
        if filtered and self.min_importance is not None:
            sql += f" AND {alias}.importance >= %(min_importance)s"
        return sql


def _terms_sql(weights: dict, params: dict) -> str:
    """VALUES rows (term, weight, stem number) for hashed terms (see _hashed_weights);
    adds term_0, weight_0, stem_0, term_1, ... to params."""
    rows = []
    for i, (term, (weight, stem)) in enumerate(weights.items()):
        params.update({f"term_{i}": term, f"weight_{i}": weight, f"stem_{i}": stem})
        rows.append(f"(%(term_{i})s, %(weight_{i})s, %(stem_{i})s)")
    return "VALUES " + ", ".join(rows)


def _hits_sql(scope: Scope, connection, *, term_condition: str) -> str:
    """The user's live index rows whose term meets term_condition. Index rows exist only
    for memories that are not soft-deleted, and carry their expiry: the memories table is
    joined only for the optional filters."""
    filter_join, filter_sql = "", ""
    if scope.filtered:
        filter_join = f"JOIN {Memory._meta.db_table} m ON m.id = t.memory_id"
        filter_sql = " AND " + scope.live_sql("m", connection)
    return f"""
        SELECT t.memory_id, t.term, t.tf, t.doc_length
        FROM {MemoryTerm._meta.db_table} t
        {filter_join}
        WHERE {term_condition} AND t.owner_id = %(owner_id)s AND t.user_id = %(user_id)s
          AND {unexpired_sql("t", connection)}{filter_sql}"""  # noqa: S608 - table names from the models, conditions from Scope, values as named placeholders


# BM25's corpus statistics (live count, average length) cost a scan of the user's rows.
# For large users they move slowly, so each worker reuses them for a short while.
class Corpus(NamedTuple):
    """BM25's statistics over the user's live memories, the optional filters ignored."""

    memory_count: float
    average_length: float


class _CachedCorpus(NamedTuple):
    corpus: Corpus
    expires: float  # on time.monotonic()


_corpus_cache: dict[tuple[str, str], _CachedCorpus] = {}


def _cached_corpus(scope: Scope) -> Corpus | None:
    cached = _corpus_cache.get((scope.owner_id, scope.user_id))
    if cached is None or cached.expires <= time.monotonic():
        return None
    return cached.corpus


def _remember_corpus(scope: Scope, corpus: Corpus) -> None:
    if corpus.memory_count < CORPUS_CACHE_MIN_MEMORIES:
        return
    if len(_corpus_cache) > 10_000:
        _corpus_cache.clear()
    expires = time.monotonic() + CORPUS_CACHE_SECONDS
    _corpus_cache[(scope.owner_id, scope.user_id)] = _CachedCorpus(corpus, expires)


def _corpus_sql(scope: Scope, connection, cached: Corpus | None, params: dict) -> str:
    """The corpus statistics (n, avgdl): the cached ones as parameters corpus_count and
    corpus_average_length, or else counted over a covering index."""
    if cached is not None:
        params["corpus_count"], params["corpus_average_length"] = cached
        return (
            "SELECT CAST(%(corpus_count)s AS DOUBLE PRECISION) AS n,"
            " CAST(%(corpus_average_length)s AS DOUBLE PRECISION) AS avgdl"
        )
    return f"""
        SELECT CAST(COUNT(*) AS DOUBLE PRECISION) AS n,
               CAST(COALESCE(NULLIF(AVG(c.term_count), 0), 1) AS DOUBLE PRECISION) AS avgdl
        FROM {Memory._meta.db_table} c
        WHERE {scope.live_sql("c", connection, filtered=False)}"""  # noqa: S608 - table name from the model, live condition from Scope, values as named placeholders


def _fallback_sql(scope: Scope, connection, pool: int, params: dict) -> str:
    """CTEs important and recent: the pool most important (then newest) and the pool
    newest live memories, each a LIMIT scan of its own index; adds fallback_pool."""
    params["fallback_pool"] = pool
    memory_table, live = Memory._meta.db_table, scope.live_sql("m", connection)
    return f"""
    important AS (
        SELECT m.id FROM {memory_table} m WHERE {live}
        ORDER BY COALESCE(m.importance, {DEFAULT_IMPORTANCE}) DESC, m.created_at DESC
        LIMIT %(fallback_pool)s
    ),
    recent AS (
        SELECT m.id FROM {memory_table} m WHERE {live}
        ORDER BY m.created_at DESC LIMIT %(fallback_pool)s
    )"""  # noqa: S608 - table name from the model, live condition from Scope, values as named placeholders


# Per stem s, over every hash of it (one per key during a rotation) and the corpus c.
_IDF = "LN(1 + (c.n - s.df + 0.5) / (s.df + 0.5))"
# BM25's term-frequency part of index row h.
_TF = f"h.tf * {K1 + 1} / (h.tf + {K1} * ({1 - B} + {B} * h.doc_length / c.avgdl))"


class _CandidateRow(NamedTuple):
    """The first statement's columns for a candidate."""

    memory_id: uuid.UUID
    bm25: float
    importance: int | None
    created_at: datetime
    # Encrypted, only on the best matches that feed back: the envelope, or for a row
    # written before envelopes, its content column.
    envelope: str | None
    legacy_content: str | None


class _StatisticsRow(NamedTuple):
    """The first statement's columns for its one statistics row (after a candidate's)."""

    memory_count: float
    average_length: float
    perfect: float
    # Each query term's weight times idf, terms sorted (None on SQLite, which has no
    # feedback round).
    terms: list[int] | None
    weights: list[float] | None


_CANDIDATE_COLUMNS = len(_CandidateRow._fields)


@dataclass
class FirstRound:
    """What the feedback round reuses: corpus statistics and each query term's weight."""

    corpus: Corpus
    terms: list[int] | None
    weights: list[float] | None


def _lexical_candidates(
    scope: Scope, *, weights: dict, limit: int, pool_size: int, feedback: int = 0
) -> tuple[list[Scored], list[str], FirstRound]:
    """One query: BM25 over the user's live memories for the hashed query terms, plus the
    most important and the newest live memories as fallback (and re-ranking) candidates;
    and the decrypted content of the `feedback` best matches.

    Shaped for the indexes: term hits are an index-only scan of the term index; the two
    fallback lists are index scans with LIMIT; only the corpus statistics (count and
    average length of the live memories, ignoring the optional filters) read every live
    row of the user, from a covering index."""
    connection = connections[router.db_for_read(MemoryTerm)]  # a replica, when routed
    params = scope.params(connection)
    params.update(pool=pool_size, feedback=feedback)
    cached = _cached_corpus(scope)
    # What the feedback round reuses; it runs on PostgreSQL only (SQLite is for development).
    term_weights_sql = "NULL, NULL"
    if connection.vendor == "postgresql":
        term_weights_sql = """
               (SELECT ARRAY_AGG(q.term ORDER BY q.term) FROM q JOIN stems s ON s.stem = q.stem),
               (SELECT ARRAY_AGG(q.weight * s.idf ORDER BY q.term)
                FROM q JOIN stems s ON s.stem = q.stem)"""
    # The candidates' liveness is checked again: an index row may outlive a delete.
    # One row per candidate, and one more (memory_id NULL) with the statistics, which are
    # the same for every candidate. The candidates' joins stay few: each costs the
    # planner more than it costs to run.
    sql = f"""
    WITH q(term, weight, stem) AS ({_terms_sql(weights, params)}),
    corpus AS ({_corpus_sql(scope, connection, cached, params)}),
    hits AS ({_hits_sql(scope, connection, term_condition="t.term IN (SELECT term FROM q)")}
    ),
    stems AS (
        SELECT s.stem, s.weight, {_IDF} AS idf
        FROM (
            SELECT q.stem, MAX(q.weight) AS weight, SUM(COALESCE(d.df, 0)) AS df
            FROM q
            LEFT JOIN (SELECT term, COUNT(*) AS df FROM hits GROUP BY term) d
              ON d.term = q.term
            GROUP BY q.stem
        ) s CROSS JOIN corpus c
    ),
    bm25 AS (
        SELECT h.memory_id, SUM(q.weight * s.idf * {_TF}) AS score
        FROM hits h JOIN q ON q.term = h.term JOIN stems s ON s.stem = q.stem
        CROSS JOIN corpus c
        GROUP BY h.memory_id
        ORDER BY score DESC, h.memory_id
        LIMIT %(pool)s
    ),
    {_fallback_sql(scope, connection, max(limit, FALLBACK_POOL), params)},
    candidates AS (
        SELECT id, MAX(score) AS score, MIN(rank) AS rank
        FROM (
            SELECT memory_id AS id, score,
                   ROW_NUMBER() OVER (ORDER BY score DESC, memory_id) AS rank
            FROM bm25
            UNION ALL SELECT id, NULL, NULL FROM important
            UNION ALL SELECT id, NULL, NULL FROM recent
        ) u
        GROUP BY id
    )
    SELECT m.id, COALESCE(x.score, 0), m.importance, m.created_at,
           CASE WHEN x.rank <= %(feedback)s THEN m.envelope END,
           CASE WHEN x.rank <= %(feedback)s THEN m.content END,
           NULL, NULL, NULL, NULL, NULL
    FROM candidates x
    JOIN {Memory._meta.db_table} m ON m.id = x.id
    WHERE {scope.live_sql("m", connection)}
    UNION ALL
    SELECT NULL, NULL, NULL, NULL, NULL, NULL, c.n, c.avgdl,
           (SELECT COALESCE(SUM(idf), 0) FROM stems WHERE weight >= 1),
           {term_weights_sql}
    FROM corpus c
    """  # noqa: S608 - parts built above from models, constants and Scope; values as named placeholders
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    statistics = next(_StatisticsRow(*row[_CANDIDATE_COLUMNS:]) for row in rows if row[0] is None)
    corpus = Corpus(statistics.memory_count, statistics.average_length)
    if cached is None:
        _remember_corpus(scope, corpus)
    perfect = float(statistics.perfect)
    candidates: list[Scored] = []
    best: list[str] = []
    for raw in rows:
        if raw[0] is None:
            continue
        row = _CandidateRow(*raw[:_CANDIDATE_COLUMNS])
        created_at = _as_datetime(row.created_at)
        candidates.append(
            Scored(_as_uuid(row.memory_id), float(row.bm25), row.importance, created_at, perfect)
        )
        if row.envelope or row.legacy_content:
            best.append(Memory.content_from_columns(row.envelope, row.legacy_content))
    return candidates, best, FirstRound(corpus, statistics.terms, statistics.weights)


class _FeedbackRow(NamedTuple):
    memory_id: uuid.UUID
    score: float  # expansion score; for a new memory, plus its query-term score
    importance: int | None  # None for a known candidate
    created_at: datetime | None


class Feedback(NamedTuple):
    """The feedback round's result: expansion scores of known candidates, and new ones."""

    known: dict[uuid.UUID, float]
    fresh: list[Scored]


def _feedback_round(
    scope: Scope, *, expansion: dict, first: FirstRound, known: list[uuid.UUID], pool_size: int
) -> Feedback:
    """BM25 of the expansion terms, reusing the first round (whose rows for common query
    words are the costly part): for the known candidates, the expansion score alone; for
    up to pool_size new memories, expansion plus query-term score. An expansion term in
    more than FEEDBACK_MAX_DF memories is dropped after reading that many of its rows."""
    connection = connections[router.db_for_read(MemoryTerm)]  # a replica, when routed
    params = scope.params(connection)
    params.update(
        corpus_count=first.corpus.memory_count,
        corpus_average_length=first.corpus.average_length,
        known=known,
        pool=pool_size,
        query_terms=first.terms,
        query_weights=first.weights,
    )
    # Known candidates were found live by the first statement: only new memories need
    # the memories table (for liveness, importance and age).
    sql = f"""
    WITH q(term, weight, stem) AS ({_terms_sql(expansion, params)}),
    corpus AS (
        SELECT CAST(%(corpus_count)s AS DOUBLE PRECISION) AS n,
               CAST(%(corpus_average_length)s AS DOUBLE PRECISION) AS avgdl
    ),
    known AS (SELECT UNNEST(%(known)s::uuid[]) AS memory_id),
    hits AS (
        SELECT t.memory_id, t.term, t.tf, t.doc_length
        FROM q CROSS JOIN LATERAL ({_hits_sql(scope, connection, term_condition="t.term = q.term")}
            LIMIT {FEEDBACK_MAX_DF + 1}
        ) t
    ),
    stems AS (
        SELECT s.stem, CASE WHEN s.df > {FEEDBACK_MAX_DF} THEN 0 ELSE {_IDF} END AS idf
        FROM (
            SELECT q.stem, SUM(COALESCE(d.df, 0)) AS df
            FROM q
            LEFT JOIN (SELECT term, COUNT(*) AS df FROM hits GROUP BY term) d
              ON d.term = q.term
            GROUP BY q.stem
        ) s CROSS JOIN corpus c
    ),
    expanded AS (
        SELECT h.memory_id, SUM(q.weight * s.idf * {_TF}) AS score
        FROM hits h JOIN q ON q.term = h.term JOIN stems s ON s.stem = q.stem
        CROSS JOIN corpus c
        GROUP BY h.memory_id
    ),
    fresh AS (
        SELECT memory_id, score FROM expanded
        WHERE score > 0 AND memory_id NOT IN (SELECT memory_id FROM known)
        ORDER BY score DESC, memory_id LIMIT %(pool)s
    ),
    own AS (
        SELECT h.memory_id, SUM(o.weight * {_TF}) AS score
        FROM {MemoryTerm._meta.db_table} h
        JOIN UNNEST(%(query_terms)s::bigint[], %(query_weights)s::double precision[])
          AS o(term, weight) ON o.term = h.term
        CROSS JOIN corpus c
        WHERE h.memory_id IN (SELECT memory_id FROM fresh)
        GROUP BY h.memory_id
    )
    SELECT e.memory_id, e.score, NULL, NULL
    FROM expanded e JOIN known k ON k.memory_id = e.memory_id
    UNION ALL
    SELECT m.id, f.score + COALESCE(o.score, 0), m.importance, m.created_at
    FROM fresh f
    JOIN {Memory._meta.db_table} m ON m.id = f.memory_id
    LEFT JOIN own o ON o.memory_id = f.memory_id
    WHERE {scope.live_sql("m", connection)}
    """  # noqa: S608 - parts built above from models, constants and Scope; values as named placeholders
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = [_FeedbackRow(*row) for row in cursor.fetchall()]
    result = Feedback({}, [])
    for row in rows:
        if row.created_at is None:
            result.known[_as_uuid(row.memory_id)] = float(row.score)
        else:
            created_at = _as_datetime(row.created_at)
            result.fresh.append(
                Scored(_as_uuid(row.memory_id), float(row.score), row.importance, created_at)
            )
    return result


def _fallback_candidates(scope: Scope, *, limit: int) -> list[Scored]:
    rows = Memory.objects.for_owner(scope.owner_id).live(scope.now).filter(user_id=scope.user_id)
    if scope.types:
        rows = rows.filter(type__in=scope.types)
    if scope.min_importance is not None:
        rows = rows.filter(importance__gte=scope.min_importance)
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


def _add_feedback(candidates: list[Scored], feedback: Feedback) -> None:
    """Add the feedback round's scores: to known candidates their expansion score, and the
    new memories it found with their whole score."""
    perfect = candidates[0].perfect if candidates else 0.0
    for c in candidates:
        c.bm25 += feedback.known.get(c.memory_id, 0.0)
    for c in feedback.fresh:
        c.perfect = perfect
        candidates.append(c)


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
    # The embeddings call is a network round trip: made while the lexical statements run.
    query_vector = embeddings.start_query_embedding(query) if semantic else None
    stem_weights = text.query_terms(query)
    scope = Scope(owner_id, user_id, now, tuple(types or ()), min_importance)
    if stem_weights:
        pool_size = SEMANTIC_POOL if semantic else LEXICAL_POOL
        weights = _hashed_weights(owner_id=owner_id, user_id=user_id, stem_weights=stem_weights)
        vendor = connections[router.db_for_read(MemoryTerm)].vendor
        feedback = PRF_DOCS if vendor == "postgresql" else 0
        candidates, best, first = _lexical_candidates(
            scope, weights=weights, limit=limit, pool_size=pool_size, feedback=feedback
        )
        expansion = _feedback_stems(best, stem_weights) if best else {}
        if expansion and first.terms is not None:
            found = _feedback_round(
                scope,
                expansion=_hashed_weights(
                    owner_id=owner_id, user_id=user_id, stem_weights=expansion
                ),
                first=first,
                known=[c.memory_id for c in candidates],
                pool_size=FEEDBACK_POOL,
            )
            _add_feedback(candidates, found)
    else:
        candidates = _fallback_candidates(scope, limit=limit)

    for c in candidates:
        importance, recency = _importance(c.importance), _recency(c.created_at, now)
        c.score = 0.80 * lexical_score(c) + 0.12 * importance + 0.08 * recency
    if query_vector is not None:
        embeddings.rerank(candidates, owner_id=owner_id, user_id=user_id, query_vector=query_vector)
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
