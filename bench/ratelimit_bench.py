"""What the per-key rate limiter costs per request, for each backend.

Two measurements:
1. In process: the time of one apikeys.throttling.take() call (one upsert on PostgreSQL,
   or one Lua script on Redis), averaged over many calls.
2. End to end: requests/s of an authenticated `GET /api/v1/memory?user_id=x&limit=1`
   against gunicorn (the Procfile's web line, 2 workers) with the database backend, the
   Redis backend, and the throttle off (a settings module that empties
   DEFAULT_THROTTLE_CLASSES). The key's limit is far above the load, so nothing is refused.
   Rounds alternate between the three servers so drift hits them alike.

Uses `wrk` when installed, Python threads otherwise. Creates and drops its own database.

    .venv/bin/python bench/ratelimit_bench.py
    BENCH_DATABASE_URL=postgres://... BENCH_REDIS_URL=redis://... BENCH_SECONDS=8 ...
"""

import contextlib
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from harness import create_database, drop_database, free_port, new_key, start_web, wait_until_up
from harness import run_threads as harness_threads

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "ratelimit.json"
DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/memory_rl_bench"
)
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
SECONDS = float(os.environ.get("BENCH_SECONDS", "6"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "8"))
CALLS = int(os.environ.get("BENCH_CALLS", "500"))
SEQUENTIAL = int(os.environ.get("BENCH_SEQUENTIAL", "250"))
WORKERS = 2
PATH = "/api/v1/memory?user_id=x&limit=1"
HUGE_LIMIT = 1_000_000_000
OFF_SETTINGS = """\
from memoryproject.settings import *  # noqa: F403

REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_THROTTLE_CLASSES": []}  # noqa: F405
"""


def base_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env.pop("REDIS_URL", None)
    # Production mode, as deployed: DEBUG adds per-request work the limiter does not do.
    env.update(
        DATABASE_URL=DATABASE_URL,
        DEBUG="false",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        PYTHONUNBUFFERED="1",
    )
    env.setdefault("SECRET_KEY", "bench-" + "x" * 50)
    if "ENCRYPTION_KEY" not in env:
        from cryptography.fernet import Fernet

        env["ENCRYPTION_KEY"] = Fernet.generate_key().decode()
    return env


# --- 1. in process ---------------------------------------------------------------------


def time_take_in_process() -> dict:
    """Microseconds per take() call, per backend, in this process."""
    from django.conf import settings

    from apikeys.services import create_api_key
    from apikeys.throttling import take

    api_key = create_api_key(owner_id="bench", rate_limit_per_minute=HUGE_LIMIT).api_key
    backends = {"database": "", "redis": REDIS_URL}
    rounds = {backend: [] for backend in backends}
    for url in backends.values():
        settings.REDIS_URL = url
        for _ in range(200):
            take(api_key)  # connect, load the script, warm the caches
    # Alternate the backends, so a busy moment on a shared machine hits both alike.
    for _ in range(ROUNDS * 2):
        for backend, url in backends.items():
            settings.REDIS_URL = url
            started = time.perf_counter()
            for _ in range(CALLS):
                decision = take(api_key)
            rounds[backend].append((time.perf_counter() - started) / CALLS * 1e6)
            assert decision.allowed
    delete_redis_bucket(str(api_key.pk))
    return {
        backend: {
            "calls_per_round": CALLS,
            "us_per_call": round(statistics.median(values), 1),
            "rounds_us": [round(v, 1) for v in values],
        }
        for backend, values in rounds.items()
    }


def delete_redis_bucket(key_id: str) -> None:
    import redis

    connection = redis.Redis.from_url(REDIS_URL)
    connection.delete(f"ratelimit:{key_id}")
    connection.close()


# --- 2. end to end ---------------------------------------------------------------------


def start_server(env: dict, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = start_web({**env, "WEB_CONCURRENCY": str(WORKERS)}, port, log)
    url = f"http://127.0.0.1:{port}"
    wait_until_up(url + "/", timeout=30, process=process, log=log)
    return process, url


def get(url: str, key: str) -> tuple[int, dict]:
    request = urllib.request.Request(url + PATH, headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, dict(response.headers)


def run_wrk(url: str, key: str, seconds: float, connections: int) -> dict:
    output = subprocess.run(
        [
            "wrk",
            f"-t{min(2, connections)}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "-H",
            f"Authorization: Bearer {key}",
            url + PATH,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors:.*", output)
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)\b", output)
    return {
        "rps": rps,
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(0) if errors else "",
        "p50_ms": _ms(float(p50.group(1)), p50.group(2)) if p50 else None,
    }


def _ms(value: float, unit: str) -> float:
    return round(value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit], 3)


def run_threads(url: str, key: str, seconds: float, connections: int) -> dict:
    """Fallback load generator (harness.run_threads), reported as run_wrk reports."""
    result = harness_threads(url, key, "GET", PATH, None, connections, seconds)
    return {
        "rps": round(result["rps"], 2),
        "non_2xx": result["errors"],
        "socket_errors": "",
        "p50_ms": result["p50_ms"],
    }


def end_to_end(env: dict, workdir: Path) -> dict:
    """req/s per throttle mode, at 1 connection (latency) and CONNECTIONS (throughput)."""
    (workdir / "ratelimit_off_settings.py").write_text(OFF_SETTINGS)
    off_env = {
        **env,
        "DJANGO_SETTINGS_MODULE": "ratelimit_off_settings",
        "PYTHONPATH": str(workdir),
    }
    modes = {"off": off_env, "database": env, "redis": {**env, "REDIS_URL": REDIS_URL}}
    load = run_wrk if shutil.which("wrk") else run_threads
    servers, keys = {}, {}
    runs = {mode: [] for mode in modes}
    latencies = {mode: [] for mode in modes}
    try:
        for mode, mode_env in modes.items():
            servers[mode] = start_server(mode_env, workdir / f"gunicorn-{mode}.log")
            keys[mode] = new_key(env, f"bench-{mode}", HUGE_LIMIT)
            status, headers = get(servers[mode][1], keys[mode])
            counted = "X-RateLimit-Limit" in headers
            assert status == 200 and counted == (mode != "off"), (mode, status, headers)
            load(servers[mode][1], keys[mode], 1, CONNECTIONS)  # warm every worker
        # Latency: one request at a time, taking turns between the servers, so a busy
        # moment on a shared machine hits every mode alike.
        for _ in range(SEQUENTIAL):
            for mode in modes:
                started = time.perf_counter()
                get(servers[mode][1], keys[mode])
                latencies[mode].append((time.perf_counter() - started) * 1000)
        # Throughput: CONNECTIONS at once; the order rotates each round.
        order = list(modes)
        for round_number in range(ROUNDS):
            rotated = order[round_number % 3 :] + order[: round_number % 3]
            for mode in rotated:
                url, key = servers[mode][1], keys[mode]
                runs[mode].append(load(url, key, SECONDS, CONNECTIONS))
    finally:
        for process, _ in servers.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=20)
    assert_redis_was_used(keys["redis"])
    results = {
        "load_generator": "wrk" if load is run_wrk else "python threads",
        "latency": {},
        "throughput": {},
    }
    for mode, values in latencies.items():
        results["latency"][mode] = {
            "requests": len(values),
            "median_ms": round(statistics.median(values), 3),
            "mean_ms": round(statistics.mean(values), 3),
        }
    for mode, mode_runs in runs.items():
        assert all(run["non_2xx"] == 0 for run in mode_runs), (mode, mode_runs)
        rps = statistics.mean(run["rps"] for run in mode_runs)
        results["throughput"][mode] = {
            "connections": CONNECTIONS,
            "rps": round(rps, 1),
            "ms_per_request": round(1000 / rps, 3),
            "p50_ms": round(statistics.mean(run["p50_ms"] for run in mode_runs), 3),
            "rounds": mode_runs,
        }
    for mode in ("database", "redis"):
        latency, throughput = results["latency"], results["throughput"]
        latency[mode]["cost_ms_vs_off"] = round(
            latency[mode]["median_ms"] - latency["off"]["median_ms"], 3
        )
        throughput[mode]["cost_ms_vs_off"] = round(
            throughput[mode]["ms_per_request"] - throughput["off"]["ms_per_request"], 3
        )
    return results


def assert_redis_was_used(plaintext: str) -> None:
    """The Redis run really used Redis (a silent fallback would time the database)."""
    import psycopg
    import redis

    from apikeys.models import hash_key

    with psycopg.connect(DATABASE_URL) as conn:
        key_id = conn.execute(
            "SELECT id FROM apikeys_apikey WHERE key_hash = %s", [hash_key(plaintext)]
        ).fetchone()[0]
        in_database = conn.execute(
            "SELECT 1 FROM apikeys_ratelimitbucket WHERE key_id = %s", [key_id]
        ).fetchone()
    assert in_database is None, "the Redis server fell back to database buckets"
    connection = redis.Redis.from_url(REDIS_URL)
    assert connection.exists(f"ratelimit:{key_id}")
    connection.delete(f"ratelimit:{key_id}")
    connection.close()


def main() -> None:
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    env = base_env()
    sys.path.insert(0, str(ROOT))
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "memoryproject.settings")
    import django

    django.setup()
    create_database(env)
    try:
        with tempfile.TemporaryDirectory() as workdir:
            e2e = end_to_end(env, Path(workdir))
        in_process = time_take_in_process()
    finally:
        from django.db import connections

        connections.close_all()
        drop_database(DATABASE_URL)

    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            # Other jobs share the machine; a load above the core count inflates every
            # blocking round trip by a wait for the CPU.
            "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        },
        "command": "python bench/ratelimit_bench.py",
        "settings": {
            "gunicorn_workers": WORKERS,
            "sequential_requests_per_mode": SEQUENTIAL,
            "connections": CONNECTIONS,
            "seconds_per_round": SECONDS,
            "rounds": ROUNDS,
            "path": PATH,
        },
        "take_in_process": in_process,
        "end_to_end": e2e,
        "seconds": round(time.monotonic() - started, 1),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")

    print(f"take() in process, median of {ROUNDS * 2} rounds of {CALLS} calls:")
    for backend, row in in_process.items():
        print(f"  {backend:<9} {row['us_per_call']:>8.1f} us/call")
    print(
        f"\nGET {PATH}, gunicorn {WORKERS} workers, one request at a time, "
        f"{SEQUENTIAL} per mode in turns:"
    )
    print(f"  {'throttle':<9} {'median ms':>10} {'mean ms':>8} {'cost ms/req':>12}")
    for mode in ("off", "database", "redis"):
        row = e2e["latency"][mode]
        cost = row.get("cost_ms_vs_off")
        print(
            f"  {mode:<9} {row['median_ms']:>10.2f} {row['mean_ms']:>8.2f} "
            f"{'' if cost is None else f'{cost:+.2f}':>12}"
        )
    print(
        f"\nSame, {CONNECTIONS} connections, {ROUNDS} x {SECONDS:g}s per mode "
        f"({e2e['load_generator']}):"
    )
    print(f"  {'throttle':<9} {'req/s':>9} {'ms/req':>8} {'cost ms/req':>12} {'p50 ms':>8}")
    for mode in ("off", "database", "redis"):
        row = e2e["throughput"][mode]
        cost = row.get("cost_ms_vs_off")
        print(
            f"  {mode:<9} {row['rps']:>9.1f} {row['ms_per_request']:>8.3f} "
            f"{'' if cost is None else f'{cost:+.3f}':>12} {row['p50_ms']:>8.2f}"
        )
    print(
        f"\n{os.cpu_count()} cpus, load average {load_before:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after"
    )
    print(f"wrote {RESULTS.relative_to(ROOT)} in {report['seconds']}s")


if __name__ == "__main__":
    main()
