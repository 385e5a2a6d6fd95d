"""What the history write adds to PATCH, in CPU per request, measured in process.

    .venv/bin/python bench/history_cost.py [--requests 200] [--rounds 10]

Creates its own database (BENCH_DATABASE_URL with the suffix _history), then PATCHes
memories through Django's test client (the whole request path, rate limit and JSON
included) in alternating blocks: as the service runs, and with the version write taken
out (memories.services._save_with_version replaced by the same UPDATE of the memory,
without the version insert that rides in it). CPU time of this process (web)
and of its PostgreSQL backend (db, from /proc) per PATCH; medians over the rounds, so
that load on the machine moves both sides alike. Issue 14: history may add at most 10%.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import CLOCK_TICKS, drop_database, in_process_database, process_ticks  # noqa: E402  (bench/ is sys.path[0])

DATABASE_URL = (
    os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/memory_bench")
    + "_history"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="PATCHes per block")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    in_process_database(DATABASE_URL)
    try:
        print(measure(args.requests, args.rounds))
    finally:
        from django.db import connections

        connections.close_all()
        drop_database(DATABASE_URL)


def measure(requests: int, rounds: int) -> str:
    import django

    django.setup()
    import corpus
    from django.db import connection
    from rest_framework.test import APIClient

    from apikeys.services import create_api_key
    from memories import services
    from memoryproject import prepared

    key = create_api_key(owner_id="bench-owner", rate_limit_per_minute=100_000_000)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key.plaintext}")
    bodies = corpus.memories(50, "bench-patch", seed=7)
    response = client.post("/api/v1/memory/batch", {"memories": bodies}, format="json")
    ids = [memory["id"] for memory in response.json()["memories"]]

    def backend_ticks() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            (pid,) = cursor.fetchone()
        return process_ticks(pid) or 0

    counter = 0

    def block() -> tuple[float, float]:
        nonlocal counter
        web, db = time.process_time(), backend_ticks()
        for _ in range(requests):
            counter += 1
            memory_id = ids[counter % len(ids)]
            body = {"importance": 1 + counter % 5}
            response = client.patch(f"/api/v1/memory/{memory_id}", body, format="json")
            assert response.status_code == 200, response.content
        web = (time.process_time() - web) * 1000 / requests
        return web, (backend_ticks() - db) * 1000 / CLOCK_TICKS / requests

    save_with_version = services._save_with_version

    def save_without_version(memory, *, fields, event) -> None:
        sql, params = services._update_statement(memory, fields, connection)
        with prepared.cursor(connection) as cursor:  # prepared like the service's own
            cursor.execute(sql, params)

    results: dict[str, list[tuple[float, float]]] = {"with history": [], "without": []}
    block()  # warm: imports, statements, connections
    for _ in range(rounds):
        services._save_with_version = save_with_version
        results["with history"].append(block())
        services._save_with_version = save_without_version
        results["without"].append(block())
    services._save_with_version = save_with_version

    lines = [f"PATCH, CPU ms per request, median of {rounds} blocks of {requests}:"]
    totals = {}
    for name, blocks in results.items():
        web = statistics.median(b[0] for b in blocks)
        db = statistics.median(b[1] for b in blocks)
        totals[name] = statistics.median(b[0] + b[1] for b in blocks)
        lines.append(f"  {name:13} web {web:.2f}  db {db:.2f}  total {totals[name]:.2f}")
    added = [
        (a[0] + a[1]) / (b[0] + b[1]) - 1
        for a, b in zip(results["with history"], results["without"], strict=True)
    ]
    lines.append(
        f"  history adds {statistics.median(added):+.1%} (median of the per-round ratios; "
        f"range {min(added):+.1%} to {max(added):+.1%}); target <= +10%"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
