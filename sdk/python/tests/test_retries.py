import json

import httpx
import pytest

from aimemory import (
    APIConnectionError,
    APIStatusError,
    NotFoundError,
    RateLimitError,
    ServiceUnavailableError,
    ValidationError,
)
from aimemory._core import INITIAL_BACKOFF, MAX_BACKOFF, backoff
from tests.mockapi import MEMORY, Recorder

RATE_LIMITED = httpx.Response(
    429, json={"detail": "Rate limit exceeded"}, headers={"Retry-After": "0"}
)
UNAVAILABLE = httpx.Response(
    503, json={"detail": "Database unavailable"}, headers={"Retry-After": "0"}
)
CREATED = httpx.Response(200, json=MEMORY)
FIELDS = {"user_id": "user_123", "type": "fact", "content": "Works in fintech"}


def test_429_is_waited_out_and_the_call_succeeds(sync_client):
    recorder = Recorder(RATE_LIMITED, RATE_LIMITED, CREATED)
    client = sync_client(recorder)

    memory = client.memories.create(**FIELDS)

    assert memory.id == MEMORY["id"]
    assert len(recorder.requests) == 3


def test_retries_stop_after_max_retries(sync_client):
    recorder = Recorder(UNAVAILABLE)
    client = sync_client(recorder, max_retries=3)

    with pytest.raises(ServiceUnavailableError):
        client.memories.stats(user_id="u")

    assert len(recorder.requests) == 4


def test_max_retries_zero_sends_once(sync_client):
    recorder = Recorder(RATE_LIMITED)
    client = sync_client(recorder, max_retries=0)

    with pytest.raises(RateLimitError):
        client.memories.create(**FIELDS)

    assert len(recorder.requests) == 1


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_a_4xx_other_than_429_is_never_retried(sync_client, status):
    recorder = Recorder(httpx.Response(status, json={"detail": "no"}), CREATED)
    client = sync_client(recorder)

    with pytest.raises(APIStatusError) as caught:
        client.memories.create(**FIELDS)

    assert caught.value.status_code == status
    assert len(recorder.requests) == 1


IN_PROGRESS = httpx.Response(
    409, json={"detail": "A request with this Idempotency-Key is still in progress"}
)


def test_a_409_for_a_write_with_an_idempotency_key_is_waited_out(sync_client):
    # The first try timed out here but still runs on the server: the retry replays it.
    recorder = Recorder(httpx.ReadTimeout("slow"), IN_PROGRESS, CREATED)
    client = sync_client(recorder)

    memory = client.memories.create(**FIELDS)

    assert memory.id == MEMORY["id"]
    keys = {request.headers["Idempotency-Key"] for request in recorder.requests}
    assert len(recorder.requests) == 3
    assert len(keys) == 1


def test_a_409_without_an_idempotency_key_is_raised(sync_client):
    recorder = Recorder(IN_PROGRESS, CREATED)
    client = sync_client(recorder)

    with pytest.raises(APIStatusError) as caught:
        client.memories.update(MEMORY["id"], importance=2)

    assert caught.value.status_code == 409
    assert len(recorder.requests) == 1


@pytest.mark.parametrize(
    "call",
    [
        lambda client: client.memories.delete(MEMORY["id"]),
        lambda client: client.memories.soft_delete(MEMORY["id"], user_id="u"),
        lambda client: client.gdpr.erase(user_id="u"),
    ],
    ids=["delete", "soft_delete", "erase"],
)
def test_a_delete_that_may_have_reached_the_server_is_not_sent_again(sync_client, call):
    # A second try would report 404 (or nothing erased) for what the first one did.
    recorder = Recorder(httpx.ReadError("connection reset"), CREATED)
    client = sync_client(recorder)

    with pytest.raises(APIConnectionError):
        call(client)

    assert len(recorder.requests) == 1


def test_500_is_not_retried(sync_client):
    recorder = Recorder(httpx.Response(500, json={"detail": "Internal server error"}), CREATED)
    client = sync_client(recorder)

    with pytest.raises(APIStatusError) as caught:
        client.memories.get("x")

    assert caught.value.status_code == 500
    assert len(recorder.requests) == 1


def test_retry_after_longer_than_the_cap_is_raised_at_once(sync_client):
    long_wait = httpx.Response(
        429, json={"detail": "Rate limit exceeded"}, headers={"Retry-After": "3600"}
    )
    recorder = Recorder(long_wait, CREATED)
    client = sync_client(recorder)

    with pytest.raises(RateLimitError) as caught:
        client.memories.create(**FIELDS)

    assert caught.value.retry_after == 3600
    assert len(recorder.requests) == 1


def test_retries_of_one_write_carry_one_idempotency_key(sync_client):
    recorder = Recorder(RATE_LIMITED, UNAVAILABLE, CREATED)
    client = sync_client(recorder)

    client.memories.create(**FIELDS)

    keys = {request.headers["Idempotency-Key"] for request in recorder.requests}
    assert len(recorder.requests) == 3
    assert len(keys) == 1
    assert all(json.loads(r.content) == FIELDS for r in recorder.requests)


def test_each_write_call_has_its_own_idempotency_key(sync_client):
    recorder = Recorder(CREATED)
    client = sync_client(recorder)

    client.memories.create(**FIELDS)
    client.memories.create(**FIELDS)

    first, second = (r.headers["Idempotency-Key"] for r in recorder.requests)
    assert first != second
    assert 1 <= len(first) <= 255
    assert first.isascii()
    assert " " not in first


@pytest.mark.parametrize(
    ("call", "answer"),
    [
        (lambda c: c.memories.create(**FIELDS), MEMORY),
        (lambda c: c.memories.create_many([FIELDS, FIELDS]), {"memories": [MEMORY, MEMORY]}),
        (lambda c: c.memories.upsert(**FIELDS, key="k"), {"result": "created", "memory": MEMORY}),
        (lambda c: c.memories.delete_many(["a", "b"]), {"deleted": ["a"], "not_found": ["b"]}),
    ],
)
def test_every_retried_write_carries_an_idempotency_key(sync_client, call, answer):
    recorder = Recorder(RATE_LIMITED, httpx.Response(200, json=answer))
    client = sync_client(recorder)

    call(client)

    first, retry = recorder.requests
    assert first.headers["Idempotency-Key"] == retry.headers["Idempotency-Key"]


def test_a_given_idempotency_key_is_used(sync_client):
    recorder = Recorder(CREATED)
    client = sync_client(recorder)

    client.memories.create(**FIELDS, idempotency_key="order-42-memory")

    assert recorder.requests[0].headers["Idempotency-Key"] == "order-42-memory"


def test_reads_carry_no_idempotency_key(sync_client):
    recorder = Recorder(CREATED)
    client = sync_client(recorder)

    client.memories.get(MEMORY["id"])

    assert "Idempotency-Key" not in recorder.requests[0].headers


def test_connection_errors_are_retried(sync_client):
    recorder = Recorder(httpx.ConnectError("refused"), CREATED)
    client = sync_client(recorder)

    memory = client.memories.get(MEMORY["id"])

    assert memory.content == MEMORY["content"]
    assert len(recorder.requests) == 2


def test_connection_errors_give_up_after_max_retries(sync_client):
    recorder = Recorder(httpx.ConnectError("refused"))
    client = sync_client(recorder, max_retries=1)

    with pytest.raises(APIConnectionError):
        client.memories.get(MEMORY["id"])

    assert len(recorder.requests) == 2


def test_a_chat_that_may_have_reached_the_llm_is_not_sent_again(sync_client):
    recorder = Recorder(httpx.ReadError("connection reset"), httpx.Response(200, json={}))
    client = sync_client(recorder)

    with pytest.raises(APIConnectionError):
        client.chat(user_id="u", message="hi")

    assert len(recorder.requests) == 1


def test_a_chat_that_never_connected_is_sent_again(sync_client):
    answer = {"response": "hello", "model": "m", "usage": {}, "memories_used": []}
    recorder = Recorder(httpx.ConnectError("refused"), httpx.Response(200, json=answer))
    client = sync_client(recorder)

    assert client.chat(user_id="u", message="hi").response == "hello"
    assert len(recorder.requests) == 2


def test_a_write_with_an_idempotency_key_is_resent_after_a_broken_connection(sync_client):
    recorder = Recorder(httpx.ReadError("connection reset"), CREATED)
    client = sync_client(recorder)

    client.memories.create(**FIELDS)

    first, retry = recorder.requests
    assert first.headers["Idempotency-Key"] == retry.headers["Idempotency-Key"]


def test_backoff_grows_exponentially_with_jitter_and_a_cap():
    assert backoff(0, rng=lambda: 0.0) == INITIAL_BACKOFF / 2
    assert backoff(0, rng=lambda: 1.0) == INITIAL_BACKOFF
    assert backoff(3, rng=lambda: 1.0) == INITIAL_BACKOFF * 8
    assert backoff(30, rng=lambda: 1.0) == MAX_BACKOFF
    delays = {backoff(2) for _ in range(20)}
    assert len(delays) > 1
    assert all(INITIAL_BACKOFF * 2 <= d <= INITIAL_BACKOFF * 4 for d in delays)


@pytest.mark.anyio
async def test_async_client_retries_with_one_idempotency_key(async_client):
    recorder = Recorder(RATE_LIMITED, UNAVAILABLE, CREATED)
    async with async_client(recorder) as client:
        memory = await client.memories.create(**FIELDS)

    assert memory.id == MEMORY["id"]
    assert len({r.headers["Idempotency-Key"] for r in recorder.requests}) == 1
    assert len(recorder.requests) == 3


@pytest.mark.anyio
async def test_async_client_does_not_retry_a_404(async_client):
    recorder = Recorder(httpx.Response(404, json={"detail": "Not found."}), CREATED)
    async with async_client(recorder) as client:
        with pytest.raises(NotFoundError):
            await client.memories.get("x")
    assert len(recorder.requests) == 1


def test_validation_error_on_batch_names_the_bad_items(sync_client):
    body = {
        "detail": "memories: 1: content: This field is required.",
        "errors": {"memories": {"1": {"content": ["This field is required."]}}},
    }
    recorder = Recorder(httpx.Response(400, json=body))
    client = sync_client(recorder)

    with pytest.raises(ValidationError) as caught:
        client.memories.create_many([FIELDS, {"user_id": "u", "type": "fact"}])

    assert caught.value.errors["memories"]["1"] == {"content": ["This field is required."]}
    assert len(recorder.requests) == 1
