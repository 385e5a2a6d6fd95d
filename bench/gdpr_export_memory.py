"""Peak memory of a gunicorn worker while it streams a GDPR export.

    .venv/bin/python bench/gdpr_export_memory.py [--sizes 1000,100000]

For each size: load that many memories for one user (bench/preload.py: the service's own
index and encryption code, in bulk), start gunicorn with one worker, read the worker's peak RSS
(VmHWM) before and after streaming GET /api/v1/gdpr/export, and print a table.
Uses its own database, memory_bench_gdpr, on the local PostgreSQL.
"""

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from harness import (
    ROOT,
    child_pids,
    create_database,
    drop_database,
    free_port,
    new_key,
    wait_until_up,
)

DATABASE = "memory_bench_gdpr"
BASE_URL = "postgres://postgres@127.0.0.1:5432/"


def env() -> dict:
    from cryptography.fernet import Fernet

    return {
        **os.environ,
        "DEBUG": "false",
        "DATABASE_URL": BASE_URL + DATABASE,
        "SECRET_KEY": "bench-" + "x" * 50,
        "ENCRYPTION_KEY": os.environ.get("ENCRYPTION_KEY") or Fernet.generate_key().decode(),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "memoryproject.settings",
    }


def vm_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def worker_pid(master: int) -> int:
    for _ in range(100):
        workers = child_pids(master)
        if workers:
            return workers[0]
        time.sleep(0.1)
    raise RuntimeError("no gunicorn worker")


def measure(size: int, environment: dict, key: str) -> dict:
    user = f"export{size}"  # a fresh user per size
    # Reuses bench/preload.py: the service's own index and encryption code, bulk inserts.
    job = {"owner": "bench", "user": user, "count": size, "seed": size, "bulk": True}
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "preload.py"), json.dumps([job])],
        cwd=ROOT,
        env=environment,
        check=True,
    )
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "memoryproject.wsgi", "-w", "1", "-b",
         f"127.0.0.1:{port}", "--timeout", "600"],
        cwd=ROOT, env=environment,
    )  # fmt: skip
    try:
        wait_until_up(f"http://127.0.0.1:{port}/", process=server)
        pid = worker_pid(server.pid)
        headers = {"Authorization": f"Bearer {key}"}
        warm = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/memory?user_id={user}&limit=1", headers=headers
        )
        urllib.request.urlopen(warm).read()
        before = vm_kib(pid, "VmHWM")
        started = time.monotonic()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/gdpr/export?user_id={user}", headers=headers
        )
        with urllib.request.urlopen(request) as response:
            body = response.read()
            received = len(body)
        seconds = time.monotonic() - started
        exported = json.loads(body)["counts"]["memories"]
        peak = vm_kib(pid, "VmHWM")
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {
        "memories": exported,
        "bytes": received,
        "seconds": round(seconds, 2),
        "worker_peak_before_mib": round(before / 1024, 1),
        "worker_peak_after_mib": round(peak / 1024, 1),
        "growth_mib": round((peak - before) / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,100000")
    sizes = [int(s) for s in parser.parse_args().sizes.split(",")]
    environment = env()
    create_database(environment)
    key = new_key(environment, "bench", 100_000)
    try:
        rows = [measure(size, environment, key) for size in sizes]
    finally:
        drop_database(environment["DATABASE_URL"])
    print(f"{'memories':>9} {'MB sent':>8} {'seconds':>8} {'peak before':>12} {'peak after':>11}")
    for row in rows:
        print(
            f"{row['memories']:>9} {row['bytes'] / 1e6:>8.1f} {row['seconds']:>8} "
            f"{row['worker_peak_before_mib']:>10} MiB {row['worker_peak_after_mib']:>7} MiB"
        )
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / "gdpr_export_memory.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
