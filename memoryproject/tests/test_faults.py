"""Fault and soak tests through gunicorn: a private PostgreSQL stopped during a burst of
writes, and worker memory under sustained load."""

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from conftest import http, service_env
from memoryproject.tests.servers import PrivatePostgres, child_pids, manage

pytestmark = pytest.mark.slow


@pytest.fixture
def private_postgres():
    cluster = PrivatePostgres()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


def test_database_stopping_mid_burst_gives_503_no_partial_rows_and_recovery(
    start_server, private_postgres
):
    manage(service_env(private_postgres.url()), "migrate", "--noinput", "-v0")
    server = start_server(workers=2, database_url=private_postgres.url())
    key = server.new_key()
    acknowledged: list[str] = []
    statuses: list[int] = []

    def write(i: int) -> None:
        body = {"user_id": "burst", "type": "fact", "content": f"burst memory number {i} tea"}
        status, _, answer = http("POST", server.url + "/api/v1/memory", key, body)
        statuses.append(status)
        if status == 200:
            acknowledged.append(answer["id"])
        else:
            assert (status, answer) == (503, {"detail": "Database unavailable"})

    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(write, i) for i in range(40)]
        time.sleep(0.3)
        private_postgres.stop()  # mid-burst
        futures += [pool.submit(write, i) for i in range(40, 80)]
        for future in futures:
            future.result()
    assert 503 in statuses
    assert set(statuses) <= {200, 503}
    assert http("GET", server.url + "/health")[0] == 503

    private_postgres.start()
    deadline = time.monotonic() + 20
    while http("GET", server.url + "/health")[0] != 200:
        assert time.monotonic() < deadline, "the service did not recover"
        time.sleep(0.2)
    status, _, stats = http("GET", server.url + "/api/v1/memory/stats?user_id=burst", key)
    assert status == 200

    with psycopg.connect(private_postgres.url()) as conn:
        rows = conn.execute(
            "SELECT m.id::text, m.term_count, COALESCE(SUM(t.tf), 0) "
            "FROM memories_memory m LEFT JOIN memories_memoryterm t ON t.memory_id = m.id "
            "GROUP BY m.id"
        ).fetchall()
    stored = {memory_id for memory_id, _, _ in rows}
    assert set(acknowledged) <= stored  # nothing acknowledged was lost
    # No half-written memory: every stored row has its complete index.
    assert all(term_count == indexed and term_count > 0 for _, term_count, indexed in rows)
    assert stats["total"] == len(stored)


def _worker_rss_kib(root_pid: int) -> dict[int, int]:
    """RSS of the gunicorn workers: the leaves of the process tree under root_pid."""
    leaves, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        children = child_pids(pid)
        if children:
            todo.extend(children)
        elif pid != root_pid:
            leaves.append(pid)
    rss = {}
    for pid in leaves:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss[pid] = int(line.split()[1])
    return rss


def test_worker_memory_stays_bounded_under_sustained_load(start_server):
    server = start_server(workers=2)
    key = server.new_key()

    def mixed(i: int) -> int:
        user = f"soak{i % 7}"
        if i % 3 == 0:
            body: dict[str, object] = {
                "user_id": user,
                "type": "fact",
                "content": f"soak memory {i} about tea",
            }
            return http("POST", server.url + "/api/v1/memory", key, body)[0]
        if i % 3 == 1:
            body = {"user_id": user, "query": f"tea {i}", "limit": 5}
            return http("POST", server.url + "/api/v1/memory/context", key, body)[0]
        return http("GET", server.url + f"/api/v1/memory?user_id={user}&limit=20", key)[0]

    def run(count: int) -> None:
        with ThreadPoolExecutor(max_workers=4) as pool:
            assert set(pool.map(mixed, range(count))) == {200}

    run(600)  # warm up: imports, caches, connections
    warm = _worker_rss_kib(server.process.pid)
    assert len(warm) == 2
    started = time.monotonic()
    rounds = 0
    while time.monotonic() - started < 45:
        run(600)
        rounds += 1
    after = _worker_rss_kib(server.process.pid)
    growth_mib = max(after.get(pid, 0) - rss for pid, rss in warm.items()) / 1024
    print(f"soak: {rounds * 600} requests, worst worker growth {growth_mib:.1f} MiB")
    assert set(after) == set(warm), "a worker was replaced"
    assert growth_mib < 20
