"""Two web hosts (two gunicorn instances on their own ports) sharing PostgreSQL and Redis:
one rate limit across both, one idempotency claim across both, and no acknowledged write
lost when one of them dies in the middle of a burst."""

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPException

import psycopg
import pytest

from conftest import http

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def hosts(start_server):
    """Two instances as a load balancer would see them: same database, same Redis."""
    redis_url = os.environ["TEST_REDIS_URL"]
    return [start_server(workers=2, REDIS_URL=redis_url) for _ in range(2)]


def test_rate_limit_is_exact_across_two_hosts(hosts):
    limit, threads = 40, 8
    key = hosts[0].new_key("two-hosts-limit", rate_limit=limit)
    gate = threading.Barrier(threads)

    def burst(n: int) -> list[int]:
        gate.wait()
        url = hosts[n % 2].url + "/api/v1/memory?user_id=u1&limit=1"
        return [http("GET", url, key)[0] for _ in range(12)]

    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        statuses = [s for chunk in pool.map(burst, range(threads)) for s in chunk]
    elapsed = time.monotonic() - started
    assert set(statuses) == {200, 429}
    admitted = statuses.count(200)
    # The full bucket, plus at most what refilled while the burst ran.
    assert limit <= admitted <= limit + elapsed * limit / 60 + 1, (admitted, elapsed)


def test_one_idempotent_create_sent_to_both_hosts_at_once_stores_one_memory(hosts):
    key = hosts[0].new_key("two-hosts-idempotent")
    body = {"user_id": "u1", "type": "fact", "content": "Sent twice, stored once"}
    headers = {"Idempotency-Key": "create-once-0001"}
    gate = threading.Barrier(2)

    def send(host) -> tuple:
        gate.wait()
        return http("POST", host.url + "/api/v1/memory", key, body, headers)

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(send, hosts))
    stored = [answer for status, _, answer in answers if status == 200]
    assert stored, answers
    # Either both answered with the one memory (one of them replayed), or the loser saw
    # the claim still running (409).
    assert all(status in (200, 409) for status, _, _ in answers), answers
    assert len({answer["id"] for answer in stored}) == 1
    status, headers_, replay = http("POST", hosts[1].url + "/api/v1/memory", key, body, headers)
    assert (status, headers_["Idempotent-Replayed"], replay["id"]) == (200, "true", stored[0]["id"])
    _, _, stats = http("GET", hosts[0].url + "/api/v1/memory/stats?user_id=u1", key)
    assert stats["total"] == 1


def test_killing_one_host_mid_burst_loses_no_acknowledged_write(hosts, start_server):
    doomed = start_server(workers=2, REDIS_URL=os.environ["TEST_REDIS_URL"])
    survivor = hosts[0]
    key = survivor.new_key("two-hosts-kill")
    acknowledged: list[str] = []
    outcomes: dict[str, list] = {"doomed": [], "survivor": []}

    def write(i: int) -> None:
        name, host = ("doomed", doomed) if i % 2 else ("survivor", survivor)
        body = {"user_id": "burst", "type": "fact", "content": f"burst write {i}"}
        try:
            status, _, answer = http("POST", host.url + "/api/v1/memory", key, body)
        except (OSError, HTTPException):
            outcomes[name].append("connection error")  # no answer: not acknowledged
            return
        outcomes[name].append(status)
        if status == 200:
            acknowledged.append(answer["id"])

    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = [pool.submit(write, i) for i in range(60)]
        time.sleep(0.4)
        os.killpg(doomed.process.pid, 9)  # the whole instance, at once, mid-burst
        futures += [pool.submit(write, i) for i in range(60, 160)]
        for future in futures:
            future.result()
    doomed.process.wait(timeout=10)
    assert set(outcomes["survivor"]) == {200}, outcomes["survivor"]
    assert "connection error" in outcomes["doomed"]  # it did die mid-burst
    with psycopg.connect(survivor.env["DATABASE_URL"]) as conn:
        stored = {
            str(row[0])
            for row in conn.execute(
                "SELECT id FROM memories_memory WHERE owner_id = 'two-hosts-kill'"
            ).fetchall()
        }
    assert set(acknowledged) <= stored
    _, _, stats = http("GET", survivor.url + "/api/v1/memory/stats?user_id=burst", key)
    assert stats["total"] == len(stored) >= len(outcomes["survivor"])
