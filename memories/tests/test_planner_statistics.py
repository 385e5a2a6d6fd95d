"""Planner statistics after large writes: the tables the hot queries read are analyzed
once they have changed a lot, without waiting for autovacuum."""

import threading
import time

import psycopg
import pytest
from django.db import connection

from memories import analyze
from memories.models import Memory, MemoryTerm

pytestmark = [
    pytest.mark.django_db(transaction=True),  # pg_stat_user_tables counts committed rows
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's statistics"),
]

TABLES = [Memory._meta.db_table, MemoryTerm._meta.db_table]


def analyze_counts() -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, analyze_count FROM pg_stat_user_tables WHERE relname = ANY(%s)",
            [TABLES],
        )
        return dict(cursor.fetchall())


def create_through_the_api(client, count: int) -> None:
    for start in range(0, count, 100):
        items = [
            {"user_id": "bulk", "type": "fact", "content": f"Loaded memory number {n}"}
            for n in range(start, start + 100)
        ]
        response = client.post("/api/v1/memory/batch", {"memories": items}, format="json")
        assert response.status_code == 200, response.json()


def test_a_bulk_load_through_the_api_analyzes_the_tables_it_grew(client):
    before = analyze_counts()

    # Every CHECK_EVERY memories a process looks; twice that many is sure to include a
    # look after at least MIN_ROWS of them.
    create_through_the_api(client, 2 * analyze.CHECK_EVERY)

    after = analyze_counts()
    assert all(after[table] > before.get(table, 0) for table in TABLES), (before, after)


def test_fresh_statistics_are_left_alone(client):
    create_through_the_api(client, 100)
    with connection.cursor() as cursor:
        for table in TABLES:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(table)}")
    create_through_the_api(client, 100)
    before = analyze_counts()

    assert analyze.analyze_stale_tables() == []
    assert analyze_counts() == before


def test_a_table_held_by_maintenance_is_skipped_not_waited_for(client, monkeypatch):
    """VACUUM, CREATE INDEX CONCURRENTLY and ANALYZE itself hold SHARE UPDATE EXCLUSIVE: the
    request that crossed the mark must not wait behind them. The held table is left for a
    later check."""
    monkeypatch.setattr(analyze, "CHECK_EVERY", 10**9)  # the load leaves both tables stale
    create_through_the_api(client, 1200)
    for _ in range(100):  # this connection's counts reach the statistics views once idle
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_force_next_flush()")
            cursor.execute(
                "SELECT n_mod_since_analyze FROM pg_stat_user_tables WHERE relname = %s",
                [TABLES[1]],
            )
            if cursor.fetchone()[0] >= 1200:
                break
        time.sleep(0.1)
    params = connection.get_connection_params()
    other = psycopg.connect(**{k: v for k, v in params.items() if k != "cursor_factory"})
    try:
        other.execute(f"LOCK TABLE {TABLES[1]} IN SHARE UPDATE EXCLUSIVE MODE")
        before = analyze_counts()
        finished = threading.Event()

        def check() -> None:
            try:
                analyze.analyze_stale_tables()
                finished.set()
            finally:
                connection.close()  # this thread's own connection

        worker = threading.Thread(target=check)
        worker.start()
        worker.join(timeout=60)  # only a failure waits this long: the lock is never released
        assert finished.is_set()
        assert analyze_counts()[TABLES[1]] == before.get(TABLES[1], 0)
    finally:
        other.close()
        worker.join()
