"""Context throughput with one read replica taking the reads, against the primary alone, in
one run; and what the read-your-writes check costs per request.

    .venv/bin/python bench/replica_bench.py [--seconds 8] [--rounds 2] [--memories 1000]

1. Starts a private primary and a streaming replica of it (bench/harness.py), migrates, and
   preloads one user with --memories memories through the service's create path.
2. Starts gunicorn three times on the same databases (production settings, Redis buckets,
   WEB_CONCURRENCY workers, default 2): `primary` without replicas, `replica` with
   DATABASE_REPLICA_URLS (write positions in Redis), and `pooled`, the same through
   pgbouncer in transaction mode (DATABASE_POOLER=transaction).
3. Drives POST /api/v1/memory/context on each in turn, --rounds times (alternating, so drift
   hits both alike), with wrk (or Python threads when wrk is missing), and counts the
   scans of the memory tables on each database to show where the reads went.
4. Times the check itself in one process: choosing a replica for an owner with and without
   a recorded write, and recording a write, with positions in Redis and in the database.

On a machine whose cores are shared by the load generator, both databases and gunicorn, a
replica adds no capacity: the figures are about correctness and overhead, not speed-up.
"""

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from harness import (
    Pgbouncer,
    PrivatePostgres,
    manage,
    new_key,
    run_threads,
)  # bench/ is sys.path[0]
from run import THROUGHPUT_CONCURRENCY, Server, base_env, context_bodies, preload, run_wrk

ROOT = Path(__file__).resolve().parent.parent
USER = "bench-user-replica"

_TIMING = """
import time
from django.conf import settings
from replicas import services
def per_call(fn, n):
    fn()
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return round((time.perf_counter() - started) / n * 1000, 3)
n = 2000
services.record_write(owner_id="bench-wrote")
print("TIMING", {
    "positions": "redis" if settings.REDIS_URL else "database",
    "choose_never_wrote_ms": per_call(lambda: services.choose_replica(owner_id="bench-none"), n),
    "choose_wrote_ms": per_call(lambda: services.choose_replica(owner_id="bench-wrote"), n),
    "record_write_ms": per_call(lambda: services.record_write(owner_id="bench-wrote"), n),
})
"""


def scans(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT COALESCE(SUM(COALESCE(seq_scan, 0) + COALESCE(idx_scan, 0)), 0)::int "
            "FROM pg_stat_user_tables WHERE relname IN ('memories_memory', 'memories_memoryterm')"
        ).fetchone()[0]


def timing(env: dict) -> dict:
    output = manage(env, "shell", "-c", _TIMING, timeout=300)
    line = next(x for x in output.splitlines() if x.startswith("TIMING "))
    return eval(line.removeprefix("TIMING "))  # noqa: S307 - our own dict literal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--memories", type=int, default=1000)
    args = parser.parse_args()
    load = run_wrk if shutil.which("wrk") else run_threads
    workdir = Path(tempfile.mkdtemp(prefix="replica-bench-"))
    primary = PrivatePostgres()
    replica = bouncer = None
    servers: list[Server] = []
    try:
        primary.start()
        with psycopg.connect(primary.url(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE memory")
        env = base_env()
        env["DATABASE_URL"] = primary.url("memory")
        manage(env, "migrate", "--noinput", "-v0")
        import run

        run.user_for = lambda size: USER  # preload's one user
        loaded = preload(env, [args.memories])
        key = new_key(env, run.OWNER, 100_000_000)
        replica = PrivatePostgres(primary=primary)
        replica.start()
        replicated = {**env, "DATABASE_REPLICA_URLS": replica.url("memory")}
        bouncer = Pgbouncer(
            {
                "memory": f"host=127.0.0.1 port={primary.port} dbname=memory",
                "memory_replica": f"host=127.0.0.1 port={replica.port} dbname=memory",
            }
        )
        pooled = {
            **env,
            "DATABASE_URL": bouncer.url("memory"),
            "DATABASE_REPLICA_URLS": bouncer.url("memory_replica"),
            "DATABASE_POOLER": "transaction",
        }
        servers = [
            Server("primary", env, workdir / "primary.log"),
            Server("replica", replicated, workdir / "replica.log"),
            Server("pooled", pooled, workdir / "pooled.log"),
        ]
        bodies = context_bodies(USER)
        rows = []
        for round_number in range(args.rounds):
            for server in servers:
                before = scans(primary.url("memory")), scans(replica.url("memory"))
                result = load(
                    server.url, key, "POST", "/api/v1/memory/context", bodies,
                    THROUGHPUT_CONCURRENCY, args.seconds, workdir,
                )  # fmt: skip
                # An idle backend reports its statistics within 10 s (PostgreSQL 15):
                # waiting longer keeps each measurement's scans out of the next one's.
                time.sleep(11)
                after = scans(primary.url("memory")), scans(replica.url("memory"))
                rows.append(
                    {
                        "round": round_number + 1,
                        "service": server.name,
                        **result,
                        "scans_on_primary": after[0] - before[0],
                        "scans_on_replica": after[1] - before[1],
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
        without_redis = {k: v for k, v in replicated.items() if k != "REDIS_URL"}
        costs = [timing(replicated), timing(without_redis)]
        for cost in costs:
            print(json.dumps(cost), flush=True)
        print(
            json.dumps(
                {
                    "memories": args.memories,
                    "preload": loaded,
                    "load_tool": "wrk" if load is run_wrk else "python threads",
                    "concurrency": THROUGHPUT_CONCURRENCY,
                    "workers": env.get("WEB_CONCURRENCY"),
                    "cores": os.cpu_count(),
                }
            )
        )
    finally:
        for server in servers:
            server.stop()
        if bouncer is not None:
            bouncer.stop()
        if replica is not None:
            replica.destroy()
        primary.destroy()
        with contextlib.suppress(OSError):
            shutil.rmtree(workdir)


if __name__ == "__main__":
    sys.exit(main())
