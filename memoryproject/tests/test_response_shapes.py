"""Each response is built by hand for speed, and documented by a serializer for the OpenAPI
schema. Here the documenting serializer reads every real response back: a key that one has
and the other lacks, or a value of another kind, fails (memory_payload has its own test in
memories/tests/test_serializers.py)."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from chat.serializers import ChatResponseSerializer, ExtractResponseSerializer
from gdpr.serializers import ExportSerializer
from memories.serializers import ContextResponseSerializer
from memories.tests.factories import make_memory

pytestmark = pytest.mark.django_db


def assert_documented(serializer_class, body) -> None:
    """The serializer, reading the response, writes it back unchanged."""
    documented = json.loads(json.dumps(serializer_class(body).data))
    assert documented == body


@pytest.fixture
def memories(client):
    """A user with a memory of every kind of field, one changed, one soft-deleted and
    one expired, so that history and every state show."""
    make_memory("acme", user_id="u1", content="Drinks green tea every morning", importance=5)
    keyed = make_memory(
        "acme", user_id="u1", type="preference", content="Tea: green", key="tea",
        value={"kind": "green", "sugar": False}, metadata={"source": "test"}, ttl_seconds=9999,
    )  # fmt: skip
    client.patch(f"/api/v1/memory/{keyed.id}", {"importance": 2}, format="json")
    deleted = make_memory("acme", user_id="u1", content="Used to drink black tea")
    client.delete(f"/api/v1/memory/{deleted.id}/soft")
    make_memory(
        "acme", user_id="u1", content="Tea tasting next week", ttl_seconds=60,
        now=timezone.now() - timedelta(days=1),
    )  # fmt: skip


def test_context_response_is_what_its_serializer_documents(client, memories):
    response = client.post(
        "/api/v1/memory/context", {"user_id": "u1", "query": "green tea"}, format="json"
    )
    assert response.status_code == 200
    assert len(response.json()["memories"]) == 2
    assert_documented(ContextResponseSerializer, response.json())


def extraction_reply(*memories) -> dict:
    return {"content": json.dumps({"memories": list(memories)})}


CANDIDATES = (
    {"type": "fact", "content": "Drinks green tea every morning"},  # a duplicate
    {"type": "preference", "content": "Prefers oolong", "key": "tea", "value": "oolong"},
    {"type": "event", "content": "Visited Kyoto", "importance": 4, "confidence": 0.5},
    {"type": "nonsense", "content": "dropped"},
)


def test_extraction_response_is_what_its_serializer_documents(client, memories, fake_openai):
    fake_openai.script(extraction_reply(*CANDIDATES))
    response = client.post(
        "/api/v1/memory/extract",
        {"user_id": "u1", "messages": [{"role": "user", "content": "I love tea"}], "save": True},
        format="json",
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    statuses = [c["status"] for c in body["candidates"]]
    assert (statuses, len(body["dropped"])) == (["duplicate", "updated", "created"], 1)
    assert_documented(ExtractResponseSerializer, body)


def test_chat_response_is_what_its_serializer_documents(client, memories, fake_openai):
    fake_openai.script({"content": "Have some green tea."}, extraction_reply(*CANDIDATES))
    response = client.post(
        "/api/v1/chat", {"user_id": "u1", "message": "What should I drink?", "extract": True},
        format="json",
    )  # fmt: skip
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["memories_used"]
    assert body["extraction"]["candidates"]
    assert_documented(ChatResponseSerializer, body)


def test_export_response_is_what_its_serializer_documents(client, memories):
    response = client.get("/api/v1/gdpr/export", {"user_id": "u1"})
    assert response.status_code == 200
    body = json.loads(b"".join(response.streaming_content))
    states = sorted(record["state"] for record in body["memories"])
    assert states == ["deleted", "expired", "live", "live"]
    assert_documented(ExportSerializer, body)
