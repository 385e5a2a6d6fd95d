"""CPU per request of create and list against their floors, and of upsert against create,
in one process, for when the machine is too busy for throughput to mean anything.

    .venv/bin/python bench/inprocess.py [--requests 400] [--rounds 3] [--pairs create,list]
    .venv/bin/python bench/inprocess.py --steps          # each step's cost alone
    .venv/bin/python bench/inprocess.py --profile create # where one endpoint's CPU goes

Sets up its database like bench/run.py (BENCH_DATABASE_URL with "_inprocess" appended,
migrated, one key, 1,000 memories for one user), then calls Django's WSGI handler directly
with a prepared environ (the whole middleware stack, authentication, rate limit through
Redis at BENCH_REDIS_URL, production settings; no HTTP parsing, no socket). Each pair runs
in A-B-B-A rounds of --requests requests per block. Reported per request: this process's
CPU (time.process_time) and its PostgreSQL backend's (/proc ticks), each side's mean, and
the floor/service CPU ratio with its min-max over the rounds.
"""

import argparse
import io
import json
import os
import statistics
import sys
import time

import corpus  # bench/ is sys.path[0]
from harness import CLOCK_TICKS, create_database, drop_database, new_key, process_ticks
from run import BENCH, DATABASE_URL, OWNER, ROOT, base_env, batch_bodies, preload, user_for

SIZE = 1000


def environ(method: str, path: str, body: bytes, key: str) -> dict:
    path, _, query = path.partition("?")
    return {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "HTTP_HOST": "localhost",
        "REMOTE_ADDR": "127.0.0.1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_AUTHORIZATION": f"Bearer {key}",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400, help="requests per block")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pairs", default="create,list", help="of create, list, upsert")
    parser.add_argument(
        "--profile",
        metavar="ENDPOINT",
        help="instead: cProfile (CPU time) one block of create, floor, list, list-floor "
        "upsert (unchanged: the warm-up created its keys) or batch (100 memories a request) "
        "and print the top functions in --sort order",
    )
    parser.add_argument("--sort", default="cumulative", help="pstats order for --profile")
    parser.add_argument(
        "--steps",
        nargs="?",
        const="create",
        choices=("create", "batch"),
        help="instead: the CPU cost of each step alone, of a create and a list (create) or "
        "of a batch create of 100, per memory (batch)",
    )
    args = parser.parse_args()

    env = base_env()
    env["DATABASE_URL"] = DATABASE_URL + "_inprocess"
    # One connection for the whole run, so its backend's CPU can be read (the default
    # replaces a connection after 60 s).
    env["CONN_MAX_AGE"] = "86400"
    create_database(env)
    try:
        key = new_key(env, OWNER, 100_000_000)
        preload(env, [SIZE])
        os.environ.update(env)
        os.environ["DJANGO_SETTINGS_MODULE"] = "floor.settings"
        sys.path.insert(0, str(ROOT))
        measure(key, args)
    finally:
        drop_database(env["DATABASE_URL"])


def measure(key: str, args) -> None:
    import django

    django.setup()
    from django.core.handlers.wsgi import WSGIHandler
    from django.db import connection

    handler = WSGIHandler()
    user = user_for(SIZE)
    create = [json.dumps(b).encode() for b in corpus.memories(400, "bench-create", seed=424242)]
    floor = [json.dumps(b).encode() for b in corpus.memories(400, "bench-floor", seed=424242)]
    # As bench/run.py's upsert: 400 keys, created by the warm-up pass, then unchanged.
    upsert = [
        json.dumps({**b, "key": f"bench_key_{n}"}).encode()
        for n, b in enumerate(corpus.memories(400, "bench-upsert", seed=424242))
    ]
    batch = [json.dumps(b).encode() for b in batch_bodies("bench-batch")]
    endpoints = {
        "create": lambda n: ("POST", "/api/v1/memory", create[n % len(create)]),
        "floor": lambda n: ("POST", "/floor/memory", floor[n % len(floor)]),
        "list": lambda n: ("GET", f"/api/v1/memory?user_id={user}&limit=20", b""),
        "list-floor": lambda n: ("GET", f"/floor/memory?user_id={user}&limit=20", b""),
        "upsert": lambda n: ("POST", "/api/v1/memory/upsert", upsert[n % len(upsert)]),
        "batch": lambda n: ("POST", "/api/v1/memory/batch", batch[n % len(batch)]),
    }
    # Per request: a batch carries 100 memories, so it wants fewer --requests.
    pairs = {"create": "floor", "list": "list-floor", "upsert": "create", "batch": "create"}
    statuses = []

    def start_response(status, headers, exc_info=None):
        statuses.append(status)

    def block(name: str, count: int) -> tuple[float, float]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pid = cursor.fetchone()[0]
        requests = [environ(*endpoints[name](n), key) for n in range(count)]
        db, cpu = (process_ticks(pid) or 0), time.process_time()
        for request in requests:
            b"".join(handler(request, start_response))
        cpu, db = time.process_time() - cpu, (process_ticks(pid) or 0) - db
        bad = [s for s in statuses if not s.startswith("200")]
        assert not bad, (name, bad[:3])
        statuses.clear()
        return cpu * 1000 / count, db * 1000 / CLOCK_TICKS / count

    for name in endpoints:  # warm: imports, statements compiled once, connection
        block(name, {"upsert": len(upsert), "batch": 5}.get(name, 50))
    if args.steps:
        import steps

        if args.steps == "batch":
            steps.batch_costs(owner=OWNER, bodies=json.loads(batch[0])["memories"])
        else:
            steps.measure_all(key=key, owner=OWNER, user=user, body=create[0])
        return
    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile(time.process_time)
        profiler.runcall(block, args.profile, args.requests)
        pstats.Stats(profiler).sort_stats(args.sort).print_stats(70)
        return
    for service in args.pairs.split(","):
        base = pairs[service]
        rounds = []
        for _ in range(args.rounds):
            found = {service: [], base: []}
            for name in (base, service, service, base):
                found[name].append(block(name, args.requests))
            rounds.append(
                {n: [statistics.fmean(c) for c in zip(*v, strict=True)] for n, v in found.items()}
            )
        ours = [statistics.fmean(r[service][i] for r in rounds) for i in (0, 1)]
        floor_ms = [statistics.fmean(r[base][i] for r in rounds) for i in (0, 1)]
        ratios = [sum(r[base]) / sum(r[service]) for r in rounds]
        print(
            f"{service}: web {ours[0]:.3f} db {ours[1]:.3f} ms/req; {base}: web "
            f"{floor_ms[0]:.3f} db {floor_ms[1]:.3f}; CPU ratio {statistics.fmean(ratios):.0%} "
            f"({min(ratios):.0%}-{max(ratios):.0%}, {args.rounds} rounds of "
            f"{args.requests} requests)",
            flush=True,
        )


if __name__ == "__main__":
    sys.path.insert(0, str(BENCH))
    main()
