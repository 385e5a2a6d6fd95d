"""Rate-limit headers and 429s through the API, with the database and the Redis backend."""

import logging
import os
import socket
import time
import uuid

import pytest
import redis
from rest_framework.test import APIClient

from apikeys.models import RateLimitBucket
from apikeys.services import create_api_key, revoke_api_key
from memoryproject.tests.servers import free_port

LIST_URL = "/api/v1/memory?user_id=u1"
HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
REFUSED = {"detail": "Rate limit exceeded"}


@pytest.fixture
def key_of_three(db):
    return create_api_key(owner_id="acme", rate_limit_per_minute=3)


@pytest.fixture
def redis_backend(settings, key_of_three):
    """The Redis backend on the test database; the key's bucket is removed afterwards."""
    settings.REDIS_URL = os.environ["TEST_REDIS_URL"]
    connection = redis.Redis.from_url(settings.REDIS_URL)
    bucket = f"ratelimit:{key_of_three.api_key.pk}"
    connection.delete(bucket)
    yield connection, bucket
    connection.delete(bucket)
    connection.close()


def _limit_headers(response) -> tuple[int, ...]:
    return tuple(int(response[name]) for name in HEADERS)


def _walk_the_bucket(client: APIClient) -> list:
    """200, 400, 404, then 429 for a key of 3/minute: every kind of counted response."""
    return [
        client.get(LIST_URL),
        client.get("/api/v1/memory"),  # user_id is required
        client.get(f"/api/v1/memory/{uuid.uuid4()}"),
        client.get(LIST_URL),
    ]


def _assert_walk(responses, started: float) -> None:
    assert [r.status_code for r in responses] == [200, 400, 404, 429]
    limits = [_limit_headers(r) for r in responses]
    assert [limit for limit, _, _ in limits] == [3, 3, 3, 3]
    assert [remaining for _, remaining, _ in limits] == [2, 1, 0, 0]
    # 3/minute is a token every 20 s: full again 20, 40, 60 and 60 s from now.
    for (_, _, reset), missing in zip(limits, [1, 2, 3, 3], strict=True):
        assert started + missing * 20 - 2 <= reset <= time.time() + missing * 20 + 2
    for response in responses[:3]:
        assert "Retry-After" not in response
    refused = responses[3]
    assert refused.json() == REFUSED
    assert 1 <= int(refused["Retry-After"]) <= 20


def test_every_counted_response_carries_consistent_headers(key_of_three, client_for):
    started = time.time()
    _assert_walk(_walk_the_bucket(client_for(key_of_three)), started)
    assert RateLimitBucket.objects.filter(key_id=key_of_three.api_key.pk).exists()


def test_refused_request_keeps_being_refused_until_a_token_returns(key_of_three, client_for):
    client = client_for(key_of_three)
    statuses = [client.get(LIST_URL).status_code for _ in range(6)]
    assert statuses == [200, 200, 200, 429, 429, 429]


def test_keys_have_buckets_of_their_own(key_of_three, client_for, api_key):
    for _ in range(3):
        client_for(key_of_three).get(LIST_URL)
    assert client_for(key_of_three).get(LIST_URL).status_code == 429
    response = client_for(api_key).get(LIST_URL)
    assert response.status_code == 200
    assert response["X-RateLimit-Remaining"] == "9999"


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer aimsk_live_doesnotexist0000000000000000", "Token {key}", "{key}"],
)
def test_401_has_no_rate_limit_headers_and_takes_no_token(authorization, key_of_three, client_for):
    client = client_for(key_of_three)
    assert client.get(LIST_URL)["X-RateLimit-Remaining"] == "2"
    anonymous = APIClient()
    if authorization is not None:
        anonymous.credentials(HTTP_AUTHORIZATION=authorization.format(key=key_of_three.plaintext))
    for _ in range(5):
        response = anonymous.get(LIST_URL)
        assert response.status_code == 401
        for name in (*HEADERS, "Retry-After"):
            assert name not in response
    after = client.get(LIST_URL)
    assert after.status_code == 200
    assert after["X-RateLimit-Remaining"] == "1"


def test_revoked_key_gets_401_without_touching_its_bucket(key_of_three, client_for):
    revoke_api_key(key_id=key_of_three.api_key.pk)
    response = client_for(key_of_three).get(LIST_URL)
    assert response.status_code == 401
    assert "X-RateLimit-Limit" not in response
    assert not RateLimitBucket.objects.filter(key_id=key_of_three.api_key.pk).exists()


def test_uncounted_endpoints_carry_no_headers(key_of_three, client_for):
    response = client_for(key_of_three).get("/health")
    assert response.status_code == 200
    assert "X-RateLimit-Limit" not in response
    assert not RateLimitBucket.objects.filter(key_id=key_of_three.api_key.pk).exists()


# --- Redis backend ---------------------------------------------------------------------


def test_redis_backend_gives_the_same_headers(redis_backend, key_of_three, client_for):
    connection, bucket = redis_backend
    started = time.time()
    _assert_walk(_walk_the_bucket(client_for(key_of_three)), started)
    state = connection.hgetall(bucket)
    assert float(state[b"tokens"]) < 1
    assert abs(float(state[b"ts"]) - time.time()) < 5
    assert 0 < connection.pttl(bucket) <= 61_000
    # The database buckets were not used.
    assert not RateLimitBucket.objects.filter(key_id=key_of_three.api_key.pk).exists()


def test_redis_down_falls_back_to_database_buckets(settings, key_of_three, client_for, caplog):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    client = client_for(key_of_three)
    with caplog.at_level(logging.WARNING, logger="apikeys.throttling"):
        started = time.time()
        _assert_walk(_walk_the_bucket(client), started)
        assert client.get(LIST_URL).status_code == 429
    assert RateLimitBucket.objects.filter(key_id=key_of_three.api_key.pk).exists()
    # Warned at most once a minute, not once a request.
    warnings = [r for r in caplog.records if r.name == "apikeys.throttling"]
    assert len(warnings) <= 1


def test_hanging_redis_costs_one_timeout_not_one_per_request(settings, key_of_three, client_for):
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        settings.REDIS_URL = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        client = client_for(key_of_three)
        client.get(LIST_URL)  # pays the socket timeout once
        started = time.perf_counter()
        responses = [client.get(LIST_URL) for _ in range(5)]
        elapsed = time.perf_counter() - started
    assert [r.status_code for r in responses] == [200, 200, 429, 429, 429]
    assert [r["X-RateLimit-Remaining"] for r in responses] == ["1", "0", "0", "0", "0"]
    # Each request would wait out the 0.5 s socket timeout without the retry interval.
    assert elapsed < 1.0


def test_redis_losing_the_script_or_the_connection_costs_no_request(
    redis_backend, key_of_three, client_for
):
    """Each thread keeps its own connection (apikeys.throttling._run_script): a Redis that
    forgot the script (restart, SCRIPT FLUSH) gets it again in the same request, and a
    connection Redis closed is replaced within the request; the bucket stays in Redis
    throughout, and a dropped connection goes back to the pool."""
    connection, bucket = redis_backend
    client = client_for(key_of_three)
    assert client.get(LIST_URL).status_code == 200
    connection.script_flush()
    assert client.get(LIST_URL).status_code == 200
    assert float(connection.hget(bucket, "tokens")) == pytest.approx(1, abs=0.01)
    from apikeys import throttling

    pool = throttling._redis_script().registered_client.connection_pool
    in_use = len(pool._in_use_connections)
    connection.client_kill_filter(_type="normal", skipme=True)  # every other client
    assert client.get(LIST_URL).status_code == 200  # Redis again, on a new connection
    assert float(connection.hget(bucket, "tokens")) < 0.01
    assert not RateLimitBucket.objects.filter(key_id=key_of_three.api_key.pk).exists()
    assert len(pool._in_use_connections) == in_use  # the dead one was given back
    assert client.get(LIST_URL).status_code == 429
