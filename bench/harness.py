"""Running the service as separate processes, as the benchmarks and the test suite's
server tests both do: manage.py calls, a throw-away database, ports, the Procfile's web
line, its worker processes, and a fallback load generator for when wrk is missing.
Standard library only."""

import http.client
import json
import math
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEY_PATTERN = re.compile(r"aimsk_live_[A-Za-z0-9_-]+")


def manage(env: dict, *args: str, timeout: float = 120) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode:
        raise RuntimeError(f"manage.py {' '.join(args)}: {result.stderr[-2000:]}")
    return result.stdout


def new_key(env: dict, owner_id: str, rate_limit: int) -> str:
    output = manage(env, "generate_api_key", owner_id, "--rate-limit", str(rate_limit))
    return KEY_PATTERN.search(output).group(0)


def _admin(database_url: str, *statements: str) -> None:
    import psycopg

    name = database_url.rsplit("/", 1)[1]
    admin = database_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement.format(name=name))


def create_database(env: dict) -> None:
    """A fresh, migrated database at env["DATABASE_URL"]."""
    url = env["DATABASE_URL"]
    _admin(url, 'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', 'CREATE DATABASE "{name}"')
    manage(env, "migrate", "--noinput", "-v0")


def drop_database(database_url: str) -> None:
    _admin(database_url, 'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def web_command(*, loopback: bool = True) -> str:
    """The Procfile's web line with gunicorn from this interpreter; bound to loopback
    unless loopback is False (then as written: 0.0.0.0)."""
    line = next(
        line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:")
    )
    command = line.removeprefix("web:").strip()
    if loopback:
        command = command.replace("0.0.0.0:", "127.0.0.1:")
    return command.replace("gunicorn ", f"{sys.executable} -m gunicorn ", 1)


def start_web(env: dict, port: int, log: Path, *, loopback: bool = True) -> subprocess.Popen:
    """The Procfile's web line on port, run by a shell as a platform runs it, in a session
    of its own (os.killpg stops it with its workers); output goes to log."""
    return subprocess.Popen(  # noqa: S602 - the Procfile line, as a platform runs it
        web_command(loopback=loopback),
        shell=True,
        cwd=ROOT,
        env={**env, "PORT": str(port)},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_until_up(
    url: str, *, timeout: float = 30.0, process: subprocess.Popen | None = None, log=None
) -> None:
    """Until url answers anything at all; fails at once if the server process exits (with
    the end of its log, when given)."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            tail = f":\n{Path(log).read_text()[-3000:]}" if log else ""
            raise RuntimeError(f"server exited with {process.returncode}{tail}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer within {timeout}s") from None
            time.sleep(0.1)


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is pid (Linux /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


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
