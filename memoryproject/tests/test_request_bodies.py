"""Request bodies: a field the endpoint does not know is a 400 that names it, in every
body and in nested items; the memory object's read-only fields are known and ignored;
and a validation error's detail names the field it is about."""

import pytest

from memories.models import Memory
from memories.tests.factories import make_memory

MEMORY = {"user_id": "u1", "type": "fact", "content": "likes tea"}
BODIES = {
    "/api/v1/memory": MEMORY,
    "/api/v1/memory/context": {"user_id": "u1", "query": "tea"},
    "/api/v1/memory/extract": {"user_id": "u1", "text": "I like tea"},
    "/api/v1/chat": {"user_id": "u1", "message": "hi"},
}


@pytest.mark.parametrize("path", BODIES)
def test_unknown_field_in_any_body_is_400_naming_it(client, path):
    response = client.post(path, {**BODIES[path], "importnace": 5}, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "detail": "importnace: Unknown field.",
        "errors": {"importnace": ["Unknown field."]},
    }
    assert not Memory.objects.exists()


def test_unknown_field_in_a_patch_is_400_and_changes_nothing(client):
    memory = make_memory("acme", importance=2)

    response = client.patch(
        f"/api/v1/memory/{memory.id}", {"importnace": 5, "content": "x"}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["errors"] == {"importnace": ["Unknown field."]}
    row = Memory.objects.get(pk=memory.id)
    assert (row.importance, row.content, row.updated_at) == (2, "likes tea", memory.updated_at)


def test_every_unknown_field_is_named_beside_the_other_problems(client):
    body = {"user_id": "u1", "type": "fact", "contnet": "likes tea", "colour": "blue"}
    response = client.post("/api/v1/memory", body, format="json")

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert errors == {
        "contnet": ["Unknown field."],
        "colour": ["Unknown field."],
        "content": ["This field is required."],
    }
    # The typo comes first: it explains the missing field.
    assert response.json()["detail"] == "contnet: Unknown field."


@pytest.mark.parametrize(
    ("path", "body", "nested"),
    [
        ("/api/v1/chat", {"user_id": "u1", "message": "hi"}, "history"),
        ("/api/v1/memory/extract", {"user_id": "u1"}, "messages"),
    ],
)
def test_unknown_field_in_a_nested_item_is_named_with_its_path(client, path, body, nested):
    items = [{"role": "user", "content": "hi"}, {"role": "user", "content": "x", "rol": "user"}]
    response = client.post(path, {**body, nested: items}, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "detail": f"{nested}.1.rol: Unknown field.",
        "errors": {nested: {"1": {"rol": ["Unknown field."]}}},
    }


def test_memory_type_stays_a_known_alias(client):
    body = {"user_id": "u1", "memory_type": "preference", "content": "dark mode"}
    response = client.post("/api/v1/memory", body, format="json")

    assert response.status_code == 200, response.json()
    assert response.json()["type"] == "preference"


def test_a_memory_read_from_the_api_can_be_sent_back(client):
    created = client.post(
        "/api/v1/memory",
        {**MEMORY, "key": "drink", "value": {"hot": True}, "ttl_seconds": 3600},
        format="json",
    ).json()
    read = client.get(f"/api/v1/memory/{created['id']}").json()

    copied = client.post("/api/v1/memory", read, format="json")
    patched = client.patch(f"/api/v1/memory/{created['id']}", read, format="json")

    assert copied.status_code == 200, copied.json()
    assert copied.json()["id"] != created["id"]
    assert patched.status_code == 200, patched.json()
    assert {k: v for k, v in patched.json().items() if k != "updated_at"} == {
        k: v for k, v in read.items() if k != "updated_at"
    }


def test_patch_ignores_user_id_like_the_read_only_fields(client):
    memory = make_memory("acme", user_id="u1")

    response = client.patch(
        f"/api/v1/memory/{memory.id}",
        {"user_id": "u2", "owner_id": "globex", "id": "x", "is_deleted": True, "content": "y"},
        format="json",
    )

    assert response.status_code == 200
    row = Memory.objects.get(pk=memory.id)
    assert (row.owner_id, row.user_id, row.is_deleted, row.content) == ("acme", "u1", False, "y")


@pytest.mark.parametrize(
    ("path", "body", "detail"),
    [
        ("/api/v1/memory", {**MEMORY, "importance": "high"}, "importance: Must be an integer."),
        ("/api/v1/memory/context", {"user_id": "u1", "limit": 51}, "limit: "),
        (
            "/api/v1/chat",
            {"user_id": "u1", "message": "hi", "history": [{"role": "user", "content": 5}]},
            "history.0.content: Must be a string.",
        ),
        (
            "/api/v1/chat",
            {"user_id": "u1", "message": "hi", "history": [7]},
            "history.0: Must be a JSON object.",
        ),
        ("/api/v1/memory", ["not", "an", "object"], "The request body must be a JSON object."),
        (
            "/api/v1/memory",
            {**MEMORY, "ingestion_mode": "automatic"},
            "Invalid ingestion_mode. Must be one of: explicit, rules",
        ),
    ],
)
def test_validation_detail_names_the_field(client, path, body, detail):
    response = client.post(path, body, format="json")

    assert response.status_code == 400
    if detail.endswith(": "):
        assert response.json()["detail"].startswith(detail)
    else:
        assert response.json()["detail"] == detail
    assert response.json()["errors"]
