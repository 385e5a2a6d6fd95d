import json
from io import StringIO

import pytest
from cryptography.fernet import Fernet, MultiFernet
from django.core.management import call_command
from django.db import connection
from django.db.models import TextField, Value

from apikeys.models import AuditEvent
from memories import crypto
from memories.models import IdempotentRequest, Memory, MemoryVersion
from memories.tests.factories import make_memory

pytestmark = pytest.mark.django_db

MARKER = "zebracorn-4471"


def all_rows_text() -> str:
    chunks: list[str] = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - table names from introspection
            chunks.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(chunks)


def raw_columns(memory_id) -> dict:
    """The memory's encrypted columns as stored: the envelope and the three earlier ones."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT envelope, content, value, metadata FROM memories_memory WHERE id = %s",
            [memory_id],
        )
        return dict(
            zip(("envelope", "content", "value", "metadata"), cursor.fetchone(), strict=True)
        )


def is_envelope(token) -> bool:
    return isinstance(token, str) and not token.startswith("g") and len(token) > 40


def to_earlier_format(settings, memory_id) -> None:
    """Store the memory and its versions as the previous release did: content, value and
    metadata as three Fernet tokens, no envelope; each snapshot a Fernet token."""
    fernet = MultiFernet([Fernet(key) for key in settings.ENCRYPTION_KEYS])

    def token(text: str) -> Value:
        return Value(fernet.encrypt(text.encode("utf-8")).decode("ascii"), TextField())

    def dumped(value) -> str:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    memory = Memory.objects.get(pk=memory_id)
    Memory.objects.filter(pk=memory_id).update(
        envelope=None,
        legacy_content=token(memory.content),
        legacy_value=None if memory.value is None else token(dumped(memory.value)),
        legacy_metadata=token(dumped(memory.metadata)),
    )
    for version in MemoryVersion.objects.filter(memory_id=memory_id):
        MemoryVersion.objects.filter(pk=version.pk).update(snapshot=token(dumped(version.snapshot)))
    columns = raw_columns(memory_id)
    assert columns["envelope"] is None
    assert columns["content"].startswith("gAAAA")


def test_no_plaintext_anywhere_after_create(client):
    response = client.post(
        "/api/v1/memory",
        {
            "user_id": "u1",
            "type": "fact",
            "content": f"The secret word is {MARKER}",
            "value": {"nested": MARKER},
            "metadata": {"note": MARKER},
        },
        format="json",
    )
    assert response.status_code == 200
    text = all_rows_text()
    assert MARKER not in text
    assert MARKER.split("-")[0] not in text  # nor the stemmed word
    columns = raw_columns(response.json()["id"])
    # One envelope holds content, value and metadata; the earlier columns stay empty.
    assert is_envelope(columns["envelope"])
    assert columns["content"] is None
    assert columns["value"] is None
    assert columns["metadata"] is None
    assert client.get(f"/api/v1/memory/{response.json()['id']}").json()["content"].endswith(MARKER)


def test_rotation_with_two_keys_then_old_key_removed(settings, client):
    old_key = settings.ENCRYPTION_KEYS[0]
    memory = make_memory("acme", user_id="u1", content=f"rotating {MARKER}", value=[1, MARKER])
    client.patch(f"/api/v1/memory/{memory.id}", {"importance": 2}, format="json")
    retry = {"user_id": "u1", "type": "fact", "content": f"kept {MARKER}"}
    kept = client.post("/api/v1/memory", retry, format="json", HTTP_IDEMPOTENCY_KEY="r1")
    before = raw_columns(memory.id)["envelope"]
    new_key = Fernet.generate_key().decode()
    settings.ENCRYPTION_KEYS = [new_key, old_key]

    out = StringIO()
    call_command("rotate_encryption_key", stdout=out, stderr=StringIO())

    assert "Re-encrypted and reindexed 2 memories" in out.getvalue()
    assert "Re-encrypted 1 kept Idempotency-Key responses" in out.getvalue()
    replay = client.post("/api/v1/memory", retry, format="json", HTTP_IDEMPOTENCY_KEY="r1")
    assert replay["Idempotent-Replayed"] == "true"  # hashed under the old key, still matches
    assert replay.json() == kept.json()
    after = raw_columns(memory.id)["envelope"]
    assert is_envelope(after)
    assert after != before
    assert MARKER not in all_rows_text()
    settings.ENCRYPTION_KEYS = [new_key]  # old key gone: everything still reads
    fetched = client.get(f"/api/v1/memory/{memory.id}").json()
    assert fetched["content"] == f"rotating {MARKER}"
    history = client.get(f"/api/v1/memory/{memory.id}/history").json()
    assert [v["content"] for v in history] == [f"rotating {MARKER}"] * 2
    assert client.get(f"/api/v1/memory/{kept.json()['id']}").json() == kept.json()
    assert fetched["value"] == [1, MARKER]
    # and the index was rebuilt under the new key: the words still match
    context = client.post(
        "/api/v1/memory/context", {"user_id": "u1", "query": "rotating"}, format="json"
    ).json()
    assert context["memories"][0]["id"] == str(memory.id)
    assert context["memories"][0]["relevance_score"] > 0.8


def test_undecryptable_row_is_a_clear_500_without_content(settings, client, caplog):
    memory = make_memory("acme", user_id="u1", content=f"lost {MARKER}")
    settings.ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    response = client.get(f"/api/v1/memory/{memory.id}")
    assert response.status_code == 500
    assert "ENCRYPTION_KEY" in response.json()["detail"]
    assert MARKER not in json.dumps(response.json())
    assert MARKER not in caplog.text
    assert any("ENCRYPTION_KEY" in r.getMessage() for r in caplog.records)
    assert Memory.objects.filter(pk=memory.pk).exists()


def every_read(client, memory_id) -> dict:
    """What each read path answers about the user's memories."""
    user = {"user_id": "u1"}
    export = client.get("/api/v1/gdpr/export", user)
    context = {**user, "query": "sailing", "limit": 5}
    return {
        "get": client.get(f"/api/v1/memory/{memory_id}").json(),
        "list": client.get("/api/v1/memory", {**user, "limit": 20}).json(),
        "context": client.post("/api/v1/memory/context", context, format="json").json(),
        "history": client.get(f"/api/v1/memory/{memory_id}/history").json(),
        "export": json.loads(b"".join(export.streaming_content))["memories"],
    }


@pytest.fixture
def earlier_memory(settings, client):
    """A memory stored by the previous release (three tokens), and what every read path
    answered about it before it was converted to that format."""
    body = {
        "user_id": "u1",
        "type": "preference",
        "content": f"Goes sailing on Sundays {MARKER} ünïcode",
        "key": "hobby",
        "value": {"sport": "sailing", "days": [7], "ratio": 1.0},
        "metadata": {"source": "chat", "note": MARKER},
        "importance": 4,
    }
    memory_id = client.post("/api/v1/memory", body, format="json").json()["id"]
    client.patch(f"/api/v1/memory/{memory_id}", {"confidence": 0.5}, format="json")
    answers = every_read(client, memory_id)
    to_earlier_format(settings, memory_id)
    return memory_id, body, answers


def test_rows_of_the_earlier_format_read_exactly_as_before(client, earlier_memory):
    memory_id, _, answers = earlier_memory
    assert every_read(client, memory_id) == answers
    assert raw_columns(memory_id)["envelope"] is None  # reading converts nothing


def test_upsert_of_an_earlier_row_compares_its_fields_and_writes_an_envelope(
    client, earlier_memory
):
    memory_id, body, answers = earlier_memory
    upsert = {"user_id": "u1", "key": "hobby", "type": "preference", "content": body["content"]}
    unchanged = client.post("/api/v1/memory/upsert", upsert, format="json").json()
    assert unchanged == {"result": "unchanged", "memory": answers["get"]}
    assert raw_columns(memory_id)["envelope"] is None

    changed = client.post("/api/v1/memory/upsert", {**upsert, "value": 2}, format="json")
    assert changed.json()["result"] == "updated"
    columns = raw_columns(memory_id)
    assert is_envelope(columns["envelope"])
    assert (columns["content"], columns["value"], columns["metadata"]) == (None, None, None)
    after = client.get(f"/api/v1/memory/{memory_id}").json()
    assert after == {**answers["get"], "value": 2, "updated_at": after["updated_at"]}


def test_a_patch_moves_an_earlier_row_into_one_envelope(client, earlier_memory):
    memory_id, _, answers = earlier_memory
    response = client.patch(f"/api/v1/memory/{memory_id}", {"importance": 2}, format="json")
    assert response.status_code == 200
    assert response.json() == {
        **answers["get"],
        "importance": 2,
        "updated_at": response.json()["updated_at"],
    }
    columns = raw_columns(memory_id)
    assert is_envelope(columns["envelope"])
    assert (columns["content"], columns["value"], columns["metadata"]) == (None, None, None)
    assert MARKER not in all_rows_text()


def test_rotation_converts_earlier_rows_and_their_history(settings, client, earlier_memory):
    memory_id, _, answers = earlier_memory
    old_key = settings.ENCRYPTION_KEYS[0]
    new_key = Fernet.generate_key().decode()
    settings.ENCRYPTION_KEYS = [new_key, old_key]

    out = StringIO()
    call_command("rotate_encryption_key", stdout=out, stderr=StringIO())

    assert "Re-encrypted and reindexed 1 memories" in out.getvalue()
    columns = raw_columns(memory_id)
    assert is_envelope(columns["envelope"])
    assert (columns["content"], columns["value"], columns["metadata"]) == (None, None, None)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT snapshot FROM memories_memoryversion WHERE memory_id = %s", [memory_id]
        )
        snapshots = [token for (token,) in cursor.fetchall()]
    assert len(snapshots) == 2
    assert all(is_envelope(token) for token in snapshots)
    assert MARKER not in all_rows_text()
    settings.ENCRYPTION_KEYS = [new_key]  # the old key gone: everything reads as before
    assert every_read(client, memory_id) == answers


def test_an_envelope_names_the_key_that_sealed_it(settings):
    first, second = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.ENCRYPTION_KEYS = [first]
    sealed_by_first = crypto.encrypt_json(["tea", None, {}])
    settings.ENCRYPTION_KEYS = [second, first]
    sealed_by_second = crypto.encrypt_json(["tea", None, {}])
    assert sealed_by_first[:8] != sealed_by_second[:8]  # version and key id differ
    assert crypto.decrypt_json(sealed_by_first) == crypto.decrypt_json(sealed_by_second)
    settings.ENCRYPTION_KEYS = [second]
    with pytest.raises(crypto.UndecryptableData):
        crypto.decrypt_json(sealed_by_first)
    tampered = sealed_by_second[:-6] + ("AAAAAA" if sealed_by_second[-6:] != "AAAAAA" else "BBBBBB")
    with pytest.raises(crypto.UndecryptableData):
        crypto.decrypt_json(tampered)


def test_a_kept_response_stored_as_a_fernet_token_still_replays(settings, client):
    body = {"user_id": "u1", "type": "fact", "content": f"kept {MARKER}"}
    first = client.post("/api/v1/memory", body, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    fernet = MultiFernet([Fernet(key) for key in settings.ENCRYPTION_KEYS])
    token = fernet.encrypt(json.dumps(first.json()).encode("utf-8")).decode("ascii")
    IdempotentRequest.objects.update(response_body=Value(token, TextField()))

    replay = client.post("/api/v1/memory", body, format="json", HTTP_IDEMPOTENCY_KEY="k1")

    assert replay["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json()


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
