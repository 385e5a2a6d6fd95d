"""Edge cases found in review: each once gave a 500 or a wrong answer."""

import base64
import json

import pytest
from cryptography.fernet import Fernet
from rest_framework.exceptions import NotFound

from apikeys.models import AuditEvent
from memories import services
from memories.models import Memory, MemoryTerm
from memories.tests.factories import make_memory

pytestmark = pytest.mark.django_db


def test_rules_value_that_decodes_to_a_lone_surrogate_stays_text(client):
    content = 'preference:theme="\\ud800"'
    response = client.post(
        "/api/v1/memory",
        {"user_id": "u1", "type": "preference", "content": content, "ingestion_mode": "rules"},
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["value"] == '"\\ud800"'


def forged(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        forged(["2024-01-01T00:00:00+00:00", 5]),
        forged(["2024-01-01T00:00:00+00:00", {"a": 1}]),
        forged([1, "00000000-0000-0000-0000-000000000000"]),
        forged(["0001-01-01T00:00:00+14:00", "00000000-0000-0000-0000-000000000000"]),
        forged(["2024-01-01T00:00:00", "00000000-0000-0000-0000-000000000000"]),
        forged({"a": 1}),
        "!!!",
        "",
    ],
)
def test_forged_cursor_is_400(client, cursor):
    make_memory("acme", user_id="u1")
    response = client.get("/api/v1/memory", {"user_id": "u1", "cursor": cursor})
    assert response.status_code == 400
    assert "cursor" in response.json()["errors"]


def test_change_after_a_concurrent_delete_is_404_and_leaves_no_index():
    memory = make_memory("acme", user_id="u1", content="Plays chess")
    stale = Memory.objects.get(pk=memory.pk)  # read before the other request deleted it
    services.soft_delete_memory(memory=memory)
    with pytest.raises(NotFound):
        services.update_memory(memory=stale, data={"content": "Plays go"})
    with pytest.raises(NotFound):
        services.soft_delete_memory(memory=stale)
    assert not MemoryTerm.objects.filter(memory_id=memory.pk).exists()
    assert Memory.objects.get(pk=memory.pk).content == "Plays chess"


def test_undecryptable_rows_can_still_be_hard_deleted_and_erased(client, settings):
    one = make_memory("acme", user_id="u1", content="first")
    make_memory("acme", user_id="u1", content="second")
    settings.ENCRYPTION_KEYS = [Fernet.generate_key().decode()]  # the old key is lost
    assert client.delete(f"/api/v1/memory/{one.id}").status_code == 200
    response = client.delete("/api/v1/gdpr/delete?user_id=u1")
    assert response.status_code == 200
    assert response.json()["deleted"]["memories"] == 1
    assert not Memory.objects.filter(owner_id="acme").exists()
    assert AuditEvent.objects.filter(event="memory_hard_deleted", target=str(one.id)).exists()
