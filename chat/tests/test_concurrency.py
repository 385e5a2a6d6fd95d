"""The bounds on requests that wait on the LLM: per owner (both backends), per process."""

import os
from datetime import timedelta

import pytest
import redis
from django.core.signals import request_finished
from django.db import close_old_connections
from django.utils import timezone

from chat import concurrency
from chat.models import LongRequestSlot

pytestmark = pytest.mark.django_db

TOO_MANY = {"detail": "Too many concurrent LLM requests for this key's owner"}


@pytest.fixture(params=["database", "redis"])
def backend(request, settings):
    settings.LLM_MAX_CONCURRENT_PER_OWNER = 2
    if request.param == "redis":
        settings.REDIS_URL = os.environ["TEST_REDIS_URL"]
        redis.Redis.from_url(settings.REDIS_URL).delete("llmslots:acme", "llmslots:globex")
    else:
        settings.REDIS_URL = ""
    return request.param


def test_an_owner_gets_at_most_the_limit_and_a_released_slot_is_free_again(backend):
    first = concurrency.acquire_long_request(owner_id="acme")
    second = concurrency.acquire_long_request(owner_id="acme")
    with pytest.raises(concurrency.TooManyLongRequests):
        concurrency.acquire_long_request(owner_id="acme")
    concurrency.acquire_long_request(owner_id="globex").release()  # other owners unaffected

    first.release()
    first.release()  # idempotent: frees one slot, not two
    third = concurrency.acquire_long_request(owner_id="acme")
    with pytest.raises(concurrency.TooManyLongRequests):
        concurrency.acquire_long_request(owner_id="acme")
    second.release()
    third.release()


def test_an_expired_slot_is_free_again(backend, settings):
    settings.OPENAI_DEADLINE_SECONDS = 0.05  # slots live 2 * deadline + 20 s
    held = [concurrency.acquire_long_request(owner_id="acme") for _ in range(2)]
    if backend == "redis":
        connection = redis.Redis.from_url(settings.REDIS_URL)
        for member, _ in connection.zrange("llmslots:acme", 0, -1, withscores=True):
            connection.zadd("llmslots:acme", {member: 0})  # as if the worker died long ago
        assert 0 < connection.pttl("llmslots:acme") <= 21_000
    else:
        LongRequestSlot.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    concurrency.acquire_long_request(owner_id="acme").release()
    for slot in held:
        slot.release()


def test_a_redis_that_fails_falls_back_to_the_database(settings):
    settings.LLM_MAX_CONCURRENT_PER_OWNER = 1
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    slot = concurrency.acquire_long_request(owner_id="acme")
    assert LongRequestSlot.objects.filter(owner_id="acme").count() == 1
    with pytest.raises(concurrency.TooManyLongRequests):
        concurrency.acquire_long_request(owner_id="acme")
    slot.release()
    assert not LongRequestSlot.objects.exists()


def test_a_process_holds_at_most_its_share_of_long_requests(settings):
    settings.WEB_THREADS = 3  # half, rounded down
    slot = concurrency.acquire_long_request(owner_id="acme")
    with pytest.raises(concurrency.ServerBusy):
        concurrency.acquire_long_request(owner_id="globex")
    slot.release()
    concurrency.acquire_long_request(owner_id="globex").release()


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/chat", {"user_id": "u1", "message": "hi"}),
        ("/api/v1/chat", {"user_id": "u1", "message": "hi", "stream": True}),
        ("/api/v1/memory/extract", {"user_id": "u1", "text": "I like tea"}),
    ],
)
def test_past_the_bound_an_llm_request_is_429_and_calls_no_llm(
    client, fake_openai, settings, path, body
):
    settings.LLM_MAX_CONCURRENT_PER_OWNER = 1
    held = concurrency.acquire_long_request(owner_id="acme")  # another request's slot
    response = client.post(path, body, format="json")
    assert response.status_code == 429
    assert response.json() == TOO_MANY
    assert response["Retry-After"] == "1"
    assert "X-RateLimit-Remaining" in response
    assert fake_openai.requests == []

    held.release()
    response = client.post(path, body, format="json")
    assert response.status_code == 200
    if body.get("stream"):
        b"".join(response.streaming_content)  # the end of the stream gives the slot back
    assert not LongRequestSlot.objects.exists()


def test_a_failed_llm_request_gives_its_slot_back(client, fake_openai, settings):
    fake_openai.script({"status": 400, "error": "bad model"})
    response = client.post("/api/v1/chat", {"user_id": "u1", "message": "hi"}, format="json")
    assert response.status_code == 502
    assert not LongRequestSlot.objects.exists()
    settings.OPENAI_API_KEY = ""
    response = client.post("/api/v1/chat", {"user_id": "u1", "message": "hi"}, format="json")
    assert response.status_code == 503
    assert not LongRequestSlot.objects.exists()


def test_a_stream_closed_before_its_end_gives_its_slot_back(client, fake_openai):
    fake_openai.script({"content": "one two three four"})
    response = client.post(
        "/api/v1/chat", {"user_id": "u1", "message": "hi", "stream": True}, format="json"
    )
    assert LongRequestSlot.objects.count() == 1
    # What the server does when the client goes away; without the end-of-request signal,
    # which would close the test's database connection.
    request_finished.disconnect(close_old_connections)
    try:
        response.close()
    finally:
        request_finished.connect(close_old_connections)
    assert not LongRequestSlot.objects.exists()


def test_the_schema_documents_the_bound(client):
    schema = client.get("/openapi.json").json()
    for path in ("/api/v1/chat", "/api/v1/memory/extract"):
        responses = schema["paths"][path]["post"]["responses"]
        assert TOO_MANY["detail"] in responses["429"]["description"]
        assert "Retry-After" in responses["429"]["headers"]
