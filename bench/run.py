"""End-to-end HTTP benchmark of the memory service, as deployed.

    .venv/bin/python bench/run.py [--quick]
        [--scenarios create,floor,batch,idempotent,upsert,list,list-floor,stats,context]
        [--sizes 1000,10000] [--seconds 10] [--rounds 3]

What it does:
1. Creates its own PostgreSQL database (BENCH_DATABASE_URL, default
   postgres://postgres@127.0.0.1:5432/memory_bench), runs `manage.py migrate`, and issues an
   API key with `manage.py generate_api_key`.
2. Preloads one user per size (memories per user) through memories.services.create_memory
   in worker processes with the server's environment, so encryption and the blind index
   are real. Sentences come from bench/corpus.py templates.
3. Starts gunicorn like the Procfile's web line (bound to 127.0.0.1, WEB_CONCURRENCY
   workers, default 2), production settings (DEBUG=false), Redis rate-limit buckets, with
   bench/floor's URLconf: the service's URLs plus the floor's /floor/memory, so the service
   and its floor share one server.
4. Drives each scenario with wrk (Lua scripts rotate bodies and report p50/p95/p99), or with
   a Python thread client when wrk is missing (the output says which). create and its floor,
   and list and its floor, run in interleaved A-B-B-A rounds (bench/comparison.py).
5. Prints a table and the service/floor ratios with their spread over the rounds, writes
   bench/results/<timestamp>.json and bench/results/latency_vs_size.png, and drops the
   database.

--quick: 5 s per measurement, no 100,000-memory user. Environment overrides:
BENCH_DATABASE_URL, BENCH_REDIS_URL, WEB_CONCURRENCY, and GUNICORN_CMD_ARGS (e.g.
"--worker-class sync --threads 1" for sync workers instead of the configured gthread).
"""

import argparse
import contextlib
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import comparison
import corpus  # bench/ is sys.path[0]
from harness import (
    CLOCK_TICKS,
    child_pids,
    cpu_ticks,
    create_database,
    drop_database,
    free_port,
    new_key,
    run_threads,
    start_web,
    wait_until_up,
)

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/memory_bench"
)
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
OWNER = "bench-owner"
CREATE_USER = "bench-create"
FLOOR_USER = "bench-floor"
HUGE_LIMIT = 100_000_000
ALL_SCENARIOS = [
    "create", "floor", "batch", "idempotent", "upsert", "list", "list-floor", "stats", "context",
    "patch", "fresh",
]  # fmt: skip
LIST_FLOOR_SIZE = 1000  # the list compared with its floor: this user's, or the first size
BATCH_SIZE = 100  # memories per POST /api/v1/memory/batch
THROUGHPUT_CONCURRENCY = 8
PRELOAD_PROCESSES = 2
PRELOAD_CHUNK = 5_000
BULK_ABOVE = 10_000  # bigger users load through bulk_create (same rows)
PATCH_USER = "bench-patch"
PATCH_MEMORIES = 100  # the patch scenario rotates over this many memories
FRESH_USER = "bench-fresh"
FRESH_SIZE = 10_000  # memories the fresh scenario loads through the batch API


def user_for(size: int) -> str:
    return f"bench-user-{size}"


# --- environment, database, server --------------------------------------------------------


def base_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "BENCH_"))}
    for name in ("DJANGO_SETTINGS_MODULE", "API_KEY", "CORS_ORIGINS", "DATA_DIR"):
        env.pop(name, None)
    from cryptography.fernet import Fernet

    env.update(
        DEBUG="false",
        SECRET_KEY="bench-secret-" + os.urandom(24).hex(),
        ENCRYPTION_KEY=Fernet.generate_key().decode(),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        DATABASE_URL=DATABASE_URL,
        REDIS_URL=REDIS_URL,
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    env.setdefault("WEB_CONCURRENCY", "2")
    return env


class Server:
    def __init__(self, name: str, env: dict, log: Path):
        self.name, self.log = name, log
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.process = start_web(env, port, log)
        wait_until_up(self.url + "/health", timeout=60, process=self.process, log=log)

    def worker_pids(self) -> list[int]:
        # shell=True: the shell may exec gunicorn (pid is the master) or fork it.
        pids = child_pids(self.process.pid)
        return [child for pid in pids for child in child_pids(pid)] or pids

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)


def database_backends() -> list[int]:
    """PostgreSQL backend processes serving the benchmark database."""
    import psycopg

    name = DATABASE_URL.rsplit("/", 1)[1]
    admin = DATABASE_URL.rsplit("/", 1)[0] + "/postgres"
    with contextlib.suppress(Exception), psycopg.connect(admin, autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [name])
        return [row[0] for row in rows]
    return []


class CpuMeter:
    """CPU milliseconds the server's workers and its database backends spend per request:
    unlike requests/s, barely moved by other load on the machine."""

    HZ = CLOCK_TICKS

    def __init__(self, server: "Server"):
        self.server = server

    def __enter__(self):
        self.web = cpu_ticks(self.server.worker_pids())
        self.db = cpu_ticks(database_backends())
        return self

    def __exit__(self, *exc):
        web_after = cpu_ticks(list(self.web) + self.server.worker_pids())
        db_after = cpu_ticks(list(self.db) + database_backends())
        self.web_ms = self._delta(self.web, web_after)
        self.db_ms = self._delta(self.db, db_after)

    def _delta(self, before: dict, after: dict) -> float:
        ticks = sum(t - before.get(pid, 0) for pid, t in after.items())
        return ticks * 1000 / self.HZ

    def per_request(self, requests: int) -> dict:
        n = max(1, requests)
        return {
            "web_cpu_ms": round(self.web_ms / n, 2),
            "db_cpu_ms": round(self.db_ms / n, 2),
        }


def call(url: str, key: str, method: str, path: str, body: dict | None = None) -> tuple:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, json.loads(response.read())


# --- data -----------------------------------------------------------------------------------


def preload(env: dict, sizes: list[int]) -> dict:
    """One user per size under OWNER, through create_memory, in parallel processes."""
    jobs = []
    for size in sizes:
        for index, start in enumerate(range(0, size, PRELOAD_CHUNK)):
            count = min(PRELOAD_CHUNK, size - start)
            jobs.append(
                {
                    "owner": OWNER,
                    "user": user_for(size),
                    "count": count,
                    "seed": size + index,
                    "bulk": size > BULK_ABOVE,
                }
            )
    per_process = [jobs[i::PRELOAD_PROCESSES] for i in range(PRELOAD_PROCESSES)]
    started = time.perf_counter()
    processes = [
        subprocess.Popen(
            [sys.executable, str(BENCH / "preload.py"), json.dumps(batch)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for batch in per_process
        if batch
    ]
    for process in processes:
        _, err = process.communicate()
        if process.returncode:
            raise RuntimeError(f"preload failed: {err[-3000:]}")
    seconds = time.perf_counter() - started
    total = sum(sizes)
    return {"memories": total, "seconds": round(seconds, 1), "per_second": round(total / seconds)}


def analyze(env: dict) -> None:
    import psycopg

    with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


# --- load generators ------------------------------------------------------------------------


def lua_string(text: str) -> str:
    assert "]==]" not in text
    return f"[==[{text}]==]"


def lua_script(
    method: str, path: str, key: str, bodies: list[dict] | None, unique_header: str | None = None
) -> str:
    headers = f'wrk.headers["Authorization"] = {lua_string("Bearer " + key)}\n'
    if bodies and unique_header:
        # A new value of unique_header on every request (formatted per request, not once).
        headers += 'wrk.headers["Content-Type"] = "application/json"\n'
        items = ",\n".join(lua_string(json.dumps(b)) for b in bodies)
        rotate = f"""
local bodies = {{
{items}
}}
local i = 0
local prefix = ""
local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("thread_number", threads)
end
init = function(args)
  -- Unique per thread and per run: wrk's threads share one random seed.
  prefix = tostring(os.time()) .. "-" .. tostring(thread_number)
  i = thread_number * 7919 % #bodies
end
request = function()
  i = i + 1
  local headers = {{}}
  for name, value in pairs(wrk.headers) do headers[name] = value end
  headers[{json.dumps(unique_header)}] = prefix .. "-" .. i
  return wrk.format(nil, nil, headers, bodies[i % #bodies + 1])
end
"""
    elif bodies:
        headers += 'wrk.headers["Content-Type"] = "application/json"\n'
        items = ",\n".join(lua_string(json.dumps(b)) for b in bodies)
        rotate = f"""
local bodies = {{
{items}
}}
local requests = {{}}
local i = 0
init = function(args)
  for n, body in ipairs(bodies) do
    requests[n] = wrk.format(nil, nil, nil, body)
  end
  i = math.random(#requests)
end
request = function()
  i = i % #requests + 1
  return requests[i]
end
"""
    else:
        rotate = ""
    done = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p95_us":%d,"p99_us":%d,' ..
    '"mean_us":%.1f,"max_us":%d,"status_errors":%d,"socket_errors":%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.mean, latency.max, e.status,
    e.connect + e.read + e.write + e.timeout))
end
"""
    return f'wrk.method = "{method}"\nwrk.path = {lua_string(path)}\n{headers}{rotate}{done}'


def run_wrk(
    url, key, method, path, bodies, concurrency, seconds, workdir: Path, unique_header=None
) -> dict:
    script = workdir / f"s{random.randrange(1 << 30)}.lua"
    script.write_text(lua_script(method, path, key, bodies, unique_header))
    result = subprocess.run(
        [
            "wrk",
            f"-t{min(concurrency, 2)}",
            f"-c{concurrency}",
            f"-d{seconds}s",
            "--timeout",
            "30s",
            "-s",
            str(script),
            url + path,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    )
    line = next(x for x in result.stdout.splitlines() if x.startswith("BENCH_JSON "))
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    return {
        "requests": raw["requests"],
        "rps": round(raw["requests"] / (raw["duration_us"] / 1e6), 1),
        "p50_ms": raw["p50_us"] / 1000,
        "p95_ms": raw["p95_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "mean_ms": round(raw["mean_us"] / 1000, 3),
        "max_ms": raw["max_us"] / 1000,
        "errors": raw["status_errors"] + raw["socket_errors"],
    }


# --- scenarios ------------------------------------------------------------------------------


def create_bodies(user_id: str, count: int = 400) -> list[dict]:
    return corpus.memories(count, user_id, seed=424242)


def batch_bodies(user_id: str) -> list[dict]:
    memories = create_bodies(user_id)
    return [{"memories": memories[n : n + BATCH_SIZE]} for n in range(0, len(memories), BATCH_SIZE)]


def upsert_bodies(user_id: str) -> list[dict]:
    """Creates on the first pass over 400 keys, then unchanged upserts of the same bodies."""
    return [{**body, "key": f"bench_key_{n}"} for n, body in enumerate(create_bodies(user_id))]


def context_bodies(user_id: str) -> list[dict]:
    return [{"user_id": user_id, "query": q, "limit": 5} for q in corpus.QUERIES]


def list_floor_size(sizes: list[int]) -> int | None:
    return LIST_FLOOR_SIZE if LIST_FLOOR_SIZE in sizes else (sizes[0] if sizes else None)


def plan(scenarios: list[str], sizes: list[int], rounds: int) -> list[dict]:
    """Every measurement, in order. A service endpoint and its floor run in A-B-B-A rounds
    (bench/comparison.py) so drift hits both alike."""
    steps = []
    c8 = THROUGHPUT_CONCURRENCY
    compared = size_compared = None
    if {"create", "floor"} <= set(scenarios):
        compared = comparison.abba(
            {"scenario": "create", "size": None, "concurrency": c8},
            {"scenario": "floor", "size": None, "concurrency": c8},
            rounds,
        )
    if {"list", "list-floor"} <= set(scenarios) and sizes:
        size_compared = list_floor_size(sizes)
    for n in range(1, rounds + 1):
        if compared:
            steps.extend(step for step in compared if step["round"] == n)
        else:
            for name in ("floor", "create"):
                if name in scenarios:
                    steps.append({"scenario": name, "size": None, "concurrency": c8})
        if "idempotent" in scenarios:
            steps.append({"scenario": "idempotent", "size": None, "concurrency": c8})
        if "batch" in scenarios:
            steps.append({"scenario": "batch", "size": None, "concurrency": c8})
        if "upsert" in scenarios:
            steps.append({"scenario": "upsert", "size": None, "concurrency": c8})
    for size in sizes:
        if size == size_compared:
            steps.extend(
                comparison.abba(
                    {"scenario": "list", "size": size, "concurrency": c8},
                    {"scenario": "list-floor", "size": size, "concurrency": c8},
                    rounds,
                )
            )
        elif "list" in scenarios:
            steps.append({"scenario": "list", "size": size, "concurrency": c8})
        if "stats" in scenarios:
            steps.append({"scenario": "stats", "size": size, "concurrency": c8})
        if "context" in scenarios:
            steps.append({"scenario": "context", "size": size, "concurrency": 1})
            steps.append({"scenario": "context", "size": size, "concurrency": c8})
    return steps


def request_for(step: dict) -> tuple[str, str, list[dict] | None, str]:
    scenario, size = step["scenario"], step["size"]
    if scenario in ("create", "idempotent"):
        # idempotent: the same bodies, each request with a new Idempotency-Key
        return "POST", "/api/v1/memory", create_bodies(CREATE_USER), "service"
    if scenario == "batch":
        return "POST", "/api/v1/memory/batch", batch_bodies(CREATE_USER), "service"
    if scenario == "upsert":
        return "POST", "/api/v1/memory/upsert", upsert_bodies(CREATE_USER), "service"
    if scenario == "floor":
        return "POST", "/floor/memory", create_bodies(FLOOR_USER), "floor"
    user = user_for(size)
    if scenario == "list-floor":
        return "GET", f"/floor/memory?user_id={user}&limit=20", None, "floor"
    if scenario == "list":
        return "GET", f"/api/v1/memory?user_id={user}&limit=20", None, "service"
    if scenario == "stats":
        return "GET", f"/api/v1/memory/stats?user_id={user}", None, "service"
    return "POST", "/api/v1/memory/context", context_bodies(user), "service"


def check_responses(servers: dict, key: str, sizes: list[int]) -> None:
    """Each endpoint answers correctly before it is timed (a fast 4xx would look great)."""
    service = servers["service"].url
    status, memory = call(service, key, "POST", "/api/v1/memory", create_bodies(CREATE_USER)[0])
    assert status == 200 and memory["id"], memory
    status, batch = call(service, key, "POST", "/api/v1/memory/batch", batch_bodies(CREATE_USER)[0])
    assert status == 200 and len(batch["memories"]) == BATCH_SIZE, batch
    for size in sizes:
        user = user_for(size)
        status, page = call(service, key, "GET", f"/api/v1/memory?user_id={user}&limit=20")
        assert status == 200 and len(page) == min(20, size), (size, len(page))
        status, stats = call(service, key, "GET", f"/api/v1/memory/stats?user_id={user}")
        assert status == 200 and stats["total"] == size, (size, stats)
        body = context_bodies(user)[0]
        status, found = call(service, key, "POST", "/api/v1/memory/context", body)
        assert status == 200 and len(found["memories"]) == min(5, size), found
    floor = servers["floor"].url
    status, row = call(floor, key, "POST", "/floor/memory", create_bodies(FLOOR_USER)[0])
    assert status == 200 and row["id"], row
    for size in sizes:
        user = user_for(size)
        status, page = call(floor, key, "GET", f"/api/v1/memory?user_id={user}&limit=20")
        status, floor_page = call(floor, key, "GET", f"/floor/memory?user_id={user}&limit=20")
        assert status == 200 and floor_page == page, (size, len(floor_page))


# --- patch and fresh: scenarios that set up their own data --------------------------------

PATCH_LUA = """
local requests = {{}}
local items = {{
{items}
}}
local i = 0
init = function(args)
  local headers = {{}}
  for name, value in pairs(wrk.headers) do headers[name] = value end
  headers["Content-Type"] = "application/json"
  for n, item in ipairs(items) do
    requests[n] = wrk.format("PATCH", item[1], headers, item[2])
  end
  i = math.random(#requests)
end
request = function()
  i = i % #requests + 1
  return requests[i]
end
"""


def run_patch(url: str, key: str, ids: list[str], seconds: int, workdir: Path) -> dict:
    """wrk PATCHing the memories in turn, each time to another importance, so that each
    request changes the memory and records a version."""
    items = ",\n".join(
        f"{{{lua_string(f'/api/v1/memory/{memory_id}')}, "
        f"{lua_string(json.dumps({'importance': 1 + (n + turn) % 5}))}}}"
        for turn in range(2)
        for n, memory_id in enumerate(ids)
    )
    script = workdir / f"p{random.randrange(1 << 30)}.lua"
    script.write_text(lua_script("PATCH", "/", key, None) + PATCH_LUA.format(items=items))
    command = ["wrk", "-t2", f"-c{THROUGHPUT_CONCURRENCY}", f"-d{seconds}s", "--timeout", "30s"]
    result = subprocess.run(
        [*command, "-s", str(script), url + "/"],
        capture_output=True, text=True, timeout=seconds + 60, check=True,
    )  # fmt: skip
    line = next(x for x in result.stdout.splitlines() if x.startswith("BENCH_JSON "))
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    return {
        "requests": raw["requests"],
        "rps": round(raw["requests"] / (raw["duration_us"] / 1e6), 1),
        **{f"p{q}_ms": raw[f"p{q}_us"] / 1000 for q in (50, 95, 99)},
        "errors": raw["status_errors"] + raw["socket_errors"],
    }


def fresh_bodies() -> list[dict]:
    """FRESH_SIZE memories for the batch API, every tenth with a key."""
    bodies = corpus.memories(FRESH_SIZE, FRESH_USER, seed=2020)
    for n in range(0, FRESH_SIZE, 10):
        bodies[n]["key"] = f"fresh_key_{n}"
    return bodies


def extra_scenarios(args, server: "Server", key: str, load, workdir: Path) -> list[dict]:
    """patch: PATCH throughput (each PATCH records a history version). fresh (issue 20,
    lever 6): FRESH_SIZE memories arrive through the batch API, then list, list by key,
    upsert (unchanged: a look-up by key) and context are measured at once, with the
    statistics the service left, and again after a plain ANALYZE (no VACUUM, which would
    also set the visibility map). Run it alone (--scenarios fresh) to start from tables
    with no statistics."""

    def measure(scenario, method, path, bodies=None, size=None, ids=None) -> dict:
        with CpuMeter(server) as meter:
            if ids:
                result = run_patch(server.url, key, ids, args.seconds, workdir)
            else:
                result = load(server.url, key, method, path, bodies, THROUGHPUT_CONCURRENCY,
                              args.seconds, workdir)  # fmt: skip
        result.update(meter.per_request(result["requests"]))
        row = {"scenario": scenario, "size": size, "concurrency": THROUGHPUT_CONCURRENCY,
               "method": method, "path": path.split("?")[0], **result}  # fmt: skip
        print(f"  {scenario} c={THROUGHPUT_CONCURRENCY}: {row['rps']} req/s, p95 "
              f"{row['p95_ms']:.2f} ms, cpu/req web {row['web_cpu_ms']} ms db "
              f"{row['db_cpu_ms']} ms", flush=True)  # fmt: skip
        return row

    rows = []
    if "patch" in args.scenarios and load is run_wrk:
        bodies = create_bodies(PATCH_USER, PATCH_MEMORIES)
        _, batch = call(server.url, key, "POST", "/api/v1/memory/batch", {"memories": bodies})
        ids = [memory["id"] for memory in batch["memories"]]
        for _ in range(args.rounds):
            rows.append(measure("patch", "PATCH", "/api/v1/memory/{id}", ids=ids))
    if "fresh" in args.scenarios:
        bodies = fresh_bodies()
        started = time.perf_counter()
        for n in range(0, FRESH_SIZE, BATCH_SIZE):
            status, _ = call(server.url, key, "POST", "/api/v1/memory/batch",
                             {"memories": bodies[n : n + BATCH_SIZE]})  # fmt: skip
            assert status == 200
        print(f"  fresh: {FRESH_SIZE:,} memories through the batch API in "
              f"{time.perf_counter() - started:.1f} s", flush=True)  # fmt: skip
        keyed = [body for body in bodies if "key" in body]
        steps = [
            ("list", "GET", f"/api/v1/memory?user_id={FRESH_USER}&limit=20", None),
            ("list-key", "GET",
             f"/api/v1/memory?user_id={FRESH_USER}&key={keyed[7]['key']}&limit=20", None),
            ("upsert", "POST", "/api/v1/memory/upsert", keyed[:400]),
            ("context", "POST", "/api/v1/memory/context", context_bodies(FRESH_USER)),
        ]  # fmt: skip
        for phase in ("fresh", "analyzed"):
            if phase == "analyzed":
                import psycopg

                with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
                    conn.execute("ANALYZE")
            for name, method, path, bodies_ in steps:
                rows.append(measure(f"{phase}:{name}", method, path, bodies_, FRESH_SIZE))
    return rows


def fresh_ratios(rows: list[dict]) -> dict:
    """Each fresh measurement against its analyzed twin: req/s and CPU per request."""
    by = {r["scenario"]: r for r in rows}
    out = {}
    for name in ("list", "list-key", "upsert", "context"):
        fresh, analyzed = by.get(f"fresh:{name}"), by.get(f"analyzed:{name}")
        if fresh and analyzed:
            cpu = [r["web_cpu_ms"] + r["db_cpu_ms"] for r in (fresh, analyzed)]
            out[name] = {
                "analyzed_over_fresh_rps": round(analyzed["rps"] / fresh["rps"], 2),
                "fresh_over_analyzed_cpu": round(cpu[0] / cpu[1], 2),
            }
    return out


# --- output ---------------------------------------------------------------------------------


def print_table(rows: list[dict], load_tool: str) -> None:
    print(f"\nload generator: {load_tool}; web/db cpu = CPU ms per request in the gunicorn")
    print("workers / the PostgreSQL backends (Linux /proc), steadier than req/s on a busy host")
    header = (
        f"{'scenario':<10} {'size':>7} {'conc':>5} {'req/s':>9} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'p99 ms':>8} {'web cpu':>8} {'db cpu':>7} {'errors':>6}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        size = "-" if row["size"] is None else f"{row['size']:,}"
        print(
            f"{row['scenario']:<10} {size:>7} {row['concurrency']:>5} {row['rps']:>9.1f} "
            f"{row['p50_ms']:>8.2f} {row['p95_ms']:>8.2f} {row['p99_ms']:>8.2f} "
            f"{row['web_cpu_ms']:>8.2f} {row['db_cpu_ms']:>7.2f} {row['errors']:>6}"
        )


def write_ratios(rows: list[dict]) -> dict:
    """Batch: memories per second against single creates (target >= 8x); create with an
    Idempotency-Key against create without one (target >= 0.85x)."""

    def rps(name: str) -> float | None:
        found = [r["rps"] for r in rows if r["scenario"] == name]
        return sum(found) / len(found) if found else None

    def cpu(name: str) -> float | None:
        """Mean CPU ms per request, web and database: steadier than req/s when the
        load generator and the server share a busy machine."""
        found = [r["web_cpu_ms"] + r["db_cpu_ms"] for r in rows if r["scenario"] == name]
        found = [value for value in found if value > 0]
        return sum(found) / len(found) if found else None

    create, batch, idempotent = rps("create"), rps("batch"), rps("idempotent")
    upsert = rps("upsert")
    ratios = {}
    if create and upsert:
        ratios["upsert_vs_create"] = round(upsert / create, 3)
    if create and batch:
        ratios["batch_memories_per_s"] = round(batch * BATCH_SIZE, 1)
        ratios["batch_vs_single"] = round(batch * BATCH_SIZE / create, 2)
    if create and idempotent:
        ratios["idempotent_vs_plain"] = round(idempotent / create, 3)
    # The same ratios by CPU per request (per memory for the batch): a higher rate.
    create_cpu = cpu("create")
    for name, key, per in (
        ("upsert", "upsert_vs_create_by_cpu", 1),
        ("idempotent", "idempotent_vs_plain_by_cpu", 1),
        ("batch", "batch_vs_single_by_cpu", BATCH_SIZE),
    ):
        other = cpu(name)
        if create_cpu and other:
            ratios[key] = round(create_cpu / (other / per), 3)
    return ratios


def context_scaling(rows: list[dict]) -> dict:
    by = {(r["size"], r["concurrency"]): r for r in rows if r["scenario"] == "context"}
    out = {}
    if (1000, 8) in by and (10000, 8) in by:
        out["throughput_10k_over_1k"] = round(by[(10000, 8)]["rps"] / by[(1000, 8)]["rps"], 2)
        out["target_min"] = 0.7
    if (10000, 1) in by:
        out["p95_ms_10k_c1"] = by[(10000, 1)]["p95_ms"]
        out["p95_target_ms"] = 15.0
    return out


def plot(rows: list[dict], path: Path, title_note: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    c1 = sorted((r for r in rows if r["scenario"] == "context" and r["concurrency"] == 1),
                key=lambda r: r["size"])  # fmt: skip
    c8 = {r["size"]: r["rps"] for r in rows if r["scenario"] == "context" and r["concurrency"] > 1}
    if not c1:
        return False
    sizes = [r["size"] for r in c1]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    ax.plot(sizes, [r["p50_ms"] for r in c1], "o-", label="p50, concurrency 1")
    ax.plot(sizes, [r["p95_ms"] for r in c1], "s-", label="p95, concurrency 1")
    ax.axhline(15, color="grey", linestyle=":", label="p95 target (15 ms at 10k)")
    ax.set_xscale("log")
    ax.set_xlabel("memories per user")
    ax.set_ylabel("latency (ms)")
    ax.set_ylim(bottom=0)
    ax.set_xticks(sizes, [f"{s:,}" for s in sizes])
    if c8:
        ax2 = ax.twinx()
        ax2.plot(sizes, [c8.get(s, float("nan")) for s in sizes], "^--", color="tab:green",
                 label=f"req/s, concurrency {THROUGHPUT_CONCURRENCY}")  # fmt: skip
        ax2.set_ylabel("requests/s")
        ax2.set_ylim(bottom=0)
        lines = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
        labels = ax.get_legend_handles_labels()[1] + ax2.get_legend_handles_labels()[1]
        ax.legend(lines, labels, loc="upper left", fontsize=8)
    else:
        ax.legend(loc="upper left", fontsize=8)
    ax.set_title(f"POST /api/v1/memory/context latency vs memories per user\n{title_note}",
                 fontsize=9)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


# --- main -----------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 s runs, no 100k user")
    parser.add_argument("--scenarios", default=",".join(ALL_SCENARIOS))
    parser.add_argument("--sizes", default=None, help="memories per user, comma-separated")
    parser.add_argument("--seconds", type=int, default=None, help="per measurement")
    parser.add_argument("--rounds", type=int, default=None, help="A-B-B-A rounds per floor")
    parser.add_argument("--keep-db", action="store_true", help="do not drop the database")
    args = parser.parse_args()
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(args.scenarios) - set(ALL_SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    default_sizes = "100,1000,10000" if args.quick else "100,1000,10000,100000"
    args.sizes = [int(s) for s in (args.sizes or default_sizes).split(",") if s.strip()]
    args.seconds = args.seconds or (5 if args.quick else 10)
    args.rounds = args.rounds or (2 if args.quick else 3)
    return args


def main() -> None:
    args = parse_args()
    started = time.monotonic()
    env = base_env()
    load = run_wrk if shutil.which("wrk") else None
    if load is None and shutil.which("apt-get") and os.geteuid() == 0:
        print("wrk not found; trying apt-get install -y wrk", flush=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], capture_output=True, check=False)
        load = run_wrk if shutil.which("wrk") else None
    load = load or run_threads
    load_tool = "wrk" if load is run_wrk else "python threads (wrk unavailable)"
    needs_data = {"list", "stats", "context"} & set(args.scenarios)
    sizes = args.sizes if needs_data else []

    print(f"database {DATABASE_URL}, redis {REDIS_URL}", flush=True)
    create_database(env)
    servers: dict[str, Server] = {}
    try:
        key = new_key(env, OWNER, HUGE_LIMIT)
        load_info = None
        if sizes:
            print(f"preloading {sum(sizes):,} memories ({', '.join(map(str, sizes))})...",
                  flush=True)  # fmt: skip
            load_info = preload(env, sizes)
            print(f"  {load_info['per_second']} memories/s, {load_info['seconds']} s", flush=True)
        analyze(env)
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            # One server answers the service's URLs and the floor's: same workers, same
            # connections, same settings for both sides of a comparison.
            server_env = {
                **env,
                "DJANGO_SETTINGS_MODULE": "floor.settings",
                "PYTHONPATH": os.pathsep.join(filter(None, [str(BENCH), env.get("PYTHONPATH")])),
            }
            server = Server("service", server_env, workdir / "service.log")
            servers.update(service=server, floor=server)
            check_responses(servers, key, sizes)
            warm = [  # every worker: imports, connections, statements compiled once
                ("POST", "/floor/memory", create_bodies(FLOOR_USER, 20)),
                ("POST", "/api/v1/memory", create_bodies(CREATE_USER, 20)),
            ]
            if sizes:
                user = user_for(sizes[0])
                warm += [
                    ("GET", f"/floor/memory?user_id={user}&limit=20", None),
                    ("GET", f"/api/v1/memory?user_id={user}&limit=20", None),
                    ("POST", "/api/v1/memory/context", context_bodies(user)),
                ]
            for method, path, bodies in warm:
                load(server.url, key, method, path, bodies, THROUGHPUT_CONCURRENCY, 1, workdir)
            rows = []
            for step in plan(args.scenarios, sizes, args.rounds):
                method, path, bodies, target = request_for(step)
                with CpuMeter(servers[target]) as meter:
                    unique = "Idempotency-Key" if step["scenario"] == "idempotent" else None
                    result = load(
                        servers[target].url, key, method, path, bodies,
                        step["concurrency"], args.seconds, workdir, unique_header=unique,
                    )  # fmt: skip
                result.update(meter.per_request(result["requests"]))
                row = {**step, "method": method, "path": path.split("?")[0], **result}
                rows.append(row)
                size = "" if step["size"] is None else f" size={step['size']}"
                print(
                    f"  {step['scenario']}{size} c={step['concurrency']}: {row['rps']} req/s, "
                    f"p50 {row['p50_ms']:.2f} ms, p95 {row['p95_ms']:.2f} ms, "
                    f"cpu/req web {row['web_cpu_ms']} ms db {row['db_cpu_ms']} ms",
                    flush=True,
                )
            rows += extra_scenarios(args, server, key, load, workdir)
    finally:
        for server in set(servers.values()):
            server.stop()
        if not args.keep_db:
            drop_database(DATABASE_URL)
        flush_buckets()

    print_table(rows, load_tool)
    floor_ratios = comparison.ratios(rows)
    comparison.print_ratios(floor_ratios)
    scaling = context_scaling(rows)
    if scaling:
        print(f"context scaling: {scaling}")
    writes = write_ratios(rows)
    if writes:
        print(f"v1.1 writes: {writes}")
    bulk_load = fresh_ratios(rows)
    if bulk_load:
        print(f"after a bulk load (target: analyzed/fresh <= 1.5): {bulk_load}")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report = {
        "timestamp": stamp,
        "command": "python bench/run.py " + " ".join(sys.argv[1:]),
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "loadavg_at_end": os.getloadavg(),
        },
        "settings": {
            "gunicorn_workers": int(env["WEB_CONCURRENCY"]),
            "seconds_per_measurement": args.seconds,
            "floor_rounds": args.rounds,
            "gunicorn_cmd_args": env.get("GUNICORN_CMD_ARGS"),
            "load_generator": load_tool,
            "database": "postgresql",
            "rate_limit_backend": "redis",
            "sizes": sizes,
        },
        "preload": load_info,
        "results": rows,
        "floor_ratios": floor_ratios,
        "context_scaling": scaling,
        "write_ratios": writes,
        "bulk_load": bulk_load,
        "seconds": round(time.monotonic() - started, 1),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{stamp}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    workers = env["WEB_CONCURRENCY"]
    note = f"{os.cpu_count()} cores, gunicorn {workers} workers, {load_tool}, {stamp}"
    plotted = plot(rows, RESULTS / "latency_vs_size.png", note)
    print(f"\nwrote {out.relative_to(ROOT)}")
    if plotted:
        print("wrote bench/results/latency_vs_size.png")
    print(f"total {report['seconds']} s")


def flush_buckets() -> None:
    """Remove this run's rate-limit buckets from the benchmark's Redis database."""
    with contextlib.suppress(Exception):
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        for name in client.scan_iter("ratelimit:*"):
            client.delete(name)
        client.close()


if __name__ == "__main__":
    main()
