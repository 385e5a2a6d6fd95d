"""The benchmarks' process harness: the test suite's own (memoryproject/tests/servers.py),
so both start the service the same way, plus a fallback load generator for when wrk is
missing."""

import http.client
import json
import math
import os
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/ is sys.path[0]

from memoryproject.tests.servers import (
    KEY_PATTERN,
    PG_BIN,
    ROOT,
    Pgbouncer,
    PrivatePostgres,
    _admin,
    child_pids,
    create_database,
    drop_database,
    free_port,
    manage,
    new_key,
    start_web,
    wait_until_up,
    web_command,
)

__all__ = [
    "CLOCK_TICKS",
    "KEY_PATTERN",
    "PG_BIN",
    "ROOT",
    "Pgbouncer",
    "PrivatePostgres",
    "_admin",
    "child_pids",
    "cpu_ticks",
    "create_database",
    "drop_database",
    "free_port",
    "in_process_database",
    "manage",
    "new_key",
    "percentile",
    "process_ticks",
    "run_threads",
    "start_web",
    "wait_until_up",
    "web_command",
]


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")  # per second, the unit of process_ticks


def process_ticks(pid: int) -> int | None:
    """User + system CPU time of a live process, in clock ticks (Linux /proc); None when
    it has gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])  # utime, stime


def cpu_ticks(pids: list[int]) -> dict[int, int]:
    """process_ticks of each live process."""
    ticks = {pid: process_ticks(pid) for pid in pids}
    return {pid: t for pid, t in ticks.items() if t is not None}


def in_process_database(database_url: str) -> None:
    """Make this process a production-settings service (DEBUG off, no Redis: the rate limit
    lives in the database) on a new database at database_url, for the benchmarks that drive
    Django's test client in process. The caller drops the database at the end."""
    from cryptography.fernet import Fernet

    env = {
        **os.environ,
        "DEBUG": "false",
        "SECRET_KEY": "bench-secret-" + os.urandom(24).hex(),
        "ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "ALLOWED_HOSTS": "testserver",
        "DATABASE_URL": database_url,
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "memoryproject.settings",
    }
    for name in ("REDIS_URL", "API_KEY", "DATABASE_REPLICA_URLS", "DATABASE_POOLER"):
        env.pop(name, None)
    create_database(env)
    os.environ.clear()
    os.environ.update(env)


def percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return float("nan")
    index = max(0, math.ceil(pct / 100 * len(sorted_values)) - 1)
    return sorted_values[index]


def run_threads(
    url, key, method, path, bodies, concurrency, seconds, workdir=None, unique_header=None
) -> dict:
    """Fallback load generator: `concurrency` keep-alive connections in a closed loop.
    unique_header: a header sent with a new value on every request (Idempotency-Key)."""
    host, port = url.removeprefix("http://").split(":")
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    encoded = [json.dumps(b).encode() for b in bodies] if bodies else [None]
    deadline = time.monotonic() + seconds
    prefix = uuid.uuid4().hex
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency

    def loop(n: int) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        i = n
        while time.monotonic() < deadline:
            i += 1
            started = time.perf_counter()
            try:
                sent = headers
                if unique_header:
                    sent = {**headers, unique_header: f"{prefix}-{n}-{i}"}
                conn.request(method, path, body=encoded[i % len(encoded)], headers=sent)
                response = conn.getresponse()
                response.read()
                errors[n] += response.status >= 400
            except (OSError, http.client.HTTPException):
                errors[n] += 1
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
            latencies[n].append(time.perf_counter() - started)
        conn.close()

    threads = [threading.Thread(target=loop, args=(n,)) for n in range(concurrency)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    values = sorted(x * 1000 for per in latencies for x in per)
    return {
        "requests": len(values),
        "rps": round(len(values) / elapsed, 1),
        "p50_ms": round(percentile(values, 50), 3),
        "p95_ms": round(percentile(values, 95), 3),
        "p99_ms": round(percentile(values, 99), 3),
        "mean_ms": round(sum(values) / max(1, len(values)), 3),
        "max_ms": round(values[-1], 3) if values else float("nan"),
        "errors": sum(errors),
    }
