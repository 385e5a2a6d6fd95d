"""Every LLM call ends by OPENAI_DEADLINE_SECONDS, even when the server sends nothing."""

import json
import time

import pytest

pytestmark = pytest.mark.django_db


def stream_events(response) -> list[tuple[str, dict]]:
    text = b"".join(response.streaming_content).decode()
    events = []
    for block in text.strip().split("\n\n"):
        name, data = block.split("\n")
        events.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return events


@pytest.fixture
def stalling(fake_openai, settings):
    """Each read may wait 30 s; the whole call only 1 s."""
    settings.OPENAI_TIMEOUT_SECONDS = 30.0
    settings.OPENAI_DEADLINE_SECONDS = 1.0
    return fake_openai


def test_a_stream_that_stalls_ends_with_an_error_event_by_the_deadline(client, stalling):
    stalling.script({"content": "one two three four", "stall_after": 2, "stall": 30})
    started = time.monotonic()
    response = client.post(
        "/api/v1/chat", {"user_id": "u1", "message": "hi", "stream": True}, format="json"
    )
    events = stream_events(response)
    elapsed = time.monotonic() - started

    assert [name for name, _ in events] == ["delta", "delta", "error"]
    assert "within 1 s" in events[-1][1]["detail"]
    assert 0.9 < elapsed < 5  # the deadline, not the 30 s read timeout


def test_a_completion_that_stalls_is_504_by_the_deadline(client, stalling):
    stalling.script({"content": "late", "stall": 30})
    started = time.monotonic()
    response = client.post("/api/v1/chat", {"user_id": "u1", "message": "hi"}, format="json")
    elapsed = time.monotonic() - started

    assert response.status_code == 504
    assert response.json() == {"detail": "The LLM server did not finish within 1 s."}
    assert 0.9 < elapsed < 5
    assert len(stalling.chat_requests()) == 1  # a timeout is not retried


def test_extract_that_stalls_is_504_by_the_deadline(client, stalling):
    stalling.script({"content": "late", "stall": 30})
    started = time.monotonic()
    response = client.post(
        "/api/v1/memory/extract", {"user_id": "u1", "text": "I like tea"}, format="json"
    )
    assert response.status_code == 504
    assert time.monotonic() - started < 5


def test_retries_stop_at_the_deadline(client, fake_openai, settings):
    settings.OPENAI_DEADLINE_SECONDS = 1.0
    settings.OPENAI_MAX_RETRIES = 50
    fake_openai.default_reply = {"status": 500, "error": "exploded"}
    started = time.monotonic()
    response = client.post("/api/v1/chat", {"user_id": "u1", "message": "hi"}, format="json")
    assert response.status_code in (502, 504)
    assert time.monotonic() - started < 3
    assert len(fake_openai.chat_requests()) < 10
