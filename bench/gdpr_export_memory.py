"""Peak memory of a gunicorn worker while it streams a GDPR export.

    .venv/bin/python bench/gdpr_export_memory.py [--sizes 1000,100000]

For each size: load that many memories for one user (through the service's own index and
encryption code, in bulk), start gunicorn with one worker, read the worker's peak RSS
(VmHWM) before and after streaming GET /api/v1/gdpr/export, and print a table.
Uses its own database, memory_bench_gdpr, on the local PostgreSQL.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "memory_bench_gdpr"
BASE_URL = "postgres://postgres@127.0.0.1:5432/"

LOADER = """
import django, sys
django.setup()
from django.db import transaction
from memories import services
from memories.models import Memory, MemoryTerm
count = int(sys.argv[1])
Memory.objects.filter(owner_id="bench", user_id="export").delete()
batch = []
for i in range(count):
    memory = Memory(owner_id="bench", user_id="export", type="fact",
                    content=f"Memory {i}: enjoys hiking near lake {i % 97} with friends",
                    metadata={"source": "bench", "n": i})
    memory.content_chars = len(memory.content)  # bulk_create skips Memory.save
    batch.append((memory, services._prepare_index(memory)))
    if len(batch) == 1000 or i == count - 1:
        with transaction.atomic():
            Memory.objects.bulk_create([m for m, _ in batch])
            MemoryTerm.objects.bulk_create([t for _, terms in batch for t in terms])
        batch = []
"""


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


def manage(environment: dict, *args: str) -> str:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=environment,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def vm_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def worker_pid(master: int) -> int:
    for _ in range(100):
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == master:
                    return int(entry)
        time.sleep(0.1)
    raise RuntimeError("no gunicorn worker")


def measure(size: int, environment: dict, key: str) -> dict:
    subprocess.run([sys.executable, "-c", LOADER, str(size)], cwd=ROOT, env=environment, check=True)
    port = 18700
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "memoryproject.wsgi", "-w", "1", "-b",
         f"127.0.0.1:{port}", "--timeout", "600"],
        cwd=ROOT, env=environment,
    )  # fmt: skip
    try:
        time.sleep(2)
        pid = worker_pid(server.pid)
        headers = {"Authorization": f"Bearer {key}"}
        warm = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/memory?user_id=export&limit=1", headers=headers
        )
        urllib.request.urlopen(warm).read()
        before = vm_kib(pid, "VmHWM")
        started = time.monotonic()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/gdpr/export?user_id=export", headers=headers
        )
        received = 0
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
    import psycopg

    with psycopg.connect(BASE_URL + "postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DATABASE}"')
    environment = env()
    manage(environment, "migrate", "--noinput", "-v0")
    output = manage(environment, "generate_api_key", "bench", "--rate-limit", "100000")
    key = re.search(r"aimsk_live_\S+", output).group(0)
    rows = [measure(size, environment, key) for size in sizes]
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
