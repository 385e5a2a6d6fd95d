"""One bucket per key across gunicorn workers, under concurrent bursts, and when Redis dies."""

import contextlib
import os
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
import redis

from apikeys.models import hash_key
from apikeys.throttling import REDIS_RETRY_SECONDS
from conftest import http
from memoryproject.tests.servers import free_port

pytestmark = pytest.mark.slow

LIMIT = 30
URL_PATH = "/api/v1/memory?user_id=u1&limit=1"
HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


def _burst(url: str, key: str, *, requests: int, threads: int) -> tuple[list, float]:
    """Send `requests` GETs from `threads` threads released together; (responses, seconds)."""
    gate = threading.Barrier(threads)

    def worker(count: int) -> list:
        gate.wait()
        return [http("GET", url + URL_PATH, key)[:2] for _ in range(count)]

    shares = [requests // threads + (i < requests % threads) for i in range(threads)]
    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        results = [r for chunk in pool.map(worker, shares) for r in chunk]
    return results, time.monotonic() - started


def _assert_limited(results: list, elapsed: float, *, limit: int) -> int:
    """A full bucket's burst is admitted, plus at most what refilled during the run."""
    statuses = [status for status, _ in results]
    assert set(statuses) <= {200, 429}, statuses
    admitted = statuses.count(200)
    print(f"admitted {admitted} of {len(results)} in {elapsed:.2f}s, limit {limit}")
    assert limit <= admitted <= limit + elapsed * limit / 60 + 1
    for status, headers in results:
        assert headers["X-RateLimit-Limit"] == str(limit)
        assert int(headers["X-RateLimit-Remaining"]) >= 0
        assert int(headers["X-RateLimit-Reset"]) >= int(time.time()) - elapsed - 1
        if status == 429:
            assert int(headers["Retry-After"]) >= 1
    return admitted


def _key_id(server, plaintext: str) -> str:
    with psycopg.connect(server.env["DATABASE_URL"]) as conn:
        row = conn.execute(
            "SELECT id FROM apikeys_apikey WHERE key_hash = %s", [hash_key(plaintext)]
        ).fetchone()
    assert row is not None
    return str(row[0])


def _has_database_bucket(server, key_id: str) -> bool:
    with psycopg.connect(server.env["DATABASE_URL"]) as conn:
        row = conn.execute(
            "SELECT 1 FROM apikeys_ratelimitbucket WHERE key_id = %s", [key_id]
        ).fetchone()
    return row is not None


def test_redis_bucket_is_shared_by_four_workers(start_server):
    server = start_server(workers=4, REDIS_URL=os.environ["TEST_REDIS_URL"])
    key = server.new_key("acme", rate_limit=LIMIT)
    key_id = _key_id(server, key)
    connection = redis.Redis.from_url(os.environ["TEST_REDIS_URL"])
    try:
        results, elapsed = _burst(server.url, key, requests=200, threads=16)
        admitted = _assert_limited(results, elapsed, limit=LIMIT)
        assert admitted < 200
        assert connection.exists(f"ratelimit:{key_id}")
        assert not _has_database_bucket(server, key_id)
    finally:
        connection.delete(f"ratelimit:{key_id}")
        connection.close()


def test_database_bucket_is_shared_by_four_workers(start_server):
    server = start_server(workers=4)
    key = server.new_key("acme", rate_limit=LIMIT)
    results, elapsed = _burst(server.url, key, requests=200, threads=16)
    admitted = _assert_limited(results, elapsed, limit=LIMIT)
    assert admitted < 200
    assert _has_database_bucket(server, _key_id(server, key))


@contextlib.contextmanager
def _private_redis(port: int):
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        connection = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                connection.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield process, connection
    finally:
        process.kill()
        process.wait(timeout=10)


def test_killing_redis_mid_run_falls_back_to_database_buckets(start_server):
    port = free_port()
    limit = 20
    with _private_redis(port) as (process, connection):
        server = start_server(workers=2, REDIS_URL=f"redis://127.0.0.1:{port}/0")
        key = server.new_key("acme", rate_limit=limit)
        key_id = _key_id(server, key)

        before = [http("GET", server.url + URL_PATH, key)[:2] for _ in range(10)]
        assert [status for status, _ in before] == [200] * 10
        assert [h["X-RateLimit-Remaining"] for _, h in before] == [
            str(limit - 1 - i) for i in range(10)
        ]
        assert connection.exists(f"ratelimit:{key_id}")

        process.kill()
        process.wait(timeout=10)
        after, elapsed = _burst(server.url, key, requests=60, threads=8)
        # No request waited on the dead Redis.
        assert elapsed < 10
        # The database bucket is a second bucket, and starts full: the outage grants one
        # burst more, and limits from there on.
        _assert_limited(after, elapsed, limit=limit)
        assert _has_database_bucket(server, key_id)

    # Redis back on the same port, empty: each worker tries it again after the interval.
    with _private_redis(port) as (process, connection):
        time.sleep(REDIS_RETRY_SECONDS + 0.5)
        for _ in range(6):
            status, headers, _ = http("GET", server.url + URL_PATH, key)
            assert status in {200, 429}
            assert "X-RateLimit-Limit" in headers
        assert connection.exists(f"ratelimit:{key_id}")
