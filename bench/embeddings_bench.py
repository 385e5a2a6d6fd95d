"""Context and create with embeddings on and off, and the bare embedding call, in process.

    .venv/bin/python bench/embeddings_bench.py [--memories 1000] [--requests 200] [--keep-db]

Needs the dev-only eval requirements (eval/requirements-eval.txt): it starts
eval/embedding_server.py, all-MiniLM-L6-v2 on 127.0.0.1, and points the OpenAI settings
at it. Then, in this process, with production settings (DEBUG=false):

1. creates its own database (BENCH_EMBEDDINGS_DATABASE_URL, default
   postgres://postgres@127.0.0.1:5432/memory_bench_embeddings) and loads one user's
   memories from bench/corpus.py through create_memory, then embeds them all in batches;
2. times, through Django's test client (the whole request path, no HTTP server):
   - the bare embedding call (embeddings.embed_query, one query),
   - POST /api/v1/memory/context with embeddings off and on,
   - POST /api/v1/memory with embeddings off and on (the vector is made after the
     response, by the background thread, which runs meanwhile);
3. prints p50 / p95 wall-clock latency and this process's CPU per request (the model
   server's CPU is reported apart), and drops the database.

Wall-clock latency on a shared machine is noisy: compare the rows of one run.
"""

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import corpus  # noqa: E402  (bench/ is sys.path[0])
from harness import CLOCK_TICKS, _admin, percentile, process_ticks  # noqa: E402

DATABASE_URL = os.environ.get(
    "BENCH_EMBEDDINGS_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/memory_bench_embeddings"
)
OWNER, USER, CREATE_USER = "bench-owner", "bench-embeddings", "bench-embeddings-create"


def start_model_server() -> tuple[subprocess.Popen, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "eval" / "embedding_server.py"), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        text=True,
    )
    if not server.stdout.readline().startswith("embeddings on"):
        raise SystemExit("eval/embedding_server.py did not start (eval/requirements-eval.txt?)")
    return server, f"http://127.0.0.1:{port}/v1"


def cpu_ms(pid: int) -> float:
    return (process_ticks(pid) or 0) * 1000 / CLOCK_TICKS


def setup(base_url: str) -> None:
    from cryptography.fernet import Fernet

    os.environ.update(
        DJANGO_SETTINGS_MODULE="memoryproject.settings",
        DEBUG="false",
        SECRET_KEY="bench-secret-" + os.urandom(24).hex(),
        ENCRYPTION_KEY=Fernet.generate_key().decode(),
        ALLOWED_HOSTS="testserver",
        DATABASE_URL=DATABASE_URL,
        LOG_LEVEL="WARNING",
        OPENAI_BASE_URL=base_url,
        OPENAI_API_KEY="local",
        OPENAI_EMBEDDING_MODEL="all-MiniLM-L6-v2",
    )
    for name in ("REDIS_URL", "DATABASE_REPLICA_URLS", "DATABASE_POOLER", "API_KEY"):
        os.environ.pop(name, None)
    _admin(
        DATABASE_URL, 'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', 'CREATE DATABASE "{name}"'
    )
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)


def load(count: int) -> float:
    """count memories for USER, created with embeddings off, then embedded in batches."""
    from django.db import transaction
    from django.test import override_settings

    from memories import embeddings
    from memories.models import Memory
    from memories.services import create_memory

    rng = random.Random(count)
    with override_settings(OPENAI_EMBEDDING_MODEL=""), transaction.atomic():
        for _ in range(count):
            create_memory(owner_id=OWNER, data=corpus.memory(rng, USER))
    ids = list(Memory.objects.filter(owner_id=OWNER, user_id=USER).values_list("pk", flat=True))
    started = time.perf_counter()
    stored = embeddings.embed_memories(memory_ids=ids)
    if stored != count:
        raise SystemExit(f"embedded {stored} of {count} memories")
    return time.perf_counter() - started


def timed(label: str, requests: int, call, model_pid: int) -> dict:
    """Latency and CPU of `requests` calls of call(i), after a few warm-up calls."""
    for i in range(5):
        call(i)
    latencies = []
    cpu, model = time.process_time(), cpu_ms(model_pid)
    for i in range(requests):
        started = time.perf_counter()
        call(i)
        latencies.append((time.perf_counter() - started) * 1000)
    cpu = (time.process_time() - cpu) * 1000 / requests
    model = (cpu_ms(model_pid) - model) / requests
    latencies.sort()
    row = {
        "label": label,
        "p50_ms": round(statistics.median(latencies), 2),
        "p95_ms": round(percentile(latencies, 95), 2),
        "cpu_ms": round(cpu, 2),
        "model_cpu_ms": round(model, 2),
    }
    print(
        f"{label:<28} p50 {row['p50_ms']:7.2f} ms  p95 {row['p95_ms']:7.2f} ms  "
        f"cpu/request {row['cpu_ms']:6.2f} ms  model server cpu {row['model_cpu_ms']:6.2f} ms",
        flush=True,
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--memories", type=int, default=1000, help="memories of the user")
    parser.add_argument("--requests", type=int, default=200, help="per measurement")
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument(
        "--profile", metavar="OUT", help="also cProfile (CPU time) context with embeddings on"
    )
    args = parser.parse_args()

    server, base_url = start_model_server()
    try:
        setup(base_url)
        from django.test import override_settings
        from rest_framework.test import APIClient

        from apikeys.services import create_api_key
        from memories import embeddings

        seconds = load(args.memories)
        print(f"{args.memories} memories embedded in {seconds:.1f} s", flush=True)
        client = APIClient()
        key = create_api_key(owner_id=OWNER, rate_limit_per_minute=100_000_000).plaintext
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        bodies = corpus.memories(400, CREATE_USER, seed=424242)

        def context(i):
            body = {"user_id": USER, "query": corpus.QUERIES[i % len(corpus.QUERIES)], "limit": 5}
            response = client.post("/api/v1/memory/context", body, format="json")
            assert response.status_code == 200, response.content

        def create(i):
            response = client.post("/api/v1/memory", bodies[i % len(bodies)], format="json")
            assert response.status_code == 200, response.content

        def embed(i):
            assert embeddings.embed_query(corpus.QUERIES[i % len(corpus.QUERIES)]) is not None

        n = args.requests
        timed("embedding call (one query)", n, embed, server.pid)
        with override_settings(OPENAI_EMBEDDING_MODEL=""):
            timed("context, embeddings off", n, context, server.pid)
        timed("context, embeddings on", n, context, server.pid)
        if args.profile:
            import cProfile

            profile = cProfile.Profile(time.process_time)
            profile.runcall(lambda: [context(i) for i in range(n)])
            profile.dump_stats(args.profile)
        with override_settings(OPENAI_EMBEDDING_MODEL=""):
            timed("create, embeddings off", n, create, server.pid)
        timed("create, embeddings on", n, create, server.pid)
        time.sleep(1)  # the last creates' vectors: the background thread needs the database
    finally:
        server.terminate()
        if not args.keep_db:
            from django.db import connections

            connections.close_all()
            _admin(DATABASE_URL, 'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
