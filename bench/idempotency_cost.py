"""What an Idempotency-Key costs a create, in CPU per request, measured in process.

    .venv/bin/python bench/idempotency_cost.py [--requests 200] [--rounds 10]

Creates its own database (BENCH_DATABASE_URL with the suffix _idempotency), then POSTs
memories through Django's test client (the whole request path, rate limit and JSON
included) in alternating blocks: without a key, and each with a new Idempotency-Key. CPU
time of this process (web) and of its PostgreSQL backend (db, from /proc) per create;
medians over the rounds, so that load on the machine moves both sides alike. Issue 14: an
idempotent create at least 0.85x the rate of a plain one.
"""

import argparse
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import CLOCK_TICKS, drop_database, in_process_database, process_ticks  # noqa: E402  (bench/ is sys.path[0])

DATABASE_URL = (
    os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/memory_bench")
    + "_idempotency"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="creates per block")
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

    key = create_api_key(owner_id="bench-owner", rate_limit_per_minute=100_000_000)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key.plaintext}")
    bodies = corpus.memories(200, "bench-idem", seed=7)

    def backend_ticks() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            (pid,) = cursor.fetchone()
        return process_ticks(pid) or 0

    counter = 0

    def block(keyed: bool) -> tuple[float, float]:
        nonlocal counter
        web, db = time.process_time(), backend_ticks()
        for _ in range(requests):
            counter += 1
            body = bodies[counter % len(bodies)]
            headers = {"HTTP_IDEMPOTENCY_KEY": uuid.uuid4().hex} if keyed else {}
            response = client.post("/api/v1/memory", body, format="json", **headers)
            assert response.status_code == 200, response.content
        web = (time.process_time() - web) * 1000 / requests
        return web, (backend_ticks() - db) * 1000 / CLOCK_TICKS / requests

    results: dict[str, list[tuple[float, float]]] = {"create": [], "idempotent": []}
    block(False)  # warm: imports, statements, connections
    block(True)
    for _ in range(rounds):
        results["create"].append(block(False))
        results["idempotent"].append(block(True))
    lines = [f"CPU ms per request, median of {rounds} blocks of {requests}:"]
    for name, blocks in results.items():
        web = statistics.median(b[0] for b in blocks)
        db = statistics.median(b[1] for b in blocks)
        total = statistics.median(b[0] + b[1] for b in blocks)
        lines.append(f"  {name:11} web {web:.2f}  db {db:.2f}  total {total:.2f}")
    ratios = [
        (c[0] + c[1]) / (i[0] + i[1])
        for c, i in zip(results["create"], results["idempotent"], strict=True)
    ]
    lines.append(
        f"  idempotent/create rate by CPU: median {statistics.median(ratios):.3f} "
        f"(range {min(ratios):.3f} to {max(ratios):.3f})"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
