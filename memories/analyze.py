"""Fresh planner statistics after large writes, without waiting for autovacuum.

PostgreSQL plans each query from statistics that ANALYZE gathers: the rows of a table
and how they spread over owners and users. A table that was never analyzed, or grew far
beyond what its statistics describe (a bulk load, before autovacuum's autoanalyze comes
round, or on a server where autovacuum is off), looks to the planner as if every user had
one memory, and the hot queries then pick the wrong index: right after loading 28,000
memories, context took 390 ms instead of 18, a look-up by key 15 ms instead of 2
(docs/PERFORMANCE.md, "Planner statistics after a bulk load").

So each process counts the memories it creates, and every CHECK_EVERY of them asks
PostgreSQL (pg_stat_user_tables) whether the tables those queries read changed by more
than GROWTH of the rows their last ANALYZE saw (and at least MIN_ROWS); those it
analyzes, one process at a time. ANALYZE reads a sample of at most 30,000 rows however
large the table is (default_statistics_target 100): about 0.1-0.5 s, paid after
commit by the request that crosses the mark. GROWTH is autoanalyze's own 0.1: one new
tenant's bulk load into a table that already holds many others is a small share of the
table, and it must still be seen (at 0.5, 10,000 memories loaded for a new user into a
table of some 60,000 went unanalyzed, and that user's context planned a nested loop, 7x
slower). A bulk load from empty then analyzes at every tenth of growth: about 70 times
(some 20 s of ANALYZE) over a million memories. SQLite plans without statistics: nothing
to do there.
"""

import logging

from django.db import DEFAULT_DB_ALIAS, connections, transaction

from memories.models import Memory, MemoryTerm

logger = logging.getLogger(__name__)

CHECK_EVERY = 1_000  # memories a process creates between two looks at the statistics
MIN_ROWS = 1_000  # never analyze for fewer changed rows than this
GROWTH = 0.1  # changed rows since the last ANALYZE, as a fraction of the rows it saw
LOCK_ID = 0x616E616C797A65  # "analyze": one process analyzes at a time, on any host

_created_since_check = 0


def note_created(count: int) -> None:
    """After count memories were written: every CHECK_EVERY of them, once the write has
    committed, analyze the tables that need it."""
    global _created_since_check
    # Unlocked: two threads may lose an increment, which moves the next look a little.
    _created_since_check += count
    if _created_since_check < CHECK_EVERY:
        return
    _created_since_check = 0
    if connections[DEFAULT_DB_ALIAS].vendor == "postgresql":
        transaction.on_commit(analyze_stale_tables, robust=True)


def analyze_stale_tables() -> list[str]:
    """ANALYZE the memory tables whose statistics are stale; the tables analyzed. Another
    process analyzing now makes this one skip."""
    db = connections[DEFAULT_DB_ALIAS]
    tables = [model._meta.db_table for model in (Memory, MemoryTerm)]
    with db.cursor() as cursor:
        if db.pg_version >= 150000:  # type: ignore[attr-defined]  # PostgreSQL's wrapper
            # This connection's own latest writes reach pg_stat_user_tables only once it
            # has been idle: after this statement, before the next.
            cursor.execute("SELECT pg_stat_force_next_flush()")
        cursor.execute(
            "SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid "
            "WHERE s.relname = ANY(%s) AND s.n_mod_since_analyze >= "
            "GREATEST(%s, %s * GREATEST(c.reltuples, 0))",
            [tables, MIN_ROWS, GROWTH],
        )
        stale = sorted(name for (name,) in cursor.fetchall())
    if not stale:
        return []
    with transaction.atomic(), db.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [LOCK_ID])
        if not cursor.fetchone()[0]:
            return []
        for table in stale:
            # SKIP_LOCKED: a VACUUM, an index build or another ANALYZE holding the table
            # would otherwise hold up the request that crossed the mark; the next check
            # analyzes it instead.
            cursor.execute(f"ANALYZE (SKIP_LOCKED) {db.ops.quote_name(table)}")
    logger.info("analyzed %s", ", ".join(stale))
    return stale
