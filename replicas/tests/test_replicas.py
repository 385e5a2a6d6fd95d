"""Read replicas, for real: a private primary and a streaming replica of it (initdb and
pg_basebackup on free ports), gunicorn in front of them, and pgbouncer in transaction mode
in front of both. Every server is stopped at the end of the module, also on failure."""

import re
import secrets
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path

import psycopg
import pytest

from apikeys.models import KEY_PREFIX, hash_key
from conftest import http, service_env
from gdpr.services import EXPORT_CHUNK
from memoryproject.tests.servers import (
    Pgbouncer,
    PrivatePostgres,
    free_port,
    manage,
    start_web,
    wait_until_up,
)

pytestmark = pytest.mark.slow

MAX_LAG_SECONDS = 3


class Cluster:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        # Every statement is logged on the primary, to show what the service sends it.
        self.primary = PrivatePostgres(options="-c log_statement=all -c log_line_prefix=%d:")
        self.replica: PrivatePostgres | None = None
        self.servers: list = []

    def start(self) -> None:
        self.primary.start()
        with psycopg.connect(self.primary.url(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE memory")
        manage(service_env(self.primary.url("memory")), "migrate", "--noinput", "-v0")
        self.replica = PrivatePostgres(primary=self.primary)
        self.replica.start()

    def serve(self, database_url: str, **overrides) -> str:
        port = free_port()
        env = service_env(database_url, WEB_CONCURRENCY=2, PORT=port, **overrides)
        log = self.tmp / f"gunicorn-{port}.log"
        process = start_web(env, port, log)
        self.servers.append(process)
        url = f"http://127.0.0.1:{port}"
        wait_until_up(url + "/", process=process, log=log)
        return url

    def stop(self) -> None:
        import os

        for process in self.servers:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, 15)
        for process in self.servers:
            with suppress(Exception):
                process.wait(timeout=10)
        if self.replica is not None:
            self.replica.destroy()
        self.primary.destroy()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cluster = Cluster(tmp_path_factory.mktemp("replicas"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def web(cluster):
    """The service on the primary with one replica, write positions in Redis; no
    persistent connections, so each backend reports its statistics when it ends."""
    return cluster.serve(
        cluster.primary.url("memory"),
        DATABASE_REPLICA_URLS=cluster.replica.url("memory"),
        DATABASE_REPLICA_MAX_LAG_SECONDS=MAX_LAG_SECONDS,
        REDIS_URL=__import__("os").environ["TEST_REDIS_URL"],
        CONN_MAX_AGE=0,
    )


def new_key(cluster, owner_id: str, rate_limit: int = 100_000) -> str:
    """A key straight into the primary (manage.py would cost seconds a key), for an owner
    of this run only (write positions outlive a run in Redis)."""
    owner_id = f"{owner_id}-{uuid.uuid4().hex[:8]}"
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
    with psycopg.connect(cluster.primary.url("memory")) as conn:
        conn.execute(
            "INSERT INTO apikeys_apikey (id, owner_id, prefix, key_hash, rate_limit_per_minute,"
            " metadata, created_at) VALUES (%s, %s, %s, %s, %s, '{}', now())",
            [uuid.uuid4(), owner_id, plaintext[:17], hash_key(plaintext), rate_limit],
        )
    return plaintext


def scans(url: str) -> int:
    """Scans of the memory tables this server has counted (pg_stat_user_tables)."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT COALESCE(SUM(COALESCE(seq_scan, 0) + COALESCE(idx_scan, 0)), 0)::int "
            "FROM pg_stat_user_tables WHERE relname IN ('memories_memory', 'memories_memoryterm')"
        ).fetchone()
    assert row is not None
    return row[0]


def replay_lsn(cluster) -> int:
    with psycopg.connect(cluster.replica.url("memory")) as conn:
        row = conn.execute("SELECT pg_last_wal_replay_lsn() - '0/0'::pg_lsn").fetchone()
    assert row is not None
    return row[0]


def wait_until_caught_up(cluster) -> None:
    with psycopg.connect(cluster.primary.url("memory")) as conn:
        row = conn.execute("SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn").fetchone()
    assert row is not None
    target = row[0]
    deadline = time.monotonic() + 20
    while replay_lsn(cluster) < target:
        assert time.monotonic() < deadline, "the replica did not catch up"
        time.sleep(0.05)


def replica_health(url: str) -> dict:
    status, _, body = http("GET", url + "/health")
    assert status == 200, body
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    (replica,) = body["replicas"]
    return replica


def wait_for_replica_state(url: str, state: str, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while (replica := replica_health(url))["state"] != state:
        assert time.monotonic() < deadline, f"replica never {state}: {replica}"
        time.sleep(0.2)
    return replica


def create(url: str, key: str, user_id: str, content: str) -> dict:
    body = {"user_id": user_id, "type": "fact", "content": content, "importance": 4}
    status, _, memory = http("POST", url + "/api/v1/memory", key, body)
    assert status == 200, memory
    return memory


def assert_sees(url: str, key: str, memory: dict, word: str, total: int) -> None:
    """Every read-only endpoint shows the memory just written."""
    api, user = url + "/api/v1", memory["user_id"]
    status, _, got = http("GET", f"{api}/memory/{memory['id']}", key)
    assert (status, got["content"]) == (200, memory["content"])
    status, _, page = http("GET", f"{api}/memory?user_id={user}&limit=1", key)
    assert (status, page[0]["id"]) == (200, memory["id"])
    status, _, stats = http("GET", f"{api}/memory/stats?user_id={user}", key)
    assert (status, stats["total"]) == (200, total)
    body = {"user_id": user, "query": word, "limit": 3}
    status, _, context = http("POST", f"{api}/memory/context", key, body)
    assert status == 200, context
    assert context["memories"][0]["id"] == memory["id"], context


def test_health_lists_the_replica(cluster, web):
    replica = wait_for_replica_state(web, "ok")
    assert replica["name"] == "replica_0"
    assert replica["lag_seconds"] < MAX_LAG_SECONDS


def test_reads_see_their_own_writes_from_many_threads(cluster, web):
    keys = {owner: new_key(cluster, owner) for owner in ("ryw-a", "ryw-b", "ryw-c")}

    def writer(n: int) -> int:
        key, user = keys[("ryw-a", "ryw-b", "ryw-c")[n % 3]], f"user{n}"
        for i in range(8):
            word = f"zq{n}x{i}word"
            memory = create(web, key, user, f"Thread {n} wrote {word} just now")
            assert_sees(web, key, memory, word, total=i + 1)
        return n

    with ThreadPoolExecutor(max_workers=6) as pool:
        assert sorted(pool.map(writer, range(6))) == list(range(6))


def test_caught_up_replica_serves_reads_shown_in_its_statistics(cluster, web):
    key = new_key(cluster, "caught-up")
    memories = [create(web, key, "u1", f"Caught up memory {i} about kettles") for i in range(3)]
    wait_until_caught_up(cluster)
    replica_before, primary_before = (
        scans(cluster.replica.url("memory")),
        scans(cluster.primary.url("memory")),
    )
    for memory in memories:
        status, _, got = http("GET", f"{web}/api/v1/memory/{memory['id']}", key)
        assert (status, got["id"]) == (200, memory["id"])
    assert_sees(web, key, memories[-1], "kettles", total=3)
    reads = len(memories) + 4
    status, _, exported = http("GET", f"{web}/api/v1/gdpr/export?user_id=u1", key)
    assert status == 200
    assert exported["counts"]["memories"] == 3
    assert {m["id"] for m in exported["memories"]} == {m["id"] for m in memories}
    # Each backend reports its counts when it ends (CONN_MAX_AGE=0): wait for them.
    deadline = time.monotonic() + 15
    while (on_replica := scans(cluster.replica.url("memory")) - replica_before) < reads:
        on_primary = scans(cluster.primary.url("memory")) - primary_before
        assert time.monotonic() < deadline, (on_replica, on_primary, replica_health(web))
        time.sleep(0.2)
    assert scans(cluster.primary.url("memory")) == primary_before


def test_paused_replica_never_serves_stale_reads_to_the_owner_who_wrote(cluster, web):
    key = new_key(cluster, "paused")
    create(web, key, "u1", "Written before the pause, about teapots")
    wait_until_caught_up(cluster)
    replica = psycopg.connect(cluster.replica.url("memory"), autocommit=True)
    try:
        replica.execute("SELECT pg_wal_replay_pause()")
        for i in range(2, 6):
            memory = create(web, key, "u1", f"Written during the pause number {i} about mugs{i}")
            # The replica really is behind: reading it would miss the write.
            stale = replica.execute(
                "SELECT count(*) FROM memories_memory WHERE id = %s", [memory["id"]]
            ).fetchone()[0]
            assert stale == 0
            assert_sees(web, key, memory, f"mugs{i}", total=i)
            status, _, history = http("GET", f"{web}/api/v1/memory/{memory['id']}/history", key)
            assert status == 200
            assert len(history) == 1
            status, _, exported = http("GET", f"{web}/api/v1/gdpr/export?user_id=u1", key)
            assert status == 200
            assert exported["counts"]["memories"] == i
            assert memory["id"] in {m["id"] for m in exported["memories"]}
        # Past the bound, the replica is reported lagging (and skipped for everyone).
        lagging = wait_for_replica_state(web, "lagging")
        assert lagging["lag_seconds"] > MAX_LAG_SECONDS
    finally:
        replica.execute("SELECT pg_wal_replay_resume()")
        replica.close()
    wait_for_replica_state(web, "ok")


def test_replica_stopped_mid_run_moves_reads_to_the_primary_without_errors(cluster, web):
    key = new_key(cluster, "stopped")
    memory = create(web, key, "u1", "Stored before the replica stops, about saucers")
    wait_until_caught_up(cluster)
    statuses: list[int] = []

    def read(i: int) -> None:
        if i % 10 == 0:
            status = http("POST", f"{web}/api/v1/memory", key, {"user_id": "u2", "type": "fact",
                          "content": f"write {i} while the replica stops"})[0]  # fmt: skip
        elif i % 2:
            status = http("GET", f"{web}/api/v1/memory?user_id=u1&limit=5", key)[0]
        else:
            body = {"user_id": "u1", "query": "saucers", "limit": 3}
            status, _, answer = http("POST", f"{web}/api/v1/memory/context", key, body)
            assert answer["memories"][0]["id"] == memory["id"]
        statuses.append(status)

    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            futures = [pool.submit(read, i) for i in range(60)]
            time.sleep(0.5)
            cluster.replica.stop()  # mid-run, immediately
            futures += [pool.submit(read, i) for i in range(60, 160)]
            for future in futures:
                future.result()
        assert set(statuses) == {200}
        assert replica_health(web)["state"] == "down"
        assert http("GET", f"{web}/api/v1/memory/stats?user_id=u2", key)[2]["total"] == 16
    finally:
        cluster.replica.start()
    wait_for_replica_state(web, "ok")


def test_service_through_pgbouncer_in_transaction_mode(cluster):
    """The HTTP contract's main paths (v1.1's history and Idempotency-Key too), with both
    databases reached through pgbouncer in transaction mode and write positions on the
    primary (no Redis). The primary's log shows that the service kept no session state."""
    bouncer = Pgbouncer(
        {
            "memory": f"host=127.0.0.1 port={cluster.primary.port} dbname=memory",
            "memory_replica": f"host=127.0.0.1 port={cluster.replica.port} dbname=memory",
        }
    )
    try:
        log_start = len(cluster.primary.log())
        web = cluster.serve(
            bouncer.url("memory"),
            DATABASE_REPLICA_URLS=bouncer.url("memory_replica"),
            DATABASE_POOLER="transaction",
        )
        _contract_slice(cluster, web)
        pools = {row["database"]: row for row in bouncer.show("POOLS")}
        assert pools["memory"]["pool_mode"] == "transaction"
        stats = {row["database"]: row for row in bouncer.show("STATS")}
        assert stats["memory"]["total_xact_count"] > 100
        assert stats["memory_replica"]["total_xact_count"] > 10  # replica reads, pooled
        logged = cluster.primary.log()[log_start:].splitlines()
        statements = [
            match.group(1)
            for line in logged
            if (match := re.match(r"memory:.*LOG:  (?:statement|execute [^:]*): (.*)", line))
        ]
        assert len(statements) > 100
        session_state = ("SET ", "DECLARE ", "PREPARE ", "LISTEN ")
        assert not [s for s in statements if s.upper().lstrip().startswith(session_state)]
        session_lock = re.compile(r"pg_(try_)?advisory_lock(_shared)?\(", re.IGNORECASE)
        assert not [s for s in statements if session_lock.search(s)]
        assert not [line for line in logged if "execute _pg" in line]  # prepared statements
    finally:
        bouncer.stop()


def _contract_slice(cluster, web: str) -> None:
    api = web + "/api/v1"
    key, other = new_key(cluster, "pooled"), new_key(cluster, "pooled-other")
    health = replica_health(web)
    assert health["state"] == "ok"
    rules = {"user_id": "u1", "type": "preference", "content": "preference:theme=dark",
             "ingestion_mode": "rules"}  # fmt: skip
    status, _, derived = http("POST", f"{api}/memory", key, rules)
    assert (status, derived["key"], derived["value"]) == (200, "theme", "dark")
    memory = create(web, key, "u1", "Pooled memory about lighthouses")
    assert_sees(web, key, memory, "lighthouses", total=2)
    status, _, changed = http("PATCH", f"{api}/memory/{memory['id']}", key, {"importance": 2})
    assert (status, changed["importance"]) == (200, 2)
    assert changed["updated_at"] > memory["updated_at"]
    assert http("GET", f"{api}/memory/{memory['id']}", key)[2]["importance"] == 2
    status, _, history = http("GET", f"{api}/memory/{memory['id']}/history", key)
    assert status == 200
    assert [v["importance"] for v in history] == [4, 2]
    # Idempotency-Key: held by a transaction-scoped lock, so it works through the pooler.
    body, once = (
        {"user_id": "u3", "type": "fact", "content": "Pooled once"},
        {"Idempotency-Key": "pooled-once"},
    )
    first = http("POST", f"{api}/memory", key, body, once)
    replayed = http("POST", f"{api}/memory", key, body, once)
    assert first[0] == replayed[0] == 200
    assert replayed[1]["Idempotent-Replayed"] == "true"
    assert first[2]["id"] == replayed[2]["id"]
    assert http("GET", f"{api}/memory/stats?user_id=u3", key)[2]["total"] == 1
    assert http("GET", f"{api}/memory/{memory['id']}", other)[0] == 404
    status, _, invalid = http("POST", f"{api}/memory", key, {"user_id": "u1", "type": "nope"})
    assert status == 400
    assert "errors" in invalid
    # Paging with the cursor, and the export's keyset pages, over more than two pages.
    for i in range(EXPORT_CHUNK * 2 + 5):
        create(web, key, "bulk", f"Bulk memory number {i}")
    status, headers, first = http("GET", f"{api}/memory?user_id=bulk&limit=50", key)
    assert status == 200
    assert len(first) == 50
    assert headers["X-Next-Cursor"]
    cursor = headers["X-Next-Cursor"]
    status, _, second = http("GET", f"{api}/memory?user_id=bulk&limit=50&cursor={cursor}", key)
    assert status == 200
    assert not {m["id"] for m in first} & {m["id"] for m in second}
    status, _, exported = http("GET", f"{api}/gdpr/export?user_id=bulk", key)
    assert status == 200
    assert exported["counts"]["memories"] == EXPORT_CHUNK * 2 + 5
    assert len({m["id"] for m in exported["memories"]}) == EXPORT_CHUNK * 2 + 5
    created = [m["created_at"] for m in exported["memories"]]
    assert created == sorted(created)
    status, _, soft = http("DELETE", f"{api}/memory/{derived['id']}/soft?user_id=u1", key)
    assert (status, soft["is_deleted"]) == (200, True)
    status, _, hard = http("DELETE", f"{api}/memory/{memory['id']}", key)
    assert (status, hard) == (200, {"id": memory["id"], "deleted": True})
    assert http("GET", f"{api}/memory/stats?user_id=u1", key)[2]["total"] == 0
    status, _, erased = http("DELETE", f"{api}/gdpr/delete?user_id=bulk", key)
    assert status == 200
    assert erased["total"] >= EXPORT_CHUNK * 2 + 5
    assert http("GET", f"{api}/memory?user_id=bulk", key)[2] == []
    # Rate-limit buckets in the database, through the pooler: exact.
    limited = new_key(cluster, "pooled-limited", rate_limit=5)
    codes = [http("GET", f"{api}/memory?user_id=u1", limited)[0] for _ in range(7)]
    assert codes[:5] == [200] * 5
    assert codes[5:] == [429, 429]
