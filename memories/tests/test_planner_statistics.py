"""Planner statistics after large writes: the tables the hot queries read are analyzed
once they have changed a lot, without waiting for autovacuum."""

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
